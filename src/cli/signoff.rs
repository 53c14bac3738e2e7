//! `parc signoff ROOM --teacher … --discipline … [--date …]`: records that a teacher signed the
//! room's *current* software list, by appending a `[[signoff]]` with its digest to the recipe.
//! The file's comments and layout are kept (toml_edit); the write is atomic.

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::domain::digest::software_digest;
use crate::exit::{CliError, Status};
use crate::workspace::WorkspaceDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The room whose list was signed.
    pub room: String,
    /// Who signed, as they sign (e.g. "Mme Claire Martin").
    #[arg(long)]
    pub teacher: String,
    /// Their discipline (e.g. "Mathématiques").
    #[arg(long)]
    pub discipline: String,
    /// The date on the signed paper (YYYY-MM-DD); default today.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    #[command(flatten)]
    pub ws: super::WorkspaceArg,
}

pub fn run(args: Args) -> Result<Status, CliError> {
    for (flag, v) in [
        ("--teacher", &args.teacher),
        ("--discipline", &args.discipline),
    ] {
        if v.trim().is_empty() {
            return Err(CliError::user(anyhow::anyhow!("{flag} must not be empty")));
        }
    }
    let dir = WorkspaceDir::open(&args.ws.workspace).map_err(CliError::user)?;
    let loaded = dir
        .load()
        .context("reading the workspace")
        .map_err(CliError::internal)?;
    let recipe = loaded.room(&args.room).map_err(super::room_error)?;
    let file_findings: Vec<_> = loaded
        .parse_findings
        .iter()
        .filter(|f| {
            f.location.file == recipe.file && f.severity == crate::domain::finding::Severity::Error
        })
        .collect();
    if !file_findings.is_empty() {
        let list: Vec<String> = file_findings.iter().map(|f| f.to_string()).collect();
        return Err(CliError::user(anyhow::anyhow!(
            "{} has errors:\n{}",
            recipe.file,
            list.join("\n")
        ))
        .with_hint("fix the recipe first (`parc check`): a sign-off is for an exact, valid list"));
    }
    let date = args.date.unwrap_or_else(super::today);
    if date > super::today() {
        return Err(CliError::user(anyhow::anyhow!(
            "the sign-off date {date} is in the future"
        )));
    }
    let digest = software_digest(&recipe.software);
    let teacher = args.teacher.trim();
    let discipline = args.discipline.trim();
    if recipe.signoffs.iter().any(|s| {
        s.digest.value == digest
            && s.teacher.value == teacher
            && s.discipline.value.eq_ignore_ascii_case(discipline)
    }) {
        eprintln!(
            "{teacher} ({discipline}) has already signed this list of room {}: nothing to do",
            args.room
        );
        return Ok(Status::Success);
    }

    let src = loaded
        .room_source(&args.room)
        .expect("a parsed room has a source");
    let updated = append_signoff(&src.text, teacher, discipline, date, &digest)
        .map_err(CliError::internal)?;
    let path = dir.root.join(&recipe.file);
    crate::fsutil::write_atomic(&path, updated.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
        .map_err(CliError::internal)?;
    let actor = super::actor();
    let audited = crate::audit::record(
        &dir.root,
        &crate::audit::Entry::signoff(&args.room, teacher, discipline, &digest, &actor),
    );
    if let Err(e) = audited {
        // A sign-off the audit log does not know must not stay in the recipe.
        let restored = crate::fsutil::write_atomic(&path, src.text.as_bytes());
        let err = anyhow::Error::new(e).context(match restored {
            Ok(()) => format!("recording the sign-off in the audit log; {} is unchanged", recipe.file),
            Err(r) => format!(
                "recording the sign-off in the audit log, and restoring {} failed too ({r}): remove the last [[signoff]] by hand",
                recipe.file
            ),
        });
        return Err(
            CliError::internal(err).with_hint("check the audit log with `parc audit verify`")
        );
    }
    eprintln!(
        "recorded: {teacher} ({discipline}) signed the list of room {} ({} product(s), {digest}) on {date}",
        args.room,
        recipe.software.len()
    );
    Ok(Status::Success)
}

/// Appends a `[[signoff]]` entry to a recipe's text, keeping everything else as written.
pub fn append_signoff(
    text: &str,
    teacher: &str,
    discipline: &str,
    date: NaiveDate,
    digest: &str,
) -> anyhow::Result<String> {
    use chrono::Datelike as _;
    let mut doc: toml_edit::DocumentMut = text.parse().context("parsing the recipe")?;
    let mut t = toml_edit::Table::new();
    t["teacher"] = toml_edit::value(teacher);
    t["discipline"] = toml_edit::value(discipline);
    let d = toml_edit::Date {
        year: date.year() as u16,
        month: date.month() as u8,
        day: date.day() as u8,
    };
    t["date"] = toml_edit::value(toml_edit::Datetime {
        date: Some(d),
        time: None,
        offset: None,
    });
    t["digest"] = toml_edit::value(digest);
    match doc.get_mut("signoff") {
        None => {
            let mut aot = toml_edit::ArrayOfTables::new();
            aot.push(t);
            doc.insert("signoff", toml_edit::Item::ArrayOfTables(aot));
        }
        Some(toml_edit::Item::ArrayOfTables(aot)) => aot.push(t),
        Some(toml_edit::Item::Value(toml_edit::Value::Array(arr))) => {
            arr.push(t.into_inline_table())
        }
        Some(_) => {
            anyhow::bail!("`signoff` in the recipe is neither [[signoff]] tables nor an array")
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_keeps_comments_and_layout() {
        let text = "# Salle B204\nid = \"b204\"   # kept\n\n[[software]]\nname = \"A\" # note\n";
        let out = append_signoff(
            text,
            "Mme Martin",
            "Maths",
            NaiveDate::from_ymd_opt(2026, 9, 14).unwrap(),
            "sha256:ab",
        )
        .unwrap();
        assert!(out.starts_with(text), "{out}");
        assert!(out.ends_with(
            "\n[[signoff]]\nteacher = \"Mme Martin\"\ndiscipline = \"Maths\"\ndate = 2026-09-14\ndigest = \"sha256:ab\"\n"
        ));
    }
}
