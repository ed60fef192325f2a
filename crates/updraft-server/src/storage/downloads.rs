//! `GET`/`HEAD /dl/{app_id}/{version}/{file}`: bundle zips and delta files for
//! devices. No auth (optionally signed URLs), no CORS (not a JS call), ranges
//! for resumed downloads, immutable caching, never a `Content-Encoding`.
//!
//! In `redirect` mode the same checks run, then the answer is a 302 to a
//! presigned object-store URL; in `cdn` mode update answers link to the CDN
//! directly (see [`link_answer_to_cdn`]) and a `/dl/` URL still in use
//! redirects there.

use super::signing::SignatureProblem;
use super::{blob_failure, encode_segment, Storage};
use crate::api::Path;
use crate::state::{AppState, DownloadMode};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;
use updraft_core::analytics::day_of;
use updraft_core::model::Bundle;
use updraft_store::blob::{is_sha256_hex, BlobStore};
use updraft_store::{DownloadTally, Store};

const SHARDS: usize = 16;

type TallyKey = (String, i64, String);

/// Bytes read and sent per chunk of a download: ReaderStream's default
/// (4 KiB) costs a blocking-pool hop and a socket write per 4 KiB of a local
/// file; 64 KiB cuts both 16-fold for 64 KiB of memory per download in flight.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Requests and bytes served per (app, bundle, UTC day), in memory until flushed.
pub struct DownloadCounter {
    shards: Vec<Mutex<HashMap<TallyKey, (i64, i64)>>>,
}

impl Default for DownloadCounter {
    fn default() -> Self {
        DownloadCounter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl DownloadCounter {
    fn shard(&self, key: &TallyKey) -> &Mutex<HashMap<TallyKey, (i64, i64)>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        &self.shards[(hasher.finish() as usize) % SHARDS]
    }

    /// Counts one download of `bytes` bytes.
    pub fn note(&self, app_id: &str, bundle_id: i64, bytes: u64) {
        let day = day_of(crate::storage::now_ms());
        let key = (app_id.to_string(), bundle_id, day);
        let mut shard = self
            .shard(&key)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = shard.entry(key).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry
            .1
            .saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Takes everything counted so far.
    pub fn take(&self) -> Vec<DownloadTally> {
        let mut tallies = Vec::new();
        for shard in &self.shards {
            let drained = std::mem::take(
                &mut *shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            tallies.extend(drained.into_iter().map(
                |((app_id, bundle_id, day), (requests, bytes))| DownloadTally {
                    app_id,
                    bundle_id,
                    day,
                    requests,
                    bytes,
                },
            ));
        }
        tallies
    }

    fn give_back(&self, tallies: Vec<DownloadTally>) {
        for tally in tallies {
            let key = (tally.app_id, tally.bundle_id, tally.day);
            let mut shard = self
                .shard(&key)
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = shard.entry(key).or_insert((0, 0));
            entry.0 += tally.requests;
            entry.1 = entry.1.saturating_add(tally.bytes);
        }
    }

    /// Writes the counts to the store; on failure they are kept for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let tallies = self.take();
        if tallies.is_empty() {
            return;
        }
        if let Err(err) = store.record_downloads(&tallies).await {
            tracing::warn!(error = %err, "download counts could not be stored; retrying later");
            self.give_back(tallies);
        }
    }
}

/// Flushes download counts every `every` until `stop` turns true, then once more.
pub fn spawn_flusher(
    storage: std::sync::Arc<Storage>,
    store: std::sync::Arc<dyn Store>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => storage.downloads.flush(store.as_ref()).await,
                _ = stop.changed() => break,
            }
        }
        storage.downloads.flush(store.as_ref()).await;
    })
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

/// The bundle named by the URL, if it is live: the in-memory release first,
/// the store for bundles no channel points at.
async fn find_bundle(
    state: &AppState,
    app_id: &str,
    version: &str,
) -> Result<Option<std::sync::Arc<Bundle>>, Response> {
    let release = state.releases.get(app_id);
    if release.app.is_none() {
        return Ok(None);
    }
    if let Some(bundle) = release.bundles.values().find(|b| b.name == version) {
        return Ok((!bundle.deleted).then(|| bundle.clone()));
    }
    match state.store.get_bundle(app_id, version).await {
        Ok(bundle) => Ok(bundle.filter(|b| !b.deleted).map(std::sync::Arc::new)),
        Err(err) => {
            tracing::error!(error = %err, "download lookup failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_error",
                "The bundle could not be looked up; retry shortly",
            ))
        }
    }
}

/// Which blob of the bundle `file` names, and its content type.
fn blob_of<'a>(bundle: &'a Bundle, file: &str) -> Option<(&'a str, &'static str)> {
    if let Some(sha) = file.strip_suffix(".zip") {
        return bundle
            .zip_sha256
            .as_deref()
            .filter(|zip| *zip == sha)
            .map(|zip| (zip, "application/zip"));
    }
    bundle
        .manifest
        .iter()
        .filter_map(|f| f.blob_sha256.as_deref())
        .find(|blob| *blob == file)
        .map(|blob| (blob, "application/octet-stream"))
}

/// The blob a download path of this server names:
/// `/dl/{app_id}/{version}/{sha256}` or `…/{sha256}.zip`.
pub fn blob_of_download_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/dl/")?;
    let mut segments = rest.split('/');
    let (Some(app_id), Some(version), Some(file), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return None;
    };
    if app_id.is_empty() || version.is_empty() {
        return None;
    }
    let sha256 = file.strip_suffix(".zip").unwrap_or(file);
    is_sha256_hex(sha256).then_some(sha256)
}

/// `{cdn_base_url}/{object key}` of a blob, `None` when the store has no keys.
fn cdn_url_of_blob(blobs: &dyn BlobStore, cdn_base_url: &str, sha256: &str) -> Option<String> {
    let key = blobs.object_key(sha256)?;
    let key: Vec<String> = key.split('/').map(encode_segment).collect();
    Some(format!("{cdn_base_url}/{}", key.join("/")))
}

/// Maps a URL of this server's downloads (`{base_url}/dl/…`) to the CDN URL
/// of the blob it names; `None` for anything else (external URLs stay).
pub fn cdn_url(
    url: &str,
    base_url: &str,
    cdn_base_url: &str,
    blobs: &dyn BlobStore,
) -> Option<String> {
    let sha256 = blob_of_download_path(url.strip_prefix(base_url)?)?;
    cdn_url_of_blob(blobs, cdn_base_url, sha256)
}

/// Points the `url` and manifest `download_url`s of an `/updates` answer that
/// name a stored blob at the CDN in front of the bucket.
pub fn link_answer_to_cdn(
    body: &mut serde_json::Value,
    base_url: &str,
    cdn_base_url: &str,
    blobs: &dyn BlobStore,
) {
    super::rewrite_download_links(body, |url| cdn_url(url, base_url, cdn_base_url, blobs));
}

/// The size the bundle records for one of its blobs (for download counts
/// when the bytes are served elsewhere).
fn recorded_size(bundle: &Bundle, sha256: &str) -> u64 {
    let size = if bundle.zip_sha256.as_deref() == Some(sha256) {
        bundle.size
    } else {
        bundle
            .manifest
            .iter()
            .find(|f| f.blob_sha256.as_deref() == Some(sha256))
            .and_then(|f| f.size)
    };
    size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0)
}

/// `redirect`/`cdn` mode: a 302 to where the blob's bytes are served. The
/// download is counted here (the bytes are those the bundle records); a
/// missing object shows as the object store's own error.
async fn redirect(
    state: &AppState,
    method: &Method,
    app_id: &str,
    bundle: &Bundle,
    sha256: &str,
) -> Response {
    let storage = &state.storage;
    let location = match storage.delivery.mode {
        DownloadMode::Cdn => storage
            .delivery
            .cdn_base_url
            .as_deref()
            .and_then(|cdn| cdn_url_of_blob(storage.blobs.as_ref(), cdn, sha256)),
        _ => match storage
            .blobs
            .presigned_url(sha256, storage.delivery.presigned_ttl)
            .await
        {
            Ok(url) => url,
            Err(err) => {
                state.metrics.record_storage_error("presign");
                return blob_failure(err).into_response();
            }
        },
    };
    let Some(location) = location else {
        tracing::error!(
            mode = storage.delivery.mode.as_str(),
            "this blob store cannot serve downloads by redirect"
        );
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "This server's storage cannot serve downloads by redirect",
        );
    };
    if *method != Method::HEAD {
        storage
            .downloads
            .note(app_id, bundle.id, recorded_size(bundle, sha256));
    }
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&location) {
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

pub async fn download(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((app_id, version, file)): Path<(String, String, String)>,
) -> Response {
    if let Some(signer) = &state.storage.signer {
        if let Err(problem) = signer.verify(uri.path(), uri.query()) {
            let message = match problem {
                SignatureProblem::Missing => "This download needs a signed URL",
                SignatureProblem::Expired => {
                    "This download URL has expired; check for updates again"
                }
                SignatureProblem::Malformed | SignatureProblem::Wrong => {
                    "This download URL's signature is not valid"
                }
            };
            return error(StatusCode::FORBIDDEN, "invalid_signature", message);
        }
    }
    let bundle = match find_bundle(&state, &app_id, &version).await {
        Ok(Some(bundle)) => bundle,
        Ok(None) => return not_found(),
        Err(response) => return response,
    };
    let Some((sha256, content_type)) = blob_of(&bundle, &file) else {
        return not_found();
    };
    if state.storage.delivery.mode != DownloadMode::Stream {
        return redirect(&state, &method, &app_id, &bundle, sha256).await;
    }
    let reader = match state.storage.blobs.open(sha256).await {
        Ok(Some(reader)) => reader,
        Ok(None) => {
            tracing::error!(sha256, app_id, version, "a live bundle's blob is missing");
            return not_found();
        }
        Err(err) => {
            state.metrics.record_storage_error("read");
            return blob_failure(err).into_response();
        }
    };
    let size = reader.size;
    let etag = format!("\"{sha256}\"");
    let mut response_headers = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response_headers.insert(name, value);
        }
    };
    put(header::ETAG, &etag);
    put(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    put(header::ACCEPT_RANGES, "bytes");
    put(header::CONTENT_TYPE, content_type);
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
    let body = match reader.range(start, len).await {
        Ok(stream) => Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            stream,
            DOWNLOAD_CHUNK,
        )),
        Err(err) => {
            state.metrics.record_storage_error("read");
            return blob_failure(err.into()).into_response();
        }
    };
    state.storage.downloads.note(&app_id, bundle.id, len);
    state.metrics.record_download_bytes(len);
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
    fn download_paths_name_their_blob() {
        let sha = "ab".repeat(32);
        let zip = format!("/dl/com.example.app/1.0.0%2Bb/{sha}.zip");
        assert_eq!(blob_of_download_path(&zip), Some(sha.as_str()));
        let file = format!("/dl/a/1/{sha}");
        assert_eq!(blob_of_download_path(&file), Some(sha.as_str()));
        for other in [
            format!("/dl/a/{sha}.zip"),
            format!("/dl/a/1/x/{sha}"),
            format!("/dl//1/{sha}"),
            "/dl/a/1/index.html".to_string(),
            format!("/api/a/1/{sha}"),
            format!("/dl/a/1/{}", sha.to_uppercase()),
        ] {
            assert_eq!(blob_of_download_path(&other), None, "{other}");
        }
    }

    #[test]
    fn a_local_store_has_no_cdn_urls() {
        let dir = tempfile::tempdir().unwrap();
        let local = updraft_store::blob::LocalBlobStore::open(dir.path()).unwrap();
        let url = format!("http://h/dl/a/1/{}.zip", "ab".repeat(32));
        assert_eq!(cdn_url(&url, "http://h", "https://cdn", &local), None);
    }

    #[test]
    fn etags_match_strong_weak_and_star() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("\"x\", W/\"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"abd\"", etag));
    }

    #[test]
    fn counts_add_up_per_bundle_and_day() {
        let counter = DownloadCounter::default();
        counter.note("a", 1, 10);
        counter.note("a", 1, 5);
        counter.note("a", 2, 7);
        let mut tallies = counter.take();
        tallies.sort_by_key(|t| t.bundle_id);
        let day = day_of(crate::storage::now_ms());
        assert_eq!(tallies.len(), 2);
        assert_eq!(
            (
                tallies[0].requests,
                tallies[0].bytes,
                tallies[0].day.as_str()
            ),
            (2, 15, day.as_str())
        );
        assert_eq!((tallies[1].requests, tallies[1].bytes), (1, 7));
        assert!(counter.take().is_empty());
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_795_651_200_000), "2026-11-26");
    }
}
