//! `http_redirect_listen`: a plain-HTTP listener whose only answer is
//! 308 Permanent Redirect to the same host, path and query on https (308
//! keeps the method and body, so a device's POST is repeated as a POST).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub fn router(https_port: u16) -> Router {
    Router::new().fallback(redirect).with_state(https_port)
}

/// The https URL for a request to `host` (its `Host` header) and `uri`.
pub fn https_location(host: &str, uri: &Uri, https_port: u16) -> Option<String> {
    let host = crate::proxy::clean_host(host)?;
    // Drop the plain-HTTP port; keep brackets of an IPv6 literal.
    let name = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') && host.starts_with('[') => &host[..colon],
        Some(colon) if !host.starts_with('[') && host.matches(':').count() == 1 => &host[..colon],
        _ => host.as_str(),
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("https://{name}{port}{target}"))
}

async fn redirect(State(https_port): State<u16>, headers: HeaderMap, uri: Uri) -> Response {
    let location = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|host| https_location(host, &uri, https_port))
        .and_then(|url| HeaderValue::from_str(&url).ok());
    match location {
        Some(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        None => crate::error::ApiError::bad_request(
            crate::error::ErrorCode::MissingHost,
            "This listener only redirects to https and needs the request's Host header",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_keeps_host_path_and_query_on_the_https_port() {
        let uri: Uri = "/dl/abc?sig=1".parse().unwrap();
        assert_eq!(
            https_location("u.example:8080", &uri, 443).as_deref(),
            Some("https://u.example/dl/abc?sig=1")
        );
        assert_eq!(
            https_location("[::1]:80", &uri, 8443).as_deref(),
            Some("https://[::1]:8443/dl/abc?sig=1")
        );
        assert_eq!(https_location("bad host/x", &uri, 443), None);
    }
}
