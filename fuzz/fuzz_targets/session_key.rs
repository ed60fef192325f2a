//! Session keys and RSA checksums as a device reads them (§4.3):
//! `base64(iv):base64(rsa(aes_key))` through `SessionKey::open`, and the
//! hex-or-base64 checksum through `decrypt_checksum`, with a fixed 2048-bit
//! key (its private half made the seed corpus and is not kept). Also
//! `PublicKey::from_pem` on the same bytes, as the management API takes app keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use updraft_bundle::crypto::{decrypt_checksum, PublicKey, SessionKey};

fn key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PublicKey::from_pem(include_str!("../keys/session-public.pem")).expect("the fixed key")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(session) = SessionKey::open(text, key()) {
        assert_eq!(session.aes_key().len(), 16);
        assert_eq!(session.iv().len(), 16);
    }
    if let Ok(checksum) = decrypt_checksum(key(), text) {
        assert!(checksum.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    if let Ok(parsed) = PublicKey::from_pem(text) {
        // A key we accept can be written back and read again.
        let pem = parsed.to_pem().expect("re-encode an accepted key");
        assert!(PublicKey::from_pem(&pem).is_ok());
    }
});
