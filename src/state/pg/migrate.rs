//! Migrations: the SQL files of `migrations/` (the journal's tables, the audit log's: one
//! sequence for every table parc keeps in the database), applied in order whenever a journal
//! or an audit log opens, each once, in one
//! transaction that first takes a transaction-scoped advisory lock, so two parc processes
//! opening a fresh database at once do not both create the tables. `parc_schema_version`
//! records what was applied.

use tokio_postgres::Client;

/// Every migration, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_journal",
        include_str!("migrations/0001_journal.sql"),
    ),
    (2, "0002_audit", include_str!("migrations/0002_audit.sql")),
    (3, "0003_fleet", include_str!("migrations/0003_fleet.sql")),
];

/// The advisory lock key migrations take (any fixed number; "parcmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x7061_7263_6d69_6772;

/// Brings the database to the latest schema. The inner error is a database already past this
/// parc: (its version, the latest this parc knows).
pub async fn apply(client: &mut Client) -> Result<Result<(), (i64, i64)>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS parc_schema_version (
             version BIGINT PRIMARY KEY,
             name    TEXT NOT NULL,
             applied TEXT NOT NULL
         )",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM parc_schema_version",
            &[],
        )
        .await?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Ok(Err((current, latest)));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO parc_schema_version (version, name, applied) VALUES ($1, $2, $3)",
            &[version, name, &crate::journal::now()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}
