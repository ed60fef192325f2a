//! `GET`/`HEAD /dl/{app_id}/{version}/{file}`: bundle zips and delta files
//! for devices. No auth (optionally signed URLs), no CORS (not a JS call),
//! ranges for resumed downloads, immutable caching, never a
//! `Content-Encoding`. What is served, and whether, is the
//! [`DownloadService`]'s; this is its HTTP side.

use crate::extract::Path;
use crate::storage::downloads::{Download, DownloadRefusal, DownloadRequest, DownloadService};
use crate::storage::signing::SignatureProblem;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// Bytes read and sent per chunk of a download: ReaderStream's default
/// (4 KiB) costs a blocking-pool hop and a socket write per 4 KiB of a local
/// file; 64 KiB cuts both 16-fold for 64 KiB of memory per download in flight.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// The download route (no auth, no CORS), on any router state that holds
/// the [`DownloadService`].
pub fn routes<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<DownloadService>: FromRef<S>,
{
    axum::Router::new().route(
        "/dl/{app_id}/{version}/{file}",
        axum::routing::get(download),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Not found")
}

/// The requested range of a `size`-byte file.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    Whole,
    /// Inclusive first and last byte.
    Partial(u64, u64),
    Unsatisfiable,
}

/// Interprets a `Range` header. Anything not a single `bytes=` range we
/// understand (including multi-range) is answered with the whole file, as
/// RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last n bytes.
        let Ok(n) = last.parse::<u64>() else {
            return RangeAnswer::Whole;
        };
        if n == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial(size.saturating_sub(n), size - 1);
    }
    let Ok(first) = first.parse::<u64>() else {
        return RangeAnswer::Whole;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(last) if last >= first => last,
            _ => return RangeAnswer::Whole,
        }
    };
    if first >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial(first, last.min(size - 1))
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn refused(refusal: DownloadRefusal) -> Response {
    match refusal {
        DownloadRefusal::Signature(problem) => {
            let message = match problem {
                SignatureProblem::Missing => "This download needs a signed URL",
                SignatureProblem::Expired => {
                    "This download URL has expired; check for updates again"
                }
                SignatureProblem::Malformed | SignatureProblem::Wrong => {
                    "This download URL's signature is not valid"
                }
            };
            error(StatusCode::FORBIDDEN, "invalid_signature", message)
        }
        DownloadRefusal::NotFound => not_found(),
        DownloadRefusal::LookupFailed => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_error",
            "The bundle could not be looked up; retry shortly",
        ),
        DownloadRefusal::Storage(err) => err.into_response(),
        DownloadRefusal::NoRedirect => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "This server's storage cannot serve downloads by redirect",
        ),
    }
}

/// A 302 to where the blob's bytes are served.
fn redirect(location: &str) -> Response {
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(location) {
        Ok(value) => headers.insert(header::LOCATION, value),
        Err(_) => {
            tracing::error!("a redirect location is not a valid header value");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "The download location could not be made",
            );
        }
    };
    // Presigned URLs expire: never cache the redirect.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::FOUND, headers).into_response()
}

async fn download(
    State(downloads): State<Arc<DownloadService>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((app_id, version, file)): Path<(String, String, String)>,
) -> Response {
    let request = DownloadRequest {
        path: uri.path(),
        query: uri.query(),
        app_id: &app_id,
        version: &version,
        file: &file,
        head: method == Method::HEAD,
    };
    let blob = match downloads.open(&request).await {
        Ok(Download::Redirect(location)) => return redirect(&location),
        Ok(Download::Blob(blob)) => blob,
        Err(refusal) => return refused(refusal),
    };
    let size = blob.size();
    let etag = format!("\"{}\"", blob.sha256());
    let mut response_headers = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response_headers.insert(name, value);
        }
    };
    put(header::ETAG, &etag);
    put(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    put(header::ACCEPT_RANGES, "bytes");
    put(header::CONTENT_TYPE, blob.content_type());
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag))
    {
        response_headers.remove(header::CONTENT_TYPE);
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    // A resumed download whose validator no longer matches gets the whole file.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = if if_range_ok {
        parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            size,
        )
    } else {
        RangeAnswer::Whole
    };
    let (status, start, len) = match range {
        RangeAnswer::Whole => (StatusCode::OK, 0, size),
        RangeAnswer::Partial(first, last) => {
            put(
                header::CONTENT_RANGE,
                &format!("bytes {first}-{last}/{size}"),
            );
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        RangeAnswer::Unsatisfiable => {
            put(header::CONTENT_RANGE, &format!("bytes */{size}"));
            response_headers.remove(header::CONTENT_TYPE);
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                response_headers,
                axum::Json(json!({"error": "range_not_satisfiable", "message": "The range starts past the end of the file"})),
            )
                .into_response();
        }
    };
    put(header::CONTENT_LENGTH, &len.to_string());
    if method == Method::HEAD {
        return (status, response_headers).into_response();
    }
    let body = match downloads.read(blob, start, len).await {
        Ok(stream) => Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            stream,
            DOWNLOAD_CHUNK,
        )),
        Err(refusal) => return refused(refusal),
    };
    (status, response_headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(None, 100), RangeAnswer::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            RangeAnswer::Partial(0, 9)
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            RangeAnswer::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=90-500"), 100),
            RangeAnswer::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeAnswer::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=-500"), 100),
            RangeAnswer::Partial(0, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 100),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeAnswer::Whole);
    }

    #[test]
    fn etags_match_strong_weak_and_star() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("\"x\", W/\"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"abd\"", etag));
    }
}
