//! The error every device route answers with: a stable code, a sentence, and
//! the HTTP status. The server maps it to a response in one place.

use crate::decision::Refusal;
use serde_json::{Map, Value};

macro_rules! device_error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// The `error` code of a device-route answer. The strings are the wire
        /// contract the plugin and the hosted service share: never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DeviceErrorCode {
            $($(#[$doc])* $variant,)*
            /// An `/updates` refusal of the decision (its code is the refusal's).
            Refused(Refusal),
        }

        impl DeviceErrorCode {
            /// Every code but the refusals (those are [`Refusal::ALL`]).
            pub const ALL: &'static [DeviceErrorCode] = &[$(DeviceErrorCode::$variant,)*];

            /// The code on the wire (also the `outcome` metrics label).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(DeviceErrorCode::$variant => $text,)*
                    DeviceErrorCode::Refused(why) => why.code(),
                }
            }
        }
    };
}

device_error_codes! {
    // The body or query as a whole (reference §1.1).
    /// Not JSON at all.
    InvalidJsonParseBody = "invalid_json_parse_body",
    /// A body that fails the schema.
    InvalidJsonBody = "invalid_json_body",
    /// A `GET /channel_self` query that fails the schema.
    InvalidQueryParameters = "invalid_query_parameters",
    MissingDeviceId = "missing_device_id",
    MissingAppId = "missing_app_id",
    InvalidAppId = "invalid_app_id",
    /// `version_build` does not normalise to a semver version.
    SemverError = "semver_error",
    /// The app is not registered (`/stats`, `/channel_self`).
    AppNotFound = "app_not_found",
    // `/stats` events.
    TooManyEvents = "too_many_events",
    MixedAppIds = "mixed_app_ids",
    MissingAction = "missing_action",
    InvalidAction = "invalid_action",
    InvalidMetadata = "invalid_metadata",
    InvalidTimestamp = "invalid_timestamp",
    // `/channel_self`.
    MissingChannel = "missing_channel",
    ChannelNotFound = "channel_not_found",
    CannotOverride = "cannot_override",
    ChannelSelfSetNotAllowed = "channel_self_set_not_allowed",
    PublicChannelSelfSetNotAllowed = "public_channel_self_set_not_allowed",
    // The transport and the server.
    BodyTooLarge = "body_too_large",
    BodyTimeout = "body_timeout",
    TooManyRequests = "too_many_requests",
    LowDiskSpace = "low_disk_space",
    StorageError = "storage_error",
    ServiceUnavailable = "service_unavailable",
    InternalError = "internal_error",
}

impl std::fmt::Display for DeviceErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a device-facing error is put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `{"error", "message", "moreInfo": {...}}` — the reference service's thrown errors.
    Thrown,
    /// `{"error", "message", ...extra spread at top level}` — its "200 errors".
    Flat,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeviceError {
    pub status: u16,
    pub code: DeviceErrorCode,
    pub message: String,
    /// `moreInfo` for `Thrown`, top-level extra fields for `Flat`.
    pub extra: Map<String, Value>,
    pub envelope: Envelope,
}

impl DeviceError {
    /// A 400 with `moreInfo`, as the reference service throws on bad input.
    pub fn bad_request(code: DeviceErrorCode, message: impl Into<String>) -> Self {
        DeviceError {
            status: 400,
            code,
            message: message.into(),
            extra: Map::new(),
            envelope: Envelope::Thrown,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// A 200 `{"error", "message", ...extra}` answer.
    pub fn flat(code: DeviceErrorCode, message: impl Into<String>) -> Self {
        DeviceError {
            status: 200,
            code,
            message: message.into(),
            extra: Map::new(),
            envelope: Envelope::Flat,
        }
    }

    /// The app is not registered: a 404 on `/stats` and `/channel_self`
    /// (`/updates` answers it with 200 and a `kind`, protocol README item 2).
    pub fn app_not_found(app_id: &str) -> Self {
        DeviceError::flat(
            DeviceErrorCode::AppNotFound,
            format!("App {app_id} is not registered on this Updraft server"),
        )
        .with_status(404)
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.code.as_str().into()));
        body.insert("message".into(), Value::String(self.message.clone()));
        match self.envelope {
            Envelope::Thrown => {
                body.insert("moreInfo".into(), Value::Object(self.extra.clone()));
            }
            Envelope::Flat => {
                for (k, v) in &self.extra {
                    body.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_error_codes_keep_their_wire_strings() {
        let wire: Vec<_> = DeviceErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            wire,
            [
                "invalid_json_parse_body",
                "invalid_json_body",
                "invalid_query_parameters",
                "missing_device_id",
                "missing_app_id",
                "invalid_app_id",
                "semver_error",
                "app_not_found",
                "too_many_events",
                "mixed_app_ids",
                "missing_action",
                "invalid_action",
                "invalid_metadata",
                "invalid_timestamp",
                "missing_channel",
                "channel_not_found",
                "cannot_override",
                "channel_self_set_not_allowed",
                "public_channel_self_set_not_allowed",
                "body_too_large",
                "body_timeout",
                "too_many_requests",
                "low_disk_space",
                "storage_error",
                "service_unavailable",
                "internal_error",
            ]
        );
        for &why in Refusal::ALL {
            assert_eq!(DeviceErrorCode::Refused(why).as_str(), why.code());
        }
        // Only `app_not_found` is both: `/updates` answers it as a refusal.
        let shared: Vec<_> = DeviceErrorCode::ALL
            .iter()
            .filter(|c| Refusal::ALL.iter().any(|r| r.code() == c.as_str()))
            .collect();
        assert_eq!(shared, [&DeviceErrorCode::AppNotFound]);
    }

    #[test]
    fn the_code_goes_on_the_wire_as_its_string() {
        let thrown = DeviceError::bad_request(DeviceErrorCode::MissingAppId, "Cannot find app_id");
        assert_eq!(
            thrown.to_json(),
            serde_json::json!({"error": "missing_app_id", "message": "Cannot find app_id", "moreInfo": {}})
        );
        let flat = DeviceError::flat(
            DeviceErrorCode::Refused(Refusal::NoNewVersionAvailable),
            "up to date",
        )
        .with("version", "1.0.0");
        assert_eq!(
            flat.to_json(),
            serde_json::json!({"error": "no_new_version_available", "message": "up to date", "version": "1.0.0"})
        );
    }
}
