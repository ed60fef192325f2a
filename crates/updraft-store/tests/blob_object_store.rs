//! The same blob-store behaviour on local disk and on a real S3-compatible
//! server (moto, started by the test kit), plus what only the object store has:
//! multipart uploads, presigned URLs and the stored object's headers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use updraft_store::blob::{BlobError, BlobInfo, BlobStore, LocalBlobStore, ObjectBlobStore};
use updraft_testkit::S3Bucket;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn object_store() -> (ObjectBlobStore, S3Bucket, TempDir) {
    let bucket = updraft_testkit::s3_bucket().await;
    let dir = TempDir::new().unwrap();
    let store = ObjectBlobStore::from_url(&bucket.url, &bucket.options(), dir.path()).unwrap();
    (store, bucket, dir)
}

fn stage(store: &dyn BlobStore, name: &str, bytes: &[u8]) -> PathBuf {
    let path = store.staging_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn staged_files(store: &dyn BlobStore) -> Vec<String> {
    std::fs::read_dir(store.staging_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn read_range(store: &dyn BlobStore, sha256: &str, start: u64, len: u64) -> Vec<u8> {
    let reader = store.open(sha256).await.unwrap().unwrap();
    let mut out = Vec::new();
    reader
        .range(start, len)
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

async fn modified_of(store: &dyn BlobStore, sha256: &str) -> std::time::SystemTime {
    store
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.sha256 == sha256)
        .unwrap()
        .modified
}

// ---- the shared behaviour -------------------------------------------------

async fn publishes_a_staged_file_and_reads_ranges(store: &dyn BlobStore) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let digest = sha(&bytes);
    let staged = stage(store, "one.part", &bytes);
    let info = store.put_file(&staged, Some(&digest)).await.unwrap();
    assert_eq!(
        info,
        BlobInfo {
            sha256: digest.clone(),
            size: 1000
        }
    );
    assert!(!staged.exists(), "the staged file is gone once published");
    assert_eq!(store.stat(&digest).await.unwrap(), Some(1000));
    assert_eq!(store.open(&digest).await.unwrap().unwrap().size, 1000);
    assert_eq!(read_range(store, &digest, 0, 1000).await, bytes);
    assert_eq!(
        read_range(store, &digest, 10, 5).await,
        bytes[10..15].to_vec()
    );
    assert_eq!(read_range(store, &digest, 999, 1).await, vec![bytes[999]]);
    assert!(read_range(store, &digest, 500, 0).await.is_empty());
    let absent = sha(b"never stored");
    assert!(store.open(&absent).await.unwrap().is_none());
    assert_eq!(store.stat(&absent).await.unwrap(), None);
}

async fn stores_the_same_content_once(store: &dyn BlobStore) {
    let first = store.put_bytes(b"same", None).await.unwrap();
    let staged = stage(store, "again.part", b"same");
    let second = store.put_file(&staged, Some(&sha(b"same"))).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.sha256, sha(b"same"));
    assert!(!staged.exists(), "the duplicate staged file is dropped");
    let listed: Vec<(String, u64)> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.sha256, e.size))
        .collect();
    assert_eq!(listed, vec![(sha(b"same"), 4)]);
    assert!(staged_files(store).is_empty());
}

async fn refuses_a_mismatch_and_keeps_nothing(store: &dyn BlobStore) {
    let claimed = sha(b"what the client promised");
    let staged = stage(store, "bad.part", b"what arrived");
    match store.put_file(&staged, Some(&claimed)).await.unwrap_err() {
        BlobError::Mismatch { expected, actual } => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, sha(b"what arrived"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = store.put_bytes(b"other", Some(&claimed)).await.unwrap_err();
    assert!(matches!(err, BlobError::Mismatch { .. }), "{err:?}");
    assert!(store.list().await.unwrap().is_empty());
    assert!(staged_files(store).is_empty());
    assert_eq!(store.stat(&sha(b"what arrived")).await.unwrap(), None);
    assert!(matches!(
        store.stat("../../etc/passwd").await,
        Err(BlobError::InvalidName(_))
    ));
}

async fn touch_restarts_the_grace_period(store: &dyn BlobStore) {
    let info = store.put_bytes(b"touch me", None).await.unwrap();
    let before = modified_of(store, &info.sha256).await;
    // S3 keeps modification times to the second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(store.touch(&info.sha256).await.unwrap());
    let after = modified_of(store, &info.sha256).await;
    assert!(
        after.duration_since(before).unwrap() >= Duration::from_secs(1),
        "{before:?} → {after:?}"
    );
    // Storing it again touches it too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.put_bytes(b"touch me", None).await.unwrap();
    let again = modified_of(store, &info.sha256).await;
    assert!(again.duration_since(after).unwrap() >= Duration::from_secs(1));
    assert!(!store.touch(&sha(b"absent")).await.unwrap());
}

async fn lists_and_deletes(store: &dyn BlobStore) {
    let a = store.put_bytes(b"a", None).await.unwrap();
    let b = store.put_bytes(b"bb", None).await.unwrap();
    store.touch(&a.sha256).await.unwrap();
    let mut expected = vec![(a.sha256.clone(), 1u64), (b.sha256.clone(), 2u64)];
    expected.sort();
    let listed: Vec<(String, u64)> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.sha256, e.size))
        .collect();
    assert_eq!(listed, expected);
    assert!(store.delete(&a.sha256).await.unwrap());
    assert!(!store.delete(&a.sha256).await.unwrap());
    assert!(store.open(&a.sha256).await.unwrap().is_none());
    assert!(!store.touch(&a.sha256).await.unwrap());
    let left: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.sha256)
        .collect();
    assert_eq!(left, vec![b.sha256.clone()]);
    // Stored again after a delete, it is a new blob.
    store.put_bytes(b"a", None).await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 2);
}

/// Large enough for a multipart upload (16 MiB parts), from a seeded PRNG.
async fn round_trips_a_large_blob(store: &dyn BlobStore) {
    let mut bytes = vec![0u8; 40 * 1024 * 1024 + 123];
    rand::rngs::StdRng::seed_from_u64(0x5eed).fill_bytes(&mut bytes);
    let digest = sha(&bytes);
    let staged = stage(store, "large.part", &bytes);
    let info = store.put_file(&staged, Some(&digest)).await.unwrap();
    assert_eq!(info.size, bytes.len() as u64);
    assert!(!staged.exists());
    assert_eq!(store.stat(&digest).await.unwrap(), Some(bytes.len() as u64));
    let whole = read_range(store, &digest, 0, bytes.len() as u64).await;
    assert_eq!(whole.len(), bytes.len());
    assert_eq!(sha(&whole), digest);
    // Across the first part boundary.
    let start = 16 * 1024 * 1024 - 10;
    assert_eq!(
        read_range(store, &digest, start as u64, 20).await,
        bytes[start..start + 20].to_vec()
    );
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn local() {
                    let dir = tempfile::TempDir::new().unwrap();
                    let store = super::LocalBlobStore::open(dir.path(), std::sync::Arc::new(updraft_core::model::SystemClock)).unwrap();
                    super::$name(&store).await;
                }

                #[tokio::test]
                async fn object() {
                    let (store, _bucket, _dir) = super::object_store().await;
                    super::$name(&store).await;
                }
            }
        )*
    };
}

on_both_stores!(
    publishes_a_staged_file_and_reads_ranges,
    stores_the_same_content_once,
    refuses_a_mismatch_and_keeps_nothing,
    touch_restarts_the_grace_period,
    lists_and_deletes,
    round_trips_a_large_blob,
);

// ---- object store only ------------------------------------------------------

#[tokio::test]
async fn blobs_live_under_the_prefix_as_plain_octet_streams() {
    let (store, bucket, _dir) = object_store().await;
    let bytes = b"\x1f\x8b looks gzipped but is just bytes";
    let info = store.put_bytes(bytes, None).await.unwrap();
    let key = store.object_key(&info.sha256);
    assert_eq!(key, format!("{}/blobs/{}", bucket.prefix, info.sha256));
    assert_eq!(BlobStore::object_key(&store, &info.sha256), Some(key));
    assert_eq!(store.local_path(&info.sha256), None);
    let url = store
        .presigned_get_url(&info.sha256, Duration::from_secs(300))
        .await
        .unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/{}/{}/blobs/{}?",
            bucket.endpoint, bucket.bucket, bucket.prefix, info.sha256
        )),
        "{url}"
    );
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/octet-stream"
    );
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes);
    // The marker a touch writes is not a blob.
    store.touch(&info.sha256).await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
}

/// HMAC-SHA256 (RFC 2104), for the SigV4 check below.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// SigV4's URI encoding: everything but unreserved characters.
fn aws_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether `url` is a valid SigV4 presigned GET for `secret` (what real S3
/// checks; moto serves presigned URLs without checking their signature).
fn sigv4_presigned_get_is_valid(url: &str, secret: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path_and_query) = rest.split_at(rest.find('/').unwrap());
    let (path, query) = path_and_query.split_once('?').unwrap();
    let mut params: Vec<(String, String)> = query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let signature = param("X-Amz-Signature");
    let date_time = param("X-Amz-Date");
    let credential = param("X-Amz-Credential");
    let scope = credential.split_once('/').unwrap().1.to_string();
    let scope_parts: Vec<&str> = scope.split('/').collect();
    params.retain(|(k, _)| k != "X-Amz-Signature");
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{}={}", aws_encode(k), aws_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request =
        format!("GET\n{path}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in &scope_parts {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())) == signature
}

#[tokio::test]
async fn a_presigned_url_serves_the_blob_and_is_properly_signed() {
    let (store, bucket, _dir) = object_store().await;
    let info = store.put_bytes(b"presigned bytes", None).await.unwrap();
    let url = store
        .presigned_url(&info.sha256, Duration::from_secs(300))
        .await
        .unwrap()
        .unwrap();
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"presigned bytes");
    assert!(url.contains("X-Amz-Expires=300&"), "{url}");
    let secret = bucket
        .env()
        .into_iter()
        .find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY")
        .unwrap()
        .1;
    assert!(!url.contains(&secret), "the URL carries no secret");
    assert!(sigv4_presigned_get_is_valid(&url, &secret), "{url}");
    assert!(!sigv4_presigned_get_is_valid(&url, "another-secret"));
    let (base, signature) = url.split_once("X-Amz-Signature=").unwrap();
    let flipped = if signature.starts_with('0') { '1' } else { '0' };
    let tampered = format!("{base}X-Amz-Signature={flipped}{}", &signature[1..]);
    assert!(!sigv4_presigned_get_is_valid(&tampered, &secret));
    let other_blob = url.replace(&info.sha256, &sha(b"another blob"));
    assert!(!sigv4_presigned_get_is_valid(&other_blob, &secret));
    // Without its signature the object is private.
    let unsigned = url.split_once('?').unwrap().0;
    assert_eq!(reqwest::get(unsigned).await.unwrap().status().as_u16(), 403);
}

#[tokio::test]
async fn the_local_store_has_no_key_and_no_presigned_url() {
    let dir = TempDir::new().unwrap();
    let store = LocalBlobStore::open(
        dir.path(),
        std::sync::Arc::new(updraft_core::model::SystemClock),
    )
    .unwrap();
    let info = store.put_bytes(b"local", None).await.unwrap();
    assert_eq!(store.object_key(&info.sha256), None);
    assert_eq!(
        store
            .presigned_url(&info.sha256, Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn open_blob_store_picks_the_store_from_the_url() {
    let bucket = updraft_testkit::s3_bucket().await;
    let dir = TempDir::new().unwrap();
    let remote = updraft_store::blob::open_blob_store(
        Some(&bucket.url),
        &bucket.options(),
        dir.path(),
        std::sync::Arc::new(updraft_core::model::SystemClock),
    )
    .unwrap();
    let info = remote.put_bytes(b"remote", None).await.unwrap();
    assert_eq!(
        remote.object_key(&info.sha256),
        Some(format!("bundles/blobs/{}", info.sha256))
    );
    assert_eq!(remote.staging_dir(), dir.path().join("staging"));
    assert!(remote.staging_dir().is_dir());
    let local = updraft_store::blob::open_blob_store(
        None,
        &[],
        dir.path(),
        std::sync::Arc::new(updraft_core::model::SystemClock),
    )
    .unwrap();
    assert!(local.local_path(&info.sha256).is_some());
    assert_eq!(local.stat(&info.sha256).await.unwrap(), None);
    // A wrong endpoint fails with a message naming no secret.
    let mut wrong = bucket.options();
    for (key, value) in &mut wrong {
        if key == "endpoint_url" {
            *value = "http://127.0.0.1:9".to_string();
        }
    }
    let unreachable = updraft_store::blob::open_blob_store(
        Some(&bucket.url),
        &wrong,
        dir.path(),
        std::sync::Arc::new(updraft_core::model::SystemClock),
    )
    .unwrap();
    let err = unreachable.stat(&info.sha256).await.unwrap_err();
    assert!(matches!(err, BlobError::ObjectStore(_)), "{err:?}");
    assert!(!err.to_string().contains("updraft-test-secret"), "{err}");
}

/// The start-up check: a real bucket passes, a missing one fails with its name.
#[tokio::test]
async fn the_check_names_a_missing_bucket() {
    let bucket = updraft_testkit::s3_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::from_url(&bucket.url, &bucket.options(), dir.path()).unwrap();
    store.check().await.unwrap();
    let missing = ObjectBlobStore::from_url(
        "s3://updraft-no-such-bucket/prefix",
        &bucket.options(),
        dir.path(),
    )
    .unwrap();
    let err = missing.check().await.unwrap_err().to_string();
    assert!(err.contains("updraft-no-such-bucket"), "{err}");
    assert!(
        err.ends_with("NoSuchBucket"),
        "the S3 code, not its XML: {err}"
    );
    assert!(
        !err.contains(updraft_testkit::s3::SECRET_ACCESS_KEY),
        "{err}"
    );
}
