//! The management API's wire types (`/api/v1`), shared by the server, which
//! answers with them and derives its OpenAPI document from them, and the CLI,
//! which sends and reads them.
//!
//! Compatibility rules: requests leave out what is not given (`None` is not
//! sent), and the server refuses unknown request fields; responses are read
//! tolerantly (unknown fields are ignored, unknown error codes become
//! [`ErrorCode::Other`]), so an older CLI keeps working with a newer server.
//!
//! The `From` conversions from `updraft_core`'s model are what the server
//! answers with; they are plain data, no I/O.

pub mod accounts;
pub mod analytics;
pub mod audit;
pub mod compat;
pub mod error;
pub mod explain;
pub mod management;
pub mod uploads;
pub mod webhooks;

pub use accounts::*;
pub use analytics::*;
pub use audit::*;
pub use compat::*;
pub use error::{ErrorCode, ErrorView};
pub use explain::*;
pub use management::*;
pub use uploads::*;
pub use webhooks::*;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{json, Value};

    /// `json` with a field no build of this crate knows, at the top and,
    /// when given, inside the first item of `list`.
    fn with_unknown_fields(mut json: Value, list: Option<&str>) -> Value {
        json["added_by_a_newer_server"] = json!({"nested": [1, 2]});
        if let Some(list) = list {
            json[list][0]["also_new"] = json!("x");
        }
        json
    }

    #[test]
    fn answers_with_unknown_fields_still_read() {
        let apps = with_unknown_fields(
            json!({"apps": [{"app_id": "com.example.app", "name": "Example",
                "expose_metadata": false, "created_at": "2026-01-01T00:00:00.000Z"}]}),
            Some("apps"),
        );
        let apps: AppList = serde_json::from_value(apps).unwrap();
        assert_eq!(apps.apps[0].app_id, "com.example.app");

        let upload = with_unknown_fields(
            json!({"upload_id": "u1", "offset": 5, "size": 9, "sha256": "ab",
                "complete": false, "expires_at": "2026-01-01T00:00:00.000Z"}),
            None,
        );
        let upload: UploadStatus = serde_json::from_value(upload).unwrap();
        assert_eq!((upload.offset, upload.complete), (5, false));

        let hooks = with_unknown_fields(
            json!({"webhooks": [{"id": 1, "app_id": null, "url": "https://h.example.com",
                "secret": "whsec_…abcd", "events": [], "enabled": true,
                "created_at": "2026-01-01T00:00:00.000Z"}]}),
            Some("webhooks"),
        );
        let hooks: WebhookList = serde_json::from_value(hooks).unwrap();
        assert_eq!(hooks.webhooks[0].id, 1);

        let audit = with_unknown_fields(
            json!({"entries": [{"id": 7, "at": "2026-01-01T00:00:00.000Z", "actor": "key:ci",
                "api_key_id": 1, "app_id": null, "action": "app.create", "target": "x",
                "before": null, "after": {}}], "next_before_id": null}),
            Some("entries"),
        );
        let audit: AuditList = serde_json::from_value(audit).unwrap();
        assert_eq!(audit.entries[0].action, "app.create");
    }
}
