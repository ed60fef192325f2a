//! Upload validation: `inspect_zip` on arbitrary bytes. Whatever it accepts
//! must be a bundle the plugin can unpack: safe, distinct names, sizes that
//! add up and stay within the limits, an `index.html` at the bundle root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::io::Write;
use updraft_bundle::{check_entry_name, inspect_zip, ZipLimits};

/// Small limits so the fuzzer reaches them instead of spending its time
/// inflating; the rules are the same as the server's.
const LIMITS: ZipLimits = ZipLimits {
    max_entries: 64,
    max_entry_size: 1 << 20,
    max_total_size: 4 << 20,
    max_compression_ratio: 200,
};

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(data).expect("write the input");
    file.flush().expect("flush the input");
    let Ok(summary) = inspect_zip(file.path(), &LIMITS) else {
        return;
    };
    let mut names = HashSet::new();
    let mut total = 0u64;
    for entry in &summary.files {
        assert!(check_entry_name(&entry.name).is_ok(), "{:?}", entry.name);
        assert!(
            names.insert(entry.name.as_str()),
            "duplicate {:?}",
            entry.name
        );
        assert!(entry.size <= LIMITS.max_entry_size);
        assert_eq!(entry.sha256.len(), 64);
        total += entry.size;
    }
    assert_eq!(total, summary.total_size);
    assert!(total <= LIMITS.max_total_size);
    assert!(summary.files.len() <= LIMITS.max_entries);
    assert!(names.contains("index.html"), "accepted without index.html");
});
