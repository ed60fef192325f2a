//! Content-addressed blob storage for bundle zips and delta files.
//!
//! A blob is named by the lowercase hex SHA-256 of its bytes, so storing the
//! same file twice keeps one copy and a name always proves its content. Only
//! complete, verified files are ever published under a blob name: writers
//! stage a file first and publish it atomically.
//!
//! Two stores: [`LocalBlobStore`] (files under the data directory) and
//! [`ObjectBlobStore`] (an S3-compatible bucket); [`open_blob_store`] picks one.

mod local;
mod object;

pub use local::{LocalBlobStore, BLOBS_DIR};
pub use object::ObjectBlobStore;

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncRead;
use updraft_core::model::{Clock, Millis};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The bytes do not hash to what the caller promised; nothing was stored.
    #[error("content hashes to {actual}, expected {expected}")]
    Mismatch { expected: String, actual: String },
    /// Not a lowercase 64-hex SHA-256.
    #[error("{0:?} is not a SHA-256 in lowercase hex")]
    InvalidName(String),
    #[error("blob storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The object-store settings (URL or options) are unusable.
    #[error("object storage configuration: {0}")]
    Config(String),
    /// A request to the object store failed (the message names no credentials).
    #[error("object storage: {0}")]
    ObjectStore(String),
    /// This store does not offer the operation (scratch objects on local disk).
    #[error("{0} is not supported by this blob store")]
    Unsupported(&'static str),
}

/// A stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub sha256: String,
    pub size: u64,
}

/// One entry of [`BlobStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub sha256: String,
    pub size: u64,
    /// When the blob was last written or touched (the gc grace period counts
    /// from here): by the local store's clock, or the bucket's
    /// `Last-Modified` (the object store's own clock; none of ours can set it).
    pub modified: SystemTime,
}

/// One entry of [`BlobStore::list_scratch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScratchEntry {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// A byte source for one range of a blob.
pub type BlobRangeReader = Pin<Box<dyn AsyncRead + Send>>;

/// An opened blob: its size, and a way to read any range of it as a stream.
pub struct BlobReader {
    pub size: u64,
    source: ReaderSource,
}

/// Where an opened blob's bytes come from.
enum ReaderSource {
    File(tokio::fs::File),
    Object(object::ObjectSource),
}

impl BlobReader {
    pub(crate) fn from_file(size: u64, file: tokio::fs::File) -> BlobReader {
        BlobReader {
            size,
            source: ReaderSource::File(file),
        }
    }

    pub(crate) fn from_object(size: u64, source: object::ObjectSource) -> BlobReader {
        BlobReader {
            size,
            source: ReaderSource::Object(source),
        }
    }

    /// A reader of `len` bytes starting at `start` (the caller checks bounds).
    pub async fn range(self, start: u64, len: u64) -> std::io::Result<BlobRangeReader> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        match self.source {
            ReaderSource::File(mut file) => {
                if start > 0 {
                    file.seek(std::io::SeekFrom::Start(start)).await?;
                }
                Ok(Box::pin(file.take(len)))
            }
            ReaderSource::Object(source) => source.range(start, len).await,
        }
    }
}

/// Where blobs live. Signatures avoid local-disk assumptions where they can,
/// so an object-store implementation fits behind the same trait; staging is
/// always a local directory because uploads are assembled there.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Hashes the staged file, refuses a mismatch with `expected_sha256`
    /// (removing the staged file), then publishes it atomically. When the blob
    /// exists already the staged file is dropped and the blob is touched.
    async fn put_file(
        &self,
        staged: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<BlobInfo, BlobError>;
    /// The same for a small in-memory file.
    async fn put_bytes(
        &self,
        bytes: &[u8],
        expected_sha256: Option<&str>,
    ) -> Result<BlobInfo, BlobError>;
    /// `None` when there is no such blob.
    async fn open(&self, sha256: &str) -> Result<Option<BlobReader>, BlobError>;
    /// The blob's size, `None` when absent.
    async fn stat(&self, sha256: &str) -> Result<Option<u64>, BlobError>;
    /// Marks the blob as recently used (restarts its gc grace period); false when absent.
    async fn touch(&self, sha256: &str) -> Result<bool, BlobError>;
    /// Returns whether a blob was deleted.
    async fn delete(&self, sha256: &str) -> Result<bool, BlobError>;
    /// Every stored blob.
    async fn list(&self) -> Result<Vec<BlobEntry>, BlobError>;
    /// Whether the storage can be reached and used at all (an object store:
    /// the bucket exists and the credentials may list it), checked at start
    /// so that a wrong setting stops the server rather than its first upload.
    async fn check(&self) -> Result<(), BlobError> {
        Ok(())
    }
    /// A path to read the blob from on this machine, for validators that need
    /// a file (zip inspection). `None` for remote stores.
    fn local_path(&self, sha256: &str) -> Option<PathBuf>;
    /// Where writers stage files before `put_file` (a local directory; for
    /// the local store on the blobs' filesystem, so publishing is a rename).
    fn staging_dir(&self) -> &Path;
    /// The blob's full key in the bucket when blobs live in an object store
    /// (what a CDN in front of the bucket serves it under); `None` for local disk.
    fn object_key(&self, sha256: &str) -> Option<String>;
    /// A URL that lets anyone holding it GET the blob straight from the
    /// object store for `ttl`; `None` when the store cannot presign (local disk).
    async fn presigned_url(&self, sha256: &str, ttl: Duration)
        -> Result<Option<String>, BlobError>;
    /// Whether every node pointed at this store sees the same blobs and
    /// scratch objects (an object store): resumable uploads then keep their
    /// bytes here instead of on one node's disk.
    fn is_shared(&self) -> bool;
    /// Stores the staged file as the scratch object `name` (see
    /// [`is_scratch_name`]), replacing any object of that name, then removes
    /// the staged file. Returns its size. Scratch objects are working files
    /// (upload parts), never blobs: nothing serves them to devices.
    async fn put_scratch(&self, name: &str, staged: &Path) -> Result<u64, BlobError>;
    /// `None` when there is no such scratch object.
    async fn open_scratch(&self, name: &str) -> Result<Option<BlobReader>, BlobError>;
    /// Deletes the scratch object; deleting an absent one is not an error.
    async fn delete_scratch(&self, name: &str) -> Result<(), BlobError>;
    /// Every scratch object, in name order.
    async fn list_scratch(&self) -> Result<Vec<ScratchEntry>, BlobError>;
}

/// Whether `name` can name a scratch object: `/`-separated segments of ASCII
/// letters, digits, `-`, `_` and `.`, none empty, `.` or `..`.
pub fn is_scratch_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// Opens the blob store the server is configured with: an S3-compatible
/// bucket for `s3://bucket[/prefix]` (with `options` as object_store keys
/// that win over the `AWS_*` environment), else files under `data_dir`.
/// Staging is always `<data_dir>/staging`. `clock` dates local blobs.
pub fn open_blob_store(
    storage_url: Option<&str>,
    options: &[(String, String)],
    data_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn BlobStore>, BlobError> {
    match storage_url {
        Some(url) => {
            let staging = data_dir.join(local::STAGING_DIR);
            std::fs::create_dir_all(&staging)?;
            Ok(Arc::new(ObjectBlobStore::from_url(url, options, &staging)?))
        }
        None => Ok(Arc::new(LocalBlobStore::open(data_dir, clock)?)),
    }
}

/// A clock reading as the file-system time it is compared with
/// (modification times of blobs and staged files); before 1970 counts as 1970.
pub fn system_time(at: Millis) -> SystemTime {
    let since = Duration::from_millis(u64::try_from(at).unwrap_or(0));
    SystemTime::UNIX_EPOCH
        .checked_add(since)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Removes files in the staging directory `dir` not modified for `max_age`
/// at `now`: what a crash mid-write leaves behind. Returns how many were
/// removed. A staged file's modification time is the file system's (set as
/// its bytes arrive, not by our clock): `now` comes from the server's clock,
/// which is the same wall clock outside tests, and a sweep only ever removes
/// working files, never a published blob.
pub fn sweep_staging(dir: &Path, max_age: Duration, now: SystemTime) -> Result<usize, BlobError> {
    use std::io::ErrorKind;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age >= max_age {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(removed)
}

/// Whether `value` is a SHA-256 in lowercase hex (a valid blob name).
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
