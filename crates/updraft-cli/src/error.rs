//! The one error type of the CLI: a stable code (the server's when it sent
//! one) and a sentence for humans.

use serde_json::Value;
use std::fmt;
use updraft_api::{ErrorCode, ErrorView};
use updraft_store::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    /// Stable, machine-readable code such as `app_not_found` or `connection_failed`.
    pub code: String,
    pub message: String,
}

impl CliError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        CliError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A command-line argument the server would reject anyway, caught early.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        CliError::new("invalid_argument", message)
    }

    /// Whether this is the server's `code`.
    pub fn is(&self, code: &ErrorCode) -> bool {
        *code == *self.code
    }

    /// `{"error": code, "message": msg}`, the same shape the server uses.
    pub fn to_json(&self) -> Value {
        ErrorView::new(ErrorCode::from_wire(&self.code), self.message.clone()).to_json()
    }

    /// The line printed on stderr: `error: <message> [<code>]`.
    pub fn report_line(&self) -> String {
        format!("error: {} [{}]", self.message, self.code)
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
            StoreError::NotFound(what) => CliError::new(format!("{what}_not_found"), message),
            StoreError::AlreadyExists(what) => {
                CliError::new(format!("{what}_already_exists"), message)
            }
            StoreError::DeletedNameReused => CliError::new("bundle_version_deleted", message),
            StoreError::Invalid(_) => CliError::new("invalid_argument", message),
            StoreError::Conflict(_) => CliError::new("conflict", message),
            StoreError::Backend(_) | StoreError::Unavailable(_) => {
                CliError::new("storage_error", message)
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
        CliError::new(error.code(), error.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::new("io_error", error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use updraft_store::Entity;

    #[test]
    fn report_line_has_message_then_code() {
        let error = CliError::new("app_not_found", "app com.x.y not found");
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
            "apikey_not_found"
        );
        assert_eq!(
            CliError::from(StoreError::AlreadyExists(Entity::ApiKey)).code,
            "apikey_already_exists"
        );
        assert_eq!(
            CliError::from(StoreError::Backend("disk full".into())).code,
            "storage_error"
        );
        assert_eq!(
            CliError::from(StoreError::Backend("disk full".into())).message,
            "database error: disk full"
        );
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
