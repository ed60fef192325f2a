//! pack_dir and unpack_zip: deterministic, plugin-readable zips that unpack to the input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod common;

use common::{write_raw_zip, write_tree, RawEntry};
use std::collections::BTreeMap;
use std::path::Path;
use updraft_bundle::{inspect_zip, pack_dir, sha256_file, unpack_zip, ZipLimits};

fn sample_tree(root: &Path) {
    write_tree(
        root,
        &[
            ("index.html", b"<html><script src=\"assets/app.js\"></script></html>"),
            ("assets/app.js", b"import { CapacitorUpdater } from '@capgo/capacitor-updater'; CapacitorUpdater.notifyAppReady();"),
            ("assets/big.css", "body { color: red; }\n".repeat(5000).as_bytes()),
            ("assets/empty.txt", b""),
            ("assets/nested/deep/file.json", b"{\"a\":1}"),
            ("zz-last.txt", b"last"),
            (".env", b"SECRET=1"),
            (".git/config", b"[core]"),
            ("assets/.DS_Store", b"junk"),
            ("__MACOSX/._index.html", b"junk"),
        ],
    );
}

/// Every file under `root` (relative path → bytes).
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for child in std::fs::read_dir(dir).unwrap() {
            let child = child.unwrap();
            let name = format!("{prefix}{}", child.file_name().to_string_lossy());
            if child.file_type().unwrap().is_dir() {
                walk(&child.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, std::fs::read(child.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

fn is_skipped(name: &str) -> bool {
    name.split('/')
        .any(|part| part.starts_with('.') || part.starts_with("__MACOSX"))
}

#[test]
fn packing_is_deterministic() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    sample_tree(&source);
    let first = pack_dir(&source, &work.path().join("a.zip")).unwrap();
    // Different mtimes must not matter.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(source.join("zz-last.txt"), b"last").unwrap();
    let second = pack_dir(&source, &work.path().join("b.zip")).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        first.sha256,
        sha256_file(&work.path().join("a.zip")).unwrap()
    );
    assert_eq!(
        first.bytes,
        std::fs::metadata(work.path().join("a.zip")).unwrap().len()
    );
    assert_eq!(first.files, 6);
    assert!(first.calls_notify_app_ready);
    // Changing one byte of content changes the zip.
    std::fs::write(source.join("zz-last.txt"), b"Last").unwrap();
    let third = pack_dir(&source, &work.path().join("c.zip")).unwrap();
    assert_ne!(third.sha256, first.sha256);
}

#[test]
fn packed_zip_skips_hidden_files_and_passes_inspection() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    sample_tree(&source);
    let zip_path = work.path().join("bundle.zip");
    pack_dir(&source, &zip_path).unwrap();
    let summary = inspect_zip(&zip_path, &ZipLimits::default()).unwrap();
    assert_eq!(summary.root_prefix, None);
    assert!(summary.calls_notify_app_ready);
    let names: Vec<&str> = summary
        .files
        .iter()
        .map(|file| file.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "assets/app.js",
            "assets/big.css",
            "assets/empty.txt",
            "assets/nested/deep/file.json",
            "index.html",
            "zz-last.txt"
        ]
    );

    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).unwrap();
        assert!(
            !entry.flags().is_using_data_descriptor(),
            "{} has a data descriptor",
            entry.name().unwrap()
        );
        assert!(!entry.name().unwrap().contains('\\'));
        if entry.is_file() {
            let expected = if entry.size() == 0 {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            };
            assert_eq!(entry.compression(), expected, "{}", entry.name().unwrap());
            assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o644);
        }
    }
    // Local headers carry no data-descriptor bit either (what Android's ZipInputStream reads).
    let bytes = std::fs::read(&zip_path).unwrap();
    let mut position = 0;
    let mut local_headers = 0;
    while let Some(offset) = bytes[position..]
        .windows(4)
        .position(|window| window == [0x50, 0x4b, 0x03, 0x04])
    {
        let header = position + offset;
        let flags = u16::from_le_bytes([bytes[header + 6], bytes[header + 7]]);
        assert_eq!(flags & 0x0008, 0, "local header at {header}");
        local_headers += 1;
        position = header + 4;
    }
    assert!(local_headers >= 6, "{local_headers}");
}

#[test]
fn unpack_of_pack_equals_the_source_minus_skipped_files() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    sample_tree(&source);
    let zip_path = work.path().join("bundle.zip");
    let packed = pack_dir(&source, &zip_path).unwrap();
    let dest = work.path().join("device");
    let unpacked = unpack_zip(&zip_path, &dest).unwrap();
    assert_eq!(unpacked.root, dest.canonicalize().unwrap());
    assert_eq!(unpacked.files, packed.files);
    let expected: BTreeMap<String, Vec<u8>> = read_tree(&source)
        .into_iter()
        .filter(|(name, _)| !is_skipped(name))
        .collect();
    assert_eq!(expected.len(), 6);
    assert_eq!(read_tree(&unpacked.root), expected);
    assert_eq!(
        unpacked.bytes,
        expected.values().map(|data| data.len() as u64).sum::<u64>()
    );
}

#[test]
fn pack_requires_index_html_at_the_root() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    write_tree(&source, &[("www/index.html", b"<html></html>")]);
    let err = pack_dir(&source, &work.path().join("x.zip")).unwrap_err();
    assert_eq!(err.code(), "missing_index_html");
}

#[cfg(unix)]
#[test]
fn pack_refuses_symlinks() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    write_tree(&source, &[("index.html", b"<html></html>")]);
    std::os::unix::fs::symlink("/etc/passwd", source.join("passwd")).unwrap();
    let err = pack_dir(&source, &work.path().join("x.zip")).unwrap_err();
    assert_eq!(err.code(), "symlink_entry");
    assert!(err.to_string().contains("passwd"), "{err}");
}

#[test]
fn pack_reports_missing_notify_app_ready() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    // The call is only in a non-scanned file type.
    write_tree(
        &source,
        &[
            ("index.html", b"<html></html>"),
            ("notes.txt", b"notifyAppReady"),
        ],
    );
    let summary = pack_dir(&source, &work.path().join("x.zip")).unwrap();
    assert!(!summary.calls_notify_app_ready);
}

#[test]
fn unpack_unwraps_a_single_top_folder() {
    let work = tempfile::tempdir().unwrap();
    let zip_path = write_raw_zip(
        work.path(),
        "b.zip",
        &[
            RawEntry::dir("www/"),
            RawEntry::stored("www/index.html", b"<html/>"),
            RawEntry::stored("www/a/b.js", b"1"),
        ],
    );
    let dest = work.path().join("device");
    let summary = unpack_zip(&zip_path, &dest).unwrap();
    assert_eq!(summary.root, dest.canonicalize().unwrap().join("www"));
    assert_eq!(summary.files, 2);
    assert_eq!(std::fs::read(summary.root.join("a/b.js")).unwrap(), b"1");
}

#[test]
fn unpack_refuses_what_the_plugin_refuses() {
    let work = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<RawEntry>, &str); 4] = [
        (
            "slip",
            vec![
                RawEntry::stored("index.html", b"x"),
                RawEntry::stored("../evil.js", b"x"),
            ],
            "unsafe_entry_name",
        ),
        (
            "abs",
            vec![
                RawEntry::stored("index.html", b"x"),
                RawEntry::stored("/tmp/evil.js", b"x"),
            ],
            "unsafe_entry_name",
        ),
        (
            "macosx",
            vec![
                RawEntry::stored("__MACOSX/x", b"x"),
                RawEntry::stored("dist/index.html", b"x"),
            ],
            "missing_index_html",
        ),
        (
            "noindex",
            vec![RawEntry::stored("main.html", b"x")],
            "missing_index_html",
        ),
    ];
    for (label, entries, code) in cases {
        let zip_path = write_raw_zip(work.path(), &format!("{label}.zip"), &entries);
        let dest = work.path().join(format!("device-{label}"));
        let err = unpack_zip(&zip_path, &dest).unwrap_err();
        assert_eq!(err.code(), code, "{label}");
    }
    assert!(!work.path().join("evil.js").exists());
    let mut link = RawEntry::stored("link", b"/etc/passwd");
    link.external_attributes = 0o120777 << 16;
    let zip_path = write_raw_zip(
        work.path(),
        "link.zip",
        &[RawEntry::stored("index.html", b"x"), link],
    );
    assert_eq!(
        unpack_zip(&zip_path, &work.path().join("device-link"))
            .unwrap_err()
            .code(),
        "symlink_entry"
    );
}

#[cfg(unix)]
#[test]
fn unpack_does_not_follow_a_symlinked_folder_out_of_dest() {
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dest = work.path().join("device");
    std::fs::create_dir_all(&dest).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("assets")).unwrap();
    let zip_path = write_raw_zip(
        work.path(),
        "b.zip",
        &[
            RawEntry::stored("index.html", b"x"),
            RawEntry::stored("assets/a.js", b"1"),
        ],
    );
    let err = unpack_zip(&zip_path, &dest).unwrap_err();
    assert_eq!(err.code(), "unsafe_entry_name");
    assert!(!outside.join("a.js").exists());
}

#[test]
fn packing_into_the_source_folder_does_not_pack_the_zip_itself() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("dist");
    write_tree(&source, &[("index.html", b"<html></html>")]);
    let out = source.join("bundle.zip");
    let first = pack_dir(&source, &out).unwrap();
    let second = pack_dir(&source, &out).unwrap();
    assert_eq!(first.files, 1);
    assert_eq!(second, first);
}
