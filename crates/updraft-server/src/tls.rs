//! Built-in HTTPS: a certificate chain and private key (PEM files) served
//! with rustls on the `ring` provider, HTTP/2 and HTTP/1.1 offered by ALPN.
//!
//! The pair is read again on SIGHUP and whenever either file's contents
//! change (polled every `tls_reload_interval_secs`). A new pair only serves
//! handshakes that start after it is loaded: open connections keep theirs.
//! A pair that does not load (unreadable, not PEM, key not matching the
//! certificate) is logged and the old one stays in service.

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("the key {key} does not go with the certificate {cert}: {message}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The PEM files of the served certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The two files' bytes, and a digest of both to notice a change.
struct PairBytes {
    cert: Vec<u8>,
    key: Vec<u8>,
    digest: [u8; 32],
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_pair(files: &TlsFiles) -> Result<PairBytes, TlsError> {
    let cert = read(&files.cert)?;
    let key = read(&files.key)?;
    let mut hasher = Sha256::new();
    hasher.update((cert.len() as u64).to_le_bytes());
    hasher.update(&cert);
    hasher.update(&key);
    Ok(PairBytes {
        cert,
        key,
        digest: hasher.finalize().into(),
    })
}

/// Parses and checks a certificate chain and key: the key must be the
/// certificate's (rustls compares their public keys).
fn certified_key(
    files: &TlsFiles,
    bytes: &PairBytes,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&bytes.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            path: files.cert.clone(),
            message: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&bytes.key).map_err(|err| TlsError::Pem {
        path: files.key.clone(),
        message: format!("no usable private key ({err})"),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|err| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message: err.to_string(),
    })
}

/// The certificate handed to each new handshake; swapped on reload.
pub struct CertStore {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// Digest of the files behind `current`, or of the last pair that failed
    /// (so a bad pair is logged once, not at every poll).
    seen: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files are the ones in service (or the bad pair already logged).
    Unchanged,
    /// A new pair serves new handshakes.
    Replaced,
}

impl CertStore {
    /// Loads the pair; an error refuses the start.
    pub fn load(files: TlsFiles) -> Result<CertStore, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bytes = read_pair(&files)?;
        let key = certified_key(&files, &bytes, &provider)?;
        Ok(CertStore {
            files,
            provider,
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new(bytes.digest),
        })
    }

    /// Reads the files again and swaps the pair in when they changed (or
    /// always, with `force`). On error the served pair stays.
    pub fn reload(&self, force: bool) -> Result<Reload, TlsError> {
        let bytes = read_pair(&self.files)?;
        {
            let seen = self
                .seen
                .lock()
                .map_err(|_| TlsError::Setup("the certificate store's lock was poisoned".into()))?;
            if !force && *seen == bytes.digest {
                return Ok(Reload::Unchanged);
            }
        }
        let outcome = certified_key(&self.files, &bytes, &self.provider);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = bytes.digest;
        }
        self.current.store(Arc::new(outcome?));
        Ok(Reload::Replaced)
    }

    /// The rustls configuration of the listener: TLS 1.2 and 1.3, ALPN h2
    /// then http/1.1, certificates from this store.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Setup(err.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The acceptor of the main listener.
pub fn acceptor(store: &Arc<CertStore>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(
        store.server_config()?,
    )))
}

fn log_reload(store: &CertStore, outcome: Result<Reload, TlsError>, why: &'static str) {
    match outcome {
        Ok(Reload::Replaced) => tracing::info!(
            cert = %store.files.cert.display(),
            key = %store.files.key.display(),
            trigger = why,
            "TLS certificate reloaded"
        ),
        Ok(Reload::Unchanged) => {}
        Err(err) => tracing::error!(
            error = %err,
            trigger = why,
            "cannot reload the TLS certificate; still serving the previous one"
        ),
    }
}

/// Reloads on SIGHUP and when the files change, until `stop` is told.
pub fn spawn_reloader(
    store: Arc<CertStore>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; TLS files are still polled");
                None
            }
        };
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            #[cfg(unix)]
            let hangup_received = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup_received = std::future::pending::<Option<()>>();
            let (force, why) = tokio::select! {
                _ = stop.changed() => return,
                _ = ticker.tick() => (false, "file change"),
                _ = hangup_received => (true, "SIGHUP"),
            };
            let task_store = Arc::clone(&store);
            let outcome = tokio::task::spawn_blocking(move || task_store.reload(force))
                .await
                .unwrap_or_else(|err| Err(TlsError::Setup(err.to_string())));
            log_reload(&store, outcome, why);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.cert.pem()).unwrap();
        std::fs::write(&files.key, cert.key_pair.serialize_pem()).unwrap();
        files
    }

    fn served(store: &CertStore) -> Vec<u8> {
        store.current.load().end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn a_changed_pair_is_swapped_in_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "one.test");
        let store = CertStore::load(files.clone()).unwrap();
        let first = served(&store);
        assert_eq!(store.reload(false).unwrap(), Reload::Unchanged);
        // A key that belongs to another certificate: refused, old one kept.
        let other = rcgen::generate_simple_self_signed(vec!["two.test".to_string()]).unwrap();
        std::fs::write(&files.key, other.key_pair.serialize_pem()).unwrap();
        let err = store.reload(false).unwrap_err();
        assert!(matches!(err, TlsError::Pair { .. }), "{err}");
        assert_eq!(served(&store), first);
        // Logged once: the same bad files are not retried at every poll.
        assert_eq!(store.reload(false).unwrap(), Reload::Unchanged);
        std::fs::write(&files.cert, other.cert.pem()).unwrap();
        assert_eq!(store.reload(false).unwrap(), Reload::Replaced);
        assert_ne!(served(&store), first);
        std::fs::write(&files.cert, "not pem").unwrap();
        assert!(store.reload(true).is_err());
        assert!(CertStore::load(files).is_err());
    }
}
