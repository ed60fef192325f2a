//! What a command produced, and how it is printed.

use crate::error::CliError;
use serde_json::{json, Value};
use std::io::Write;

/// The result of a successful command in both output modes.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Printed with `--json`: the server's JSON (or the offline equivalent).
    pub json: Value,
    /// Printed otherwise: a table or a one-line confirmation.
    pub text: String,
    /// Extra guidance for humans, printed on stderr in plain mode only.
    pub note: Option<String>,
    /// Printed on stderr in both modes: things a script should see too.
    pub warnings: Vec<String>,
    /// Set when the command's result is itself a failure (e.g. an incompatible
    /// bundle): the result is printed as usual, then the error, and the exit code is 1.
    pub failure: Option<CliError>,
}

impl Outcome {
    pub fn new(json: Value, text: impl Into<String>) -> Self {
        Outcome {
            json,
            text: text.into(),
            note: None,
            warnings: Vec::new(),
            failure: None,
        }
    }

    /// For deletes, which answer 204: `{"status": "ok"}` in JSON mode.
    pub fn status_ok(text: impl Into<String>) -> Self {
        Outcome::new(json!({"status": "ok"}), text)
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    pub fn with_failure(mut self, failure: CliError) -> Self {
        self.failure = Some(failure);
        self
    }

    /// Write errors (a closed pipe, e.g. `| head`) are ignored rather than panicking.
    pub fn print(&self, json_mode: bool) {
        for warning in &self.warnings {
            let _ = writeln!(std::io::stderr().lock(), "{warning}");
        }
        if json_mode {
            print_json(&self.json);
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{}", self.text);
            if let Some(note) = &self.note {
                let _ = writeln!(std::io::stderr().lock(), "{note}");
            }
        }
    }
}

pub fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
