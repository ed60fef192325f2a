//! Who changed what, recorded for every management change.
//!
//! Entries are written after the change succeeded; a failure to write one is
//! logged and counted, never turned into a failed request (the change is done).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics::{db_operation, Metrics};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use updraft_core::model::{AuditEntry, Clock};
use updraft_store::{AuditQuery, AuditStore, NewAuditEntry};

/// How a caller appears as an actor: `key:<name>` or `user:<email>`.
pub fn actor(caller: &Caller) -> String {
    caller.actor()
}

/// The actor of changes made offline on the data directory.
pub const OFFLINE_ACTOR: &str = "cli:offline";

/// An API view as the before/after of an entry (`None` if it cannot be
/// serialised, which the API's own views always can).
pub fn view<T: Serialize>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}

/// Writes the audit log (entries are stamped by the injected clock) and
/// reads it back.
pub struct AuditService {
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl AuditService {
    pub fn new(store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        AuditService {
            store,
            clock,
            metrics,
        }
    }

    /// The audit entry of a change `caller` made now.
    pub fn entry(
        &self,
        caller: &Caller,
        app_id: Option<&str>,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> NewAuditEntry {
        NewAuditEntry {
            at: self.clock.now(),
            actor: actor(caller),
            api_key_id: caller.api_key_id(),
            app_id: app_id.map(str::to_string),
            action: action.to_string(),
            target: target.to_string(),
            before,
            after,
        }
    }

    /// Records an entry for a change that is already made: a failure is
    /// logged, never turned into a failed request.
    pub async fn record(&self, entry: NewAuditEntry) {
        let (action, target) = (entry.action.clone(), entry.target.clone());
        if let Err(err) = self.store.record_audit(entry).await {
            self.metrics.record_database_error(db_operation::API);
            tracing::error!(error = %err, action, target, "audit entry could not be stored");
        }
    }

    /// The entries `query` asks for, newest first.
    pub async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, ApiError> {
        Ok(self.store.list_audit(query).await?)
    }

    /// `entry` + `record` in one call.
    pub async fn log(
        &self,
        caller: &Caller,
        app_id: Option<&str>,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) {
        let entry = self.entry(caller, app_id, action, target, before, after);
        self.record(entry).await;
    }
}
