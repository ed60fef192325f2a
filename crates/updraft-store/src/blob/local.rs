//! Blobs as files under `<data_dir>/blobs/ab/cd/<sha256>`, staged in
//! `<data_dir>/staging` (same filesystem, so publishing is one rename).

use super::{is_sha256_hex, BlobEntry, BlobError, BlobInfo, BlobReader, BlobStore, ScratchEntry};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use updraft_core::model::Clock;

/// Where the bundle files live under the data directory.
pub const BLOBS_DIR: &str = "blobs";
pub(super) const STAGING_DIR: &str = "staging";

#[derive(Clone, Debug)]
pub struct LocalBlobStore {
    blobs: PathBuf,
    staging: PathBuf,
    /// A blob's modification time is set from this clock when it is
    /// published or touched, so that gc's grace period, counted with the
    /// server's clock, is measured on one clock.
    clock: Arc<dyn Clock>,
}

pub(super) fn check_name(sha256: &str) -> Result<(), BlobError> {
    if is_sha256_hex(sha256) {
        Ok(())
    } else {
        Err(BlobError::InvalidName(sha256.to_string()))
    }
}

/// Runs blocking file work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlobError::Io(io::Error::other(e.to_string())))?
}

/// Streams a file through SHA-256; returns (hex, size).
pub(crate) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Makes a rename or a new entry in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn touch_file(path: &Path, at: SystemTime) -> io::Result<()> {
    File::options().write(true).open(path)?.set_modified(at)
}

impl LocalBlobStore {
    /// Uses (creating them) `<data_dir>/blobs` and `<data_dir>/staging`;
    /// blobs are dated by `clock` when published or touched.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<LocalBlobStore, BlobError> {
        let store = LocalBlobStore {
            blobs: data_dir.join(BLOBS_DIR),
            staging: data_dir.join(STAGING_DIR),
            clock,
        };
        fs::create_dir_all(&store.blobs)?;
        fs::create_dir_all(&store.staging)?;
        Ok(store)
    }

    /// `blobs/ab/cd/<sha256>`: two fan-out levels keep directories small.
    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256)
    }

    /// Removes staging files not modified for `max_age` at `now`: what a
    /// crash mid-write leaves behind. Returns how many were removed.
    pub fn sweep_staging(&self, max_age: Duration, now: SystemTime) -> Result<usize, BlobError> {
        super::sweep_staging(&self.staging, max_age, now)
    }

    /// The synchronous core of `put_file`.
    fn publish(&self, staged: &Path, expected: Option<&str>) -> Result<BlobInfo, BlobError> {
        if let Some(expected) = expected {
            check_name(expected)?;
        }
        let (sha256, size) = hash_file(staged)?;
        if let Some(expected) = expected {
            if expected != sha256 {
                let _ = fs::remove_file(staged);
                return Err(BlobError::Mismatch {
                    expected: expected.to_string(),
                    actual: sha256,
                });
            }
        }
        let target = self.blob_path(&sha256);
        let now = super::system_time(self.clock.now());
        if target.is_file() {
            // Stored once: the existing copy has the same bytes by construction.
            fs::remove_file(staged)?;
            touch_file(&target, now)?;
            return Ok(BlobInfo { sha256, size });
        }
        // Dated by the clock, not by when its last byte reached the disk.
        let file = File::options().write(true).open(staged)?;
        file.set_modified(now)?;
        file.sync_all()?;
        drop(file);
        let dir = target
            .parent()
            .ok_or_else(|| io::Error::other("blob path has no parent"))?;
        fs::create_dir_all(dir)?;
        fs::rename(staged, &target)?;
        sync_dir(dir)?;
        Ok(BlobInfo { sha256, size })
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put_file(
        &self,
        staged: &Path,
        expected_sha256: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        let store = self.clone();
        let staged = staged.to_path_buf();
        let expected = expected_sha256.map(str::to_string);
        blocking(move || store.publish(&staged, expected.as_deref())).await
    }

    async fn put_bytes(
        &self,
        bytes: &[u8],
        expected_sha256: Option<&str>,
    ) -> Result<BlobInfo, BlobError> {
        let store = self.clone();
        let bytes = bytes.to_vec();
        let expected = expected_sha256.map(str::to_string);
        blocking(move || {
            let staged = store
                .staging
                .join(format!("bytes-{:032x}.part", rand::random::<u128>()));
            let written = File::create(&staged).and_then(|mut file| file.write_all(&bytes));
            if let Err(err) = written {
                let _ = fs::remove_file(&staged);
                return Err(err.into());
            }
            let result = store.publish(&staged, expected.as_deref());
            if result.is_err() {
                let _ = fs::remove_file(&staged);
            }
            result
        })
        .await
    }

    async fn open(&self, sha256: &str) -> Result<Option<BlobReader>, BlobError> {
        check_name(sha256)?;
        match tokio::fs::File::open(self.blob_path(sha256)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some(BlobReader::from_file(size, file)))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn stat(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        check_name(sha256)?;
        match tokio::fs::metadata(self.blob_path(sha256)).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn touch(&self, sha256: &str) -> Result<bool, BlobError> {
        check_name(sha256)?;
        let path = self.blob_path(sha256);
        let now = super::system_time(self.clock.now());
        blocking(move || match touch_file(&path, now) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        })
        .await
    }

    async fn delete(&self, sha256: &str) -> Result<bool, BlobError> {
        check_name(sha256)?;
        match tokio::fs::remove_file(self.blob_path(sha256)).await {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    async fn list(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let root = self.blobs.clone();
        blocking(move || {
            let mut entries = Vec::new();
            for level1 in fs::read_dir(&root)? {
                let level1 = level1?;
                if !level1.file_type()?.is_dir() {
                    continue;
                }
                for level2 in fs::read_dir(level1.path())? {
                    let level2 = level2?;
                    if !level2.file_type()?.is_dir() {
                        continue;
                    }
                    for file in fs::read_dir(level2.path())? {
                        let file = file?;
                        let name = file.file_name().to_string_lossy().into_owned();
                        // Only correctly placed blob names count; anything else is not ours.
                        let placed = is_sha256_hex(&name)
                            && level1.file_name().to_string_lossy() == name[0..2]
                            && level2.file_name().to_string_lossy() == name[2..4];
                        let meta = file.metadata()?;
                        if placed && meta.is_file() {
                            entries.push(BlobEntry {
                                sha256: name,
                                size: meta.len(),
                                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                            });
                        }
                    }
                }
            }
            entries.sort_by(|a, b| a.sha256.cmp(&b.sha256));
            Ok(entries)
        })
        .await
    }

    fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.blob_path(sha256))
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn object_key(&self, _sha256: &str) -> Option<String> {
        None
    }

    async fn presigned_url(
        &self,
        sha256: &str,
        _ttl: Duration,
    ) -> Result<Option<String>, BlobError> {
        check_name(sha256)?;
        Ok(None)
    }

    fn is_shared(&self) -> bool {
        false
    }

    // A node's own disk is no place for bytes other nodes must read: the
    // local store keeps uploads as partial files in its staging directory.
    async fn put_scratch(&self, _name: &str, _staged: &Path) -> Result<u64, BlobError> {
        Err(BlobError::Unsupported("scratch objects"))
    }

    async fn open_scratch(&self, _name: &str) -> Result<Option<BlobReader>, BlobError> {
        Err(BlobError::Unsupported("scratch objects"))
    }

    async fn delete_scratch(&self, _name: &str) -> Result<(), BlobError> {
        Err(BlobError::Unsupported("scratch objects"))
    }

    async fn list_scratch(&self) -> Result<Vec<ScratchEntry>, BlobError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn stage(store: &LocalBlobStore, name: &str, bytes: &[u8]) -> PathBuf {
        let path = store.staging_dir().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Every file under a directory, relative.
    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(
                        e.path()
                            .strip_prefix(dir)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_staged_file_is_published_under_its_hash_and_leaves_staging() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(
            dir.path(),
            std::sync::Arc::new(updraft_core::model::SystemClock),
        )
        .unwrap();
        let bytes = b"PK\x03\x04 a zip, or nearly".to_vec();
        let digest = sha(&bytes);
        let staged = stage(&store, "one.part", &bytes);
        let info = store.put_file(&staged, Some(&digest)).await.unwrap();
        assert_eq!(
            info,
            BlobInfo {
                sha256: digest.clone(),
                size: bytes.len() as u64
            }
        );
        assert!(!staged.exists());
        let expected_path = format!("{}/{}/{}", &digest[0..2], &digest[2..4], digest);
        assert_eq!(files_under(&dir.path().join("blobs")), vec![expected_path]);
        assert_eq!(store.stat(&digest).await.unwrap(), Some(bytes.len() as u64));
        let reader = store.open(&digest).await.unwrap().unwrap();
        assert_eq!(reader.size, bytes.len() as u64);
        let mut middle = Vec::new();
        reader
            .range(2, 5)
            .await
            .unwrap()
            .read_to_end(&mut middle)
            .await
            .unwrap();
        assert_eq!(middle, bytes[2..7].to_vec());
    }

    #[tokio::test]
    async fn the_same_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(
            dir.path(),
            std::sync::Arc::new(updraft_core::model::SystemClock),
        )
        .unwrap();
        let first = store.put_bytes(b"same", None).await.unwrap();
        let staged = stage(&store, "again.part", b"same");
        let second = store.put_file(&staged, None).await.unwrap();
        assert_eq!(first, second);
        assert!(!staged.exists(), "the duplicate staged file is dropped");
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert!(files_under(store.staging_dir()).is_empty());
    }

    #[tokio::test]
    async fn a_mismatch_is_refused_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(
            dir.path(),
            std::sync::Arc::new(updraft_core::model::SystemClock),
        )
        .unwrap();
        let claimed = sha(b"what the client promised");
        let staged = stage(&store, "bad.part", b"what arrived");
        let err = store.put_file(&staged, Some(&claimed)).await.unwrap_err();
        match err {
            BlobError::Mismatch { expected, actual } => {
                assert_eq!(expected, claimed);
                assert_eq!(actual, sha(b"what arrived"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = store.put_bytes(b"other", Some(&claimed)).await.unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }), "{err:?}");
        assert!(files_under(&dir.path().join("blobs")).is_empty());
        assert!(files_under(store.staging_dir()).is_empty());
        assert_eq!(store.stat(&claimed).await.unwrap(), None);
    }

    #[tokio::test]
    async fn list_and_delete_see_only_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(
            dir.path(),
            std::sync::Arc::new(updraft_core::model::SystemClock),
        )
        .unwrap();
        let a = store.put_bytes(b"a", None).await.unwrap();
        let b = store.put_bytes(b"bb", None).await.unwrap();
        // A stray file in the tree is not a blob.
        fs::write(dir.path().join("blobs").join("stray.tmp"), b"x").unwrap();
        let mut expected = vec![(a.sha256.clone(), 1u64), (b.sha256.clone(), 2u64)];
        expected.sort();
        let listed: Vec<(String, u64)> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.sha256, e.size))
            .collect();
        assert_eq!(listed, expected);
        assert!(store.delete(&a.sha256).await.unwrap());
        assert!(!store.delete(&a.sha256).await.unwrap());
        assert!(store.open(&a.sha256).await.unwrap().is_none());
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert!(matches!(
            store.stat("../../etc/passwd").await,
            Err(BlobError::InvalidName(_))
        ));
    }

    /// gc counts a blob's grace period on the server's clock: the blob is
    /// dated by it when published, when published again and when touched.
    #[tokio::test]
    async fn blobs_are_dated_by_the_injected_clock() {
        use updraft_core::model::ManualClock;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000_000_000));
        let store = LocalBlobStore::open(dir.path(), Arc::clone(&clock) as Arc<dyn Clock>).unwrap();
        let modified = |store: LocalBlobStore| async move {
            let entries = store.list().await.unwrap();
            assert_eq!(entries.len(), 1);
            entries[0].modified
        };
        let staged = stage(&store, "one.part", b"dated");
        let info = store.put_file(&staged, None).await.unwrap();
        assert_eq!(
            modified(store.clone()).await,
            super::super::system_time(1_000_000_000_000)
        );
        clock.advance(60_000);
        store.put_bytes(b"dated", None).await.unwrap();
        assert_eq!(
            modified(store.clone()).await,
            super::super::system_time(1_000_000_060_000)
        );
        clock.advance(60_000);
        assert!(store.touch(&info.sha256).await.unwrap());
        assert_eq!(
            modified(store.clone()).await,
            super::super::system_time(1_000_000_120_000)
        );
    }

    #[tokio::test]
    async fn old_staging_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(
            dir.path(),
            std::sync::Arc::new(updraft_core::model::SystemClock),
        )
        .unwrap();
        // Dated by hand: the fresh file was last written a second less than
        // the hour before the sweep, the old one three hours before.
        let now = super::super::system_time(1_800_000_000_000);
        let dated = |name: &str, bytes: &[u8], age: Duration| {
            let path = stage(&store, name, bytes);
            touch_file(&path, now - age).unwrap();
            path
        };
        let old = dated("old.part", b"junk", Duration::from_secs(3 * 3600));
        let fresh = dated("fresh.part", b"in progress", Duration::from_secs(3599));
        assert_eq!(
            store.sweep_staging(Duration::from_secs(3600), now).unwrap(),
            1
        );
        assert!(!old.exists());
        assert!(fresh.exists());
    }
}
