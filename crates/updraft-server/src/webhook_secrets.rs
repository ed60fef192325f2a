//! Webhook signing secrets encrypted at rest (ChaCha20-Poly1305).
//!
//! A stored secret is `enc:v1:` + base64(12-byte random nonce || ciphertext
//! and tag). A value without the prefix is a plaintext secret of an older
//! version: it is read as it is, and `encrypt_plaintext_rows` seals it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use updraft_core::model::Millis;
use updraft_store::{SettingStore, StoreError, WebhookStore};

/// The prefix of a sealed secret; the version names the cipher.
pub const SEALED_PREFIX: &str = "enc:v1:";
/// The setting that holds the generated key (hex) when none is configured.
pub const KEY_SETTING: &str = "webhook_secret_key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// A 32-byte key; its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        SecretKey(bytes)
    }

    /// 32 bytes written as 64 hex characters or as standard base64 (44
    /// characters with its `=`).
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN {
            hex::decode(text).ok()
        } else {
            BASE64.decode(text).ok()
        };
        bytes
            .and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok())
            .map(SecretKey)
            .ok_or(KeyError)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the webhook secret key must be 32 bytes written as 64 hex characters or as base64 (e.g. `openssl rand -hex 32`)")]
pub struct KeyError;

/// Why a stored secret cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the stored webhook secret is not valid enc:v1 data")]
    Malformed,
    #[error("the stored webhook secret does not decrypt with this server's webhook secret key (was webhook_secret_key changed?)")]
    WrongKey,
}

/// Why the key cannot be had at start.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("cannot store the webhook secret key: {0}")]
    Store(#[from] StoreError),
    #[error("the stored setting {KEY_SETTING} is not 64 hex characters")]
    Stored,
}

/// Seals and opens webhook secrets with one key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

/// Whether a stored value is sealed (rather than legacy plaintext).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

impl SecretBox {
    pub fn new(key: &SecretKey) -> SecretBox {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
        }
    }

    /// The configured key, else the installation's key from the database
    /// (the first node to start stores a random one; every node then reads
    /// that one).
    pub async fn from_config_or_store(
        configured: Option<&SecretKey>,
        store: &dyn SettingStore,
        now: Millis,
    ) -> Result<SecretBox, SecretKeyError> {
        if let Some(key) = configured {
            return Ok(SecretBox::new(key));
        }
        let candidate: [u8; KEY_LEN] = rand::random();
        let stored = store
            .setting_or_insert(KEY_SETTING, &hex::encode(candidate), now)
            .await?;
        let bytes: [u8; KEY_LEN] = hex::decode(stored.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SecretKeyError::Stored)?;
        Ok(SecretBox::new(&SecretKey(bytes)))
    }

    /// `enc:v1:` + base64(nonce || ciphertext); a new random nonce each time.
    pub fn seal(&self, secret: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        // Encrypting into a Vec fails only past ChaCha20's 256 GiB limit.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .unwrap_or_default();
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", BASE64.encode(data))
    }

    /// The plaintext secret of a stored value: a sealed one decrypted, a
    /// legacy plaintext one as it is.
    pub fn open(&self, stored: &str) -> Result<String, OpenError> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let data = BASE64.decode(encoded).map_err(|_| OpenError::Malformed)?;
        if data.len() < NONCE_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| OpenError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| OpenError::Malformed)
    }
}

/// Seals every webhook secret still stored as plaintext; returns how many
/// it sealed. Idempotent, and safe on several nodes at once: a row is only
/// replaced while it still holds the plaintext that was read.
pub async fn encrypt_plaintext_rows(
    store: &dyn WebhookStore,
    secrets: &SecretBox,
) -> Result<usize, StoreError> {
    let mut sealed = 0;
    for hook in store.list_webhooks(None).await? {
        if is_sealed(&hook.secret) {
            continue;
        }
        if store
            .replace_webhook_secret(hook.id, &hook.secret, &secrets.seal(&hook.secret))
            .await?
        {
            sealed += 1;
        }
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn secret_box(byte: u8) -> SecretBox {
        SecretBox::new(&SecretKey([byte; KEY_LEN]))
    }

    #[test]
    fn round_trips_without_showing_the_secret() {
        let sealed = secret_box(1).seal(SECRET);
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("MfKQ9r8G"));
        assert_eq!(secret_box(1).open(&sealed).as_deref(), Ok(SECRET));
    }

    #[test]
    fn legacy_plaintext_passes_through() {
        assert!(!is_sealed(SECRET));
        assert_eq!(secret_box(1).open(SECRET).as_deref(), Ok(SECRET));
    }

    #[test]
    fn two_writes_of_one_secret_differ() {
        let sb = secret_box(1);
        let (a, b) = (sb.seal(SECRET), sb.seal(SECRET));
        assert_ne!(a, b);
        assert_eq!(sb.open(&a), sb.open(&b));
    }

    #[test]
    fn wrong_key_is_refused() {
        let sealed = secret_box(1).seal(SECRET);
        assert_eq!(secret_box(2).open(&sealed), Err(OpenError::WrongKey));
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let sb = secret_box(1);
        let sealed = sb.seal(SECRET);
        let mut data = BASE64.decode(&sealed[SEALED_PREFIX.len()..]).unwrap();
        let last = data.len() - 1;
        data[last] ^= 1;
        data[NONCE_LEN] ^= 0x80;
        let tampered = format!("{SEALED_PREFIX}{}", BASE64.encode(&data));
        assert_eq!(sb.open(&tampered), Err(OpenError::WrongKey));
        assert_eq!(sb.open("enc:v1:not base64!"), Err(OpenError::Malformed));
        assert_eq!(sb.open("enc:v1:AAAA"), Err(OpenError::Malformed));
    }

    #[test]
    fn keys_are_32_bytes_of_hex_or_base64() {
        let bytes = [7u8; KEY_LEN];
        assert_eq!(SecretKey::parse(&hex::encode(bytes)), Ok(SecretKey(bytes)));
        assert_eq!(
            SecretKey::parse(&format!(" {} ", BASE64.encode(bytes))),
            Ok(SecretKey(bytes))
        );
        assert_eq!(SecretKey::parse(&hex::encode([7u8; 31])), Err(KeyError));
        assert_eq!(SecretKey::parse(&BASE64.encode([7u8; 33])), Err(KeyError));
        assert_eq!(SecretKey::parse("z".repeat(64).as_str()), Err(KeyError));
        assert_eq!(SecretKey::parse(""), Err(KeyError));
        assert_eq!(format!("{:?}", SecretKey(bytes)), "SecretKey(…)");
    }
}
