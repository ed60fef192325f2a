//! The one error type of the crate, with stable snake_case codes for APIs and logs.

use std::fmt;

/// Which `resolvePathInsideDirectory` rule an entry name broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeNameRule {
    Empty,
    DotDot,
    Absolute,
    Backslash,
    Nul,
}

impl UnsafeNameRule {
    pub fn as_str(self) -> &'static str {
        match self {
            UnsafeNameRule::Empty => "empty",
            UnsafeNameRule::DotDot => "dotdot",
            UnsafeNameRule::Absolute => "absolute",
            UnsafeNameRule::Backslash => "backslash",
            UnsafeNameRule::Nul => "nul",
        }
    }
}

impl fmt::Display for UnsafeNameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the file is not a readable zip archive: {0}")]
    NotAZip(String),
    #[error("the bundle has no index.html at its root or inside a single top-level folder{}", detail_suffix(.0))]
    MissingIndexHtml(String),
    #[error("zip entry {name:?} is unsafe ({rule}): the plugin refuses it")]
    UnsafeEntryName { name: String, rule: UnsafeNameRule },
    #[error(
        "entry name {name:?} contains a control character (U+{code:04X}); file names must not"
    )]
    ControlCharacterInName { name: String, code: u32 },
    #[error("entry names {first:?} and {second:?} differ only by case: they are the same file on iOS's case-insensitive file system")]
    CaseCollision { first: String, second: String },
    #[error("zip entry {0:?} is a symbolic link; bundles must not contain symlinks")]
    SymlinkEntry(String),
    #[error("zip entry {name:?} is not supported by the plugin: {reason}")]
    UnsupportedEntry { name: String, reason: String },
    /// The path (normalised); empty when only the count of names revealed a repeat.
    #[error("{}", duplicate_message(.0))]
    DuplicateEntry(String),
    #[error("the zip has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("zip entry {name:?} is larger than the {limit}-byte limit")]
    EntryTooLarge { name: String, limit: u64 },
    #[error("the bundle unpacks to more than the {limit}-byte limit")]
    BundleTooLarge { limit: u64 },
    #[error("{subject} expands more than {limit} times its compressed size")]
    CompressionRatioExceeded { subject: String, limit: u64 },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("decryption failed: {0}")]
    DecryptFailed(String),
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

fn duplicate_message(name: &str) -> String {
    if name.is_empty() {
        "the zip's central directory lists the same entry name more than once".to_string()
    } else {
        format!("zip entry {name:?} appears more than once (or is both a file and a folder)")
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl BundleError {
    /// Stable machine-readable code; never changes once published.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::NotAZip(_) => "not_a_zip",
            BundleError::MissingIndexHtml(_) => "missing_index_html",
            BundleError::UnsafeEntryName { .. } => "unsafe_entry_name",
            BundleError::ControlCharacterInName { .. } => "control_character_in_name",
            BundleError::CaseCollision { .. } => "case_insensitive_duplicate",
            BundleError::SymlinkEntry(_) => "symlink_entry",
            BundleError::UnsupportedEntry { .. } => "unsupported_entry",
            BundleError::DuplicateEntry(_) => "duplicate_entry",
            BundleError::TooManyEntries { .. } => "too_many_entries",
            BundleError::EntryTooLarge { .. } => "entry_too_large",
            BundleError::BundleTooLarge { .. } => "bundle_too_large",
            BundleError::CompressionRatioExceeded { .. } => "compression_ratio_exceeded",
            BundleError::InvalidKey(_) => "invalid_key",
            BundleError::DecryptFailed(_) => "decrypt_failed",
            BundleError::ChecksumMismatch { .. } => "checksum_mismatch",
            BundleError::Io(_) => "io",
        }
    }
}
