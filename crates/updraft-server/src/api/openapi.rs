//! The OpenAPI document, generated from the handlers' annotations.

use super::{
    analytics, analytics_views, apikeys, apps, audit, bundles, channels, compat, devices, releases,
    views, webhooks,
};
use crate::storage::{gc, uploads};
use axum::Json;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apikey",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A new channel is `ChannelSettings` plus `name`, all in one object. Derived
/// schemas can only express that as an `allOf`, which conflicts with the
/// settings' `additionalProperties: false`; so it is built from them here.
struct FlatChannelCreation;

impl Modify for FlatChannelCreation {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(settings))) = components.schemas.get("ChannelSettings")
        else {
            return;
        };
        let mut creation = settings.clone();
        creation.properties.insert(
            "name".to_string(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("1 to 64 characters"))
                .into(),
        );
        creation.required.insert(0, "name".to_string());
        creation.description = Some("A new channel: its name and any settings.".to_string());
        components.schemas.insert(
            "CreateChannel".to_string(),
            RefOr::T(Schema::Object(creation)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Updraft management API", description = "Apps, bundles, channels, devices and API keys of an Updraft live-update server."),
    paths(
        apps::list, apps::create, apps::show, apps::update, apps::delete,
        bundles::list, bundles::create, bundles::show, bundles::update, bundles::delete,
        channels::list, channels::create, channels::show, channels::update, channels::delete,
        releases::history, releases::rollback, releases::decisions,
        compat::show, compat::check_packages,
        releases::create_schedule, releases::list_schedules, releases::cancel_schedule,
        devices::list, devices::show, devices::set_override, devices::unset_override, devices::list_overrides,
        analytics::stats, analytics::export,
        apikeys::list, apikeys::create, apikeys::revoke,
        audit::list,
        webhooks::list, webhooks::create, webhooks::show, webhooks::delete, webhooks::test, webhooks::deliveries,
        uploads::create, uploads::show, uploads::append, uploads::put_blob, uploads::missing, gc::run,
    ),
    components(schemas(
        views::AppView, views::AppList, views::CreateApp, views::UpdateApp,
        views::BundleView, views::BundleList, views::CreateBundle, views::UpdateBundle,
        views::ChannelView, views::ChannelList, views::ChannelSettings, views::CreateChannel,
        views::TargetingSpec, views::RolloutView, views::AutoPauseView, views::AutoPauseSettings,
        views::RampView, views::RampSettings, views::HistoryEntryView, views::HistoryList,
        views::RollbackRequest, views::DecisionView, views::DecisionList,
        views::CreateSchedule, views::ScheduleView, views::ScheduleList,
        compat::CompatibilityRequest, compat::CompatibilityView,
        views::DeviceView, views::DeviceList, views::DeviceDetail, views::EventView,
        views::OverrideView, views::OverrideList, views::SetOverride,
        views::ApiKeyView, views::ApiKeyList, views::CreatedApiKey, views::CreateApiKey,
        analytics_views::StatsReportView, analytics_views::StatsTotalsView, analytics_views::DayStatsView,
        analytics_views::BundleAdoptionView, analytics_views::AdoptionPointView,
        views::ManifestEntryInput,
        uploads::CreateUpload, uploads::UploadStatus, uploads::MissingBlobsQuery, uploads::MissingBlobs,
        uploads::StoredBlob, gc::GcReport,
        views::ErrorView,
    )),
    modifiers(&BearerAuth, &FlatChannelCreation),
    security(("apikey" = [])),
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
