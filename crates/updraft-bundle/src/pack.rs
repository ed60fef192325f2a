//! Deterministic packing of a web build folder into a bundle zip.

use crate::error::BundleError;
use crate::names::check_entry_name;
use crate::scan::{is_scanned_file, NotifyScanner};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// What [`pack_dir`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackSummary {
    /// Number of files in the zip (directories not counted).
    pub files: usize,
    /// Size of the zip file in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the zip file.
    pub sha256: String,
    /// Whether some .js/.mjs/.html file mentions `notifyAppReady`.
    pub calls_notify_app_ready: bool,
}

/// Names the plugin's unwrapping logic or macOS tooling treat specially; never packed.
pub fn is_skipped_name(name: &str) -> bool {
    name.starts_with('.') || name.starts_with("__MACOSX")
}

enum PackItem {
    Dir(String),
    File {
        name: String,
        source: std::path::PathBuf,
        size: u64,
    },
}

/// Walks `dir` depth-first in byte order of names, so the listing never depends on
/// the file system's order.
fn collect(
    dir: &Path,
    prefix: &str,
    skip: Option<&Path>,
    items: &mut Vec<PackItem>,
) -> Result<(), BundleError> {
    let mut children = Vec::new();
    for child in std::fs::read_dir(dir)? {
        let child = child?;
        let file_name = child.file_name();
        let name = file_name
            .to_str()
            .ok_or_else(|| BundleError::UnsupportedEntry {
                name: file_name.to_string_lossy().into_owned(),
                reason: "its name is not valid UTF-8".to_string(),
            })?;
        if is_skipped_name(name) {
            continue;
        }
        children.push((name.to_string(), child.path()));
    }
    children.sort();
    for (name, path) in children {
        let relative = format!("{prefix}{name}");
        check_entry_name(&relative)?;
        let metadata = std::fs::symlink_metadata(&path)?;
        if metadata.file_type().is_symlink() {
            return Err(BundleError::SymlinkEntry(relative));
        }
        if metadata.is_dir() {
            items.push(PackItem::Dir(format!("{relative}/")));
            collect(&path, &format!("{relative}/"), skip, items)?;
        } else if metadata.is_file() {
            if skip.is_some_and(|skip| path.canonicalize().is_ok_and(|canonical| canonical == skip))
            {
                continue;
            }
            items.push(PackItem::File {
                name: relative,
                source: path,
                size: metadata.len(),
            });
        } else {
            return Err(BundleError::UnsupportedEntry {
                name: relative,
                reason: "it is neither a regular file nor a folder".to_string(),
            });
        }
    }
    Ok(())
}

/// Zips `dir` into `out` with `index.html` at the root; the same input gives the same
/// bytes (sorted names, fixed 1980-01-01 timestamps, 0644/0755 permissions). Files are
/// DEFLATEd, empty files STORED, and the seekable writer never emits data descriptors.
/// Dotfiles, dot-folders and `__MACOSX` are skipped; symlinks are refused.
pub fn pack_dir(dir: &Path, out: &Path) -> Result<PackSummary, BundleError> {
    if !dir.join("index.html").is_file() {
        return Err(BundleError::MissingIndexHtml(format!(
            "{} has no index.html",
            dir.display()
        )));
    }
    // A zip written inside the folder it packs (from an earlier run) must not pack itself.
    let existing_out = out.canonicalize().ok();
    let mut items = Vec::new();
    collect(dir, "", existing_out.as_deref(), &mut items)?;
    let base = SimpleFileOptions::default().last_modified_time(DateTime::default());
    let zip_error = |err: zip::result::ZipError| match err {
        zip::result::ZipError::Io(io) => BundleError::Io(io),
        other => BundleError::NotAZip(format!("cannot write the zip: {other}")),
    };
    let mut writer = ZipWriter::new(File::create(out)?);
    let mut files = 0usize;
    let mut calls_notify_app_ready = false;
    let mut buffer = vec![0u8; 64 * 1024];
    for item in &items {
        match item {
            PackItem::Dir(name) => {
                writer
                    .add_directory(name.as_str(), base.unix_permissions(0o755))
                    .map_err(zip_error)?;
            }
            PackItem::File { name, source, size } => {
                let method = if *size == 0 {
                    CompressionMethod::Stored
                } else {
                    CompressionMethod::Deflated
                };
                let options = base
                    .compression_method(method)
                    .unix_permissions(0o644)
                    .large_file(*size >= u64::from(u32::MAX));
                writer
                    .start_file(name.as_str(), options)
                    .map_err(zip_error)?;
                let mut input = File::open(source)?;
                let mut scanner =
                    (!calls_notify_app_ready && is_scanned_file(name)).then(NotifyScanner::new);
                loop {
                    let read = input.read(&mut buffer)?;
                    if read == 0 {
                        break;
                    }
                    if let Some(scanner) = scanner.as_mut() {
                        scanner.feed(&buffer[..read]);
                    }
                    writer.write_all(&buffer[..read])?;
                }
                calls_notify_app_ready |= scanner.is_some_and(|scanner| scanner.found());
                files += 1;
            }
        }
    }
    writer.finish().map_err(zip_error)?.sync_all()?;
    Ok(PackSummary {
        files,
        bytes: std::fs::metadata(out)?.len(),
        sha256: crate::sha256_file(out)?,
        calls_notify_app_ready,
    })
}
