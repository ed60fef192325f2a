//! The management API's error answer: `{"error": code, "message": sentence}`,
//! plus fields some codes carry (`offset`, `missing`, `suggestions`, …).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

// Every error answer of the management API (no doc comment: it would
// become the schema's description).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ErrorView {
    /// Stable machine-readable code.
    #[schema(value_type = String)]
    pub error: ErrorCode,
    pub message: String,
    /// Fields next to `error` and `message` that some codes carry.
    #[serde(flatten)]
    #[schema(ignore)]
    pub details: Map<String, Value>,
}

impl ErrorView {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        ErrorView {
            error,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// The body as JSON. `error` and `message` win over details of the same name.
    pub fn to_json(&self) -> Value {
        let mut body = self.details.clone();
        body.insert(
            "error".into(),
            Value::String(self.error.as_str().to_string()),
        );
        body.insert("message".into(), Value::String(self.message.clone()));
        Value::Object(body)
    }

    /// A detail field read as `T`, when it is there and has that shape.
    pub fn detail<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.details
            .get(key)
            .and_then(|value| T::deserialize(value).ok())
    }
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// A management-API error code. Serialized as its string; a code this
        /// build does not know (a newer server's) reads as [`ErrorCode::Other`],
        /// so an older client keeps working.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this build does not know.
            Other(String),
        }

        impl ErrorCode {
            /// Every code this build knows.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it is on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Other(text) => text,
                }
            }

            /// The code a wire string names ([`ErrorCode::Other`] when unknown).
            pub fn from_wire(text: &str) -> Self {
                match text {
                    $($text => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

error_codes! {
    // Authentication, routing and request shape.
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    TooManyAuthFailures = "too_many_auth_failures",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    InvalidPath = "invalid_path",
    InvalidQuery = "invalid_query",
    InvalidBody = "invalid_body",
    InvalidJsonParseBody = "invalid_json_parse_body",
    BodyTooLarge = "body_too_large",
    BodyTimeout = "body_timeout",
    HeadersTooLarge = "headers_too_large",
    UriTooLong = "uri_too_long",
    /// A request to the HTTP → HTTPS redirect listener without a usable `Host`.
    MissingHost = "missing_host",
    InvalidLimit = "invalid_limit",
    InvalidOffset = "invalid_offset",
    InvalidTime = "invalid_time",
    InvalidFormat = "invalid_format",
    // The server side.
    InternalError = "internal_error",
    DatabaseUnavailable = "database_unavailable",
    LowDiskSpace = "low_disk_space",
    StorageQuotaExceeded = "storage_quota_exceeded",
    // Stored things that do not exist, or already do.
    AppNotFound = "app_not_found",
    BundleNotFound = "bundle_not_found",
    ChannelNotFound = "channel_not_found",
    OverrideNotFound = "override_not_found",
    ApikeyNotFound = "apikey_not_found",
    DeviceNotFound = "device_not_found",
    /// The registry lacks what a device's update check needs (`device explain`).
    DeviceIncomplete = "device_incomplete",
    WebhookNotFound = "webhook_not_found",
    ScheduleNotFound = "schedule_not_found",
    UploadNotFound = "upload_not_found",
    AlreadyExists = "already_exists",
    AppAlreadyExists = "app_already_exists",
    BundleAlreadyExists = "bundle_already_exists",
    ChannelAlreadyExists = "channel_already_exists",
    ApikeyAlreadyExists = "apikey_already_exists",
    Conflict = "conflict",
    // Field checks.
    InvalidAppId = "invalid_app_id",
    InvalidChannelName = "invalid_channel_name",
    InvalidDeviceId = "invalid_device_id",
    InvalidVersion = "invalid_version",
    InvalidChecksum = "invalid_checksum",
    InvalidSessionKey = "invalid_session_key",
    InvalidKeyId = "invalid_key_id",
    InvalidUrl = "invalid_url",
    InvalidSha256 = "invalid_sha256",
    InvalidSize = "invalid_size",
    InvalidRole = "invalid_role",
    InvalidExpiry = "invalid_expiry",
    InvalidEvent = "invalid_event",
    InvalidSecret = "invalid_secret",
    InvalidNativePackages = "invalid_native_packages",
    InvalidPlatform = "invalid_platform",
    InvalidVersionRange = "invalid_version_range",
    // Releases: channels, rollouts, schedules.
    InvalidPercentage = "invalid_percentage",
    InvalidRolloutAction = "invalid_rollout_action",
    InvalidRolloutBundle = "invalid_rollout_bundle",
    InvalidAutoPause = "invalid_auto_pause",
    InvalidRamp = "invalid_ramp",
    InvalidRunAt = "invalid_run_at",
    InvalidScheduleId = "invalid_schedule_id",
    NoRollout = "no_rollout",
    RolloutSameAsStable = "rollout_same_as_stable",
    NothingToRollBack = "nothing_to_roll_back",
    NotInHistory = "not_in_history",
    ScheduleNotPending = "schedule_not_pending",
    IncompatibleBundle = "incompatible_bundle",
    EncryptionDowngrade = "encryption_downgrade",
    MissingBundle = "missing_bundle",
    // Bundles and their files.
    BundleInUse = "bundle_in_use",
    BundleDeleted = "bundle_deleted",
    BundleVersionDeleted = "bundle_version_deleted",
    BlobMissing = "blob_missing",
    ChecksumMismatch = "checksum_mismatch",
    SizeMismatch = "size_mismatch",
    InvalidFileHash = "invalid_file_hash",
    DuplicateManifestEntry = "duplicate_manifest_entry",
    TooManyManifestEntries = "too_many_manifest_entries",
    TooManyHashes = "too_many_hashes",
    MissingIndexHtml = "missing_index_html",
    NotAZip = "not_a_zip",
    BundleTooLarge = "bundle_too_large",
    TooManyEntries = "too_many_entries",
    EntryTooLarge = "entry_too_large",
    CompressionRatioExceeded = "compression_ratio_exceeded",
    UnsafeEntryName = "unsafe_entry_name",
    ControlCharacterInName = "control_character_in_name",
    DuplicateEntry = "duplicate_entry",
    CaseInsensitiveDuplicate = "case_insensitive_duplicate",
    SymlinkEntry = "symlink_entry",
    UnsupportedEntry = "unsupported_entry",
    DecryptFailed = "decrypt_failed",
    InvalidKey = "invalid_key",
    // Resumable uploads.
    UploadBusy = "upload_busy",
    UploadInterrupted = "upload_interrupted",
    UploadOffsetMismatch = "upload_offset_mismatch",
    InvalidUploadOffset = "invalid_upload_offset",
    UploadOverflow = "upload_overflow",
    UploadTooLarge = "upload_too_large",
    // Console accounts and sessions.
    /// The email, password or second-factor code is wrong (one code whatever the part).
    InvalidCredentials = "invalid_credentials",
    /// Too many failed sign-ins for this account or from this address.
    TooManySignInAttempts = "too_many_sign_in_attempts",
    /// A state-changing request with a session cookie lacks the session's `X-CSRF-Token`.
    CsrfTokenInvalid = "csrf_token_invalid",
    /// The session cookie is unknown, signed out or expired.
    SessionInvalid = "session_invalid",
    InvalidEmail = "invalid_email",
    PasswordTooShort = "password_too_short",
    PasswordTooLong = "password_too_long",
    InvalidAppList = "invalid_app_list",
    /// The current password given to change it (or to turn TOTP off) is wrong.
    WrongPassword = "wrong_password",
    InvalidTotpCode = "invalid_totp_code",
    TotpNotEnrolling = "totp_not_enrolling",
    TotpAlreadyEnabled = "totp_already_enabled",
    UserNotFound = "user_not_found",
    UserAlreadyExists = "user_already_exists",
    /// An admin may not remove the last enabled admin (nobody could manage users).
    LastAdmin = "last_admin",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::from_wire(&text))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn every_code_round_trips_through_its_string() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::KNOWN {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} names two codes");
            assert!(
                !text.is_empty()
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{text:?} is not snake_case"
            );
            assert_eq!(serde_json::to_value(code).unwrap(), json!(text));
            let back: ErrorCode = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(&back, code);
            assert_eq!(ErrorCode::from_wire(text), *code);
            assert!(!matches!(back, ErrorCode::Other(_)), "{text}");
        }
    }

    #[test]
    fn an_unknown_code_is_kept_as_other() {
        let code: ErrorCode = serde_json::from_value(json!("quota_of_a_newer_server")).unwrap();
        assert_eq!(code, ErrorCode::Other("quota_of_a_newer_server".into()));
        assert_eq!(code.as_str(), "quota_of_a_newer_server");
        assert_eq!(
            serde_json::to_value(&code).unwrap(),
            json!("quota_of_a_newer_server")
        );
    }

    #[test]
    fn error_bodies_keep_their_extra_fields_both_ways() {
        let text = r#"{"error":"upload_offset_mismatch","message":"m","offset":42,"later":"x"}"#;
        let body: ErrorView = serde_json::from_str(text).unwrap();
        assert_eq!(body.error, ErrorCode::UploadOffsetMismatch);
        assert_eq!(body.detail::<u64>("offset"), Some(42));
        assert_eq!(body.detail::<u64>("later"), None);
        assert_eq!(body.to_json(), serde_json::from_str::<Value>(text).unwrap());
        let mut shadowing = ErrorView::new(ErrorCode::Conflict, "real");
        shadowing.details.insert("error".into(), json!("fake"));
        assert_eq!(
            shadowing.to_json(),
            json!({"error": "conflict", "message": "real"})
        );
    }
}
