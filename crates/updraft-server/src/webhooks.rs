//! SKELETON (being implemented): signed event notifications (Standard
//! Webhooks), queued durably and delivered in the background with retries.

use crate::state::AppState;
use serde_json::Value;

/// Event types.
pub mod events {
    pub const BUNDLE_UPLOADED: &str = "bundle.uploaded";
    pub const CHANNEL_CHANGED: &str = "channel.changed";
    pub const ROLLOUT_STARTED: &str = "rollout.started";
    pub const ROLLOUT_ADVANCED: &str = "rollout.advanced";
    pub const ROLLOUT_PAUSED: &str = "rollout.paused";
    pub const ROLLOUT_RESUMED: &str = "rollout.resumed";
    pub const ROLLOUT_ROLLED_BACK: &str = "rollout.rolled_back";
    pub const ROLLOUT_PROMOTED: &str = "rollout.promoted";
    /// Auto-pause with action `notify` found the rollout failing.
    pub const ROLLOUT_ALERT: &str = "rollout.alert";
    pub const WEBHOOK_TEST: &str = "webhook.test";
}

/// Queues `data` as event `event_type` of `app_id` for every webhook that
/// wants it; returns once the deliveries are stored (they go out in the
/// background). Failures are logged: the change that caused the event is done.
pub async fn emit(state: &AppState, app_id: &str, event_type: &str, data: Value) {
    let _ = (state, app_id, event_type, data);
}
