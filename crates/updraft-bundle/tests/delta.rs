//! build_delta and decode_delta_file: §5 wire rules and device-side decoding.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod common;

use common::{write_raw_zip, RawEntry};
use std::sync::OnceLock;
use updraft_bundle::delta::{BROTLI_MIN_SAVING, BROTLI_MIN_SIZE};
use updraft_bundle::{
    build_delta, decode_delta_file, decrypt_checksum, generate_key_pair, sha256_bytes, sha256_file,
    PrivateKey, PublicKey, SessionKey,
};

fn key_pair() -> &'static (PrivateKey, PublicKey) {
    static PAIR: OnceLock<(PrivateKey, PublicKey)> = OnceLock::new();
    PAIR.get_or_init(|| generate_key_pair().unwrap())
}

/// Compressible text of exactly `len` bytes.
fn text(len: usize) -> Vec<u8> {
    "const answer = 42; // padding padding padding\n"
        .bytes()
        .cycle()
        .take(len)
        .collect()
}

/// Incompressible bytes (xorshift) of exactly `len` bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn sample_entries() -> Vec<RawEntry> {
    vec![
        RawEntry::dir("dist/"),
        RawEntry::stored("dist/index.html", b"<html>notifyAppReady</html>"),
        RawEntry::dir("dist/assets/"),
        RawEntry::stored("dist/assets/big.js", text(20_000)),
        RawEntry::stored(
            "dist/assets/just-below.js",
            text(BROTLI_MIN_SIZE as usize - 1),
        ),
        RawEntry::stored(
            "dist/assets/at-threshold.js",
            text(BROTLI_MIN_SIZE as usize),
        ),
        RawEntry::stored("dist/assets/noise.bin", noise(10_000, 7)),
        RawEntry::stored("dist/assets/empty.txt", b""),
        RawEntry::stored("dist/assets/copy-of-big.js", text(20_000)),
    ]
}

#[test]
fn plain_delta_follows_the_brotli_rule_and_strips_the_top_folder() {
    let work = tempfile::tempdir().unwrap();
    let zip = write_raw_zip(work.path(), "b.zip", &sample_entries());
    let out = work.path().join("blobs");
    let files = build_delta(&zip, &out, None).unwrap();
    let names: Vec<&str> = files.iter().map(|file| file.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "index.html",
            "assets/big.js.br",
            "assets/just-below.js",
            "assets/at-threshold.js.br",
            "assets/noise.bin",
            "assets/empty.txt",
            "assets/copy-of-big.js.br",
        ]
    );
    let originals: Vec<Vec<u8>> = sample_entries()
        .into_iter()
        .filter(|entry| !entry.name.ends_with(b"/"))
        .map(|entry| entry.data)
        .collect();
    for (file, original) in files.iter().zip(&originals) {
        // file_hash is the SHA-256 of the final content, not of the served bytes.
        assert_eq!(file.file_hash, sha256_bytes(original), "{}", file.file_name);
        let served = std::fs::read(&file.path).unwrap();
        assert_eq!(file.size, served.len() as u64);
        assert_eq!(file.blob_sha256, sha256_bytes(&served));
        assert_eq!(file.path, out.join(&file.blob_sha256));
        let (disk_name, content) = decode_delta_file(&file.file_name, &served, None).unwrap();
        assert_eq!(&content, original, "{}", file.file_name);
        assert_eq!(disk_name, file.file_name.trim_end_matches(".br"));
        if file.file_name.ends_with(".br") {
            assert!(file.size + BROTLI_MIN_SAVING < original.len() as u64);
        } else {
            assert_eq!(served, *original, "uncompressed files are served as-is");
        }
    }
    // The empty file is included, with the well-known empty hash.
    assert_eq!(
        files[5].file_hash,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(files[5].size, 0);
    // Identical content is stored once.
    assert_eq!(files[1].path, files[6].path);
    let stored: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(stored.len(), 6, "{stored:?}");
}

#[test]
fn incompressible_large_files_are_not_renamed() {
    let work = tempfile::tempdir().unwrap();
    let zip = write_raw_zip(
        work.path(),
        "b.zip",
        &[
            RawEntry::stored("index.html", b"<html/>"),
            RawEntry::stored("random.bin", noise(50_000, 3)),
        ],
    );
    let files = build_delta(&zip, &work.path().join("blobs"), None).unwrap();
    assert_eq!(files[1].file_name, "random.bin");
    assert_eq!(files[1].size, 50_000);
}

#[test]
fn encrypted_delta_decodes_back_to_the_original_bytes() {
    let (private_key, public_key) = key_pair();
    let session = SessionKey::generate();
    let work = tempfile::tempdir().unwrap();
    let zip = write_raw_zip(work.path(), "b.zip", &sample_entries());
    let out = work.path().join("blobs");
    let files = build_delta(&zip, &out, Some((&session, private_key))).unwrap();
    assert_eq!(files.len(), 7);
    let originals: Vec<Vec<u8>> = sample_entries()
        .into_iter()
        .filter(|entry| !entry.name.ends_with(b"/"))
        .map(|entry| entry.data)
        .collect();
    // What a device does: open the wire session key, decrypt each file, check the RSA hash.
    let device_session = SessionKey::open(&session.seal(private_key).unwrap(), public_key).unwrap();
    for (file, original) in files.iter().zip(&originals) {
        assert_eq!(file.file_hash.len(), 512, "{}", file.file_name);
        assert_eq!(
            decrypt_checksum(public_key, &file.file_hash).unwrap(),
            sha256_bytes(original)
        );
        let served = std::fs::read(&file.path).unwrap();
        assert_eq!(served.len() % 16, 0);
        assert_eq!(sha256_file(&file.path).unwrap(), file.blob_sha256);
        let (disk_name, content) =
            decode_delta_file(&file.file_name, &served, Some(&device_session)).unwrap();
        assert_eq!(&content, original, "{}", file.file_name);
        assert_eq!(disk_name, file.file_name.trim_end_matches(".br"));
        // Without the session key the bytes are not the content.
        assert_ne!(
            decode_delta_file(&file.file_name, &served, None)
                .ok()
                .map(|(_, bytes)| bytes)
                .as_ref(),
            Some(original)
        );
    }
    // Same session key and IV for every file: identical files still dedupe.
    assert_eq!(files[1].path, files[6].path);
    assert_eq!(files[1].file_name, "assets/big.js.br");
}

#[test]
fn decode_refuses_unsafe_names_and_bad_brotli() {
    assert_eq!(
        decode_delta_file("../x.js", b"1", None).unwrap_err().code(),
        "unsafe_entry_name"
    );
    assert_eq!(
        decode_delta_file("/x.js", b"1", None).unwrap_err().code(),
        "unsafe_entry_name"
    );
    // fuzz/corpus/delta_manifest/drive-after-dot: accepted, with `x:/t` as
    // the name on disk, which the same rules refuse.
    assert_eq!(
        decode_delta_file("./x:/t", b"", None).unwrap_err().code(),
        "unsafe_entry_name"
    );
    let err = decode_delta_file("x.js.br", b"this is not brotli at all", None).unwrap_err();
    assert!(err.to_string().contains("Brotli"), "{err}");
    let session = SessionKey::from_parts([9u8; 16], [8u8; 16]);
    assert_eq!(
        decode_delta_file("x.js", &[1u8; 15], Some(&session))
            .unwrap_err()
            .code(),
        "decrypt_failed"
    );
}
