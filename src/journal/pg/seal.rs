//! Seals on PostgreSQL: the same [`digest`](crate::journal::seal) as the SQLite journal, over
//! each row's columns in the table's order (`lycee` included, so a row moved to another lycée
//! is caught too), written in the transaction that wrote the row and checked for the lycée's
//! rows at open.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::journal::seal::{Value, digest};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
}

/// A sealed table: its key and its columns in order (the seal's own column last, not listed).
pub struct Table {
    pub name: &'static str,
    key: &'static str,
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Int, Text};

pub const RUNS: Table = Table {
    name: "runs",
    key: "id",
    columns: &[
        ("id", Int),
        ("lycee", Text),
        ("room", Text),
        ("recipe_digest", Text),
        ("who", Text),
        ("host", Text),
        ("pid", Int),
        ("selection", Text),
        ("started", Text),
        ("finished", Text),
        ("outcome", Text),
        ("detail", Text),
    ],
};

pub const ATTEMPTS: Table = Table {
    name: "attempts",
    key: "id",
    columns: &[
        ("id", Int),
        ("lycee", Text),
        ("run_id", Int),
        ("step", Text),
        ("host", Text),
        ("status", Text),
        ("key", Text),
        ("started", Text),
        ("finished", Text),
        ("message", Text),
        ("error_chain", Text),
        ("log_path", Text),
        ("image", Text),
    ],
};

pub const LOCKS: Table = Table {
    name: "locks",
    key: "room",
    columns: &[
        ("lycee", Text),
        ("room", Text),
        ("pid", Int),
        ("host", Text),
        ("proc_start", Text),
        ("started", Text),
    ],
};

const TABLES: [&Table; 3] = [&RUNS, &ATTEMPTS, &LOCKS];

impl Table {
    fn select(&self) -> String {
        let cols: Vec<&str> = self.columns.iter().map(|c| c.0).collect();
        format!("SELECT {}, seal FROM {}", cols.join(", "), self.name)
    }

    fn key_index(&self) -> usize {
        self.columns
            .iter()
            .position(|c| c.0 == self.key)
            .unwrap_or(0)
    }

    /// The seal of a row selected by [`Table::select`].
    fn seal_of(&self, row: &Row) -> String {
        digest(self.columns.iter().enumerate().map(|(i, (name, kind))| {
            let v = match kind {
                Int => row
                    .try_get::<_, Option<i64>>(i)
                    .ok()
                    .flatten()
                    .map_or(Value::Null, Value::Integer),
                Text => row
                    .try_get::<_, Option<&str>>(i)
                    .ok()
                    .flatten()
                    .map_or(Value::Null, |s| Value::Text(s.as_bytes())),
            };
            (*name, v)
        }))
    }

    /// The row's key, as text (for messages) and as a parameter.
    fn key_of(&self, row: &Row) -> (String, Box<dyn ToSql + Sync + Send>) {
        let i = self.key_index();
        match self.columns[i].1 {
            Int => {
                let v: i64 = row.try_get(i).unwrap_or_default();
                (v.to_string(), Box::new(v))
            }
            Text => {
                let v: String = row.try_get(i).unwrap_or_default();
                (v.clone(), Box::new(v))
            }
        }
    }
}

/// Seals again the lycée's rows of `table` that `filter` (an SQL condition on `$2`) selects;
/// call it in the transaction that wrote them.
pub async fn reseal(
    c: &impl GenericClient,
    table: &Table,
    lycee: &str,
    filter: &str,
    param: &(dyn ToSql + Sync),
) -> Result<(), tokio_postgres::Error> {
    let rows = c
        .query(
            &format!("{} WHERE lycee = $1 AND ({filter})", table.select()),
            &[&lycee, param],
        )
        .await?;
    let update = format!(
        "UPDATE {} SET seal = $1 WHERE lycee = $2 AND {} = $3",
        table.name, table.key
    );
    for row in rows {
        let seal = table.seal_of(&row);
        let (_, key) = table.key_of(&row);
        c.execute(&update, &[&seal, &lycee, &*key as &(dyn ToSql + Sync)])
            .await?;
    }
    Ok(())
}

/// The first row of the lycée (in any sealed table) whose values do not match its seal,
/// named as the SQLite journal names it.
pub async fn first_broken(
    c: &impl GenericClient,
    lycee: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    for table in TABLES {
        let seal_at = table.columns.len();
        let rows = c
            .query(
                &format!("{} WHERE lycee = $1 ORDER BY {}", table.select(), table.key),
                &[&lycee],
            )
            .await?;
        for row in rows {
            let stored: Option<String> = row.try_get(seal_at).unwrap_or(None);
            if stored.as_deref() != Some(table.seal_of(&row).as_str()) {
                let (which, _) = table.key_of(&row);
                return Ok(Some(format!(
                    "row {} = {which} of table {} does not match its seal",
                    table.key, table.name
                )));
            }
        }
    }
    Ok(None)
}
