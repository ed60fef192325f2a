//! The one error type of the CLI: a stable code (the server's when it sent
//! one) and a sentence for humans.

use serde_json::{json, Value};
use std::fmt;
use updraft_api::ErrorCode;
use updraft_store::StoreError;

macro_rules! local_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// A code the CLI makes itself, for failures that never reached the
        /// server's answer (no connection, a bad flag, a local file).
        /// Printed by `--json` and read by scripts: a published string never changes.
        /// A code the API also has (`internal_error`, `invalid_key`,
        /// `checksum_mismatch`, …) is the API's [`ErrorCode`] even when the CLI
        /// makes it, so one string never names two variants (a test checks).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum LocalCode {
            $($(#[$doc])* $variant,)*
        }

        impl LocalCode {
            /// Every local code.
            pub const ALL: &'static [LocalCode] = &[$(LocalCode::$variant,)*];

            /// The code as the CLI prints it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(LocalCode::$variant => $text,)*
                }
            }
        }
    };
}

local_codes! {
    // Reaching the server and reading its answers.
    ConnectionFailed = "connection_failed",
    ClientError = "client_error",
    InvalidResponse = "invalid_response",
    InvalidServerUrl = "invalid_server_url",
    ServerFailed = "server_failed",
    // Arguments and configuration.
    InvalidArgument = "invalid_argument",
    /// Kept apart from `invalid_argument`: `stats` has printed it since its first release.
    InvalidArguments = "invalid_arguments",
    MissingApikey = "missing_apikey",
    /// An `apikey` command with neither a server configured nor a local database.
    ServerNotConfigured = "server_not_configured",
    MissingAppId = "missing_app_id",
    NothingToSet = "nothing_to_set",
    ConfirmationRequired = "confirmation_required",
    Cancelled = "cancelled",
    // Local files and the offline store.
    IoError = "io_error",
    Io = "io",
    PathNotFound = "path_not_found",
    OutNotEmpty = "out_not_empty",
    WriteFailed = "write_failed",
    ExportFailed = "export_failed",
    /// Stdout was closed by its reader (`| head`): never printed, the command
    /// ends quietly with exit code 0.
    StdoutClosed = "stdout_closed",
    DataDirError = "data_dir_error",
    StorageError = "storage_error",
    KeyExists = "key_exists",
    /// The `updraft login` file could not be read, written or removed.
    LoginFileError = "login_file_error",
    InvalidPackageJson = "invalid_package_json",
    InvalidDependencies = "invalid_dependencies",
    NativePackagesUnknown = "native_packages_unknown",
    ChecksumRequired = "checksum_required",
    // Capgo's CI defaults (`bundle upload` without --path/--bundle, --version-exists-ok).
    /// No `--path` and no usable `webDir` in the Capacitor config.
    MissingPath = "missing_path",
    /// No `--bundle` (or `--latest`) and no `version` in package.json.
    MissingVersion = "missing_version",
    /// The version exists with another checksum: a version is immutable.
    VersionExistsDifferent = "version_exists_different",
    // `device simulate`: the plugin's own failure names.
    DownloadFail = "download_fail",
    DownloadManifestChecksumFail = "download_manifest_checksum_fail",
    DownloadManifestFileFail = "download_manifest_file_fail",
    DownloadManifestBrotliFail = "download_manifest_brotli_fail",
    ChecksumFail = "checksum_fail",
    DecryptFail = "decrypt_fail",
    UnzipFail = "unzip_fail",
    NoManifest = "no_manifest",
    ManifestPathFail = "manifest_path_fail",
    DirectoryPathFail = "directory_path_fail",
}

impl fmt::Display for LocalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code of a [`CliError`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CliCode {
    /// A management-API code: the server's (kept as sent, even one this build
    /// does not know) or the same code the offline store's failure maps to.
    Api(ErrorCode),
    /// A code of the CLI's own.
    Local(LocalCode),
    /// A device route's refusal (`device simulate`), as the server sent it:
    /// those codes are the plugin's contract, which the CLI only reports.
    Device(String),
    /// A non-2xx answer without an error body: printed `http_<status>`.
    Http(u16),
}

impl CliCode {
    /// The code as the CLI prints it.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            CliCode::Api(code) => code.as_str().into(),
            CliCode::Local(code) => code.as_str().into(),
            CliCode::Device(code) => code.as_str().into(),
            CliCode::Http(status) => format!("http_{status}").into(),
        }
    }
}

/// The exit code of a command, the same for every command so CI can branch
/// on it (documented in docs/cli.md). Usage errors clap finds itself (an
/// unknown flag) exit 2 too, from clap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: the command did what it was asked.
    Done,
    /// 1: refused by the server (validation, not found, conflict), or a local
    /// failure that is none of the others (a file that cannot be written).
    Refused,
    /// 2: the command line or the project it runs in is wrong (bad or
    /// missing argument, no app id, a confirmation that needs `--yes`).
    Usage,
    /// 3: no API key, or one the server does not accept for this.
    NotAllowed,
    /// 4: the server cannot be reached, or failed (5xx, a broken answer).
    Unreachable,
    /// 5: the bundle is not compatible with the channel's live bundle.
    Incompatible,
}

impl Exit {
    /// Every exit code, in order.
    pub const ALL: [Exit; 6] = [
        Exit::Done,
        Exit::Refused,
        Exit::Usage,
        Exit::NotAllowed,
        Exit::Unreachable,
        Exit::Incompatible,
    ];

    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Refused => 1,
            Exit::Usage => 2,
            Exit::NotAllowed => 3,
            Exit::Unreachable => 4,
            Exit::Incompatible => 5,
        }
    }
}

impl CliCode {
    /// The exit code of a failure with this code. Exhaustive on purpose: a
    /// new code, the API's or the CLI's, must be classified here.
    pub fn exit(&self) -> Exit {
        match self {
            CliCode::Api(code) => api_exit(code),
            CliCode::Local(code) => local_exit(*code),
            // The device routes' refusals are answers (`device simulate` reports them).
            CliCode::Device(_) => Exit::Refused,
            CliCode::Http(status) => status_exit(*status),
        }
    }
}

/// What an HTTP status says when no known code does.
fn status_exit(status: u16) -> Exit {
    match status {
        401 | 403 => Exit::NotAllowed,
        500..=599 => Exit::Unreachable,
        _ => Exit::Refused,
    }
}

fn api_exit(code: &ErrorCode) -> Exit {
    use ErrorCode as E;
    match code {
        E::Unauthorized
        | E::Forbidden
        | E::TooManyAuthFailures
        | E::InvalidCredentials
        | E::TooManySignInAttempts
        | E::CsrfTokenInvalid
        | E::SessionInvalid => Exit::NotAllowed,
        E::InternalError | E::DatabaseUnavailable | E::LowDiskSpace => Exit::Unreachable,
        E::IncompatibleBundle => Exit::Incompatible,
        E::NotFound
        | E::MethodNotAllowed
        | E::InvalidPath
        | E::InvalidQuery
        | E::InvalidBody
        | E::InvalidJsonParseBody
        | E::BodyTooLarge
        | E::BodyTimeout
        | E::HeadersTooLarge
        | E::UriTooLong
        | E::MissingHost
        | E::InvalidLimit
        | E::InvalidOffset
        | E::InvalidTime
        | E::InvalidFormat
        | E::StorageQuotaExceeded
        | E::AppNotFound
        | E::BundleNotFound
        | E::ChannelNotFound
        | E::OverrideNotFound
        | E::ApikeyNotFound
        | E::DeviceNotFound
        | E::DeviceIncomplete
        | E::WebhookNotFound
        | E::ScheduleNotFound
        | E::UploadNotFound
        | E::AlreadyExists
        | E::AppAlreadyExists
        | E::BundleAlreadyExists
        | E::ChannelAlreadyExists
        | E::ApikeyAlreadyExists
        | E::Conflict
        | E::InvalidAppId
        | E::InvalidChannelName
        | E::InvalidDeviceId
        | E::InvalidVersion
        | E::InvalidChecksum
        | E::InvalidSessionKey
        | E::InvalidKeyId
        | E::InvalidUrl
        | E::InvalidSha256
        | E::InvalidSize
        | E::InvalidRole
        | E::InvalidExpiry
        | E::InvalidEvent
        | E::InvalidSecret
        | E::InvalidNativePackages
        | E::InvalidPlatform
        | E::InvalidVersionRange
        | E::InvalidPercentage
        | E::InvalidRolloutAction
        | E::InvalidRolloutBundle
        | E::InvalidAutoPause
        | E::InvalidRamp
        | E::InvalidRunAt
        | E::InvalidScheduleId
        | E::NoRollout
        | E::RolloutSameAsStable
        | E::NothingToRollBack
        | E::NotInHistory
        | E::ScheduleNotPending
        | E::EncryptionDowngrade
        | E::MissingBundle
        | E::BundleInUse
        | E::BundleDeleted
        | E::BundleVersionDeleted
        | E::BlobMissing
        | E::ChecksumMismatch
        | E::SizeMismatch
        | E::InvalidFileHash
        | E::DuplicateManifestEntry
        | E::TooManyManifestEntries
        | E::TooManyHashes
        | E::MissingIndexHtml
        | E::NotAZip
        | E::BundleTooLarge
        | E::TooManyEntries
        | E::EntryTooLarge
        | E::CompressionRatioExceeded
        | E::UnsafeEntryName
        | E::ControlCharacterInName
        | E::DuplicateEntry
        | E::CaseInsensitiveDuplicate
        | E::SymlinkEntry
        | E::UnsupportedEntry
        | E::DecryptFailed
        | E::InvalidKey
        | E::UploadBusy
        | E::UploadInterrupted
        | E::UploadOffsetMismatch
        | E::InvalidUploadOffset
        | E::UploadOverflow
        | E::UploadTooLarge
        | E::InvalidEmail
        | E::PasswordTooShort
        | E::PasswordTooLong
        | E::InvalidAppList
        | E::WrongPassword
        | E::InvalidTotpCode
        | E::TotpNotEnrolling
        | E::TotpAlreadyEnabled
        | E::UserNotFound
        | E::UserAlreadyExists
        | E::LastAdmin => Exit::Refused,
        // A newer server's code: a refusal unless it says otherwise.
        E::Other(_) => Exit::Refused,
    }
}

fn local_exit(code: LocalCode) -> Exit {
    use LocalCode as L;
    match code {
        L::StdoutClosed => Exit::Done,
        L::ConnectionFailed | L::InvalidResponse | L::ServerFailed => Exit::Unreachable,
        L::MissingApikey => Exit::NotAllowed,
        L::InvalidServerUrl
        | L::InvalidArgument
        | L::InvalidArguments
        | L::MissingAppId
        | L::NothingToSet
        | L::ConfirmationRequired
        | L::PathNotFound
        | L::OutNotEmpty
        | L::KeyExists
        | L::InvalidPackageJson
        | L::InvalidDependencies
        | L::NativePackagesUnknown
        | L::ChecksumRequired
        | L::ServerNotConfigured
        | L::MissingPath
        | L::MissingVersion => Exit::Usage,
        L::ClientError
        | L::Cancelled
        | L::IoError
        | L::Io
        | L::WriteFailed
        | L::ExportFailed
        | L::DataDirError
        | L::StorageError
        | L::DownloadFail
        | L::DownloadManifestChecksumFail
        | L::DownloadManifestFileFail
        | L::DownloadManifestBrotliFail
        | L::ChecksumFail
        | L::DecryptFail
        | L::UnzipFail
        | L::NoManifest
        | L::ManifestPathFail
        | L::DirectoryPathFail
        | L::LoginFileError
        | L::VersionExistsDifferent => Exit::Refused,
    }
}

impl fmt::Display for CliCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl From<ErrorCode> for CliCode {
    fn from(code: ErrorCode) -> Self {
        CliCode::Api(code)
    }
}

impl From<LocalCode> for CliCode {
    fn from(code: LocalCode) -> Self {
        CliCode::Local(code)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    /// Stable, machine-readable code such as `app_not_found` or `connection_failed`.
    pub code: CliCode,
    pub message: String,
    /// The HTTP status of the server's refusal, when it came from one: it
    /// classifies a code this build does not know ([`CliError::exit`]).
    pub status: Option<u16>,
}

impl CliError {
    pub fn new(code: impl Into<CliCode>, message: impl Into<String>) -> Self {
        CliError {
            code: code.into(),
            message: message.into(),
            status: None,
        }
    }

    /// The same error, as the server's answer with this HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// A command-line argument the server would reject anyway, caught early.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        CliError::new(LocalCode::InvalidArgument, message)
    }

    /// Whether this is the server's `code`.
    pub fn is(&self, code: &ErrorCode) -> bool {
        matches!(&self.code, CliCode::Api(own) if own == code)
    }

    /// Whether this is the CLI's own `code`.
    pub fn is_local(&self, code: LocalCode) -> bool {
        self.code == CliCode::Local(code)
    }

    /// `{"error": code, "message": msg}`, the same shape the server uses.
    pub fn to_json(&self) -> Value {
        json!({"error": self.code.as_str(), "message": self.message})
    }

    /// The exit code of this failure: its code's, but for a code from a newer
    /// server that this build does not know, which its HTTP status classifies.
    pub fn exit(&self) -> Exit {
        match (&self.code, self.status) {
            (CliCode::Api(ErrorCode::Other(_)), Some(status)) => status_exit(status),
            (code, _) => code.exit(),
        }
    }

    /// The line printed on stderr: `error: <message> [<code>]`.
    pub fn report_line(&self) -> String {
        self.report_line_styled(false)
    }

    /// [`CliError::report_line`] with `error:` in red when `color`.
    pub fn report_line_styled(&self, color: bool) -> String {
        format!(
            "{} {} [{}]",
            crate::term::red("error:", color),
            self.message,
            self.code
        )
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl std::error::Error for CliError {}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            // The offline store names its entities as the API's codes do
            // (`apikey_not_found`, …); `from_wire` keeps the exact string.
            StoreError::NotFound(what) => {
                CliError::new(ErrorCode::from_wire(&format!("{what}_not_found")), message)
            }
            StoreError::AlreadyExists(what) => CliError::new(
                ErrorCode::from_wire(&format!("{what}_already_exists")),
                message,
            ),
            StoreError::DeletedNameReused => {
                CliError::new(ErrorCode::BundleVersionDeleted, message)
            }
            StoreError::Invalid(_) => CliError::new(LocalCode::InvalidArgument, message),
            StoreError::Conflict(_) => CliError::new(ErrorCode::Conflict, message),
            StoreError::Backend(_) | StoreError::Unavailable(_) => {
                CliError::new(LocalCode::StorageError, message)
            }
        }
    }
}

/// An error and everything that caused it, joined: reqwest's own message
/// ("error sending request") says little without its sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their source's message; skip the echo.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<updraft_bundle::error::BundleError> for CliError {
    fn from(error: updraft_bundle::error::BundleError) -> Self {
        // The bundle checks are the server's too: their codes are the API's,
        // but for an I/O failure, which is the CLI's own.
        let code = match &error {
            updraft_bundle::error::BundleError::Io(_) => CliCode::Local(LocalCode::Io),
            _ => CliCode::Api(ErrorCode::from_wire(error.code())),
        };
        CliError::new(code, error.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::new(LocalCode::IoError, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use updraft_store::Entity;

    #[test]
    fn report_line_has_message_then_code() {
        let error = CliError::new(
            CliCode::Api(ErrorCode::AppNotFound),
            "app com.x.y not found",
        );
        assert_eq!(
            error.report_line(),
            "error: app com.x.y not found [app_not_found]"
        );
        assert_eq!(
            error.to_json(),
            json!({"error": "app_not_found", "message": "app com.x.y not found"})
        );
    }

    #[test]
    fn store_errors_map_to_api_codes() {
        assert_eq!(
            CliError::from(StoreError::NotFound(Entity::ApiKey)).code,
            CliCode::Api(ErrorCode::ApikeyNotFound)
        );
        assert_eq!(
            CliError::from(StoreError::AlreadyExists(Entity::ApiKey)).code,
            CliCode::Api(ErrorCode::ApikeyAlreadyExists)
        );
        assert_eq!(
            CliError::from(StoreError::Backend("disk full".into())).code,
            CliCode::Local(LocalCode::StorageError)
        );
        assert_eq!(
            CliError::from(StoreError::Backend("disk full".into())).message,
            "database error: disk full"
        );
    }

    /// The strings scripts and the e2e tests read: a change here is a breaking change.
    #[test]
    fn every_local_code_prints_its_published_string() {
        let published = [
            (LocalCode::ConnectionFailed, "connection_failed"),
            (LocalCode::ClientError, "client_error"),
            (LocalCode::InvalidResponse, "invalid_response"),
            (LocalCode::InvalidServerUrl, "invalid_server_url"),
            (LocalCode::ServerFailed, "server_failed"),
            (LocalCode::InvalidArgument, "invalid_argument"),
            (LocalCode::InvalidArguments, "invalid_arguments"),
            (LocalCode::MissingApikey, "missing_apikey"),
            (LocalCode::ServerNotConfigured, "server_not_configured"),
            (LocalCode::MissingAppId, "missing_app_id"),
            (LocalCode::NothingToSet, "nothing_to_set"),
            (LocalCode::ConfirmationRequired, "confirmation_required"),
            (LocalCode::Cancelled, "cancelled"),
            (LocalCode::IoError, "io_error"),
            (LocalCode::Io, "io"),
            (LocalCode::PathNotFound, "path_not_found"),
            (LocalCode::OutNotEmpty, "out_not_empty"),
            (LocalCode::WriteFailed, "write_failed"),
            (LocalCode::ExportFailed, "export_failed"),
            (LocalCode::StdoutClosed, "stdout_closed"),
            (LocalCode::DataDirError, "data_dir_error"),
            (LocalCode::StorageError, "storage_error"),
            (LocalCode::KeyExists, "key_exists"),
            (LocalCode::LoginFileError, "login_file_error"),
            (LocalCode::InvalidPackageJson, "invalid_package_json"),
            (LocalCode::InvalidDependencies, "invalid_dependencies"),
            (LocalCode::NativePackagesUnknown, "native_packages_unknown"),
            (LocalCode::ChecksumRequired, "checksum_required"),
            (LocalCode::MissingPath, "missing_path"),
            (LocalCode::MissingVersion, "missing_version"),
            (
                LocalCode::VersionExistsDifferent,
                "version_exists_different",
            ),
            (LocalCode::DownloadFail, "download_fail"),
            (
                LocalCode::DownloadManifestChecksumFail,
                "download_manifest_checksum_fail",
            ),
            (
                LocalCode::DownloadManifestFileFail,
                "download_manifest_file_fail",
            ),
            (
                LocalCode::DownloadManifestBrotliFail,
                "download_manifest_brotli_fail",
            ),
            (LocalCode::ChecksumFail, "checksum_fail"),
            (LocalCode::DecryptFail, "decrypt_fail"),
            (LocalCode::UnzipFail, "unzip_fail"),
            (LocalCode::NoManifest, "no_manifest"),
            (LocalCode::ManifestPathFail, "manifest_path_fail"),
            (LocalCode::DirectoryPathFail, "directory_path_fail"),
        ];
        assert_eq!(
            published.len(),
            LocalCode::ALL.len(),
            "a local code is not pinned here"
        );
        for (code, text) in published {
            assert_eq!(code.as_str(), text);
            assert_eq!(CliCode::Local(code).to_string(), text);
            assert_eq!(
                CliError::new(code, "m").to_json(),
                json!({"error": text, "message": "m"})
            );
        }
        for code in LocalCode::ALL {
            assert!(
                !ErrorCode::KNOWN
                    .iter()
                    .any(|api| api.as_str() == code.as_str()),
                "{code} is an API code: use ErrorCode::{code:?}'s variant instead"
            );
        }
    }

    /// The exit codes CI branches on (docs/cli.md): a change here is a breaking change.
    #[test]
    fn exit_codes_by_kind_of_failure() {
        let exit = |code: CliCode| code.exit().code();
        assert_eq!(Exit::ALL.map(Exit::code), [0, 1, 2, 3, 4, 5]);
        for (code, expected) in [
            (CliCode::Api(ErrorCode::AppAlreadyExists), 1),
            (CliCode::Api(ErrorCode::InvalidChannelName), 1),
            (CliCode::Api(ErrorCode::BundleInUse), 1),
            (CliCode::Api(ErrorCode::Other("newer_code".into())), 1),
            (CliCode::Device("no_new_version_available".into()), 1),
            (CliCode::Http(404), 1),
            (CliCode::Local(LocalCode::WriteFailed), 1),
            (CliCode::Local(LocalCode::InvalidArgument), 2),
            (CliCode::Local(LocalCode::MissingAppId), 2),
            (CliCode::Local(LocalCode::ConfirmationRequired), 2),
            (CliCode::Api(ErrorCode::Unauthorized), 3),
            (CliCode::Api(ErrorCode::Forbidden), 3),
            (CliCode::Local(LocalCode::MissingApikey), 3),
            (CliCode::Http(401), 3),
            (CliCode::Local(LocalCode::ConnectionFailed), 4),
            (CliCode::Api(ErrorCode::InternalError), 4),
            (CliCode::Api(ErrorCode::DatabaseUnavailable), 4),
            (CliCode::Http(502), 4),
            (CliCode::Api(ErrorCode::IncompatibleBundle), 5),
            (CliCode::Local(LocalCode::StdoutClosed), 0),
        ] {
            assert_eq!(exit(code.clone()), expected, "{code}");
        }
        // Only a closed stdout is a failure that is not one.
        for code in LocalCode::ALL {
            assert_eq!(
                CliCode::Local(*code).exit() == Exit::Done,
                *code == LocalCode::StdoutClosed,
                "{code}"
            );
        }
        for code in ErrorCode::KNOWN {
            assert_ne!(CliCode::Api(code.clone()).exit(), Exit::Done, "{code}");
        }
        // A newer server's code: its status decides; a known code's status does not.
        let newer = || CliError::new(ErrorCode::from_wire("quota_backend_down"), "m");
        assert_eq!(newer().exit(), Exit::Refused);
        assert_eq!(newer().with_status(503).exit(), Exit::Unreachable);
        assert_eq!(newer().with_status(403).exit(), Exit::NotAllowed);
        assert_eq!(newer().with_status(422).exit(), Exit::Refused);
        let known = CliError::new(ErrorCode::IncompatibleBundle, "m").with_status(409);
        assert_eq!(known.exit(), Exit::Incompatible);
    }

    #[test]
    fn server_codes_print_as_sent_even_unknown_ones() {
        let newer = CliError::new(ErrorCode::from_wire("plan_limit_reached"), "over the plan");
        assert_eq!(
            newer.code,
            CliCode::Api(ErrorCode::Other("plan_limit_reached".into()))
        );
        assert_eq!(
            newer.report_line(),
            "error: over the plan [plan_limit_reached]"
        );
        assert!(!newer.is(&ErrorCode::NotFound));
        let known = CliError::new(ErrorCode::BundleInUse, "in use");
        assert!(known.is(&ErrorCode::BundleInUse));
        assert!(!known.is_local(LocalCode::ConnectionFailed));
        assert_eq!(
            CliError::new(CliCode::Http(502), "bad gateway").to_json(),
            json!({"error": "http_502", "message": "bad gateway"})
        );
        let device = CliError::new(CliCode::Device("no_new_version_available".into()), "none");
        assert_eq!(device.to_string(), "none [no_new_version_available]");
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn error_chain_joins_sources_without_echoes() {
        let error = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("tcp connect error", None))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "error sending request: tcp connect error"
        );
    }
}
