//! `/channel_self`: both the device-stored semantics of 8.x and the
//! server-stored overrides of old plugins.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn with_beta(s: &Server, self_assign: bool) {
    s.seed("1.1.0").await;
    s.bundle("1.2.0").await;
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "beta", "bundle": "1.2.0", "allow_device_self_set": self_assign})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
}

fn query(body: &Value) -> String {
    body.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={}", v.replace(' ', "%20"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn list_is_a_bare_array_with_numeric_ids() {
    let s = Server::start().await;
    with_beta(&s, true).await;
    let (st, b) = s
        .request(
            Method::GET,
            &format!("/channel_self?{}", query(&device_body())),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let list = b.as_array().expect("bare array");
    assert_eq!(list.len(), 2, "{b}");
    for item in list {
        assert!(item["id"].is_i64(), "{item}");
        assert!(
            item["name"].is_string()
                && item["public"].is_boolean()
                && item["allow_self_set"].is_boolean()
        );
    }
    let (st, b) = s.request(Method::GET, "/channel_self", None).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_query_parameters"))
    );
}

#[tokio::test]
async fn new_plugins_keep_the_channel_on_the_device() {
    let s = Server::start().await;
    with_beta(&s, true).await;
    let (st, b) = s
        .post(
            "/channel_self",
            &with(device_body(), json!({"channel": "beta"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["status"], "ok", "{b}");
    assert!(b.get("error").is_none());
    // Nothing stored server-side: the device sends defaultChannel from now on.
    let (_, overrides) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}/overrides"), None)
        .await;
    assert_eq!(overrides["overrides"], json!([]));
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"defaultChannel": "beta"})),
        )
        .await;
    assert_eq!(b["version"], "1.2.0");
    // getChannel answers the channel the device resolves to.
    let (st, b) = s
        .request(
            Method::PUT,
            "/channel_self",
            Some(&with(device_body(), json!({"defaultChannel": "beta"}))),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["channel"], "beta", "{b}");
    let (_, b) = s
        .request(Method::PUT, "/channel_self", Some(&device_body()))
        .await;
    assert_eq!(b["channel"], "production", "{b}");
}

#[tokio::test]
async fn private_channels_refuse_self_assignment() {
    let s = Server::start().await;
    with_beta(&s, false).await;
    let (st, b) = s
        .post(
            "/channel_self",
            &with(device_body(), json!({"channel": "beta"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["error"], "channel_self_set_not_allowed", "{b}");
    let (_, b) = s
        .post(
            "/channel_self",
            &with(device_body(), json!({"channel": "nope"})),
        )
        .await;
    assert_eq!(b["error"], "channel_not_found", "{b}");
    let (_, b) = s.post("/channel_self", &device_body()).await;
    assert_eq!(b["error"], "missing_channel", "{b}");
    // And a device asking for it on /updates does not get it: it is served
    // from the public channel, as getChannel() says.
    let (_, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"defaultChannel": "beta"})),
        )
        .await;
    assert_eq!(b["version"], "1.1.0", "{b}");
    let (_, b) = s
        .request(
            Method::PUT,
            "/channel_self",
            Some(&with(device_body(), json!({"defaultChannel": "beta"}))),
        )
        .await;
    assert_eq!(b["channel"], "production", "{b}");
}

#[tokio::test]
async fn old_plugins_get_a_server_side_override() {
    let s = Server::start().await;
    with_beta(&s, true).await;
    let old = with(device_body(), json!({"plugin_version": "6.10.0"}));
    let (st, b) = s
        .post(
            "/channel_self",
            &with(old.clone(), json!({"channel": "beta"})),
        )
        .await;
    assert_eq!((st, b["status"].as_str()), (200, Some("ok")), "{b}");
    let (_, overrides) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}/overrides"), None)
        .await;
    assert_eq!(overrides["overrides"][0]["channel"], "beta", "{overrides}");
    assert_eq!(overrides["overrides"][0]["source"], "device");
    let (_, b) = s.post("/updates", &old).await;
    assert_eq!(b["version"], "1.2.0", "{b}");
    let (_, b) = s.request(Method::PUT, "/channel_self", Some(&old)).await;
    assert_eq!(
        (b["channel"].as_str(), b["status"].as_str()),
        (Some("beta"), Some("override")),
        "{b}"
    );
    // DELETE (query string) removes it.
    let (st, b) = s
        .request(
            Method::DELETE,
            &format!("/channel_self?{}", query(&old)),
            None,
        )
        .await;
    assert_eq!((st, b["status"].as_str()), (200, Some("ok")), "{b}");
    let (_, b) = s.post("/updates", &old).await;
    assert_eq!(b["version"], "1.1.0", "{b}");
}

#[tokio::test]
async fn channel_self_for_an_unknown_app_is_app_not_found() {
    let s = Server::start().await;
    let body = with(
        device_body(),
        json!({"app_id": "com.unknown.app", "channel": "beta"}),
    );
    let (st, b) = s.post("/channel_self", &body).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (404, Some("app_not_found")),
        "{b}"
    );
}

#[tokio::test]
async fn set_channel_to_the_public_channel_is_stored_by_the_device() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, b) = s
        .patch_production(json!({"allow_device_self_set": true}))
        .await;
    assert_eq!(st, 200, "{b}");
    // A beta build (config defaultChannel "beta") asks for production: the
    // hosted service's answer, so the plugin stores "production". `unset`
    // would send it back to its config's "beta".
    let (st, b) = s
        .post(
            "/channel_self",
            &with(
                device_body(),
                json!({"channel": "production", "defaultChannel": "beta"}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(b, json!({"status": "ok", "allowSet": true}));
}

/// Sends the same body to `/updates` and `PUT /channel_self`: the version
/// offered to a device on the native bundle, and the channel getChannel() names.
pub async fn both_endpoints(s: &Server, body: &Value) -> (Value, Value) {
    let device = with(body.clone(), json!({"version_name": "builtin"}));
    let (st, update) = s.post("/updates", &device).await;
    assert_eq!(st, 200, "{update}");
    let (st, get) = s.request(Method::PUT, "/channel_self", Some(body)).await;
    assert_eq!(st, 200, "{get}");
    (update["version"].clone(), get["channel"].clone())
}

#[tokio::test]
async fn a_device_that_stored_the_public_channel_follows_it_when_it_moves() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    s.bundle("1.2.0").await;
    // getChannel() while production is public: the plugin stores the answer.
    let (_, get) = s
        .request(Method::PUT, "/channel_self", Some(&device_body()))
        .await;
    assert_eq!(get["channel"], "production", "{get}");
    let stored = with(device_body(), json!({"defaultChannel": "production"}));
    assert_eq!(
        both_endpoints(&s, &stored).await,
        (json!("1.1.0"), json!("production"))
    );
    // The team makes stable the public channel (production is demoted: neither
    // public nor self-assignable any more).
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "stable", "public": true, "bundle": "1.2.0"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (_, production) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/channels/production"),
            None,
        )
        .await;
    assert_eq!(production["public"], false, "{production}");
    // Both endpoints agree: the device follows the public channel, no no_channel.
    assert_eq!(
        both_endpoints(&s, &stored).await,
        (json!("1.2.0"), json!("stable"))
    );
    // A stored name the device may still use keeps working as before.
    let (st, b) = s
        .patch_production(json!({"allow_device_self_set": true}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        both_endpoints(&s, &stored).await,
        (json!("1.1.0"), json!("production"))
    );
}
