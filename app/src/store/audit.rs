//! The audit log's one writer: an entry appended inside the transaction of the action it
//! records (append-only: nothing in the app updates or deletes a row of it).

use super::{now_ms, sql, Result};

/// An audit entry to append: who did what, where, with what outcome.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub application: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: &'a str,
}

/// Appends `entry` inside `tx`, so it commits or rolls back with the action it records.
pub(super) async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    entry: &NewAudit<'_>,
) -> Result<()> {
    sql::exec(
        &mut **tx,
        "INSERT INTO audit_log (at, actor, action, application, environment, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        (
            now_ms(),
            entry.actor,
            entry.action,
            entry.application.map(str::to_owned),
            entry.environment.map(str::to_owned),
            entry.outcome,
            entry.detail,
        ),
    )
    .await?;
    Ok(())
}
