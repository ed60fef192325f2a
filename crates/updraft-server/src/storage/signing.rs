//! Signed download URLs: `?expires=<unix>&sig=<hex hmac-sha256(secret, path + "\n" + expires)>`.
//!
//! `expires` is rounded up to a window of half the TTL, so every update check
//! within a window gets the identical URL (a CDN caches it once).

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// The key file in the data directory: 32 random bytes, created once, 0600.
pub const KEY_FILE_NAME: &str = "url-signing.key";
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_or_create_key(path: &Path) -> std::io::Result<[u8; KEY_LEN]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::other(format!(
                "{} must hold exactly {KEY_LEN} bytes; delete it to make a new key",
                path.display()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; KEY_LEN] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path)?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(err) => Err(err),
    }
}

impl UrlSigner {
    /// Loads (or creates) the key in `data_dir`.
    pub fn open(data_dir: &Path, ttl_secs: u64) -> std::io::Result<UrlSigner> {
        std::fs::create_dir_all(data_dir)?;
        let secret = read_or_create_key(&data_dir.join(KEY_FILE_NAME))?;
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

    /// Checks the `expires`/`sig` of a request for `path` (raw, as sent).
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

    pub fn verify(&self, path: &str, query: Option<&str>) -> Result<(), SignatureProblem> {
        self.verify_at(path, query, unix_now())
    }

    /// Signs a URL when it points at this server's `/dl/` downloads.
    fn sign_url(&self, url: &str, base_url: &str, now: u64) -> Option<String> {
        let path = url.strip_prefix(base_url)?;
        if !path.starts_with("/dl/") || path.contains('?') {
            return None;
        }
        Some(format!("{url}?{}", self.query_at(path, now)?))
    }

    /// Signs the `url` and manifest `download_url`s of an `/updates` answer.
    pub fn sign_answer(&self, body: &mut Value, base_url: &str) {
        let now = unix_now();
        if let Some(Value::String(url)) = body.get_mut("url") {
            if let Some(signed) = self.sign_url(url, base_url, now) {
                *url = signed;
            }
        }
        if let Some(Value::Array(files)) = body.get_mut("manifest") {
            for file in files {
                if let Some(Value::String(url)) = file.get_mut("download_url") {
                    if let Some(signed) = self.sign_url(url, base_url, now) {
                        *url = signed;
                    }
                }
            }
        }
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
        signer.sign_answer(&mut body, "http://h:1");
        let url = body["url"].as_str().unwrap();
        let (path, query) = url
            .strip_prefix("http://h:1")
            .unwrap()
            .split_once('?')
            .unwrap();
        assert_eq!(path, PATH);
        assert_eq!(signer.verify(path, Some(query)), Ok(()));
        assert!(body["manifest"][0]["download_url"]
            .as_str()
            .unwrap()
            .starts_with("http://h:1/dl/a/1/f?expires="));
        assert_eq!(
            body["manifest"][1]["download_url"],
            "https://cdn.example.com/dl/x"
        );
    }

    #[test]
    fn the_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = UrlSigner::open(dir.path(), 60).unwrap();
        let second = UrlSigner::open(dir.path(), 60).unwrap();
        assert_eq!(first.secret, second.secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
