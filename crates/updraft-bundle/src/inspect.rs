//! Validation of an uploaded zip without extracting it: every rule of protocol §3.2
//! for both plugin platforms, plus resource limits against hostile uploads.

use crate::error::BundleError;
use crate::limits::{ZipLimits, RATIO_FLOOR_BYTES};
use crate::names::{normalize_entry_name, CaseFolds};
use crate::scan::{is_scanned_file, NotifyScanner};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

/// One file of a validated bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Path relative to the bundle root (single top folder prefix stripped), `/`-separated.
    pub name: String,
    /// Actual uncompressed size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the uncompressed content.
    pub sha256: String,
}

/// What [`inspect_zip`] learned about a valid bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    /// Files only (no directories), in archive order.
    pub files: Vec<ZipEntry>,
    /// Sum of the files' uncompressed sizes.
    pub total_size: u64,
    /// `Some("dist/")` when everything sits in one top folder, `None` when index.html is at the root.
    pub root_prefix: Option<String>,
    /// Whether some .js/.mjs/.html file mentions `notifyAppReady`.
    pub calls_notify_app_ready: bool,
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

pub(crate) fn not_a_zip(err: ZipError) -> BundleError {
    match err {
        ZipError::Io(io) => BundleError::NotAZip(io.to_string()),
        other => BundleError::NotAZip(other.to_string()),
    }
}

/// Metadata of one entry that passed the per-entry rules.
#[derive(Debug, Clone)]
pub(crate) struct CheckedEntry {
    pub index: usize,
    /// Normalised path relative to the zip root (no trailing `/`).
    pub path: String,
    pub is_dir: bool,
    pub declared_size: u64,
    pub compressed_size: u64,
}

/// The entries of an archive after the name, type, duplicate and layout rules.
#[derive(Debug, Clone)]
pub(crate) struct CheckedArchive {
    pub entries: Vec<CheckedEntry>,
    pub root_prefix: Option<String>,
}

impl CheckedArchive {
    /// The path of `entry` relative to the bundle root.
    pub fn bundle_path<'a>(&self, entry: &'a CheckedEntry) -> &'a str {
        match &self.root_prefix {
            Some(prefix) => entry
                .path
                .strip_prefix(prefix.as_str())
                .unwrap_or(&entry.path),
            None => &entry.path,
        }
    }
}

/// Applies every rule that needs only the central directory (and local headers).
pub(crate) fn check_archive<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    limits: &ZipLimits,
) -> Result<CheckedArchive, BundleError> {
    if archive.len() > limits.max_entries {
        return Err(BundleError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    // The zip crate keys entries by name, so repeats are only visible as a count.
    if archive.has_duplicate_names() {
        return Err(BundleError::DuplicateEntry(String::new()));
    }
    let mut entries = Vec::with_capacity(archive.len());
    let mut files: HashSet<String> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut case_folds = CaseFolds::default();
    let mut declared_total = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(not_a_zip)?;
        let raw_name = entry.name_raw();
        let name = std::str::from_utf8(raw_name).map_err(|_| BundleError::UnsupportedEntry {
            name: String::from_utf8_lossy(raw_name).into_owned(),
            reason: "its name is not valid UTF-8".to_string(),
        })?;
        let path = normalize_entry_name(name)?;
        let is_dir = name.ends_with('/');
        if entry.encrypted() {
            return Err(BundleError::UnsupportedEntry {
                name: name.to_string(),
                reason: "it is encrypted".to_string(),
            });
        }
        match entry.compression() {
            CompressionMethod::Stored => {
                // Android's ZipInputStream cannot find the end of such an entry.
                if entry.flags().is_using_data_descriptor() {
                    return Err(BundleError::UnsupportedEntry {
                        name: name.to_string(),
                        reason: "it is STORED with a data descriptor, which Android cannot read"
                            .to_string(),
                    });
                }
            }
            CompressionMethod::Deflated => {}
            other => {
                return Err(BundleError::UnsupportedEntry {
                    name: name.to_string(),
                    reason: format!(
                        "it uses compression {other}; only stored and deflate are supported"
                    ),
                });
            }
        }
        if entry
            .unix_mode()
            .is_some_and(|mode| mode & S_IFMT == S_IFLNK)
        {
            return Err(BundleError::SymlinkEntry(name.to_string()));
        }
        if !is_dir && entry.size() > limits.max_entry_size {
            return Err(BundleError::EntryTooLarge {
                name: name.to_string(),
                limit: limits.max_entry_size,
            });
        }
        declared_total = declared_total.saturating_add(entry.size());
        if declared_total > limits.max_total_size {
            return Err(BundleError::BundleTooLarge {
                limit: limits.max_total_size,
            });
        }
        if path.is_empty() {
            if is_dir {
                continue; // `./` names the extraction directory itself.
            }
            return Err(BundleError::UnsafeEntryName {
                name: name.to_string(),
                rule: crate::error::UnsafeNameRule::Empty,
            });
        }
        case_folds.insert(&path)?;
        let mut parent = path.as_str();
        while let Some((head, _)) = parent.rsplit_once('/') {
            dirs.insert(head.to_string());
            parent = head;
        }
        if is_dir {
            dirs.insert(path.clone());
        } else if !files.insert(path.clone()) {
            return Err(BundleError::DuplicateEntry(path));
        }
        entries.push(CheckedEntry {
            index,
            path,
            is_dir,
            declared_size: entry.size(),
            compressed_size: entry.compressed_size(),
        });
    }
    if let Some(clash) = entries
        .iter()
        .find(|entry| !entry.is_dir && dirs.contains(&entry.path))
    {
        return Err(BundleError::DuplicateEntry(clash.path.clone()));
    }
    // Android streams local headers, so they must say what the central directory says.
    archive.validate_header_consistency().map_err(|err| {
        BundleError::NotAZip(format!("local and central zip headers disagree: {err}"))
    })?;
    let root_prefix = find_root_prefix(&files, &dirs)?;
    Ok(CheckedArchive {
        entries,
        root_prefix,
    })
}

/// The layout both platforms accept (§3.2): `index.html` at the root, or exactly one
/// top-level entry, a folder not named like what Android ignores, holding `index.html`.
fn find_root_prefix(
    files: &HashSet<String>,
    dirs: &HashSet<String>,
) -> Result<Option<String>, BundleError> {
    if files.contains("index.html") {
        return Ok(None);
    }
    let top_level: BTreeSet<&str> = files
        .iter()
        .chain(dirs.iter())
        .map(|path| path.split('/').next().unwrap_or(path))
        .collect();
    let listing = || {
        let names: Vec<&str> = top_level.iter().copied().take(5).collect();
        let more = if top_level.len() > 5 { ", …" } else { "" };
        format!("top level: {}{more}", names.join(", "))
    };
    if top_level.len() != 1 {
        let detail = if top_level.is_empty() {
            "the zip is empty".to_string()
        } else {
            listing()
        };
        return Err(BundleError::MissingIndexHtml(detail));
    }
    let folder = top_level.iter().next().copied().unwrap_or_default();
    if !dirs.contains(folder) || folder.starts_with('.') || folder.starts_with("__MACOSX") {
        return Err(BundleError::MissingIndexHtml(listing()));
    }
    if !files.contains(&format!("{folder}/index.html")) {
        return Err(BundleError::MissingIndexHtml(format!(
            "the single folder {folder}/ has no index.html"
        )));
    }
    Ok(Some(format!("{folder}/")))
}

/// Validates a zip as both plugin platforms would unpack it, without writing to disk.
///
/// Every entry is decompressed through a counting reader, so sizes are checked against
/// what the data really expands to, not what the headers claim.
pub fn inspect_zip(path: &Path, limits: &ZipLimits) -> Result<ZipSummary, BundleError> {
    let file = File::open(path)?;
    let mut archive = ZipArchive::new(file).map_err(not_a_zip)?;
    let checked = check_archive(&mut archive, limits)?;
    let mut files = Vec::new();
    let mut total_size = 0u64;
    let mut total_compressed = 0u64;
    let mut calls_notify_app_ready = false;
    let mut buffer = vec![0u8; 64 * 1024];
    for entry in checked.entries.iter().filter(|entry| !entry.is_dir) {
        let name = checked.bundle_path(entry).to_string();
        let mut reader = archive.by_index(entry.index).map_err(not_a_zip)?;
        let mut hasher = Sha256::new();
        let mut scanner = is_scanned_file(&name).then(NotifyScanner::new);
        let mut size = 0u64;
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(BundleError::NotAZip(format!(
                        "zip entry {:?} cannot be read: {err}",
                        entry.path
                    )));
                }
            };
            let chunk = &buffer[..read];
            hasher.update(chunk);
            if let Some(scanner) = scanner.as_mut() {
                scanner.feed(chunk);
            }
            size += read as u64;
            if size > limits.max_entry_size {
                return Err(BundleError::EntryTooLarge {
                    name: entry.path.clone(),
                    limit: limits.max_entry_size,
                });
            }
            if total_size + size > limits.max_total_size {
                return Err(BundleError::BundleTooLarge {
                    limit: limits.max_total_size,
                });
            }
            if exceeds_ratio(size, entry.compressed_size, limits) {
                return Err(BundleError::CompressionRatioExceeded {
                    subject: format!("zip entry {:?}", entry.path),
                    limit: limits.max_compression_ratio,
                });
            }
        }
        if size != entry.declared_size {
            return Err(BundleError::NotAZip(format!(
                "zip entry {:?} expands to {size} bytes but its header declares {}",
                entry.path, entry.declared_size
            )));
        }
        total_size += size;
        total_compressed += entry.compressed_size;
        calls_notify_app_ready |= scanner.is_some_and(|scanner| scanner.found());
        files.push(ZipEntry {
            name,
            size,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    if exceeds_ratio(total_size, total_compressed, limits) {
        return Err(BundleError::CompressionRatioExceeded {
            subject: "the bundle".to_string(),
            limit: limits.max_compression_ratio,
        });
    }
    Ok(ZipSummary {
        files,
        total_size,
        root_prefix: checked.root_prefix,
        calls_notify_app_ready,
    })
}

/// Ratios only matter for sizes big enough to hurt; small files of repeated bytes
/// legitimately compress very well.
fn exceeds_ratio(uncompressed: u64, compressed: u64, limits: &ZipLimits) -> bool {
    uncompressed > RATIO_FLOOR_BYTES
        && uncompressed
            > compressed
                .max(1)
                .saturating_mul(limits.max_compression_ratio)
}
