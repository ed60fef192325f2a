//! Content-addressed blob storage for bundle zips and delta files.
//!
//! A blob is named by the lowercase hex SHA-256 of its bytes, so storing the
//! same file twice keeps one copy and a name always proves its content. Only
//! complete, verified files are ever published under a blob name: writers
//! stage a file first and publish it atomically.

mod local;

pub use local::LocalBlobStore;

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;
use tokio::io::AsyncRead;

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
    /// When the blob was last written or touched (the gc grace period counts from here).
    pub modified: SystemTime,
}

/// A byte source for one range of a blob.
pub type BlobRangeReader = Pin<Box<dyn AsyncRead + Send>>;

/// An opened blob: its size, and a way to read any range of it as a stream.
pub struct BlobReader {
    pub size: u64,
    file: tokio::fs::File,
}

impl BlobReader {
    /// A reader of `len` bytes starting at `start` (the caller checks bounds).
    pub async fn range(mut self, start: u64, len: u64) -> std::io::Result<BlobRangeReader> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if start > 0 {
            self.file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        Ok(Box::pin(self.file.take(len)))
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
    /// A path to read the blob from on this machine, for validators that need
    /// a file (zip inspection). `None` for remote stores.
    fn local_path(&self, sha256: &str) -> Option<PathBuf>;
    /// Where writers stage files before `put_file` (same filesystem as the blobs).
    fn staging_dir(&self) -> &Path;
}

/// Whether `value` is a SHA-256 in lowercase hex (a valid blob name).
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
