//! SKELETON (being implemented): the native-compatibility guard.

use crate::error::ApiError;
use crate::state::AppState;
use updraft_core::model::{Bundle, Channel};

/// Refuses (409 `incompatible_bundle`) to put `bundle` live on `channel`
/// when its native packages differ from those of the channel's live bundle,
/// unless `accept_incompatible`.
pub async fn guard(
    state: &AppState,
    channel: &Channel,
    bundle: &Bundle,
    accept_incompatible: bool,
) -> Result<(), ApiError> {
    let _ = (state, channel, bundle, accept_incompatible);
    Ok(())
}
