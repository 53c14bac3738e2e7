//! Step attempts: one row per step (per host) each time a run tries it. The latest attempt of
//! each step and host makes the room's history.

use crate::domain::procedure::{History, Record, Step, StepStatus};

use super::{JournalError, Sqlite, now};

/// One attempt as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRow {
    pub id: i64,
    pub run_id: i64,
    pub step: String,
    pub host: Option<String>,
    /// running, done, failed, skipped, interrupted.
    pub status: String,
    pub key: String,
    pub started: String,
    pub finished: Option<String>,
    pub message: String,
    /// The error and its causes, one per line.
    pub error_chain: String,
    pub log_path: Option<String>,
    pub image: Option<String>,
}

const COLUMNS: &str =
    "id, run_id, step, host, status, key, started, finished, message, error_chain, log_path, image";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        step: r.get(2)?,
        host: r.get(3)?,
        status: r.get(4)?,
        key: r.get(5)?,
        started: r.get(6)?,
        finished: r.get(7)?,
        message: r.get(8)?,
        error_chain: r.get(9)?,
        log_path: r.get(10)?,
        image: r.get(11)?,
    })
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct Ending<'a> {
    pub message: &'a str,
    pub error_chain: &'a [String],
    pub image: Option<&'a str>,
}

impl Sqlite {
    /// Records that a step starts (status `running`); returns the attempt id.
    pub fn start_attempt(
        &self,
        run: i64,
        step: Step,
        host: Option<&str>,
        key: &str,
        log_path: Option<&str>,
    ) -> Result<i64, JournalError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO attempts (run_id, step, host, status, key, started, log_path) VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6)",
                rusqlite::params![run, step.as_str(), host, key, now(), log_path],
            )?;
            let id = c.last_insert_rowid();
            super::seal::reseal(c, "attempts", "id = ?1", [id])?;
            Ok(id)
        })
    }

    /// Records a step that was not tried (skipped on a host, with why).
    pub fn skip(
        &self,
        run: i64,
        step: Step,
        host: Option<&str>,
        key: &str,
        why: &str,
    ) -> Result<i64, JournalError> {
        self.write(|c| {
            let t = now();
            c.execute(
                "INSERT INTO attempts (run_id, step, host, status, key, started, finished, message) VALUES (?1, ?2, ?3, 'skipped', ?4, ?5, ?5, ?6)",
                rusqlite::params![run, step.as_str(), host, key, t, why],
            )?;
            let id = c.last_insert_rowid();
            super::seal::reseal(c, "attempts", "id = ?1", [id])?;
            Ok(id)
        })
    }

    /// Ends an attempt with `status` (`done`, `failed`, `interrupted`, `skipped`).
    pub fn finish_attempt(
        &self,
        id: i64,
        status: &str,
        end: &Ending<'_>,
    ) -> Result<(), JournalError> {
        self.write(|c| {
            c.execute(
                "UPDATE attempts SET status = ?2, finished = ?3, message = ?4, error_chain = ?5, image = COALESCE(?6, image) WHERE id = ?1",
                rusqlite::params![id, status, now(), end.message, end.error_chain.join("\n"), end.image],
            )?;
            super::seal::reseal(c, "attempts", "id = ?1", [id])
        })
    }

    /// The attempts of a run, in order.
    pub fn attempts(&self, run: i64) -> Result<Vec<AttemptRow>, JournalError> {
        self.sql(|c| {
            c.prepare(&format!(
                "SELECT {COLUMNS} FROM attempts WHERE run_id = ?1 ORDER BY id"
            ))?
            .query_map([run], row)?
            .collect()
        })
    }

    /// Every attempt of the room's runs, in order.
    pub fn room_attempts(&self, room: &str) -> Result<Vec<AttemptRow>, JournalError> {
        self.sql(|c| {
            c.prepare(&format!(
                "SELECT {} FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.room = ?1 ORDER BY a.id",
                COLUMNS.split(", ").map(|col| format!("a.{col}")).collect::<Vec<_>>().join(", ")
            ))?
            .query_map([room], row)?
            .collect()
        })
    }
}

/// The room's history from its attempts in order: the latest attempt of each step (per host).
pub fn history_of(rows: Vec<AttemptRow>) -> History {
    let mut h = History::default();
    for a in rows {
        let Ok(step) = a.step.parse::<Step>() else {
            continue;
        };
        let status = match a.status.as_str() {
            "interrupted" => StepStatus::Running,
            s => StepStatus::parse(s).unwrap_or(StepStatus::Failed),
        };
        let rec = Record {
            status,
            key: a.key,
            seq: a.id as u64,
            message: a.message,
            image: a.image,
        };
        h.put(step, a.host.as_deref(), rec);
    }
    h
}
