//! Row seals: every row of the journal carries the digest of its own values (column `seal`),
//! written in the same transaction as the row. When the journal opens, SQLite's integrity
//! check looks at the file's structure and every row is checked against its seal, so a row
//! changed behind parc's back — a flipped bit on disk, an edit by hand — is found before a run
//! reads it, rather than read as another state. On PostgreSQL (`super::pg`) the rows carry
//! the same seal, computed by the same [`digest`], checked for the lycée's rows at open.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Params};
use sha2::{Digest, Sha256};

/// The sealed tables and their keys.
pub const TABLES: [(&str, &str); 3] = [("runs", "id"), ("attempts", "id"), ("locks", "room")];

/// The column holding a row's seal.
pub const SEAL: &str = "seal";

/// One value of a row as a seal sees it: SQLite's storage classes (PostgreSQL's columns map
/// onto them: `BIGINT` is an integer, `TEXT` a text).
#[derive(Debug, Clone, Copy)]
pub enum Value<'v> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'v [u8]),
    Blob(&'v [u8]),
}

/// A row's seal: sha256 over each column's name, type and value, in the table's column order
/// (but the seal's own column), hex. Both backends seal with this one function.
pub fn digest<'n, 'v>(columns: impl IntoIterator<Item = (&'n str, Value<'v>)>) -> String {
    let mut h = Sha256::new();
    for (name, value) in columns {
        if name == SEAL {
            continue;
        }
        h.update((name.len() as u32).to_le_bytes());
        h.update(name.as_bytes());
        match value {
            Value::Null => h.update([0u8]),
            Value::Integer(v) => {
                h.update([1u8]);
                h.update(v.to_le_bytes());
            }
            Value::Real(v) => {
                h.update([2u8]);
                h.update(v.to_le_bytes());
            }
            Value::Text(t) => {
                h.update([3u8]);
                h.update((t.len() as u64).to_le_bytes());
                h.update(t);
            }
            Value::Blob(b) => {
                h.update([4u8]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    }
    hex::encode(&h.finalize()[..16])
}

/// The seal of the current row of a SQLite statement.
fn seal_of(row: &rusqlite::Row<'_>, names: &[String]) -> rusqlite::Result<String> {
    let mut values = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Integer(v),
            ValueRef::Real(v) => Value::Real(v),
            ValueRef::Text(t) => Value::Text(t),
            ValueRef::Blob(b) => Value::Blob(b),
        });
    }
    Ok(digest(names.iter().map(String::as_str).zip(values)))
}

/// Seals again the rows of `table` that `filter` (an SQL condition) selects; call it in the
/// transaction that wrote them.
pub fn reseal(
    c: &Connection,
    table: &str,
    filter: &str,
    params: impl Params,
) -> rusqlite::Result<()> {
    let key = key_of(table);
    let mut stmt = c.prepare(&format!("SELECT * FROM {table} WHERE {filter}"))?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let k = names.iter().position(|n| n == key).unwrap_or(0);
    let mut rows = stmt.query(params)?;
    let mut seals: Vec<(rusqlite::types::Value, String)> = Vec::new();
    while let Some(row) = rows.next()? {
        seals.push((
            row.get::<_, rusqlite::types::Value>(k)?,
            seal_of(row, &names)?,
        ));
    }
    drop(rows);
    let mut update = c.prepare(&format!("UPDATE {table} SET {SEAL} = ?1 WHERE {key} = ?2"))?;
    for (k, s) in seals {
        update.execute(rusqlite::params![s, k])?;
    }
    Ok(())
}

fn key_of(table: &str) -> &'static str {
    TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map_or("id", |(_, k)| k)
}

/// The first row (of any sealed table) whose values do not match its seal, named.
pub fn first_broken(c: &Connection) -> rusqlite::Result<Option<String>> {
    for (table, key) in TABLES {
        let mut stmt = c.prepare(&format!("SELECT * FROM {table}"))?;
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let k = names.iter().position(|n| n == key).unwrap_or(0);
        let s = names.iter().position(|n| n == SEAL);
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let stored: Option<String> = match s {
                Some(s) => row.get::<_, Option<String>>(s).unwrap_or(None),
                None => None,
            };
            if stored.as_deref() != Some(seal_of(row, &names)?.as_str()) {
                let which = match row.get_ref(k)? {
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                };
                return Ok(Some(format!(
                    "row {key} = {which} of table {table} does not match its seal"
                )));
            }
        }
    }
    Ok(None)
}

/// Adds the seal column to a journal written before seals, and seals every row (once, at
/// the upgrade: from then on a row without a seal is a damaged one).
pub fn upgrade(c: &Connection) -> rusqlite::Result<()> {
    for (table, _) in TABLES {
        let has: bool = c
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{SEAL}'"
            ))?
            .exists([])?;
        if !has {
            c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {SEAL} TEXT"))?;
        }
        reseal(c, table, &format!("{SEAL} IS NULL"), [])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_changed_behind_the_seal_is_named() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, room TEXT, seal TEXT);
             CREATE TABLE attempts (id INTEGER PRIMARY KEY, status TEXT, seal TEXT);
             CREATE TABLE locks (room TEXT PRIMARY KEY, pid INTEGER, seal TEXT);
             INSERT INTO runs (room) VALUES ('b204'), ('c112');
             INSERT INTO attempts (status) VALUES ('done');
             INSERT INTO locks (room, pid) VALUES ('b204', 42);",
        )
        .unwrap();
        assert!(first_broken(&c).unwrap().is_some(), "unsealed rows");
        for (t, _) in TABLES {
            reseal(&c, t, "1", []).unwrap();
        }
        assert_eq!(first_broken(&c).unwrap(), None);
        c.execute("UPDATE attempts SET status = 'dnne' WHERE id = 1", [])
            .unwrap();
        assert_eq!(
            first_broken(&c).unwrap().as_deref(),
            Some("row id = 1 of table attempts does not match its seal")
        );
        reseal(&c, "attempts", "id = ?1", [1]).unwrap();
        c.execute("UPDATE locks SET pid = 43", []).unwrap();
        assert!(
            first_broken(&c)
                .unwrap()
                .unwrap()
                .contains("room = b204 of table locks")
        );
    }
}
