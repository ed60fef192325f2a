//! What the plugin does on a device (§3.2, §5.2), for the device simulator: unzip
//! with zip-slip checks and flattening, and decode served delta files.

use crate::crypto::{decrypt_bytes, SessionKey};
use crate::error::BundleError;
use crate::inspect::not_a_zip;
use crate::names::{check_entry_name, normalize_entry_name};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use zip::ZipArchive;

/// Result of [`unpack_zip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// Number of files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// The bundle root (contains index.html): `dest` or its single top folder.
    pub root: PathBuf,
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Unzips `zip` into `dest` (created if needed) as the plugin would: every name goes
/// through the `resolvePathInsideDirectory` rules, nothing may land outside `dest`
/// after canonicalisation, symlinks are refused, then a single top folder is unwrapped
/// when both Android's `flattenAssets` and iOS's `unflatFolder` would unwrap it.
pub fn unpack_zip(zip: &Path, dest: &Path) -> Result<UnpackSummary, BundleError> {
    let mut archive = ZipArchive::new(File::open(zip)?).map_err(not_a_zip)?;
    std::fs::create_dir_all(dest)?;
    let canonical_dest = dest.canonicalize()?;
    let mut files = 0usize;
    let mut bytes = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(not_a_zip)?;
        let raw_name = entry.name_raw();
        let name = std::str::from_utf8(raw_name)
            .map_err(|_| BundleError::UnsupportedEntry {
                name: String::from_utf8_lossy(raw_name).into_owned(),
                reason: "its name is not valid UTF-8".to_string(),
            })?
            .to_string();
        let relative = normalize_entry_name(&name)?;
        if entry
            .unix_mode()
            .is_some_and(|mode| mode & S_IFMT == S_IFLNK)
        {
            return Err(BundleError::SymlinkEntry(name));
        }
        if relative.is_empty() {
            continue;
        }
        let target = canonical_dest.join(&relative);
        if name.ends_with('/') {
            std::fs::create_dir_all(&target)?;
            ensure_inside(&canonical_dest, &target, &name)?;
            continue;
        }
        let parent = target.parent().unwrap_or(&canonical_dest);
        std::fs::create_dir_all(parent)?;
        // A folder that already exists as a symlink could point anywhere.
        ensure_inside(&canonical_dest, parent, &name)?;
        if std::fs::symlink_metadata(&target)
            .is_ok_and(|metadata| metadata.file_type().is_symlink())
        {
            return Err(BundleError::SymlinkEntry(name));
        }
        let mut output = BufWriter::new(File::create(&target)?);
        let written = std::io::copy(&mut entry, &mut output).map_err(|err| {
            BundleError::NotAZip(format!("zip entry {name:?} cannot be read: {err}"))
        })?;
        output.flush()?;
        files += 1;
        bytes += written;
    }
    let root = bundle_root(&canonical_dest)?;
    Ok(UnpackSummary { files, bytes, root })
}

fn ensure_inside(canonical_dest: &Path, path: &Path, name: &str) -> Result<(), BundleError> {
    if path.canonicalize()?.starts_with(canonical_dest) {
        Ok(())
    } else {
        Err(BundleError::UnsafeEntryName {
            name: name.to_string(),
            rule: crate::error::UnsafeNameRule::DotDot,
        })
    }
}

fn bundle_root(dest: &Path) -> Result<PathBuf, BundleError> {
    if dest.join("index.html").is_file() {
        return Ok(dest.to_path_buf());
    }
    let mut top_level = Vec::new();
    for child in std::fs::read_dir(dest)? {
        let child = child?;
        top_level.push((
            child.file_name().to_string_lossy().into_owned(),
            child.path(),
        ));
    }
    if let [(name, path)] = top_level.as_slice() {
        // iOS needs exactly one folder; Android ignores dot and __MACOSX names.
        let android_sees_it = !name.starts_with('.') && !name.starts_with("__MACOSX");
        if path.is_dir() && android_sees_it {
            if path.join("index.html").is_file() {
                return Ok(path.clone());
            }
            return Err(BundleError::MissingIndexHtml(format!(
                "the single folder {name}/ has no index.html"
            )));
        }
    }
    let mut names: Vec<String> = top_level.into_iter().map(|(name, _)| name).collect();
    names.sort();
    Err(BundleError::MissingIndexHtml(format!(
        "top level: {}",
        names.join(", ")
    )))
}

/// Decodes one served delta file as the plugin does (§5.2 steps 4–5): AES-decrypt
/// the whole file when `session` is given, then Brotli-decompress when `file_name`
/// ends in `.br`. Returns the on-disk relative name (`.br` stripped) and the content.
pub fn decode_delta_file(
    file_name: &str,
    served: &[u8],
    session: Option<&SessionKey>,
) -> Result<(String, Vec<u8>), BundleError> {
    check_entry_name(file_name)?;
    let decrypted = match session {
        Some(session) => decrypt_bytes(session, served)?,
        None => served.to_vec(),
    };
    match file_name.strip_suffix(".br") {
        Some(stripped) => {
            check_entry_name(stripped)?;
            let mut content = Vec::new();
            brotli::Decompressor::new(decrypted.as_slice(), 4096)
                .read_to_end(&mut content)
                .map_err(|err| {
                    BundleError::DecryptFailed(format!("{file_name} is not valid Brotli ({err})"))
                })?;
            Ok((stripped.to_string(), content))
        }
        None => Ok((file_name.to_string(), decrypted)),
    }
}
