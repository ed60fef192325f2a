//! Per-file delta (manifest) blobs, protocol §5.

use crate::crypto::{encrypt_checksum, encrypt_file, PrivateKey, SessionKey};
use crate::error::BundleError;
use crate::inspect::{check_archive, not_a_zip};
use crate::limits::ZipLimits;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use zip::ZipArchive;

/// One manifest entry's content as it will be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaFile {
    /// Wire name relative to the bundle root; ends in `.br` when Brotli-compressed.
    pub file_name: String,
    /// SHA-256 of the final (decoded) content, or its RSA form when encrypted.
    pub file_hash: String,
    /// The bytes to serve, under `out_dir`, named by `blob_sha256`.
    pub path: PathBuf,
    /// SHA-256 of the served bytes.
    pub blob_sha256: String,
    /// Size of the served bytes.
    pub size: u64,
}

/// The CLI compresses only files at least this big (`shouldUseBrotli`).
pub const BROTLI_MIN_SIZE: u64 = 8192;
/// ... and only keeps the compressed form when it saves more than this many bytes.
pub const BROTLI_MIN_SAVING: u64 = 10;
/// Quality 9 is within a few percent of 11 on web assets and many times faster.
const BROTLI_QUALITY: u32 = 9;
const BROTLI_WINDOW_BITS: u32 = 22;

/// A scratch file in `out_dir`, removed unless it was renamed away.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(dir: &Path) -> Self {
        ScratchFile(dir.join(format!(".partial-{:016x}", rand::random::<u64>())))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        // Already renamed or never created: nothing to clean.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Copies `reader` into a new file at `path`, returning (size, sha256 hex).
fn copy_hashed(reader: impl Read, path: &Path) -> std::io::Result<(u64, String)> {
    crate::copy_hashed(reader, BufWriter::new(File::create(path)?))
}

fn brotli_compress(src: &Path, dst: &Path) -> std::io::Result<u64> {
    let mut input = File::open(src)?;
    let output = BufWriter::new(File::create(dst)?);
    let mut compressor =
        brotli::CompressorWriter::new(output, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW_BITS);
    std::io::copy(&mut input, &mut compressor)?;
    compressor.flush()?;
    let mut output = compressor.into_inner();
    output.flush()?;
    drop(output);
    Ok(std::fs::metadata(dst)?.len())
}

/// Builds the served blobs of every file of `zip` into `out_dir`, in archive order.
///
/// Names are relative to the bundle root (a single top folder is stripped), empty
/// files are included, directories skipped. Per file (§5.2 wire order): Brotli when
/// the file is at least 8192 bytes and shrinks by more than 10 bytes (`file_name`
/// then gets `.br`), then AES with the bundle's session key and IV when encrypting.
/// Blobs are content-addressed: identical served bytes are stored once.
pub fn build_delta(
    zip: &Path,
    out_dir: &Path,
    encryption: Option<(&SessionKey, &PrivateKey)>,
) -> Result<Vec<DeltaFile>, BundleError> {
    std::fs::create_dir_all(out_dir)?;
    let mut archive = ZipArchive::new(File::open(zip)?).map_err(not_a_zip)?;
    let checked = check_archive(&mut archive, &ZipLimits::default())?;
    let mut delta_files = Vec::new();
    for entry in checked.entries.iter().filter(|entry| !entry.is_dir) {
        let bundle_name = checked.bundle_path(entry).to_string();
        let plain = ScratchFile::new(out_dir);
        let reader = archive.by_index(entry.index).map_err(not_a_zip)?;
        let (plain_size, plain_sha256) = copy_hashed(reader, &plain.0).map_err(|err| {
            BundleError::NotAZip(format!("zip entry {:?} cannot be read: {err}", entry.path))
        })?;

        let mut file_name = bundle_name;
        let mut stage = plain;
        if plain_size >= BROTLI_MIN_SIZE {
            let compressed = ScratchFile::new(out_dir);
            let compressed_size = brotli_compress(&stage.0, &compressed.0)?;
            if compressed_size + BROTLI_MIN_SAVING < plain_size {
                file_name.push_str(".br");
                stage = compressed;
            }
        }
        let file_hash = match encryption {
            Some((session, private_key)) => {
                let encrypted = ScratchFile::new(out_dir);
                encrypt_file(session, &stage.0, &encrypted.0)?;
                stage = encrypted;
                encrypt_checksum(private_key, &plain_sha256)?
            }
            None => plain_sha256,
        };
        let blob_sha256 = crate::sha256_file(&stage.0)?;
        let size = std::fs::metadata(&stage.0)?.len();
        let path = out_dir.join(&blob_sha256);
        if !path.exists() {
            std::fs::rename(&stage.0, &path)?;
        }
        delta_files.push(DeltaFile {
            file_name,
            file_hash,
            path,
            blob_sha256,
            size,
        });
    }
    Ok(delta_files)
}
