//! The OpenAPI document, generated from the handlers' annotations.

use super::{apikeys, apps, bundles, channels, devices, views};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Updraft management API", description = "Apps, bundles, channels, devices and API keys of an Updraft live-update server."),
    paths(
        apps::list, apps::create, apps::show, apps::update, apps::delete,
        bundles::list, bundles::create, bundles::show, bundles::update, bundles::delete,
        channels::list, channels::create, channels::show, channels::update, channels::delete,
        devices::list, devices::show, devices::set_override, devices::unset_override, devices::list_overrides,
        apikeys::list, apikeys::create, apikeys::revoke,
    ),
    components(schemas(
        views::AppView, views::AppList, views::CreateApp, views::UpdateApp,
        views::BundleView, views::BundleList, views::CreateBundle, views::UpdateBundle,
        views::ChannelView, views::ChannelList, views::ChannelSettings, views::CreateChannel,
        views::DeviceView, views::DeviceList, views::DeviceDetail, views::EventView,
        views::OverrideView, views::OverrideList, views::SetOverride,
        views::ApiKeyView, views::ApiKeyList, views::CreatedApiKey, views::CreateApiKey,
        views::ErrorView,
    )),
    modifiers(&BearerAuth),
    security(("apikey" = [])),
)]
pub struct ApiDoc;

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
