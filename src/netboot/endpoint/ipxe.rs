//! The iPXE scripts the endpoint serves, rendered with handlebars from `templates/`: stage 1
//! (chains to the per-MAC script), a task (boot the boot environment with the task on the
//! kernel command line) and "boot the local disk". Golden outputs live in `golden/`.

use handlebars::Handlebars;
use serde::Serialize;

use super::tasks::BootTask;

const STAGE1: &str = include_str!("templates/stage1.ipxe.hbs");
const AGENT: &str = include_str!("templates/agent.ipxe.hbs");
const LOCAL: &str = include_str!("templates/local.ipxe.hbs");

/// Renders the endpoint's iPXE scripts.
pub struct Scripts {
    hb: Handlebars<'static>,
}

#[derive(Serialize)]
struct AgentVars<'a> {
    base: &'a str,
    action: &'a str,
    task: &'a str,
    token: &'a str,
    mac: &'a str,
    hostname: Option<&'a str>,
    disk: Option<&'a str>,
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

impl Scripts {
    pub fn new() -> Self {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        // iPXE scripts are not HTML: no escaping (values are checked before rendering).
        hb.register_escape_fn(handlebars::no_escape);
        for (name, t) in [("stage1", STAGE1), ("agent", AGENT), ("local", LOCAL)] {
            hb.register_template_string(name, t)
                .unwrap_or_else(|e| panic!("built-in template {name} is broken: {e}"));
        }
        Self { hb }
    }

    fn render(&self, name: &str, vars: &impl Serialize) -> String {
        self.hb
            .render(name, vars)
            .unwrap_or_else(|e| panic!("built-in template {name} failed: {e}"))
    }

    /// Stage 1, fetched by a plain iPXE (over TFTP from DHCP's file name, or over HTTP).
    pub fn stage1(&self, base: &str) -> String {
        self.render("stage1", &serde_json::json!({ "base": base }))
    }

    /// Boot the local disk.
    pub fn local(&self, mac: &str) -> String {
        self.render("local", &serde_json::json!({ "mac": mac }))
    }

    /// Boot the boot environment for `task`. `disk` overrides the agent's disk detection.
    pub fn agent(&self, base: &str, task: &BootTask, disk: Option<&str>) -> String {
        let hostname = match &task.action {
            super::tasks::StoredAction::Deploy { hostname, .. } => Some(hostname.as_str()),
            _ => None,
        };
        self.render(
            "agent",
            &AgentVars {
                base,
                action: task.action.agent_command().unwrap_or("none"),
                task: &task.id,
                token: &task.token,
                mac: &task.mac,
                hostname,
                disk,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tasks::{StoredAction, TaskState};
    use super::*;

    fn task(action: StoredAction) -> BootTask {
        BootTask {
            id: "0123abcd".into(),
            mac: "52:54:00:77:00:01".into(),
            action,
            token: "f00d".into(),
            created_at: 0,
            expires_at: 600,
            state: TaskState::Pending,
        }
    }

    const BASE: &str = "http://10.77.0.1:8000";

    #[test]
    fn stage1_matches_golden() {
        assert_eq!(
            Scripts::new().stage1(BASE),
            include_str!("golden/stage1.ipxe")
        );
    }

    #[test]
    fn local_boot_matches_golden() {
        assert_eq!(
            Scripts::new().local("52:54:00:77:00:01"),
            include_str!("golden/local.ipxe")
        );
    }

    #[test]
    fn deploy_matches_golden() {
        let t = task(StoredAction::Deploy {
            room: "b204".into(),
            image_id: "b204/2026-11-22".into(),
            hostname: "b204-p01".into(),
            read_all: false,
        });
        assert_eq!(
            Scripts::new().agent(BASE, &t, None),
            include_str!("golden/deploy.ipxe")
        );
    }

    #[test]
    fn capture_and_format_match_golden() {
        let s = Scripts::new();
        let t = task(StoredAction::Capture {
            room: "b204".into(),
            image_version: "v2".into(),
        });
        assert_eq!(
            s.agent(BASE, &t, Some("/dev/vda")),
            include_str!("golden/capture.ipxe")
        );
        let t = task(StoredAction::Format {
            base_image: "debian-12".into(),
            hostname: String::new(),
            inject: Vec::new(),
        });
        assert_eq!(s.agent(BASE, &t, None), include_str!("golden/format.ipxe"));
    }
}
