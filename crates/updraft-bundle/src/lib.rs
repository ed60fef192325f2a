//! Bundle zips as `@capgo/capacitor-updater` reads them. No network, no
//! database: the CLI (packing, encryption, delta files, the device simulator)
//! and the server (upload validation) share this one implementation.

pub mod crypto;
pub mod delta;
pub mod error;
pub mod inspect;
pub mod limits;
pub mod names;
pub mod pack;
pub mod scan;
pub mod unpack;

pub use crypto::{
    decrypt_bytes, decrypt_checksum, decrypt_file, encrypt_bundle, encrypt_bytes, encrypt_checksum,
    encrypt_file, generate_key_pair, key_id, EncryptedBundle, PrivateKey, PublicKey, SessionKey,
};
pub use delta::{build_delta, DeltaFile};
pub use error::BundleError;
pub use inspect::{inspect_zip, ZipEntry, ZipSummary};
pub use limits::ZipLimits;
pub use names::check_entry_name;
pub use pack::{pack_dir, PackSummary};
pub use scan::mentions_notify_app_ready;
pub use unpack::{decode_delta_file, unpack_zip, UnpackSummary};

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Lowercase hex SHA-256 of a file, read in chunks so large bundles never sit in memory.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    copy_hashed(file, std::io::sink()).map(|(_, sha256)| sha256)
}

/// Copies `reader` into `writer` while hashing it; returns (bytes, lowercase hex SHA-256).
pub(crate) fn copy_hashed(
    mut reader: impl Read,
    mut writer: impl std::io::Write,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..read]);
        writer.write_all(&buffer[..read])?;
        size += read as u64;
    }
    writer.flush()?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Lowercase hex SHA-256 of a byte slice.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
