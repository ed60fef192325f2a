//! Blobs in an S3-compatible bucket (via `object_store`) under
//! `{prefix}/blobs/{sha256}`; staging stays a local directory because uploads
//! are assembled there before they are hashed and sent.
//!
//! S3 cannot update an object's modification time, so `touch` writes an empty
//! marker `{prefix}/touched/{sha256}` and `list` reports the later of the two.

use super::local::{blocking, check_name, hash_file};
use super::{
    is_scratch_name, is_sha256_hex, BlobEntry, BlobError, BlobInfo, BlobRangeReader, BlobReader,
    BlobStore, ScratchEntry,
};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, WriteMultipart,
};
use object_store::{ClientConfigKey, RetryConfig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

const BLOBS_DIR: &str = "blobs";
const TOUCHED_DIR: &str = "touched";
/// Scratch objects (upload parts) live under `{prefix}/uploads/`.
const SCRATCH_DIR: &str = "uploads";
/// Size of one multipart part (S3 wants at least 5 MiB for all but the last).
const PART_SIZE: usize = 16 * 1024 * 1024;
/// Files at least this large go up in parts; smaller ones in one PUT.
const MULTIPART_THRESHOLD: u64 = PART_SIZE as u64;
/// Parts uploading at once: bounds memory to a few parts per upload.
const PARTS_IN_FLIGHT: usize = 2;
/// Blobs are opaque bytes; never a Content-Encoding (the plugin would be
/// handed decoded bytes whose hash no longer matches).
const CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Clone, Debug)]
pub struct ObjectBlobStore {
    store: Arc<AmazonS3>,
    /// The same bucket, for reads of blob bodies (see `from_url`).
    stream_store: Arc<AmazonS3>,
    bucket: String,
    prefix: ObjectPath,
    staging: PathBuf,
}

/// Retries of one object-store request end after this.
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for the bucket to start answering a blob read.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest silence of the bucket while a blob body is being read.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole blob read, body included, at the reader's pace.
const STREAM_REQUEST_TIMEOUT: &str = "24h";

/// A blob opened for reading from the bucket.
pub(crate) struct ObjectSource {
    store: Arc<AmazonS3>,
    path: ObjectPath,
}

impl ObjectSource {
    pub(crate) async fn range(self, start: u64, len: u64) -> io::Result<BlobRangeReader> {
        if len == 0 {
            // S3 rejects an empty range; nothing needs fetching anyway.
            return Ok(Box::pin(tokio::io::empty()));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start.saturating_add(len))),
            ..GetOptions::default()
        };
        let result =
            tokio::time::timeout(RESPONSE_TIMEOUT, self.store.get_opts(&self.path, options))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the object store did not answer within {} s",
                            RESPONSE_TIMEOUT.as_secs()
                        ),
                    )
                })?
                .map_err(io::Error::other)?;
        let stream = IdleTimeout::new(
            result.into_stream().map_err(io::Error::other).boxed(),
            BODY_IDLE_TIMEOUT,
        );
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }
}

/// Fails a body stream when the bucket sends nothing for `limit` while it is
/// being waited on. The clock runs only while the reader asks for more and
/// none has come, so a slow device (which simply asks less often) is never
/// cut off, while a bucket that stalls mid-body is.
struct IdleTimeout<S> {
    inner: S,
    limit: Duration,
    waiting: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        IdleTimeout {
            inner,
            limit,
            waiting: None,
        }
    }
}

impl<S, T> futures_util::Stream for IdleTimeout<S>
where
    S: futures_util::Stream<Item = io::Result<T>> + Unpin,
{
    type Item = io::Result<T>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(item) => {
                this.waiting = None;
                Poll::Ready(item)
            }
            Poll::Pending => {
                let limit = this.limit;
                let timer = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.waiting = None;
                        Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the object store sent nothing for {} s in the middle of a file",
                                limit.as_secs()
                            ),
                        ))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// An S3 error's `<Code>` (NoSuchBucket, AccessDenied …) instead of the
/// whole XML body object_store quotes, else the message as it is.
fn short_reason(message: &str) -> String {
    let code = message
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.trim());
    match code {
        Some(code) if !code.is_empty() => code.to_string(),
        _ => message.to_string(),
    }
}

fn store_error(err: object_store::Error) -> BlobError {
    BlobError::ObjectStore(err.to_string())
}

/// `s3://bucket[/prefix]` → (bucket, prefix without slashes at the ends).
fn parse_storage_url(url: &str) -> Result<(String, String), BlobError> {
    let shape = || {
        BlobError::Config(format!(
            "storage URL {url:?} must look like s3://bucket or s3://bucket/prefix"
        ))
    };
    let rest = url.trim().strip_prefix("s3://").ok_or_else(shape)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || rest.contains(['?', '#']) {
        return Err(shape());
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

fn put_attributes() -> Attributes {
    Attributes::from_iter([(Attribute::ContentType, CONTENT_TYPE)])
}

fn put_options() -> PutOptions {
    PutOptions {
        attributes: put_attributes(),
        ..PutOptions::default()
    }
}

async fn remove_staged(staged: &Path) -> Result<(), BlobError> {
    match tokio::fs::remove_file(staged).await {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err.into()),
        _ => Ok(()),
    }
}

fn mismatch(expected: Option<&str>, actual: &str) -> Option<BlobError> {
    expected
        .filter(|expected| *expected != actual)
        .map(|expected| BlobError::Mismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
}

impl ObjectBlobStore {
    /// A store in the bucket of `url` (`s3://bucket[/prefix]`), configured
    /// from the `AWS_*` environment (credentials, region, endpoint, session
    /// tokens, instance credentials…) and then `options`, object_store S3
    /// keys such as `endpoint`, `region`, `access_key_id`, `allow_http` or
    /// `virtual_hosted_style_request`, which win. Files are staged in
    /// `staging_dir`, which must exist.
    pub fn from_url(
        url: &str,
        options: &[(String, String)],
        staging_dir: &Path,
    ) -> Result<ObjectBlobStore, BlobError> {
        let (bucket, prefix) = parse_storage_url(url)?;
        let prefix = ObjectPath::parse(&prefix).map_err(|_| {
            BlobError::Config(format!(
                "the storage URL's prefix {prefix:?} is not a valid object key prefix"
            ))
        })?;
        // Our defaults sit between the environment and the explicit options
        // (which win): a few quick retries instead of object_store's three
        // minutes, so that an unreachable bucket fails a request in seconds.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: RETRY_TIMEOUT,
                ..RetryConfig::default()
            })
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            )
            // Whole requests other than blob reads: metadata calls, and
            // uploads in parts of at most 16 MiB.
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "20s");
        for (key, value) in options {
            let config_key = AmazonS3ConfigKey::from_str(&key.trim().to_ascii_lowercase())
                .map_err(|_| {
                    BlobError::Config(format!(
                        "unknown object storage option {key:?} (expected an object_store S3 \
                         key such as endpoint, region, access_key_id, secret_access_key, \
                         allow_http or virtual_hosted_style_request)"
                    ))
                })?;
            builder = builder.with_config(config_key, value);
        }
        // Blob bodies stream to devices at the device's pace (a big bundle to
        // a slow phone takes minutes): their client has no whole-request
        // timeout; `ObjectSource::range` bounds the wait for the answer.
        let streaming = builder
            .clone()
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                STREAM_REQUEST_TIMEOUT,
            )
            .build()
            .map_err(|err| BlobError::Config(err.to_string()))?;
        let store = builder
            .build()
            .map_err(|err| BlobError::Config(err.to_string()))?;
        Ok(ObjectBlobStore {
            stream_store: Arc::new(streaming),
            store: Arc::new(store),
            bucket,
            prefix,
            staging: staging_dir.to_path_buf(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn blob_path(&self, sha256: &str) -> ObjectPath {
        self.prefix.child(BLOBS_DIR).child(sha256)
    }

    fn marker_path(&self, sha256: &str) -> ObjectPath {
        self.prefix.child(TOUCHED_DIR).child(sha256)
    }

    /// `{prefix}/uploads/{name}`, for a valid scratch name only.
    fn scratch_path(&self, name: &str) -> Result<ObjectPath, BlobError> {
        if !is_scratch_name(name) {
            return Err(BlobError::InvalidName(name.to_string()));
        }
        Ok(name
            .split('/')
            .fold(self.prefix.child(SCRATCH_DIR), |path, segment| {
                path.child(segment)
            }))
    }

    /// The full key of a blob in the bucket: `{prefix}/blobs/{sha256}`.
    pub fn object_key(&self, sha256: &str) -> String {
        self.blob_path(sha256).to_string()
    }

    /// A presigned GET URL of the blob, valid for `ttl`.
    pub async fn presigned_get_url(
        &self,
        sha256: &str,
        ttl: Duration,
    ) -> Result<String, BlobError> {
        check_name(sha256)?;
        let url = self
            .store
            .signed_url(reqwest::Method::GET, &self.blob_path(sha256), ttl)
            .await
            .map_err(store_error)?;
        Ok(url.to_string())
    }

    async fn head(&self, path: &ObjectPath) -> Result<Option<ObjectMeta>, BlobError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Restarts the blob's gc grace period (see the module docs).
    async fn mark_touched(&self, sha256: &str) -> Result<(), BlobError> {
        self.store
            .put_opts(
                &self.marker_path(sha256),
                PutPayload::default(),
                put_options(),
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Sends a staged file: one PUT when small, else a multipart upload
    /// (aborted on failure so no parts linger).
    async fn upload_file(
        &self,
        path: &ObjectPath,
        staged: &Path,
        size: u64,
    ) -> Result<(), BlobError> {
        if size < MULTIPART_THRESHOLD {
            let bytes = tokio::fs::read(staged).await?;
            self.store
                .put_opts(path, PutPayload::from(bytes), put_options())
                .await
                .map_err(store_error)?;
            return Ok(());
        }
        let mut file = tokio::fs::File::open(staged).await?;
        let upload = self
            .store
            .put_multipart_opts(
                path,
                PutMultipartOptions {
                    attributes: put_attributes(),
                    ..PutMultipartOptions::default()
                },
            )
            .await
            .map_err(store_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let copied = async {
            let mut buffer = vec![0u8; 1024 * 1024];
            loop {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(store_error)?;
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok::<(), BlobError>(());
                }
                writer.write(&buffer[..read]);
            }
        }
        .await;
        match copied {
            Ok(()) => {
                writer.finish().await.map_err(store_error)?;
                Ok(())
            }
            Err(err) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "a failed multipart upload could not be aborted");
                }
                Err(err)
            }
        }
    }

    /// Every object directly under `{prefix}/{dir}/` named like a blob, with
    /// its metadata.
    async fn list_named(&self, dir: &str) -> Result<Vec<(String, ObjectMeta)>, BlobError> {
        let parent = self.prefix.child(dir);
        let mut listing = self.store.list(Some(&parent));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_error)?;
            let Some(name) = meta.location.filename().map(str::to_string) else {
                continue;
            };
            // Only correctly placed blob names count; anything else is not ours.
            if is_sha256_hex(&name) && meta.location == parent.child(name.as_str()) {
                found.push((name, meta));
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn check(&self) -> Result<(), BlobError> {
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(|_| ())
            .map_err(|err| {
                BlobError::ObjectStore(format!(
                    "cannot list bucket {:?} (does it exist, and may these credentials read it?): {}",
                    self.bucket,
                    short_reason(&err.to_string())
                ))
            })
    }

    async fn put_file(
        &self,
        staged: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        if let Some(expected) = expected_sha256 {
            check_name(expected)?;
        }
        let to_hash = staged.to_path_buf();
        let (sha256, size) = blocking(move || Ok(hash_file(&to_hash)?)).await?;
        if let Some(err) = mismatch(expected_sha256, &sha256) {
            remove_staged(staged).await?;
            return Err(err);
        }
        let path = self.blob_path(&sha256);
        if self.head(&path).await?.is_some() {
            // Stored once: the existing object has the same bytes by construction.
            self.mark_touched(&sha256).await?;
        } else {
            self.upload_file(&path, staged, size).await?;
        }
        remove_staged(staged).await?;
        Ok(BlobInfo { sha256, size })
    }

    async fn put_bytes(
        &self,
        bytes: &[u8],
        expected_sha256: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        if let Some(expected) = expected_sha256 {
            check_name(expected)?;
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(err) = mismatch(expected_sha256, &sha256) {
            return Err(err);
        }
        let path = self.blob_path(&sha256);
        if self.head(&path).await?.is_some() {
            self.mark_touched(&sha256).await?;
        } else {
            self.store
                .put_opts(&path, PutPayload::from(bytes.to_vec()), put_options())
                .await
                .map_err(store_error)?;
        }
        Ok(BlobInfo {
            sha256,
            size: bytes.len() as u64,
        })
    }

    async fn open(&self, sha256: &str) -> Result<Option<BlobReader>, BlobError> {
        check_name(sha256)?;
        let path = self.blob_path(sha256);
        Ok(self.head(&path).await?.map(|meta| {
            BlobReader::from_object(
                meta.size,
                ObjectSource {
                    store: self.stream_store.clone(),
                    path,
                },
            )
        }))
    }

    async fn stat(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        check_name(sha256)?;
        Ok(self.head(&self.blob_path(sha256)).await?.map(|m| m.size))
    }

    async fn touch(&self, sha256: &str) -> Result<bool, BlobError> {
        if self.stat(sha256).await?.is_none() {
            return Ok(false);
        }
        self.mark_touched(sha256).await?;
        Ok(true)
    }

    async fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        let existed = self.stat(sha256).await?.is_some();
        if existed {
            self.store
                .delete(&self.blob_path(sha256))
                .await
                .map_err(store_error)?;
        }
        match self.store.delete(&self.marker_path(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(store_error(err)),
        }
        Ok(existed)
    }

    async fn list(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let touched: HashMap<String, SystemTime> = self
            .list_named(TOUCHED_DIR)
            .await?
            .into_iter()
            .map(|(name, meta)| (name, SystemTime::from(meta.last_modified)))
            .collect();
        let mut entries: Vec<BlobEntry> = self
            .list_named(BLOBS_DIR)
            .await?
            .into_iter()
            .map(|(sha256, meta)| {
                let written = SystemTime::from(meta.last_modified);
                let modified = touched
                    .get(&sha256)
                    .map_or(written, |marked| written.max(*marked));
                BlobEntry {
                    sha256,
                    size: meta.size,
                    modified,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(entries)
    }

    fn local_path(&self, _sha256: &str) -> Option<PathBuf> {
        None
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn object_key(&self, sha256: &str) -> Option<String> {
        is_sha256_hex(sha256).then(|| ObjectBlobStore::object_key(self, sha256))
    }

    async fn presigned_url(
        &self,
        sha256: &str,
        ttl: Duration,
    ) -> Result<Option<String>, BlobError> {
        self.presigned_get_url(sha256, ttl).await.map(Some)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn put_scratch(&self, name: &str, staged: &Path) -> Result<u64, BlobError> {
        let path = self.scratch_path(name)?;
        let size = tokio::fs::metadata(staged).await?.len();
        self.upload_file(&path, staged, size).await?;
        remove_staged(staged).await?;
        Ok(size)
    }

    async fn open_scratch(&self, name: &str) -> Result<Option<BlobReader>, BlobError> {
        let path = self.scratch_path(name)?;
        Ok(self.head(&path).await?.map(|meta| {
            BlobReader::from_object(
                meta.size,
                ObjectSource {
                    store: self.stream_store.clone(),
                    path,
                },
            )
        }))
    }

    async fn delete_scratch(&self, name: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.scratch_path(name)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn list_scratch(&self) -> Result<Vec<ScratchEntry>, BlobError> {
        let parent = self.prefix.child(SCRATCH_DIR);
        let mut listing = self.store.list(Some(&parent));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(store_error)?;
            let Some(rest) = meta.location.prefix_match(&parent) else {
                continue;
            };
            let name = rest
                .map(|part| part.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/");
            if is_scratch_name(&name) {
                found.push(ScratchEntry {
                    name,
                    size: meta.size,
                    modified: SystemTime::from(meta.last_modified),
                });
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stalled_body_fails_but_a_slow_reader_does_not() {
        let limit = Duration::from_millis(100);
        let body = futures_util::stream::iter([Ok::<u8, io::Error>(1), Ok(2)])
            .chain(futures_util::stream::pending())
            .boxed();
        let mut stream = IdleTimeout::new(body, limit);
        assert_eq!(stream.next().await.unwrap().unwrap(), 1);
        // The reader pauses far longer than the limit: nothing was waited on.
        tokio::time::sleep(limit * 3).await;
        assert_eq!(stream.next().await.unwrap().unwrap(), 2);
        // The bucket goes silent while the reader waits: an error, not a hang.
        let started = std::time::Instant::now();
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit);
    }

    #[test]
    fn storage_urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(
            parse_storage_url("s3://bucket/some/prefix/").unwrap(),
            ("bucket".to_string(), "some/prefix".to_string())
        );
        assert_eq!(
            parse_storage_url("s3://bucket").unwrap(),
            ("bucket".to_string(), String::new())
        );
        for bad in ["s3:///prefix", "https://bucket/x", "bucket", "s3://b/x?y=1"] {
            assert!(
                matches!(parse_storage_url(bad), Err(BlobError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "ab".repeat(32);
        let options = [("region".to_string(), "us-east-1".to_string())];
        let store = ObjectBlobStore::from_url("s3://b/p/q", &options, dir.path()).unwrap();
        assert_eq!(store.object_key(&sha), format!("p/q/blobs/{sha}"));
        let bare = ObjectBlobStore::from_url("s3://b", &options, dir.path()).unwrap();
        assert_eq!(bare.object_key(&sha), format!("blobs/{sha}"));
        assert_eq!(BlobStore::object_key(&bare, "nope"), None);
    }

    #[test]
    fn an_unknown_option_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let options = [("endpont".to_string(), "http://x".to_string())];
        let err = ObjectBlobStore::from_url("s3://b", &options, dir.path()).unwrap_err();
        assert!(
            matches!(&err, BlobError::Config(message) if message.contains("\"endpont\"")),
            "{err}"
        );
    }
}
