//! inspect_zip: one crafted bad zip per rule, each asserting its exact error code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod common;

use common::{deflated_zip, patch_uncompressed_size, write_raw_zip, RawEntry};
use updraft_bundle::error::UnsafeNameRule;
use updraft_bundle::{inspect_zip, sha256_bytes, BundleError, ZipLimits};

const INDEX: &[u8] = b"<html><script>CapacitorUpdater.notifyAppReady()</script></html>";

fn inspect_raw(entries: &[RawEntry]) -> Result<updraft_bundle::ZipSummary, BundleError> {
    inspect_raw_with(entries, &ZipLimits::default())
}

fn inspect_raw_with(
    entries: &[RawEntry],
    limits: &ZipLimits,
) -> Result<updraft_bundle::ZipSummary, BundleError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write_raw_zip(dir.path(), "bundle.zip", entries);
    inspect_zip(&path, limits)
}

fn code_of<T: std::fmt::Debug>(result: Result<T, BundleError>) -> &'static str {
    result.expect_err("the zip must be refused").code()
}

fn unsafe_rule(name: &[u8]) -> UnsafeNameRule {
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored(name, b"x"),
    ];
    match inspect_raw(&entries) {
        Err(BundleError::UnsafeEntryName { rule, .. }) => rule,
        other => panic!(
            "expected unsafe_entry_name for {:?}, got {other:?}",
            String::from_utf8_lossy(name)
        ),
    }
}

#[test]
fn accepts_root_index_and_reports_files() {
    let summary = inspect_raw(&[
        RawEntry::stored("index.html", INDEX),
        RawEntry::dir("assets/"),
        RawEntry::stored("assets/app.js", b"console.log(1)"),
        RawEntry::stored("empty.txt", b""),
    ])
    .unwrap();
    assert_eq!(summary.root_prefix, None);
    assert!(summary.calls_notify_app_ready);
    let names: Vec<&str> = summary
        .files
        .iter()
        .map(|file| file.name.as_str())
        .collect();
    assert_eq!(names, ["index.html", "assets/app.js", "empty.txt"]);
    assert_eq!(summary.files[1].size, 14);
    assert_eq!(summary.files[1].sha256, sha256_bytes(b"console.log(1)"));
    assert_eq!(summary.total_size, INDEX.len() as u64 + 14);
}

#[test]
fn accepts_single_top_folder_and_strips_it() {
    let summary = inspect_raw(&[
        RawEntry::dir("dist/"),
        RawEntry::stored("dist/index.html", b"<html></html>"),
        RawEntry::stored("dist/js/a.js", b"1"),
    ])
    .unwrap();
    assert_eq!(summary.root_prefix.as_deref(), Some("dist/"));
    assert!(!summary.calls_notify_app_ready);
    let names: Vec<&str> = summary
        .files
        .iter()
        .map(|file| file.name.as_str())
        .collect();
    assert_eq!(names, ["index.html", "js/a.js"]);
}

#[test]
fn single_top_folder_without_explicit_directory_entry_is_accepted() {
    let summary = inspect_raw(&[RawEntry::stored("www/index.html", b"<html></html>")]).unwrap();
    assert_eq!(summary.root_prefix.as_deref(), Some("www/"));
}

#[test]
fn refuses_each_unsafe_name_rule() {
    assert_eq!(unsafe_rule(b"../evil.js"), UnsafeNameRule::DotDot);
    assert_eq!(unsafe_rule(b"assets/../../evil.js"), UnsafeNameRule::DotDot);
    assert_eq!(unsafe_rule(b"/etc/evil.js"), UnsafeNameRule::Absolute);
    assert_eq!(unsafe_rule(b"C:/evil.js"), UnsafeNameRule::Absolute);
    assert_eq!(unsafe_rule(b"C:\\evil.js"), UnsafeNameRule::Absolute);
    // The drive form after `.` / `..` are resolved (found by fuzzing).
    assert_eq!(unsafe_rule(b"./C:/evil.js"), UnsafeNameRule::Absolute);
    assert_eq!(
        unsafe_rule(b"assets/../C:/evil.js"),
        UnsafeNameRule::Absolute
    );
    assert_eq!(unsafe_rule(b"assets\\evil.js"), UnsafeNameRule::Backslash);
    assert_eq!(unsafe_rule(b"assets/a\0b.js"), UnsafeNameRule::Nul);
    assert_eq!(unsafe_rule(b""), UnsafeNameRule::Empty);
}

#[test]
fn unsafe_name_error_code_and_message() {
    let err = inspect_raw(&[
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("../x", b"x"),
    ])
    .unwrap_err();
    assert_eq!(err.code(), "unsafe_entry_name");
    let message = err.to_string();
    assert!(
        message.contains("\"../x\"") && message.contains("dotdot"),
        "{message}"
    );
}

#[test]
fn refuses_symlinks() {
    let mut link = RawEntry::stored("assets/link", b"../../etc/passwd");
    link.external_attributes = 0o120777 << 16;
    assert_eq!(
        code_of(inspect_raw(&[RawEntry::stored("index.html", INDEX), link])),
        "symlink_entry"
    );
}

#[test]
fn refuses_stored_entry_with_data_descriptor() {
    let mut entry = RawEntry::stored("assets/app.js", b"console.log(1)");
    entry.flags |= 0x0008;
    let err = inspect_raw(&[RawEntry::stored("index.html", INDEX), entry]).unwrap_err();
    assert_eq!(err.code(), "unsupported_entry");
    assert!(err.to_string().contains("data descriptor"), "{err}");
}

#[test]
fn refuses_encrypted_entries() {
    let mut entry = RawEntry::stored("assets/app.js", b"console.log(1)");
    entry.flags |= 0x0001;
    let err = inspect_raw(&[RawEntry::stored("index.html", INDEX), entry]).unwrap_err();
    assert_eq!(err.code(), "unsupported_entry");
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[test]
fn refuses_other_compression_methods() {
    let mut entry = RawEntry::stored("assets/app.js", b"BZh9");
    entry.method = 12; // bzip2
    assert_eq!(
        code_of(inspect_raw(&[RawEntry::stored("index.html", INDEX), entry])),
        "unsupported_entry"
    );
}

#[test]
fn refuses_duplicate_entries() {
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("a.js", b"1"),
        RawEntry::stored("a.js", b"2"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "duplicate_entry");
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("a.js", b"1"),
        RawEntry::stored("b.js", b"2"),
    ];
    assert!(inspect_raw(&entries).is_ok());
    // Same target spelled differently.
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("a.js", b"1"),
        RawEntry::stored("x/../a.js", b"2"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "duplicate_entry");
    // A path that is both a file and a folder.
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("a", b"1"),
        RawEntry::stored("a/b.js", b"2"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "duplicate_entry");
}

#[test]
fn refuses_too_many_entries() {
    let limits = ZipLimits {
        max_entries: 3,
        ..ZipLimits::default()
    };
    let entries: Vec<RawEntry> = std::iter::once(RawEntry::stored("index.html", INDEX))
        .chain((0..3).map(|i| RawEntry::stored(format!("f{i}.js"), b"1")))
        .collect();
    assert_eq!(
        code_of(inspect_raw_with(&entries, &limits)),
        "too_many_entries"
    );
    assert!(inspect_raw_with(&entries[..3], &limits).is_ok());
}

#[test]
fn refuses_declared_entry_too_large() {
    let limits = ZipLimits {
        max_entry_size: 100,
        ..ZipLimits::default()
    };
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("big.bin", vec![7u8; 101]),
    ];
    let err = inspect_raw_with(&entries, &limits).unwrap_err();
    assert_eq!(err.code(), "entry_too_large");
    assert!(
        err.to_string().contains("big.bin") && err.to_string().contains("100"),
        "{err}"
    );
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("ok.bin", vec![7u8; 100]),
    ];
    assert!(inspect_raw_with(&entries, &limits).is_ok());
}

#[test]
fn refuses_bundle_too_large() {
    let limits = ZipLimits {
        max_total_size: 200,
        ..ZipLimits::default()
    };
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("a.bin", vec![1u8; 100]),
        RawEntry::stored("b.bin", vec![2u8; 100]),
    ];
    assert_eq!(
        code_of(inspect_raw_with(&entries, &limits)),
        "bundle_too_large"
    );
}

#[test]
fn a_lying_header_cannot_bomb_the_validator() {
    // The header says 10 bytes; the data inflates to 4 MiB, over the 1 MiB cap. The
    // declared size passes every limit, so only reading the real data can catch it.
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0u8; 4 * 1024 * 1024];
    let path = deflated_zip(
        dir.path(),
        "liar.zip",
        &[("index.html", INDEX), ("bomb.bin", &big)],
    );
    patch_uncompressed_size(&path, "bomb.bin", 10);
    let limits = ZipLimits {
        max_entry_size: 1024 * 1024,
        max_compression_ratio: 100_000,
        ..ZipLimits::default()
    };
    let err = inspect_zip(&path, &limits).unwrap_err();
    // Caught while streaming (the inflater stops at the declared size), before 4 MiB is produced.
    assert_eq!(err.code(), "not_a_zip");
    assert!(err.to_string().contains("bomb.bin"), "{err}");
}

#[test]
fn a_small_size_lie_is_a_corrupt_zip() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![b'a'; 5000];
    let path = deflated_zip(
        dir.path(),
        "liar.zip",
        &[("index.html", INDEX), ("a.txt", &data)],
    );
    patch_uncompressed_size(&path, "a.txt", 10);
    assert_eq!(
        code_of(inspect_zip(&path, &ZipLimits::default())),
        "not_a_zip"
    );
}

#[test]
fn refuses_a_compression_ratio_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let path = deflated_zip(
        dir.path(),
        "bomb.zip",
        &[("index.html", INDEX), ("zeros.bin", &zeros)],
    );
    let err = inspect_zip(&path, &ZipLimits::default()).unwrap_err();
    assert_eq!(err.code(), "compression_ratio_exceeded");
    assert!(err.to_string().contains("zeros.bin"), "{err}");
    // With a permissive ratio the same zip is fine: the rule, not something else, refused it.
    let limits = ZipLimits {
        max_compression_ratio: 100_000,
        ..ZipLimits::default()
    };
    assert!(inspect_zip(&path, &limits).is_ok());
}

#[test]
fn refuses_an_overall_ratio_bomb_made_of_small_entries() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 700 * 1024]; // each under the 1 MiB per-entry floor
    let path = deflated_zip(
        dir.path(),
        "bomb.zip",
        &[("index.html", INDEX), ("a.bin", &zeros), ("b.bin", &zeros)],
    );
    let err = inspect_zip(&path, &ZipLimits::default()).unwrap_err();
    assert_eq!(err.code(), "compression_ratio_exceeded");
    assert!(err.to_string().contains("the bundle"), "{err}");
}

#[test]
fn refuses_missing_index_html() {
    assert_eq!(
        code_of(inspect_raw(&[RawEntry::stored("main.html", b"x")])),
        "missing_index_html"
    );
    // A single folder without index.html.
    assert_eq!(
        code_of(inspect_raw(&[RawEntry::stored("dist/main.html", b"x")])),
        "missing_index_html"
    );
    // index.html nested two levels deep.
    assert_eq!(
        code_of(inspect_raw(&[RawEntry::stored("a/b/index.html", b"x")])),
        "missing_index_html"
    );
    // An empty zip.
    assert_eq!(code_of(inspect_raw(&[])), "missing_index_html");
}

#[test]
fn refuses_two_top_level_folders() {
    let entries = [
        RawEntry::stored("a/index.html", b"x"),
        RawEntry::stored("b/app.js", b"1"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "missing_index_html");
}

#[test]
fn refuses_macosx_next_to_the_bundle_folder() {
    // Android would unwrap dist/ (it ignores __MACOSX); iOS would not.
    let entries = [
        RawEntry::stored("__MACOSX/dist/._index.html", b"x"),
        RawEntry::stored("dist/index.html", b"<html></html>"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "missing_index_html");
    // A lone dot-folder: iOS unwraps it, Android ignores it.
    assert_eq!(
        code_of(inspect_raw(&[RawEntry::stored(".app/index.html", b"x")])),
        "missing_index_html"
    );
}

#[test]
fn refuses_something_that_is_not_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.zip");
    std::fs::write(&path, b"definitely not a zip file, just some text").unwrap();
    assert_eq!(
        code_of(inspect_zip(&path, &ZipLimits::default())),
        "not_a_zip"
    );
}

#[test]
fn refuses_local_headers_that_disagree_with_the_central_directory() {
    // Android reads local headers: a hidden `../` there must not pass.
    let mut sneaky = RawEntry::stored("assets/aa.js", b"1");
    sneaky.local_name = Some(b"../evil.js".to_vec());
    let err = inspect_raw(&[RawEntry::stored("index.html", INDEX), sneaky]).unwrap_err();
    assert_eq!(err.code(), "not_a_zip");
    assert!(err.to_string().contains("disagree"), "{err}");
}

#[test]
fn missing_file_is_an_io_error() {
    let err = inspect_zip(
        std::path::Path::new("/nonexistent/bundle.zip"),
        &ZipLimits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "io");
}

#[test]
fn refuses_control_characters_in_names() {
    for name in [
        &b"a\tb.js"[..],
        b"new\nline.js",
        b"esc\x1b[0m.js",
        b"del\x7f.js",
    ] {
        let entries = [
            RawEntry::stored("index.html", INDEX),
            RawEntry::stored(name, b"x"),
        ];
        assert_eq!(
            code_of(inspect_raw(&entries)),
            "control_character_in_name",
            "{:?}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn refuses_names_that_differ_only_by_case() {
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("assets/app.js", b"1"),
        RawEntry::stored("assets/App.js", b"2"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "case_insensitive_duplicate");
    // Two folders that merge on iOS.
    let entries = [
        RawEntry::stored("index.html", INDEX),
        RawEntry::stored("Assets/a.js", b"1"),
        RawEntry::stored("assets/b.js", b"2"),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "case_insensitive_duplicate");
    // Inside a single top-level folder too.
    let entries = [
        RawEntry::stored("dist/index.html", INDEX),
        RawEntry::stored("dist/INDEX.HTML", INDEX),
    ];
    assert_eq!(code_of(inspect_raw(&entries)), "case_insensitive_duplicate");
}

/// `zip`'s `enclosed_name()` would quietly turn these into relative paths.
#[test]
fn absolute_and_drive_names_stay_refused() {
    for name in [
        &b"/index.html"[..],
        b"/abs/x.js",
        b"C:/x.js",
        b"c:x.js",
        b"C:\\x.js",
    ] {
        let entries = [
            RawEntry::stored("index.html", INDEX),
            RawEntry::stored(name, b"x"),
        ];
        assert_eq!(
            code_of(inspect_raw(&entries)),
            "unsafe_entry_name",
            "{:?}",
            String::from_utf8_lossy(name)
        );
    }
}
