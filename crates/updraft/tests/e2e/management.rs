//! The management API: keys, roles, scopes, errors, OpenAPI.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let s = Server::start().await;
    let (st, b) = s.request(Method::GET, "/api/v1/apps", None).await;
    assert_eq!((st, b["error"].as_str()), (401, Some("unauthorized")));
    let (st, b) = s
        .api_as("upd_wrong", Method::GET, "/api/v1/apps", None)
        .await;
    assert_eq!((st, b["error"].as_str()), (401, Some("unauthorized")));
}

#[tokio::test]
async fn roles_and_app_scope_limit_what_a_key_can_do() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let viewer = create_key(&s.data_dir, "viewer", "viewer", &[]);
    let (st, _) = s
        .api_as(
            &viewer,
            Method::GET,
            &format!("/api/v1/apps/{APP}/bundles"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, b) = s
        .api_as(
            &viewer,
            Method::POST,
            "/api/v1/apps",
            Some(&json!({"app_id": "com.viewer.app"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (403, Some("forbidden")));
    let publisher = create_key(&s.data_dir, "ci", "publisher", &["--app", APP]);
    let (st, b) = s
        .api_as(&publisher, Method::POST, &format!("/api/v1/apps/{APP}/bundles"),
            Some(&json!({"version": "1.2.0", "external_url": "https://cdn.example.com/1.2.0.zip", "checksum": CHECKSUM})))
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, _) = s
        .api(
            Method::POST,
            "/api/v1/apps",
            Some(&json!({"app_id": "com.other.app"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .api_as(
            &publisher,
            Method::GET,
            "/api/v1/apps/com.other.app/bundles",
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, b) = s
        .api_as(&publisher, Method::GET, "/api/v1/apps", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        b["apps"].as_array().unwrap().len(),
        1,
        "scoped key sees its app only: {b}"
    );
    // Revoked keys stop working.
    let (code, _, err) = cli(&s.data_dir, None, None, &["apikey", "revoke", "ci"]);
    assert_eq!(code, 0, "{err}");
    let (st, _) = s
        .api_as(
            &publisher,
            Method::GET,
            &format!("/api/v1/apps/{APP}/bundles"),
            None,
        )
        .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn bundle_versions_are_unique_forever() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    s.bundle("1.2.0").await;
    let body = json!({"version": "1.2.0", "external_url": "https://cdn.example.com/x.zip", "checksum": CHECKSUM});
    let path = format!("/api/v1/apps/{APP}/bundles");
    let (st, b) = s.api(Method::POST, &path, Some(&body)).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (409, Some("bundle_already_exists"))
    );
    let (st, _) = s.api(Method::DELETE, &format!("{path}/1.2.0"), None).await;
    assert_eq!(st, 204);
    let (st, b) = s.api(Method::POST, &path, Some(&body)).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (409, Some("bundle_version_deleted"))
    );
    let (_, list) = s.api(Method::GET, &path, None).await;
    assert_eq!(list["bundles"].as_array().unwrap().len(), 1, "{list}");
    let (_, list) = s
        .api(Method::GET, &format!("{path}?include_deleted=true"), None)
        .await;
    assert_eq!(list["bundles"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn bad_management_input_is_refused_with_codes() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let path = format!("/api/v1/apps/{APP}/bundles");
    let cases = [
        (
            json!({"version": "v1", "external_url": "https://x.example/a.zip", "checksum": CHECKSUM}),
            "invalid_version",
        ),
        (
            json!({"version": "1.3.0", "external_url": "ftp://x/a.zip", "checksum": CHECKSUM}),
            "invalid_url",
        ),
        (
            json!({"version": "1.3.0", "external_url": "https://x.example/a.zip", "checksum": "abc"}),
            "invalid_checksum",
        ),
        (
            json!({"version": "1.3.0", "external_url": "https://x.example/a.zip"}),
            "invalid_body",
        ),
        (
            json!({"version": "1.3.0", "external_url": "https://x.example/a.zip", "checksum": CHECKSUM, "session_key": "a:b"}),
            "invalid_checksum",
        ),
    ];
    for (body, code) in cases {
        let (st, b) = s.api(Method::POST, &path, Some(&body)).await;
        assert_eq!((st, b["error"].as_str()), (400, Some(code)), "{body}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (st, b) = s
        .api(
            Method::POST,
            "/api/v1/apps",
            Some(&json!({"app_id": "notreverse"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_app_id")));
    let (st, b) = s
        .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": APP})))
        .await;
    assert_eq!((st, b["error"].as_str()), (409, Some("app_already_exists")));
    let (st, b) = s.patch_production(json!({"bundle": "9.9.9"})).await;
    assert_eq!((st, b["error"].as_str()), (404, Some("bundle_not_found")));
    let (st, b) = s
        .patch_production(json!({"disable_auto_update": "sometimes"}))
        .await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_body")));
    let (st, b) = s.patch_production(json!({"no_such_flag": true})).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_body")));
    let (st, b) = s
        .api(
            Method::PATCH,
            &format!("/api/v1/apps/{APP}/channels/nope"),
            Some(&json!({"public": true})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (404, Some("channel_not_found")));
    let (st, b) = s
        .api(
            Method::PUT,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}/channel"),
            Some(&json!({"channel": "nope"})),
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (404, Some("channel_not_found")));
    let (st, b) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/devices/{DEVICE}/channel"),
            None,
        )
        .await;
    assert_eq!((st, b["error"].as_str()), (404, Some("override_not_found")));
    let (st, b) = s
        .api(Method::GET, "/api/v1/apps/com.unknown.app/channels", None)
        .await;
    assert_eq!((st, b["error"].as_str()), (404, Some("app_not_found")));
    // Nothing above changed the channel or the bundles.
    let (_, c) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/channels/production"),
            None,
        )
        .await;
    assert_eq!(
        (c["bundle"].as_str(), c["disable_auto_update"].as_str()),
        (Some("1.1.0"), Some("major"))
    );
    let (_, list) = s.api(Method::GET, &path, None).await;
    assert_eq!(list["bundles"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn one_public_channel_per_platform() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "next", "public": true, "bundle": "1.1.0"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (_, c) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/channels/production"),
            None,
        )
        .await;
    assert_eq!(c["public"], false, "{c}");
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let s = Server::start().await;
    let (st, doc) = s.request(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for path in [
        "/api/v1/apps",
        "/api/v1/apps/{app_id}/bundles",
        "/api/v1/apps/{app_id}/channels/{name}",
        "/api/v1/apikeys",
        "/api/v1/whoami",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // Any valid key may ask who it is: no 403 is documented for it.
    let whoami = &doc["paths"]["/api/v1/whoami"]["get"]["responses"];
    assert!(
        whoami.get("200").is_some() && whoami.get("401").is_some(),
        "{whoami}"
    );
    assert!(whoami.get("403").is_none(), "{whoami}");
    // Every operation has its own id (clients generate method names from them).
    let mut ids = Vec::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            ids.push(op["operationId"].as_str().expect("operationId").to_string());
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationId");
    assert!(count >= 23, "{count} operations");
}

#[tokio::test]
async fn deleting_an_app_removes_it_for_devices() {
    let s = Server::start().await;
    s.seed("1.1.0").await;
    let scoped = create_key(&s.data_dir, "ci", "publisher", &["--app", APP]);
    let (st, _) = s
        .api(
            Method::POST,
            "/api/v1/apps",
            Some(&json!({"app_id": "com.other.app"})),
        )
        .await;
    assert_eq!(st, 201);
    let other = create_key(&s.data_dir, "other", "viewer", &["--app", "com.other.app"]);
    let (st, _) = s
        .api(Method::DELETE, &format!("/api/v1/apps/{APP}"), None)
        .await;
    assert_eq!(st, 204);
    let (_, b) = s.post("/updates", &device_body()).await;
    assert_refusal(&b, "app_not_found", "failed");

    // The app's keys went with it, and stay dead when its id is reused;
    // keys of other apps are untouched.
    let (st, _) = s
        .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": APP})))
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .api_as(&scoped, Method::GET, &format!("/api/v1/apps/{APP}"), None)
        .await;
    assert_eq!(st, 401);
    let (st, b) = s.api(Method::GET, "/api/v1/apikeys", None).await;
    assert_eq!(st, 200);
    let revoked = |name: &str| {
        b["apikeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .map(|k| k["revoked_at"].is_string())
    };
    assert_eq!(revoked("ci"), Some(true), "{b}");
    assert_eq!(revoked("other"), Some(false), "{b}");
    let (st, _) = s.api_as(&other, Method::GET, "/api/v1/apps", None).await;
    assert_eq!(st, 200);
}
