//! The audit log: one row per management change, kept when its app is deleted.

use super::rows::{self, audit_columns};
use super::DbConnection;
use super::{clamp_limit, EngineStore};
use crate::{AuditQuery, AuditStore, NewAuditEntry, StoreResult};
use async_trait::async_trait;
use updraft_core::model::AuditEntry;

/// Writes `entry` on the caller's connection or transaction.
pub(super) async fn insert_audit(
    conn: &mut DbConnection,
    entry: &NewAuditEntry,
) -> StoreResult<AuditEntry> {
    let before = entry.before.as_ref().map(rows::json_text).transpose()?;
    let after = entry.after.as_ref().map(rows::json_text).transpose()?;
    let row = sqlx::query(concat!(
        "INSERT INTO audit_log (at, actor, api_key_id, app_id, action, target, before_value, after_value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
        audit_columns!()
    ))
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(entry.api_key_id)
    .bind(&entry.app_id)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(before)
    .bind(after)
    .fetch_one(&mut *conn)
    .await?;
    rows::audit_entry(&row)
}

#[async_trait]
impl AuditStore for EngineStore {
    async fn record_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, &entry).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        // An action ending in '.' is a prefix (`channel.` = every channel
        // action); compared with substr so no LIKE wildcard needs escaping
        // (the CAST: PostgreSQL's substr takes a 32-bit length).
        let (exact_action, action_prefix) = match query.action.as_deref() {
            Some(action) if action.ends_with('.') => (None, Some(action)),
            Some(action) => (Some(action), None),
            None => (None, None),
        };
        let prefix_len =
            action_prefix.map(|p| i64::try_from(p.chars().count()).unwrap_or(i64::MAX));
        sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE ($1 IS NULL OR app_id = $1) \
              AND ($2 IS NULL OR action = $2) \
              AND ($3 IS NULL OR substr(action, 1, CAST($4 AS INTEGER)) = $3) \
              AND ($5 IS NULL OR actor = $5) \
              AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
              AND ($8 IS NULL OR id < $8) \
              ORDER BY id DESC LIMIT $9"
        ))
        .bind(query.app_id.as_deref())
        .bind(exact_action)
        .bind(action_prefix)
        .bind(prefix_len)
        .bind(query.actor.as_deref())
        .bind(query.since)
        .bind(query.until)
        .bind(query.before_id)
        .bind(clamp_limit(query.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::audit_entry)
        .collect()
    }
}
