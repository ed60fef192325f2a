//! One log line per request, at `info`, when its response has been sent
//! (or abandoned by the client): method, route template, status, duration,
//! response bytes, request id and client address. Never headers, query
//! strings or bodies, so no API key, cookie, signed-URL token or device
//! payload reaches the log.
//!
//! The request id is the client's `X-Request-Id` when it is sane (1–128
//! characters of `A-Za-z0-9_-.`), else a new random one; it is echoed in
//! the response's `X-Request-Id`.

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method};
use http_body::{Body as _, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// The request's id, as an extension for handlers that log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

const REQUEST_ID: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// The incoming id when it is one this server would also make up.
pub fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= MAX_REQUEST_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then(|| text.to_string())
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Middleware: the request id, then the log line once the body is done.
pub async fn log_requests(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let client = crate::proxy::client_ip(request.extensions());
    request.extensions_mut().insert(RequestId(id.clone()));
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = HeaderValue::from_str(&id) {
        parts.headers.insert(REQUEST_ID, value);
    }
    let finished = body.is_end_stream();
    // Streamed files give no exact size hint but a Content-Length.
    let expected = body.size_hint().exact().or_else(|| {
        parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let line = Line {
        method,
        route,
        status,
        id,
        client,
        started,
        bytes: 0,
        finished,
    };
    axum::response::Response::from_parts(
        parts,
        Body::new(LoggedBody {
            inner: body,
            expected,
            line,
        }),
    )
}

struct Line {
    method: Method,
    route: String,
    status: u16,
    id: String,
    client: Option<std::net::IpAddr>,
    started: Instant,
    bytes: u64,
    finished: bool,
}

impl Drop for Line {
    fn drop(&mut self) {
        let client = self.client.map(|ip| ip.to_string());
        tracing::info!(
            target: "updraft::access",
            method = %self.method,
            route = %self.route,
            status = self.status,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            bytes = self.bytes,
            request_id = %self.id,
            client = client.as_deref().unwrap_or("-"),
            complete = self.finished,
            "request"
        );
    }
}

/// The response body, counting what is sent; the line is written when it
/// ends or is dropped (a client that went away mid-download).
struct LoggedBody {
    inner: Body,
    /// The body's length when known (hyper stops polling once it is sent).
    expected: Option<u64>,
    line: Line,
}

impl http_body::Body for LoggedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.line.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() || Some(this.line.bytes) == this.expected {
                    this.line.finished = true;
                }
            }
            Poll::Ready(None) => this.line.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_request_ids_are_echoed() {
        let ok = HeaderValue::from_static("abc-123_X.y");
        assert_eq!(sane_request_id(&ok).as_deref(), Some("abc-123_X.y"));
        for bad in ["", "a b", "a\"b", "x;y"] {
            assert_eq!(
                sane_request_id(&HeaderValue::from_static(bad)),
                None,
                "{bad:?}"
            );
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(sane_request_id(&long), None);
        assert_eq!(new_request_id().len(), 32);
    }
}
