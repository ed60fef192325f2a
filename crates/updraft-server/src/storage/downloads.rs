//! Device downloads of stored bundles (`/dl/{app_id}/{version}/{file}`,
//! served by `device_downloads`): which blob a URL names, whether the
//! request may have it (signed URLs), where its bytes come from (streamed,
//! or a redirect to a presigned object-store URL or a CDN), and the
//! per-app, per-bundle, per-day download counts.
//!
//! In `cdn` mode update answers link to the CDN directly (see
//! [`link_answer_to_cdn`]) and a `/dl/` URL still in use redirects there.

use super::signing::{SignatureProblem, UrlSigner};
use super::{blob_failure, encode_segment, Delivery, DownloadMode};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::releases::ReleaseCache;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use updraft_core::analytics::day_of;
use updraft_core::model::{Bundle, Clock, Millis};
use updraft_store::blob::{is_sha256_hex, BlobRangeReader, BlobReader, BlobStore};
use updraft_store::{BundleStore, DownloadStore, DownloadTally};

const SHARDS: usize = 16;

type TallyKey = (String, i64, String);

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

    /// Counts one download of `bytes` bytes at `now`.
    pub fn note(&self, app_id: &str, bundle_id: i64, bytes: u64, now: Millis) {
        let day = day_of(now);
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
    pub async fn flush(&self, store: &dyn DownloadStore) {
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

/// A download as the device asked for it.
pub struct DownloadRequest<'a> {
    /// The URL path as sent (signatures cover it raw) and its query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub app_id: &'a str,
    pub version: &'a str,
    pub file: &'a str,
    /// A `HEAD`: nothing is sent, nothing is counted.
    pub head: bool,
}

/// Where a download's bytes come from.
pub enum Download {
    /// A 302 to this URL (counted already, unless a `HEAD`).
    Redirect(String),
    /// This node streams the blob (see [`DownloadService::read`]).
    Blob(BlobDownload),
}

/// An opened blob of a live bundle.
pub struct BlobDownload {
    reader: BlobReader,
    sha256: String,
    content_type: &'static str,
    app_id: String,
    bundle_id: i64,
}

impl BlobDownload {
    pub fn size(&self) -> u64 {
        self.reader.size
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn content_type(&self) -> &'static str {
        self.content_type
    }
}

/// Why a download is not served.
#[derive(Debug)]
pub enum DownloadRefusal {
    /// Signed URLs are on and this one's signature does not pass.
    Signature(SignatureProblem),
    /// No live bundle of the app has this file.
    NotFound,
    /// The bundle could not be looked up (the database failed).
    LookupFailed,
    /// The blob storage failed.
    Storage(ApiError),
    /// The blob store cannot serve by redirect (no presigning, no object keys).
    NoRedirect,
}

/// Serves bundle files to devices and counts them.
pub struct DownloadService {
    blobs: Arc<dyn BlobStore>,
    releases: Arc<ReleaseCache>,
    bundles: Arc<dyn BundleStore>,
    tallies: Arc<dyn DownloadStore>,
    counter: DownloadCounter,
    /// Set when download URLs must be signed (by the server, with the key
    /// from the database: [`UrlSigner::from_store`]).
    signer: Option<UrlSigner>,
    delivery: Delivery,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

/// What [`DownloadService`] reads: the stored blobs, the bundles (in memory
/// first, then the store) and where counts go.
pub struct DownloadSources {
    pub blobs: Arc<dyn BlobStore>,
    pub releases: Arc<ReleaseCache>,
    pub bundles: Arc<dyn BundleStore>,
    pub tallies: Arc<dyn DownloadStore>,
}

fn unix_secs(now: Millis) -> u64 {
    u64::try_from(now / 1000).unwrap_or(0)
}

impl DownloadService {
    pub fn new(
        sources: DownloadSources,
        signer: Option<UrlSigner>,
        delivery: Delivery,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> DownloadService {
        DownloadService {
            blobs: sources.blobs,
            releases: sources.releases,
            bundles: sources.bundles,
            tallies: sources.tallies,
            counter: DownloadCounter::default(),
            signer,
            delivery,
            metrics,
            clock,
        }
    }

    /// The URL signer, when download URLs are signed.
    pub fn signer(&self) -> Option<&UrlSigner> {
        self.signer.as_ref()
    }

    /// Finishes the download links of an `/updates` answer: signs them when
    /// signed URLs are on, and in `cdn` mode points those that name a stored
    /// blob at the CDN. In `cdn` mode devices never reach Updraft for bytes,
    /// so download counting is left to the CDN's logs.
    pub fn finish_answer_links(&self, body: &mut Value, base_url: &str) {
        if let Some(signer) = &self.signer {
            signer.sign_answer(body, base_url, unix_secs(self.clock.now()));
        }
        if let (DownloadMode::Cdn, Some(cdn_base_url)) =
            (self.delivery.mode, &self.delivery.cdn_base_url)
        {
            link_answer_to_cdn(body, base_url, cdn_base_url, self.blobs.as_ref());
        }
    }

    /// Checks a download and finds its bytes: a redirect (counted here, the
    /// bytes being those the bundle records) or a blob to stream.
    pub async fn open(&self, request: &DownloadRequest<'_>) -> Result<Download, DownloadRefusal> {
        if let Some(signer) = &self.signer {
            signer
                .verify_at(request.path, request.query, unix_secs(self.clock.now()))
                .map_err(DownloadRefusal::Signature)?;
        }
        let bundle = self
            .find_bundle(request.app_id, request.version)
            .await?
            .ok_or(DownloadRefusal::NotFound)?;
        let (sha256, content_type) =
            blob_of(&bundle, request.file).ok_or(DownloadRefusal::NotFound)?;
        if self.delivery.mode != DownloadMode::Stream {
            let location = self.redirect_location(sha256).await?;
            if !request.head {
                self.counter.note(
                    request.app_id,
                    bundle.id,
                    recorded_size(&bundle, sha256),
                    self.clock.now(),
                );
            }
            return Ok(Download::Redirect(location));
        }
        let reader = match self.blobs.open(sha256).await {
            Ok(Some(reader)) => reader,
            Ok(None) => {
                tracing::error!(
                    sha256,
                    app_id = request.app_id,
                    version = request.version,
                    "a live bundle's blob is missing"
                );
                return Err(DownloadRefusal::NotFound);
            }
            Err(err) => {
                self.metrics.record_storage_error("read");
                return Err(DownloadRefusal::Storage(blob_failure(err)));
            }
        };
        Ok(Download::Blob(BlobDownload {
            reader,
            sha256: sha256.to_string(),
            content_type,
            app_id: request.app_id.to_string(),
            bundle_id: bundle.id,
        }))
    }

    /// The `len` bytes of `blob` from `start`, counted as one download.
    pub async fn read(
        &self,
        blob: BlobDownload,
        start: u64,
        len: u64,
    ) -> Result<BlobRangeReader, DownloadRefusal> {
        let BlobDownload {
            reader,
            app_id,
            bundle_id,
            ..
        } = blob;
        match reader.range(start, len).await {
            Ok(stream) => {
                self.counter.note(&app_id, bundle_id, len, self.clock.now());
                self.metrics.record_download_bytes(len);
                Ok(stream)
            }
            Err(err) => {
                self.metrics.record_storage_error("read");
                Err(DownloadRefusal::Storage(blob_failure(err.into())))
            }
        }
    }

    /// Writes the download counts to the store; on failure they are kept
    /// for the next flush.
    pub async fn flush(&self) {
        self.counter.flush(self.tallies.as_ref()).await;
    }

    /// Flushes download counts every `every` until `stop` turns true, then once more.
    pub fn spawn_flusher(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => self.flush().await,
                    _ = stop.changed() => break,
                }
            }
            self.flush().await;
        })
    }

    /// The bundle named by the URL, if it is live: the in-memory release
    /// first, the store for bundles no channel points at.
    async fn find_bundle(
        &self,
        app_id: &str,
        version: &str,
    ) -> Result<Option<Arc<Bundle>>, DownloadRefusal> {
        let release = self.releases.get(app_id);
        if release.app.is_none() {
            return Ok(None);
        }
        if let Some(bundle) = release.bundles.values().find(|b| b.name == version) {
            return Ok((!bundle.deleted).then(|| bundle.clone()));
        }
        match self.bundles.get_bundle(app_id, version).await {
            Ok(bundle) => Ok(bundle.filter(|b| !b.deleted).map(Arc::new)),
            Err(err) => {
                tracing::error!(error = %err, "download lookup failed");
                Err(DownloadRefusal::LookupFailed)
            }
        }
    }

    /// `redirect`/`cdn` mode: where the blob's bytes are served; a missing
    /// object shows as the object store's own error.
    async fn redirect_location(&self, sha256: &str) -> Result<String, DownloadRefusal> {
        let location = match self.delivery.mode {
            DownloadMode::Cdn => self
                .delivery
                .cdn_base_url
                .as_deref()
                .and_then(|cdn| cdn_url_of_blob(self.blobs.as_ref(), cdn, sha256)),
            _ => match self
                .blobs
                .presigned_url(sha256, self.delivery.presigned_ttl)
                .await
            {
                Ok(url) => url,
                Err(err) => {
                    self.metrics.record_storage_error("presign");
                    return Err(DownloadRefusal::Storage(blob_failure(err)));
                }
            },
        };
        location.ok_or_else(|| {
            tracing::error!(
                mode = self.delivery.mode.as_str(),
                "this blob store cannot serve downloads by redirect"
            );
            DownloadRefusal::NoRedirect
        })
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
    body: &mut Value,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let local = updraft_store::blob::LocalBlobStore::open(
            dir.path(),
            std::sync::Arc::new(updraft_core::model::SystemClock),
        )
        .unwrap();
        let url = format!("http://h/dl/a/1/{}.zip", "ab".repeat(32));
        assert_eq!(cdn_url(&url, "http://h", "https://cdn", &local), None);
    }

    #[test]
    fn counts_add_up_per_bundle_and_day() {
        let counter = DownloadCounter::default();
        let now = 1_795_651_200_000 + 3_600_000;
        counter.note("a", 1, 10, now);
        counter.note("a", 1, 5, now);
        counter.note("a", 2, 7, now);
        let mut tallies = counter.take();
        tallies.sort_by_key(|t| t.bundle_id);
        let day = day_of(now);
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
