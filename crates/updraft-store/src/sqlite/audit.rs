//! SKELETON (being implemented): the audit log.

use super::SqliteStore;
use crate::{AuditQuery, AuditStore, NewAuditEntry, StoreError, StoreResult};
use async_trait::async_trait;
use updraft_core::model::AuditEntry;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, _entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        Err(StoreError::Backend("not implemented yet".into()))
    }
    async fn list_audit(&self, _query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        Err(StoreError::Backend("not implemented yet".into()))
    }
}
