//! Runs: one row per `parc master` invocation on a room.

use rusqlite::OptionalExtension;

use super::{JournalError, Sqlite, now};

/// One run as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub room: String,
    pub recipe_digest: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// The `--from/--only/--hosts` of the run, as text.
    pub selection: String,
    pub started: String,
    pub finished: Option<String>,
    /// done, partial, failed, blocked, interrupted; `None` while running (or killed).
    pub outcome: Option<String>,
    pub detail: String,
}

const COLUMNS: &str =
    "id, room, recipe_digest, who, host, pid, selection, started, finished, outcome, detail";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        room: r.get(1)?,
        recipe_digest: r.get(2)?,
        who: r.get(3)?,
        host: r.get(4)?,
        pid: r.get(5)?,
        selection: r.get(6)?,
        started: r.get(7)?,
        finished: r.get(8)?,
        outcome: r.get(9)?,
        detail: r.get(10)?,
    })
}

impl Sqlite {
    /// Closes the runs of a room left open by a process that died (the caller holds the room's
    /// lock, so no other run of it is alive): they end "interrupted", and so do their attempts
    /// that were running. Returns the ids of the runs closed.
    pub fn close_dead_runs(&self, room: &str) -> Result<Vec<i64>, JournalError> {
        self.write(|c| {
            let ids: Vec<i64> = c
                .prepare("SELECT id FROM runs WHERE room = ?1 AND finished IS NULL")?
                .query_map([room], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let t = now();
            for id in &ids {
                c.execute(
                    "UPDATE attempts SET status = 'interrupted', finished = ?2, message = 'the process running it stopped' \
                     WHERE run_id = ?1 AND status = 'running'",
                    rusqlite::params![id, t],
                )?;
                c.execute(
                    "UPDATE runs SET finished = ?2, outcome = 'interrupted', detail = 'the process stopped without finishing' \
                     WHERE id = ?1",
                    rusqlite::params![id, t],
                )?;
                super::seal::reseal(c, "attempts", "run_id = ?1", [id])?;
                super::seal::reseal(c, "runs", "id = ?1", [id])?;
            }
            Ok(ids)
        })
    }

    /// Starts a run; returns its id.
    pub fn start_run(
        &self,
        room: &str,
        recipe_digest: &str,
        who: &str,
        holder: &super::Holder,
        selection: &str,
    ) -> Result<i64, JournalError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO runs (room, recipe_digest, who, host, pid, selection, started) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![room, recipe_digest, who, holder.host, holder.pid, selection, now()],
            )?;
            let id = c.last_insert_rowid();
            super::seal::reseal(c, "runs", "id = ?1", [id])?;
            Ok(id)
        })
    }

    /// Ends a run.
    pub fn finish_run(&self, id: i64, outcome: &str, detail: &str) -> Result<(), JournalError> {
        self.write(|c| {
            c.execute(
                "UPDATE runs SET finished = ?2, outcome = ?3, detail = ?4 WHERE id = ?1",
                rusqlite::params![id, now(), outcome, detail],
            )?;
            super::seal::reseal(c, "runs", "id = ?1", [id])
        })
    }

    /// Runs, newest first, of one room or all.
    pub fn runs(&self, room: Option<&str>) -> Result<Vec<RunRow>, JournalError> {
        self.sql(|c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM runs WHERE ?1 IS NULL OR room = ?1 ORDER BY id DESC"
            );
            c.prepare(&sql)?.query_map([room], row)?.collect()
        })
    }

    pub fn run(&self, id: i64) -> Result<RunRow, JournalError> {
        self.sql(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })?
        .ok_or(JournalError::NoSuchRun(id))
    }
}
