//! CORS for the device routes, as the hosted service answers it: Capacitor,
//! Ionic and localhost origins (plus configured ones) are allowed, and a
//! preflight `OPTIONS` gets 204.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const ALLOWED_METHODS: &str = "POST, GET, PUT, PATCH, DELETE, OPTIONS";
const DEFAULT_ALLOWED_HEADERS: &str = "content-type, authorization, x-request-id";

#[derive(Clone, Debug, Default)]
pub struct CorsPolicy {
    /// Extra allowed origins; `*` allows any.
    extra: Arc<Vec<String>>,
}

impl CorsPolicy {
    pub fn new(extra: Vec<String>) -> Self {
        CorsPolicy {
            extra: Arc::new(extra),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        if matches!(
            origin,
            "capacitor://localhost" | "ionic://localhost" | "localhost://localhost"
        ) {
            return true;
        }
        for scheme in ["http://localhost", "https://localhost"] {
            if let Some(rest) = origin.strip_prefix(scheme) {
                if rest.is_empty()
                    || rest.strip_prefix(':').is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    })
                {
                    return true;
                }
            }
        }
        self.extra
            .iter()
            .any(|allowed| allowed == "*" || allowed.trim_end_matches('/') == origin)
    }
}

/// Applies to the device routes only; everything else passes through.
pub async fn cors(State(policy): State<CorsPolicy>, request: Request, next: Next) -> Response {
    if !crate::device::is_device_path(request.uri().path()) {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let requested_headers = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let is_preflight = request.method() == Method::OPTIONS;
    let mut response = if is_preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin.filter(|o| policy.allows(o)) {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            requested_headers.unwrap_or(HeaderValue::from_static(DEFAULT_ALLOWED_HEADERS)),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacitor_ionic_and_localhost_origins_are_allowed() {
        let policy = CorsPolicy::default();
        for origin in [
            "capacitor://localhost",
            "ionic://localhost",
            "http://localhost",
            "https://localhost",
            "http://localhost:8100",
        ] {
            assert!(policy.allows(origin), "{origin}");
        }
    }

    #[test]
    fn other_origins_need_configuration() {
        let policy = CorsPolicy::default();
        for origin in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://localhost:",
        ] {
            assert!(!policy.allows(origin), "{origin}");
        }
        let configured = CorsPolicy::new(vec!["https://console.example.com/".into()]);
        assert!(configured.allows("https://console.example.com"));
        assert!(CorsPolicy::new(vec!["*".into()]).allows("https://anything.example"));
    }
}
