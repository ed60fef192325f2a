//! The OpenAPI document, generated from the handlers' annotations.

use super::{analytics_views, compat, views};
use crate::storage::{gc, uploads};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayItems, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, Number, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apikey",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A console session (docs/console.md): state-changing requests also
        // send the session's X-CSRF-Token.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::api::session::SESSION_COOKIE,
                "console session cookie; writes also need the X-CSRF-Token header",
            ))),
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

/// Answers every management operation can give, whatever its handler:
/// authentication and authorisation (every route needs a key), bad path,
/// query or body input (any operation that takes some), a missing app or
/// resource (any path with a parameter), an over-long body, and the server
/// side (database failure, writes paused). A handler's own description of
/// the same status is kept.
struct CommonResponses;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorView")))
                .build(),
        )
        .build()
        .into()
}

fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut Operation> + '_ {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path == "/api/v1/openapi.json" {
                continue;
            }
            let has_path_params = path.contains('{');
            for op in operations_mut(item) {
                let takes_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || op.request_body.is_some();
                let mut common = vec![
                    ("401", "no, an unknown, a revoked or an expired API key"),
                    ("403", "the key's role or app scope does not allow this"),
                    ("500", "the server failed (database or blob storage)"),
                    (
                        "503",
                        "the database is not accepting writes right now; retry after `Retry-After`",
                    ),
                ];
                // Any valid key may ask who it is.
                if path == "/api/v1/whoami" {
                    common.retain(|(status, _)| *status != "403");
                }
                if takes_input {
                    common.push(("400", "invalid path, query or body"));
                }
                if has_path_params {
                    common.push(("404", "the app or the resource does not exist"));
                }
                if op.request_body.is_some() {
                    common.push(("413", "the body is over the route's size limit"));
                }
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

/// Reverse-domain app id, as `updraft_core::validate::is_valid_app_id` checks it.
const APP_ID_PATTERN: &str = r"^[A-Za-z0-9]+(\.[A-Za-z0-9_-]+)+$";
const APP_ID_MAX: usize = updraft_core::validate::MAX_APP_ID_CHARS;
/// 64 hex characters, any case (stored lower-case).
const SHA256_PATTERN: &str = "^[0-9A-Fa-f]{64}$";
/// Empty (= absent), `7d`, `24h`, `30m`, `2w` (at most 100000 units), `YYYY-MM-DD` or epoch
/// milliseconds (`validate::time_bound`); 29 February is left out (it depends on the year).
const TIME_BOUND_PATTERN: &str = r"^(0*(100000|[0-9]{1,5})[dhmw]|[0-9]{4}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|[0-9]{1,18})?$";
/// An absolute http(s) URL with a host and no whitespace.
const HTTP_URL_PATTERN: &str = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$";
/// Printable text with something besides spaces (`native_packages` fields).
const PRINTABLE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// What the validation helpers check, written into the schemas so that a
/// generated client (or schemathesis) knows a value is refused before sending it.
#[derive(Clone, Copy, Default)]
struct Constraint {
    pattern: Option<&'static str>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    minimum: Option<i64>,
    maximum: Option<i64>,
}

const APP_ID: Constraint = Constraint {
    pattern: Some(APP_ID_PATTERN),
    min_length: None,
    max_length: Some(APP_ID_MAX),
    minimum: None,
    maximum: None,
};
const SHA256: Constraint = Constraint {
    pattern: Some(SHA256_PATTERN),
    min_length: None,
    max_length: None,
    minimum: None,
    maximum: None,
};
const TIME_BOUND: Constraint = Constraint {
    pattern: Some(TIME_BOUND_PATTERN),
    min_length: None,
    max_length: None,
    minimum: None,
    maximum: None,
};
const fn text(pattern: Option<&'static str>, min: usize, max: usize) -> Constraint {
    Constraint {
        pattern,
        min_length: Some(min),
        max_length: Some(max),
        minimum: None,
        maximum: None,
    }
}
/// Semantic versioning 2.0.0, numbers of at most 16 digits (they must fit in 64 bits).
const SEMVER_PATTERN: &str = r"^(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$";
/// No control characters, no surrounding white space (`validate::channel_name`).
const NAME_PATTERN: &str = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]([^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f])?$";
/// What `validate::device_id` accepts (the plugin sends a UUID).
const DEVICE_ID_PATTERN: &str = "^[0-9A-Za-z-]{1,36}$";
const OPTIONAL_DEVICE_ID_PATTERN: &str = "^[0-9A-Za-z-]{0,36}$";

const fn range(minimum: i64, maximum: i64) -> Constraint {
    Constraint {
        pattern: None,
        min_length: None,
        max_length: None,
        minimum: Some(minimum),
        maximum: Some(maximum),
    }
}

/// (component schema, property, constraint); an array property's items get it.
const SCHEMA_CONSTRAINTS: &[(&str, &str, Constraint)] = &[
    ("CreateApp", "app_id", APP_ID),
    ("CreateApiKey", "app_id", APP_ID),
    ("CreateWebhook", "app_id", APP_ID),
    (
        "CreateWebhook",
        "url",
        Constraint {
            pattern: Some(HTTP_URL_PATTERN),
            min_length: None,
            max_length: Some(2048),
            minimum: None,
            maximum: None,
        },
    ),
    ("CreateUpload", "sha256", SHA256),
    ("MissingBlobsQuery", "sha256", SHA256),
    ("CreateApiKey", "name", text(None, 1, 100)),
    (
        "CreateBundle",
        "version",
        text(Some(SEMVER_PATTERN), 1, 256),
    ),
    ("CreateChannel", "name", text(Some(NAME_PATTERN), 1, 64)),
    ("CreateUpload", "size", range(1, 2_147_483_648)),
];

/// (path parameter name, constraint), for every operation: path parameters
/// come from the path templates, not from a type that could carry them.
const PATH_CONSTRAINTS: &[(&str, Constraint)] = &[
    ("app_id", APP_ID),
    ("sha256", SHA256),
    ("device_id", text(Some(DEVICE_ID_PATTERN), 1, 36)),
];

/// (query parameter name, constraint), for every operation that takes it.
const QUERY_CONSTRAINTS: &[(&str, Constraint)] = &[
    ("since", TIME_BOUND),
    ("until", TIME_BOUND),
    ("offset", range(0, i64::MAX)),
    // Empty = every device (`analytics::export`).
    ("device_id", text(Some(OPTIONAL_DEVICE_ID_PATTERN), 0, 36)),
];

/// Page-size bounds per operation id (`validate::page_limit`).
const LIMITS: &[(&str, i64)] = &[
    ("list_audit", 500),
    ("list_devices", 1000),
    ("list_webhook_deliveries", 500),
    ("channel_history", 1000),
    ("rollout_decisions", 1000),
];

fn apply(object: &mut Object, c: Constraint) {
    if let Some(pattern) = c.pattern {
        object.pattern = Some(pattern.to_string());
    }
    if let Some(min) = c.min_length {
        object.min_length = Some(min);
    }
    if let Some(max) = c.max_length {
        object.max_length = Some(max);
    }
    if let Some(min) = c.minimum {
        object.minimum = Some(Number::Int(min as isize));
    }
    if let Some(max) = c.maximum {
        object.maximum = Some(Number::Int(max as isize));
    }
}

/// Applies `c` to a schema, its array items and the non-null arms of an
/// `Option`'s `oneOf`. Returns whether it found something to constrain.
fn constrain(schema: &mut RefOr<Schema>, c: Constraint) -> bool {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            apply(object, c);
            true
        }
        RefOr::T(Schema::Array(array)) => match &mut array.items {
            ArrayItems::RefOrSchema(items) => constrain(items, c),
            _ => false,
        },
        RefOr::T(Schema::OneOf(one_of)) => {
            // Every non-null arm, not only the first one found.
            let mut found = false;
            for arm in one_of.items.iter_mut() {
                let null = matches!(arm, RefOr::T(Schema::Object(o)) if o.schema_type == Type::Null.into());
                if !null {
                    found |= constrain(arm, c);
                }
            }
            found
        }
        _ => false,
    }
}

/// `{name, version, requested_version?}`: 1 to 214 printable characters each;
/// other fields are ignored (the plugin's and the CLI's lists may carry more).
fn native_package_schema() -> RefOr<Schema> {
    let text = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(214))
            .pattern(Some(PRINTABLE_PATTERN))
    };
    ObjectBuilder::new()
        .property("name", text())
        .property("version", text())
        .property(
            "requested_version",
            text().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ])),
        )
        .required("name")
        .required("version")
        .into()
}

struct InputConstraints;

impl Modify for InputConstraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            for (name, property, c) in SCHEMA_CONSTRAINTS {
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
                    if let Some(schema) = object.properties.get_mut(*property) {
                        constrain(schema, *c);
                    }
                }
            }
            if let Some(RefOr::T(Schema::Object(object))) =
                components.schemas.get_mut("CreateSchedule")
            {
                object
                    .properties
                    .insert("run_at".to_string(), run_at_schema());
            }
            for name in ["CreateBundle", "CompatibilityRequest"] {
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                    if let Some(schema) = object.properties.get_mut("native_packages") {
                        set_items(schema, native_package_schema());
                    }
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for op in operations_mut(item) {
                let id = op.operation_id.clone().unwrap_or_default();
                // An empty chunk is a valid no-op append (as in tus): the body may be absent.
                if id == "append_upload" {
                    if let Some(body) = op.request_body.as_mut() {
                        body.required = Some(utoipa::openapi::Required::False);
                    }
                }
                for param in op.parameters.iter_mut().flatten() {
                    let Some(schema) = param.schema.as_mut() else {
                        continue;
                    };
                    if param.name == "limit" {
                        if let Some((_, max)) = LIMITS.iter().find(|(op, _)| *op == id) {
                            constrain(schema, range(1, *max));
                        }
                        continue;
                    }
                    let table = match param.parameter_in {
                        ParameterIn::Path => PATH_CONSTRAINTS,
                        ParameterIn::Query => QUERY_CONSTRAINTS,
                        _ => continue,
                    };
                    if let Some((_, c)) = table.iter().find(|(n, _)| *n == param.name) {
                        constrain(schema, *c);
                    }
                }
            }
        }
    }
}

/// `run_at`: an RFC 3339 time or epoch milliseconds.
fn run_at_schema() -> RefOr<Schema> {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime),
        )))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(Number::Int(0))),
        )
        .description(Some(
            "when: an RFC 3339 time (2026-12-01T09:00:00Z) or epoch milliseconds",
        ))
        .into()
}

/// Replaces the item schema of an array (or `Option` of one).
fn set_items(schema: &mut RefOr<Schema>, items: RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Array(array)) => array.items = ArrayItems::RefOrSchema(Box::new(items)),
        RefOr::T(Schema::OneOf(one_of)) => {
            for arm in one_of.items.iter_mut() {
                set_items(arm, items.clone());
            }
        }
        _ => {}
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Updraft management API", description = "Apps, bundles, channels, devices and API keys of an Updraft live-update server."),
    components(schemas(
        views::AppView, views::AppList, views::CreateApp, views::UpdateApp,
        views::BundleView, views::BundleList, views::CreateBundle, views::UpdateBundle,
        views::ChannelView, views::ChannelList, views::ChannelSettings, views::CreateChannel,
        views::ChannelUpdateView, views::NoChangeView,
        views::TargetingSpec, views::RolloutView, views::AutoPauseView, views::AutoPauseSettings,
        views::RampView, views::RampSettings, views::HistoryEntryView, views::HistoryList,
        views::RollbackRequest, views::DecisionView, views::DecisionList,
        views::CreateSchedule, views::ScheduleView, views::ScheduleList,
        compat::CompatibilityRequest, compat::CompatibilityView,
        views::DeviceView, views::DeviceList, views::DeviceDetail, views::EventView,
        views::OverrideView, views::OverrideList, views::SetOverride,
        views::ApiKeyView, views::ApiKeyList, views::CreatedApiKey, views::CreateApiKey, views::Whoami,
        analytics_views::StatsReportView, analytics_views::StatsTotalsView, analytics_views::DayStatsView,
        analytics_views::BundleAdoptionView, analytics_views::AdoptionPointView,
        views::ManifestEntryInput,
        uploads::CreateUpload, uploads::UploadStatus, uploads::MissingBlobsQuery, uploads::MissingBlobs,
        uploads::StoredBlob, gc::GcReport,
        views::ErrorView,
    )),
    security(("apikey" = []), ("session" = [])),
)]
struct ApiDoc;

/// The whole document: the title, schemas and security of [`ApiDoc`], the
/// operations of `paths` (the router's), then what every operation shares.
pub fn document(paths: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(paths);
    let modifiers: [&dyn Modify; 4] = [
        &BearerAuth,
        &FlatChannelCreation,
        &CommonResponses,
        &InputConstraints,
    ];
    for modifier in modifiers {
        modifier.modify(&mut doc);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(doc: &utoipa::openapi::OpenApi) -> Vec<(String, ParameterIn, String)> {
        let mut found = Vec::new();
        for item in doc.paths.paths.values() {
            let mut item = item.clone();
            for op in operations_mut(&mut item) {
                for param in op.parameters.iter().flatten() {
                    found.push((
                        op.operation_id.clone().unwrap_or_default(),
                        param.parameter_in.clone(),
                        param.name.clone(),
                    ));
                }
            }
        }
        found
    }

    /// The tables name schemas, properties, parameters and operations by
    /// string; a rename would silently drop a constraint from the document.
    #[test]
    fn every_constraint_names_something_in_the_document() {
        let doc = super::super::document();
        let schemas = &doc.components.as_ref().expect("components").schemas;
        for (schema, property, _) in SCHEMA_CONSTRAINTS {
            let Some(RefOr::T(Schema::Object(object))) = schemas.get(*schema) else {
                panic!("SCHEMA_CONSTRAINTS names {schema}, which is not an object schema");
            };
            assert!(
                object.properties.contains_key(*property),
                "SCHEMA_CONSTRAINTS names {schema}.{property}, which does not exist"
            );
        }
        let params = parameters(&doc);
        let has =
            |kind: &ParameterIn, name: &str| params.iter().any(|(_, k, n)| k == kind && n == name);
        for (name, _) in PATH_CONSTRAINTS {
            assert!(has(&ParameterIn::Path, name), "no path parameter {name}");
        }
        for (name, _) in QUERY_CONSTRAINTS {
            assert!(has(&ParameterIn::Query, name), "no query parameter {name}");
        }
        for (op, _) in LIMITS {
            assert!(
                params
                    .iter()
                    .any(|(o, k, n)| o == op && *k == ParameterIn::Query && n == "limit"),
                "LIMITS names {op}, which has no query parameter limit"
            );
        }
    }

    /// Every `limit` query parameter has bounds, and no parameter of the
    /// query types is documented as a path parameter (the default of
    /// `IntoParams` without `parameter_in`).
    #[test]
    fn query_structs_are_documented_in_the_query() {
        let doc = super::super::document();
        for item in doc.paths.paths.iter() {
            let (path, item) = item;
            let mut item = item.clone();
            for op in operations_mut(&mut item) {
                for param in op.parameters.iter().flatten() {
                    if param.parameter_in == ParameterIn::Path {
                        assert!(
                            path.contains(&format!("{{{}}}", param.name)),
                            "{path}: {} is documented in the path but is not in it",
                            param.name
                        );
                    }
                    if param.name == "limit" {
                        let Some(RefOr::T(Schema::Object(object))) = param.schema.as_ref() else {
                            panic!("{path}: limit has no schema");
                        };
                        assert!(object.maximum.is_some(), "{path}: limit has no maximum");
                    }
                }
            }
        }
    }
}
