//! Signed download URLs: `?expires=<unix>&sig=<hex hmac-sha256(secret, path + "\n" + expires)>`.
//!
//! `expires` is rounded up to a window of half the TTL, so every update check
//! within a window gets the identical URL (a CDN caches it once).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// Where older versions kept the key: 32 bytes in the data directory. Its key
/// is adopted (so URLs it signed stay valid), then the database holds it.
pub const KEY_FILE_NAME: &str = "url-signing.key";
/// The setting that holds the key (hex), shared by every node.
pub const KEY_SETTING: &str = "url_signing_key";
const KEY_LEN: usize = 32;

pub struct UrlSigner {
    secret: [u8; KEY_LEN],
    ttl_secs: u64,
}

/// Why a download's signature is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureProblem {
    Missing,
    Malformed,
    Expired,
    Wrong,
}

/// Why the signing key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read the URL-signing key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} must hold exactly 32 bytes; delete it to make a new key")]
    FileLength(String),
    #[error("cannot store the URL-signing key: {0}")]
    Store(#[from] updraft_store::StoreError),
    #[error("the stored URL-signing key is not 64 hex characters")]
    Stored,
}

/// The key file of an older data directory, if there is one.
fn read_key_file(path: &Path) -> Result<Option<[u8; KEY_LEN]>, SigningKeyError> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .as_slice()
            .try_into()
            .map(Some)
            .map_err(|_| SigningKeyError::FileLength(path.display().to_string())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SigningKeyError::File {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl UrlSigner {
    /// The installation's key, from the database so that every node signs
    /// and checks with the same one. The first start with signing on stores
    /// it: the key of `data_dir`'s older key file when there is one, else a
    /// new random key.
    pub async fn from_store(
        store: &dyn updraft_store::SettingStore,
        data_dir: &Path,
        ttl_secs: u64,
        now: updraft_core::model::Millis,
    ) -> Result<UrlSigner, SigningKeyError> {
        let candidate = read_key_file(&data_dir.join(KEY_FILE_NAME))?.unwrap_or_else(rand::random);
        let stored = store
            .setting_or_insert(KEY_SETTING, &hex::encode(candidate), now)
            .await?;
        let secret: [u8; KEY_LEN] = hex::decode(stored.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SigningKeyError::Stored)?;
        Ok(UrlSigner::new(secret, ttl_secs))
    }

    pub fn new(secret: [u8; KEY_LEN], ttl_secs: u64) -> UrlSigner {
        UrlSigner {
            secret,
            ttl_secs: ttl_secs.max(1),
        }
    }

    /// `None` never happens in practice: HMAC accepts keys of any length.
    fn mac(&self, path: &str, expires: u64) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret).ok()?;
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        Some(mac)
    }

    /// Expiry of a URL signed at `now`: at least `ttl` away, rounded up to the window.
    pub fn expires_for(&self, now: u64) -> u64 {
        let window = (self.ttl_secs / 2).max(1);
        let earliest = now.saturating_add(self.ttl_secs);
        earliest.div_ceil(window).saturating_mul(window)
    }

    /// The query string (without `?`) that signs `path`.
    pub fn query_at(&self, path: &str, now: u64) -> Option<String> {
        let expires = self.expires_for(now);
        let sig = hex::encode(self.mac(path, expires)?.finalize().into_bytes());
        Some(format!("expires={expires}&sig={sig}"))
    }

    /// Checks the `expires`/`sig` of a request for `path` (raw, as sent) at
    /// `now` (Unix seconds).
    pub fn verify_at(
        &self,
        path: &str,
        query: Option<&str>,
        now: u64,
    ) -> Result<(), SignatureProblem> {
        let (mut expires, mut sig) = (None, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("expires", value)) => expires = Some(value),
                Some(("sig", value)) => sig = Some(value),
                _ => {}
            }
        }
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Err(SignatureProblem::Missing);
        };
        let expires: u64 = expires.parse().map_err(|_| SignatureProblem::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| SignatureProblem::Malformed)?;
        self.mac(path, expires)
            .ok_or(SignatureProblem::Wrong)?
            .verify_slice(&sig)
            .map_err(|_| SignatureProblem::Wrong)?;
        if expires < now {
            return Err(SignatureProblem::Expired);
        }
        Ok(())
    }

    /// Signs a URL when it points at this server's `/dl/` downloads.
    fn sign_url(&self, url: &str, base_url: &str, now: u64) -> Option<String> {
        let path = url.strip_prefix(base_url)?;
        if !path.starts_with("/dl/") || path.contains('?') {
            return None;
        }
        Some(format!("{url}?{}", self.query_at(path, now)?))
    }

    /// Signs the `url` and manifest `download_url`s of an `/updates` answer
    /// at `now` (Unix seconds).
    pub fn sign_answer(&self, body: &mut Value, base_url: &str, now: u64) {
        super::rewrite_download_links(body, |url| self.sign_url(url, base_url, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATH: &str = "/dl/com.example.app/1.0.0/abc.zip";

    #[test]
    fn urls_within_a_window_are_identical_and_live_at_least_the_ttl() {
        let signer = UrlSigner::new([7; 32], 3600);
        assert_eq!(signer.expires_for(1_000_000), 1_004_400);
        assert_eq!(signer.expires_for(1_000_799), 1_004_400);
        assert_eq!(signer.expires_for(1_000_801), 1_006_200);
        for now in [1_000_000u64, 1_000_500] {
            assert!(signer.expires_for(now) >= now + 3600);
        }
        assert_eq!(
            signer.query_at(PATH, 1_000_000),
            signer.query_at(PATH, 1_000_700)
        );
    }

    #[test]
    fn a_signature_is_checked_for_path_key_and_time() {
        let signer = UrlSigner::new([7; 32], 60);
        let query = signer.query_at(PATH, 1_000).unwrap();
        assert_eq!(signer.verify_at(PATH, Some(&query), 1_000), Ok(()));
        assert_eq!(
            signer.verify_at("/dl/com.example.app/1.0.1/abc.zip", Some(&query), 1_000),
            Err(SignatureProblem::Wrong)
        );
        let other_key = UrlSigner::new([8; 32], 60);
        assert_eq!(
            other_key.verify_at(PATH, Some(&query), 1_000),
            Err(SignatureProblem::Wrong)
        );
        assert_eq!(
            signer.verify_at(PATH, Some(&query), 1_000 + 10_000),
            Err(SignatureProblem::Expired)
        );
        let tampered = query.replace("expires=10", "expires=99");
        assert_eq!(
            signer.verify_at(PATH, Some(&tampered), 1_000),
            Err(SignatureProblem::Wrong)
        );
        assert_eq!(
            signer.verify_at(PATH, None, 1_000),
            Err(SignatureProblem::Missing)
        );
        assert_eq!(
            signer.verify_at(PATH, Some("expires=x&sig=zz"), 1_000),
            Err(SignatureProblem::Malformed)
        );
    }

    #[test]
    fn only_this_servers_download_urls_are_signed() {
        let signer = UrlSigner::new([1; 32], 60);
        let mut body = json!({
            "url": format!("http://h:1{PATH}"),
            "manifest": [
                {"file_name": "index.html", "download_url": "http://h:1/dl/a/1/f"},
                {"file_name": "x.js", "download_url": "https://cdn.example.com/dl/x"}
            ]
        });
        signer.sign_answer(&mut body, "http://h:1", 1_000);
        let url = body["url"].as_str().unwrap();
        let (path, query) = url
            .strip_prefix("http://h:1")
            .unwrap()
            .split_once('?')
            .unwrap();
        assert_eq!(path, PATH);
        assert_eq!(signer.verify_at(path, Some(query), 1_000), Ok(()));
        assert!(body["manifest"][0]["download_url"]
            .as_str()
            .unwrap()
            .starts_with("http://h:1/dl/a/1/f?expires="));
        assert_eq!(
            body["manifest"][1]["download_url"],
            "https://cdn.example.com/dl/x"
        );
    }

    #[tokio::test]
    async fn every_node_gets_the_first_stored_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = updraft_store::SqliteStore::open_path(&dir.path().join("t.db"))
            .await
            .unwrap();
        let node_a = tempfile::tempdir().unwrap();
        let node_b = tempfile::tempdir().unwrap();
        let first = UrlSigner::from_store(&store, node_a.path(), 60, 1)
            .await
            .unwrap();
        let second = UrlSigner::from_store(&store, node_b.path(), 60, 2)
            .await
            .unwrap();
        assert_eq!(first.secret, second.secret);
        assert!(
            !node_a.path().join(KEY_FILE_NAME).exists(),
            "no key file is written"
        );
    }

    #[tokio::test]
    async fn an_older_key_file_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE_NAME), [9u8; 32]).unwrap();
        let store = updraft_store::SqliteStore::open_path(&dir.path().join("t.db"))
            .await
            .unwrap();
        let signer = UrlSigner::from_store(&store, dir.path(), 60, 1)
            .await
            .unwrap();
        assert_eq!(signer.secret, [9u8; 32]);
        std::fs::write(dir.path().join(KEY_FILE_NAME), [1u8; 5]).unwrap();
        let other = tempfile::tempdir().unwrap();
        let fresh = updraft_store::SqliteStore::open_path(&other.path().join("t.db"))
            .await
            .unwrap();
        assert!(matches!(
            UrlSigner::from_store(&fresh, dir.path(), 60, 1).await,
            Err(SigningKeyError::FileLength(_))
        ));
    }
}
