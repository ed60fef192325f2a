//! SKELETON (being implemented): who changed what, recorded for every
//! management change.

use crate::api::Caller;
use crate::state::AppState;
use serde_json::Value;
use updraft_store::NewAuditEntry;

/// How an API key appears as an actor: `key:<name>`.
pub fn actor(caller: &Caller) -> String {
    format!("key:{}", caller.key.name)
}

/// The audit entry of a change `caller` made now.
pub fn entry(
    state: &AppState,
    caller: &Caller,
    app_id: Option<&str>,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> NewAuditEntry {
    NewAuditEntry {
        at: state.clock.now(),
        actor: actor(caller),
        api_key_id: Some(caller.key.id),
        app_id: app_id.map(str::to_string),
        action: action.to_string(),
        target: target.to_string(),
        before,
        after,
    }
}

/// Records an entry for a change that is already made: a failure is logged,
/// never turned into a failed request.
pub async fn record(state: &AppState, entry: NewAuditEntry) {
    let _ = (state, entry);
}
