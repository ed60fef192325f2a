//! `POST /api/v1/gc`: one garbage-collection pass on request (admins), the
//! HTTP side of [`crate::storage::gc::GcService`].

use crate::auth::Caller;
use crate::error::ApiError;
use crate::storage::gc::{GcReport, GcService};
use axum::extract::State;
use axum::Json;
use std::sync::Arc;
use updraft_core::model::Role;

#[utoipa::path(post, path = "/api/v1/gc", tag = "uploads", operation_id = "run_gc",
    responses((status = 200, body = GcReport), (status = 403, body = crate::api::views::ErrorView)))]
pub async fn run(
    State(gc): State<Arc<GcService>>,
    caller: Caller,
) -> Result<Json<GcReport>, ApiError> {
    caller.require(Role::Admin, None)?;
    let report = gc.collect().await?;
    tracing::info!(?report, "gc ran on request");
    Ok(Json(report))
}
