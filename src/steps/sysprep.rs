//! Sysprep (before a Windows room's capture): on the master, over PowerShell, refuses when a
//! reboot is pending, runs `sysprep /generalize /oobe /quit` with a small generalize answer
//! file, and reads back the machine's state, so parc refuses to capture a master sysprep did
//! not generalise. `/quit` rather than `/shutdown`: the state is read while the master still
//! answers; the capture's network boot then restarts it (into parc's boot environment, never
//! into its own Windows, which would run specialize on the master).
//!
//! The state (documented by Microsoft's sysprep pages): `GeneralizationState` under
//! `HKLM\SYSTEM\Setup\Status\SysprepStatus` (7 once generalised), `ImageState` under
//! `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\State`
//! (`IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE` after `/generalize /oobe`), the
//! `Sysprep_succeeded.tag` file and the end of `Sysprep\Panther\setuperr.log`. The capture
//! agent checks the same `ImageState` offline (`Windows\Setup\State\State.ini`).
//! Rendered and parsed from those documented shapes only: no Windows ran it here.

use serde::Deserialize;
use serde_json::json;

use super::{StepError, templates};
use crate::image::windows::GENERALIZED;

/// The script that generalises the master and prints its state as JSON.
pub fn render_sysprep() -> Result<String, StepError> {
    templates::render("windows-sysprep", &json!({ "run": true }))
}

/// The same state, read without running sysprep.
pub fn render_sysprep_check() -> Result<String, StepError> {
    templates::render("windows-sysprep", &json!({ "run": false }))
}

/// What the master says after sysprep.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SysprepState {
    /// sysprep.exe's exit code (`None` for a check without a run).
    #[serde(default)]
    pub exit: Option<i64>,
    #[serde(default)]
    pub generalization_state: Option<u32>,
    #[serde(default)]
    pub image_state: Option<String>,
    #[serde(default)]
    pub succeeded_tag: bool,
    #[serde(default, deserialize_with = "crate::psjson::one_or_many")]
    pub errors: Vec<String>,
}

/// Parses the script's output (its last JSON line).
pub fn parse_sysprep_state(stdout: &str) -> Result<SysprepState, StepError> {
    crate::psjson::last_object(stdout).map_err(|detail| StepError::Parse {
        what: "the sysprep state of the master".into(),
        detail,
    })
}

impl SysprepState {
    /// `Err` says, in English, why the master is not ready to capture.
    pub fn generalized(&self) -> Result<(), String> {
        let image = self.image_state.as_deref().unwrap_or("unknown");
        let ok = self.generalization_state == Some(7)
            && image == GENERALIZED
            && self.exit.is_none_or(|e| e == 0);
        if ok {
            return Ok(());
        }
        let mut why = format!(
            "sysprep did not generalise the master: GeneralizationState {}, ImageState {image}",
            self.generalization_state
                .map_or_else(|| "absent".to_string(), |g| g.to_string())
        );
        if let Some(e) = self.exit.filter(|e| *e != 0) {
            why.push_str(&format!(", sysprep exit {e}"));
        }
        if !self.errors.is_empty() {
            why.push_str(&format!("; setuperr.log: {}", self.errors.join(" | ")));
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_scripts() {
        let run = render_sysprep().unwrap();
        let check = render_sysprep_check().unwrap();
        let both = format!("### run\n{run}\n### check\n{check}\n");
        crate::golden::check("src/steps/golden/windows-sysprep.txt", &both);
        assert!(run.contains("'/generalize', '/oobe', '/quit'"));
        assert!(!check.contains("sysprep.exe"));
    }

    #[test]
    fn a_generalised_master() {
        let s = parse_sysprep_state(
            r#"{"exit":0,"generalization_state":7,"image_state":"IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE","succeeded_tag":true,"errors":[]}"#,
        )
        .unwrap();
        assert_eq!(s.generalized(), Ok(()));
    }

    #[test]
    fn a_failed_sysprep_names_its_state_and_log() {
        // One setuperr.log line comes as a string; an unknown ImageState as "".
        let s = parse_sysprep_state(
            "noise\r\n{\"exit\":1,\"generalization_state\":4,\"image_state\":\"IMAGE_STATE_COMPLETE\",\"succeeded_tag\":false,\"errors\":\"SYSPRP Package Microsoft.Foo was installed for a user, but not provisioned for all users.\"}\r\n",
        )
        .unwrap();
        let why = s.generalized().unwrap_err();
        assert!(
            why.contains("GeneralizationState 4, ImageState IMAGE_STATE_COMPLETE, sysprep exit 1"),
            "{why}"
        );
        assert!(why.contains("not provisioned for all users"), "{why}");
        let none = parse_sysprep_state(r#"{"exit":null,"generalization_state":null,"image_state":"","succeeded_tag":false,"errors":null}"#).unwrap();
        assert!(
            none.generalized()
                .unwrap_err()
                .contains("GeneralizationState absent")
        );
        assert!(parse_sysprep_state("sysprep.exe: not found").is_err());
    }
}
