//! The error every device route answers with: a stable code, a sentence, and
//! the HTTP status. The server maps it to a response in one place.

use serde_json::{Map, Value};

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
    pub code: &'static str,
    pub message: String,
    /// `moreInfo` for `Thrown`, top-level extra fields for `Flat`.
    pub extra: Map<String, Value>,
    pub envelope: Envelope,
}

impl DeviceError {
    /// A 400 with `moreInfo`, as the reference service throws on bad input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
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
    pub fn flat(code: &'static str, message: impl Into<String>) -> Self {
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
            "app_not_found",
            format!("App {app_id} is not registered on this Updraft server"),
        )
        .with_status(404)
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.code.to_string()));
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
