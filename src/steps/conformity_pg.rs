//! Verify results on PostgreSQL: each verify run's conformity record (the JSON that
//! `reports/verification-*.json` holds) kept in `verify_results` too, keyed by the lycée's
//! UAI, so that every clone of the workspace and the region see a room's last verification.

use super::conformity::ConformityRecord;
use super::report::{parse_json, render_json};
use crate::state::pg::store::{Store, StoreError};

/// Stores `record` for the store's lycée; its row id.
pub fn store(store: &Store, record: &ConformityRecord) -> Result<i64, StoreError> {
    let (room, at, compliant) = (
        record.room.clone(),
        record.generated_at.clone(),
        record.compliant,
    );
    let json = render_json(record);
    store.call(async move |client, lycee| {
        let row = client
            .query_one(
                "INSERT INTO verify_results (lycee, room, generated_at, compliant, record)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&lycee, &room, &at, &compliant, &json],
            )
            .await?;
        Ok(row.get(0))
    })
}

/// The room's latest stored record, if any (`Err` inside: a row that is not a record).
pub fn latest(
    store: &Store,
    room: &str,
) -> Result<Option<serde_json::Result<ConformityRecord>>, StoreError> {
    let room = room.to_owned();
    let json: Option<String> = store.call(async move |client, lycee| {
        Ok(client
            .query_opt(
                "SELECT record FROM verify_results WHERE lycee = $1 AND room = $2
                 ORDER BY id DESC LIMIT 1",
                &[&lycee, &room],
            )
            .await?
            .map(|r| r.get(0)))
    })?;
    Ok(json.map(|j| parse_json(&j)))
}
