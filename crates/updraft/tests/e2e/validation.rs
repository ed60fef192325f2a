//! Every upload validation rule, through the real server: a crafted bad zip
//! (or version) is refused with its own code, and no bundle appears.

use crate::harness::{Server, APP};
use crate::storage::{self, create_app, put_blob};
use reqwest::Method;
use serde_json::{json, Value};

// The same crafted-zip writer the library's own validation tests use.
#[path = "../../../updraft-bundle/tests/common/mod.rs"]
mod crafted;

use crafted::{raw_zip, RawEntry};

const INDEX: &[u8] = b"<html><script>CapacitorUpdater.notifyAppReady()</script></html>";

fn with_index(extra: Vec<RawEntry>) -> Vec<u8> {
    let mut entries = vec![RawEntry::stored("index.html", INDEX)];
    entries.extend(extra);
    raw_zip(&entries)
}

fn entry(name: &[u8], edit: impl FnOnce(&mut RawEntry)) -> RawEntry {
    let mut entry = RawEntry::stored(name, b"console.log(1)");
    edit(&mut entry);
    entry
}

/// A deflated zip of `index.html` plus `files`.
fn deflated(files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![("index.html", INDEX)];
    all.extend_from_slice(files);
    std::fs::read(crafted::deflated_zip(dir.path(), "z.zip", &all)).unwrap()
}

async fn bundle_names(s: &Server) -> Vec<String> {
    let (status, list) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/bundles?include_deleted=true"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    list["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["version"].as_str().unwrap().to_string())
        .collect()
}

async fn publish(s: &Server, version: &str, zip: &[u8]) -> (u16, Value) {
    let hash = put_blob(s, zip).await;
    storage::publish(
        s,
        json!({"version": version, "zip_sha256": hash, "checksum": hash}),
    )
    .await
}

#[tokio::test]
async fn every_validation_rule_refuses_its_zip_and_changes_nothing() {
    let s = Server::start_with(&[
        ("UPDRAFT_ZIP_MAX_ENTRIES", "20"),
        ("UPDRAFT_ZIP_MAX_ENTRY_SIZE", "100000"),
        ("UPDRAFT_ZIP_MAX_TOTAL_SIZE", "300000"),
    ])
    .await;
    create_app(&s).await;
    let (status, body) = publish(&s, "1.0.0", &with_index(Vec::new())).await;
    assert_eq!(status, 201, "a good zip is accepted: {body}");
    let (status, body) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/bundles/1.0.0"),
            None,
        )
        .await;
    assert!(status == 204 || status == 200, "{body}");
    let (status, body) = publish(&s, "1.0.1", &with_index(Vec::new())).await;
    assert_eq!(status, 201, "{body}");
    let before = bundle_names(&s).await;

    let mut symlink = RawEntry::stored("assets/link", b"../../etc/passwd");
    symlink.external_attributes = 0o120777 << 16;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no index.html",
            raw_zip(&[RawEntry::stored("app.js", b"1")]),
            "missing_index_html",
        ),
        (
            "two top folders",
            raw_zip(&[
                RawEntry::stored("a/index.html", INDEX),
                RawEntry::stored("b/app.js", b"1"),
            ]),
            "missing_index_html",
        ),
        (
            "__MACOSX beside the folder",
            raw_zip(&[
                RawEntry::stored("__MACOSX/dist/._index.html", b"x"),
                RawEntry::stored("dist/index.html", INDEX),
            ]),
            "missing_index_html",
        ),
        (
            "dot-dot",
            with_index(vec![RawEntry::stored("../evil.js", b"x")]),
            "unsafe_entry_name",
        ),
        (
            "absolute",
            with_index(vec![RawEntry::stored("/etc/evil.js", b"x")]),
            "unsafe_entry_name",
        ),
        (
            "drive letter",
            with_index(vec![RawEntry::stored("C:/evil.js", b"x")]),
            "unsafe_entry_name",
        ),
        (
            "backslash",
            with_index(vec![RawEntry::stored("assets\\evil.js", b"x")]),
            "unsafe_entry_name",
        ),
        (
            "NUL",
            with_index(vec![RawEntry::stored(b"a\0b.js", b"x")]),
            "unsafe_entry_name",
        ),
        ("symlink", with_index(vec![symlink]), "symlink_entry"),
        (
            "STORED with a data descriptor",
            with_index(vec![entry(b"app.js", |e| e.flags |= 0x0008)]),
            "unsupported_entry",
        ),
        (
            "encrypted entry",
            with_index(vec![entry(b"app.js", |e| e.flags |= 0x0001)]),
            "unsupported_entry",
        ),
        (
            "bzip2 entry",
            with_index(vec![entry(b"app.js", |e| e.method = 12)]),
            "unsupported_entry",
        ),
        (
            "duplicate",
            with_index(vec![
                RawEntry::stored("a.js", b"1"),
                RawEntry::stored("a.js", b"2"),
            ]),
            "duplicate_entry",
        ),
        (
            "too many entries",
            with_index(
                (0..20)
                    .map(|i| RawEntry::stored(format!("f{i}.js"), b"1"))
                    .collect(),
            ),
            "too_many_entries",
        ),
        (
            "entry too large",
            with_index(vec![RawEntry::stored("big.bin", vec![7u8; 100_001])]),
            "entry_too_large",
        ),
        (
            "bundle too large",
            with_index(
                (0..4)
                    .map(|i| RawEntry::stored(format!("part{i}.bin"), vec![i as u8; 90_000]))
                    .collect(),
            ),
            "bundle_too_large",
        ),
        (
            "not a zip",
            b"this is not a zip archive".to_vec(),
            "not_a_zip",
        ),
    ];
    for (what, zip, code) in cases {
        let (status, body) = publish(&s, "2.0.0", &zip).await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert_eq!(bundle_names(&s).await, before, "{what} changed the bundles");
    }

    // A zip bomb, judged by the default ratio limit on its real content.
    let bomb_server = Server::start().await;
    create_app(&bomb_server).await;
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let (status, body) = publish(&bomb_server, "2.0.0", &deflated(&[("zeros.bin", &zeros)])).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "compression_ratio_exceeded", "{body}");
    assert!(bundle_names(&bomb_server).await.is_empty());

    // Version rules, with a valid zip.
    let good = with_index(vec![RawEntry::stored("app.js", b"2")]);
    for (version, status, code) in [
        ("not-semver", 400, "invalid_version"),
        ("1.0.1", 409, "bundle_already_exists"),
        ("1.0.0", 409, "bundle_version_deleted"),
    ] {
        let (got, body) = publish(&s, version, &good).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{version}: {body}"
        );
        assert_eq!(
            bundle_names(&s).await,
            before,
            "{version} changed the bundles"
        );
    }
}
