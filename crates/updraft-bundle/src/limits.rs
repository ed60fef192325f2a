//! Caps applied while validating untrusted zips.

/// Limits for [`crate::inspect::inspect_zip`]. The defaults fit real Capacitor
/// bundles (a few thousand files, tens of MB) with a wide margin, while keeping a
/// hostile upload from exhausting memory, disk or CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZipLimits {
    /// Maximum number of entries (files and directories) in the archive.
    pub max_entries: usize,
    /// Maximum uncompressed size of one entry, in bytes.
    pub max_entry_size: u64,
    /// Maximum total uncompressed size, in bytes.
    pub max_total_size: u64,
    /// Maximum uncompressed/compressed ratio, per entry and overall.
    pub max_compression_ratio: u64,
}

impl ZipLimits {
    /// 50 000 entries.
    pub const DEFAULT_MAX_ENTRIES: usize = 50_000;
    /// 512 MiB per entry.
    pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 512 * 1024 * 1024;
    /// 2 GiB in total.
    pub const DEFAULT_MAX_TOTAL_SIZE: u64 = 2 * 1024 * 1024 * 1024;
    /// Text compresses ~5-20x with DEFLATE; 200x is only reached by padding or bombs.
    pub const DEFAULT_MAX_COMPRESSION_RATIO: u64 = 200;
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_entry_size: Self::DEFAULT_MAX_ENTRY_SIZE,
            max_total_size: Self::DEFAULT_MAX_TOTAL_SIZE,
            max_compression_ratio: Self::DEFAULT_MAX_COMPRESSION_RATIO,
        }
    }
}

/// Compression ratios are only enforced above this uncompressed size (1 MiB): small
/// files of repeated bytes legitimately compress far beyond any sane ratio limit.
pub const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
