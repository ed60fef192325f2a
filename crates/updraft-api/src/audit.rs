//! The audit log (`GET /audit`).

use crate::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use updraft_core::model::AuditEntry;
use utoipa::ToSchema;

/// One management change.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: String,
    /// `key:<name>`, `control-loop`, `schedule:<id>`, `cli:offline`.
    pub actor: String,
    pub api_key_id: Option<i64>,
    pub app_id: Option<String>,
    /// Dotted: `channel.update`, `bundle.create`, `apikey.revoke`, …
    pub action: String,
    pub target: String,
    /// The API's view of the thing before the change; `null` for a creation.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// … and after it; `null` for a deletion.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            id: e.id,
            at: rfc3339(e.at),
            actor: e.actor,
            api_key_id: e.api_key_id,
            app_id: e.app_id,
            action: e.action,
            target: e.target,
            before: e.before,
            after: e.after,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct AuditList {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `before_id` for the next (older) page; `null` when this page is the last.
    pub next_before_id: Option<i64>,
}
