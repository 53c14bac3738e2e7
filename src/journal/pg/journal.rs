//! Runs and step attempts on PostgreSQL: the same rows and meaning as the SQLite journal's
//! (`../runs.rs`, `../attempts.rs`), each kept under its lycée. Run and attempt ids come from
//! one sequence per table for the whole database, so a lycée's ids are increasing but not
//! consecutive.

use tokio_postgres::Row;

use super::Session;
use super::seal::{ATTEMPTS, RUNS, reseal};
use crate::journal::{AttemptRow, JournalError, RunRow, now};

const RUN_COLUMNS: &str =
    "id, room, recipe_digest, who, host, pid, selection, started, finished, outcome, detail";

const ATTEMPT_COLUMNS: &str =
    "id, run_id, step, host, status, key, started, finished, message, error_chain, log_path, image";

fn run_row(r: &Row) -> Result<RunRow, tokio_postgres::Error> {
    Ok(RunRow {
        id: r.try_get(0)?,
        room: r.try_get(1)?,
        recipe_digest: r.try_get(2)?,
        who: r.try_get(3)?,
        host: r.try_get(4)?,
        pid: r.try_get::<_, i64>(5)? as u32,
        selection: r.try_get(6)?,
        started: r.try_get(7)?,
        finished: r.try_get(8)?,
        outcome: r.try_get(9)?,
        detail: r.try_get(10)?,
    })
}

fn attempt_row(r: &Row) -> Result<AttemptRow, tokio_postgres::Error> {
    Ok(AttemptRow {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        step: r.try_get(2)?,
        host: r.try_get(3)?,
        status: r.try_get(4)?,
        key: r.try_get(5)?,
        started: r.try_get(6)?,
        finished: r.try_get(7)?,
        message: r.try_get(8)?,
        error_chain: r.try_get(9)?,
        log_path: r.try_get(10)?,
        image: r.try_get(11)?,
    })
}

/// A run to start.
pub struct NewRun {
    pub room: String,
    pub recipe_digest: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub selection: String,
}

/// An attempt to record: running, or skipped (with why).
pub struct NewAttempt {
    pub run: i64,
    pub step: &'static str,
    pub host: Option<String>,
    pub key: String,
    pub log_path: Option<String>,
    pub skipped: Option<String>,
}

impl Session {
    pub fn close_dead_runs(&mut self, room: &str) -> Result<Vec<i64>, JournalError> {
        let (rt, client, lycee) = (&self.rt, &mut self.client, self.lycee.as_str());
        let out = rt.block_on(async {
            let tx = client.transaction().await?;
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM runs WHERE lycee = $1 AND room = $2 AND finished IS NULL ORDER BY id",
                    &[&lycee, &room],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let t = now();
            for id in &ids {
                tx.execute(
                    "UPDATE attempts SET status = 'interrupted', finished = $3, message = 'the process running it stopped' \
                     WHERE lycee = $1 AND run_id = $2 AND status = 'running'",
                    &[&lycee, id, &t],
                )
                .await?;
                tx.execute(
                    "UPDATE runs SET finished = $3, outcome = 'interrupted', detail = 'the process stopped without finishing' \
                     WHERE lycee = $1 AND id = $2",
                    &[&lycee, id, &t],
                )
                .await?;
                reseal(&tx, &ATTEMPTS, lycee, "run_id = $2", id).await?;
                reseal(&tx, &RUNS, lycee, "id = $2", id).await?;
            }
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(ids)
        });
        out.map_err(|e| self.err(e))
    }

    pub fn start_run(&mut self, run: &NewRun) -> Result<i64, JournalError> {
        let (rt, client, lycee) = (&self.rt, &mut self.client, self.lycee.as_str());
        let out = rt.block_on(async {
            let tx = client.transaction().await?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO runs (lycee, room, recipe_digest, who, host, pid, selection, started) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    &[
                        &lycee,
                        &run.room,
                        &run.recipe_digest,
                        &run.who,
                        &run.host,
                        &i64::from(run.pid),
                        &run.selection,
                        &now(),
                    ],
                )
                .await?
                .get(0);
            reseal(&tx, &RUNS, lycee, "id = $2", &id).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(id)
        });
        out.map_err(|e| self.err(e))
    }

    pub fn finish_run(&mut self, id: i64, outcome: &str, detail: &str) -> Result<(), JournalError> {
        let (rt, client, lycee) = (&self.rt, &mut self.client, self.lycee.as_str());
        let out = rt.block_on(async {
            let tx = client.transaction().await?;
            tx.execute(
                "UPDATE runs SET finished = $3, outcome = $4, detail = $5 WHERE lycee = $1 AND id = $2",
                &[&lycee, &id, &now(), &outcome, &detail],
            )
            .await?;
            reseal(&tx, &RUNS, lycee, "id = $2", &id).await?;
            tx.commit().await
        });
        out.map_err(|e| self.err(e))
    }

    pub fn runs(&mut self, room: Option<&str>) -> Result<Vec<RunRow>, JournalError> {
        let rows = self
            .rt
            .block_on(self.client.query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE lycee = $1 AND ($2::TEXT IS NULL OR room = $2) ORDER BY id DESC"
                ),
                &[&self.lycee, &room],
            ))
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(run_row)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    pub fn run(&mut self, id: i64) -> Result<RunRow, JournalError> {
        let row = self
            .rt
            .block_on(self.client.query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE lycee = $1 AND id = $2"),
                &[&self.lycee, &id],
            ))
            .map_err(|e| self.err(e))?;
        match row {
            Some(r) => run_row(&r).map_err(|e| self.err(e)),
            None => Err(JournalError::NoSuchRun(id)),
        }
    }

    pub fn insert_attempt(&mut self, a: &NewAttempt) -> Result<i64, JournalError> {
        let (rt, client, lycee) = (&self.rt, &mut self.client, self.lycee.as_str());
        let out = rt.block_on(async {
            let tx = client.transaction().await?;
            let t = now();
            let (status, finished, message) = match &a.skipped {
                None => ("running", None, ""),
                Some(why) => ("skipped", Some(t.as_str()), why.as_str()),
            };
            let id: i64 = tx
                .query_one(
                    "INSERT INTO attempts (lycee, run_id, step, host, status, key, started, finished, message, log_path) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    &[
                        &lycee,
                        &a.run,
                        &a.step,
                        &a.host,
                        &status,
                        &a.key,
                        &t,
                        &finished,
                        &message,
                        &a.log_path,
                    ],
                )
                .await?
                .get(0);
            reseal(&tx, &ATTEMPTS, lycee, "id = $2", &id).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(id)
        });
        out.map_err(|e| self.err(e))
    }

    pub fn finish_attempt(
        &mut self,
        id: i64,
        status: &str,
        message: &str,
        error_chain: &str,
        image: Option<&str>,
    ) -> Result<(), JournalError> {
        let (rt, client, lycee) = (&self.rt, &mut self.client, self.lycee.as_str());
        let out = rt.block_on(async {
            let tx = client.transaction().await?;
            tx.execute(
                "UPDATE attempts SET status = $3, finished = $4, message = $5, error_chain = $6, \
                 image = COALESCE($7, image) WHERE lycee = $1 AND id = $2",
                &[&lycee, &id, &status, &now(), &message, &error_chain, &image],
            )
            .await?;
            reseal(&tx, &ATTEMPTS, lycee, "id = $2", &id).await?;
            tx.commit().await
        });
        out.map_err(|e| self.err(e))
    }

    pub fn attempts(&mut self, run: i64) -> Result<Vec<AttemptRow>, JournalError> {
        let rows = self
            .rt
            .block_on(self.client.query(
                &format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE lycee = $1 AND run_id = $2 ORDER BY id"
                ),
                &[&self.lycee, &run],
            ))
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(attempt_row)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    pub fn room_attempts(&mut self, room: &str) -> Result<Vec<AttemptRow>, JournalError> {
        let columns = ATTEMPT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self
            .rt
            .block_on(self.client.query(
                &format!(
                    "SELECT {columns} FROM attempts a JOIN runs r ON r.id = a.run_id \
                     WHERE a.lycee = $1 AND r.lycee = $1 AND r.room = $2 ORDER BY a.id"
                ),
                &[&self.lycee, &room],
            ))
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(attempt_row)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }
}
