//! SKELETON (being implemented): the one way a channel's release changes —
//! from the API, `bundle upload --channel`, schedules and the control loop —
//! with the compatibility guard, history, audit entry and webhooks.

use crate::api::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use updraft_core::model::Channel;

/// Who asks for a change.
pub enum Actor<'a> {
    Key(&'a Caller),
    ControlLoop,
    Schedule(i64),
}

/// A rollout operation, bundles by version name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutRequest {
    Start {
        version: String,
        percentage_bps: u32,
    },
    SetPercentage(u32),
    Pause,
    Resume,
    Promote,
    Rollback,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseChange {
    /// Make `version` (or `builtin`) the channel's stable bundle.
    SetBundle {
        version: String,
    },
    Rollout(RolloutRequest),
}

/// Applies `change` to `channel` of `app_id`: refuses incompatible bundles
/// unless `accept_incompatible`, writes history and audit with the change,
/// refreshes the in-memory release and queues webhooks.
pub async fn change_release(
    state: &AppState,
    actor: Actor<'_>,
    app_id: &str,
    channel: &str,
    change: ReleaseChange,
    accept_incompatible: bool,
) -> Result<Channel, ApiError> {
    let _ = (state, app_id, channel, change, accept_incompatible);
    match actor {
        Actor::Key(_) | Actor::ControlLoop | Actor::Schedule(_) => {
            Err(ApiError::internal("not implemented yet"))
        }
    }
}
