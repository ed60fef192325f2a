//! Bundles stored by Updraft: resumable uploads, publishing with validation,
//! device downloads (ranges, ETag, caching) and crash safety of uploads.

use crate::harness::{device_body, with, Server, APP};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub(crate) fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A zip the plugin can unpack (seekable writer: no data descriptors).
fn make_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Bytes that do not compress much, so chunks and ranges are meaningful.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn app_zip() -> Vec<u8> {
    make_zip(&[
        ("index.html", b"<!doctype html><script src=app.js></script>"),
        ("app.js", &noise(200_000, 7)),
    ])
}

pub(crate) async fn create_app(s: &Server) {
    let (st, b) = s
        .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": APP})))
        .await;
    assert_eq!(st, 201, "{b}");
}

async fn start_upload(s: &Server, bytes: &[u8]) -> (u16, Value) {
    s.api(
        Method::POST,
        "/api/v1/uploads",
        Some(&json!({"size": bytes.len(), "sha256": sha(bytes)})),
    )
    .await
}

async fn patch(s: &Server, upload_id: &str, offset: u64, chunk: Vec<u8>) -> (u16, Value) {
    let resp = s
        .http
        .patch(format!("{}/api/v1/uploads/{upload_id}", s.url))
        .bearer_auth(&s.key)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(chunk)
        .send()
        .await
        .expect("patch");
    Server::read(resp).await
}

/// Uploads `bytes` in one PATCH; returns the blob's SHA-256.
pub(crate) async fn put_blob(s: &Server, bytes: &[u8]) -> String {
    let digest = sha(bytes);
    let resp = s
        .http
        .put(format!("{}/api/v1/blobs/{digest}", s.url))
        .bearer_auth(&s.key)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let (st, b) = Server::read(resp).await;
    assert!(st == 201 || st == 200, "{st} {b}");
    digest
}

pub(crate) async fn publish(s: &Server, body: Value) -> (u16, Value) {
    s.api(
        Method::POST,
        &format!("/api/v1/apps/{APP}/bundles"),
        Some(&body),
    )
    .await
}

async fn public_channel(s: &Server, version: &str) {
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "production", "public": true, "bundle": version})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
}

async fn get(s: &Server, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = s.http.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn an_uploaded_zip_is_resumable_published_and_served_with_ranges() {
    let s = Server::start().await;
    create_app(&s).await;
    let zip = app_zip();
    let digest = sha(&zip);
    let len = zip.len() as u64;
    let (st, created) = start_upload(&s, &zip).await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["offset"], 0);
    assert_eq!(created["complete"], false);
    assert_eq!(created["size"], len);
    assert_eq!(created["sha256"], digest);
    let id = created["upload_id"].as_str().unwrap().to_string();

    let third = zip.len() / 3;
    let (st, b) = patch(&s, &id, 0, zip[..third].to_vec()).await;
    assert_eq!(
        (st, b["offset"].as_u64(), b["complete"].as_bool()),
        (200, Some(third as u64), Some(false)),
        "{b}"
    );

    // A stale offset is refused and told where the upload stands.
    let (st, b) = patch(&s, &id, 0, zip[..third].to_vec()).await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"], "upload_offset_mismatch");
    assert_eq!(b["offset"], third as u64);

    // A restarted client asks again and resumes the same session.
    let (st, resumed) = start_upload(&s, &zip).await;
    assert_eq!(st, 200, "{resumed}");
    assert_eq!(resumed["upload_id"], id.as_str());
    assert_eq!(resumed["offset"], third as u64);
    let (st, shown) = s
        .api(Method::GET, &format!("/api/v1/uploads/{id}"), None)
        .await;
    assert_eq!((st, shown["offset"].as_u64()), (200, Some(third as u64)));

    let (st, b) = patch(&s, &id, third as u64, zip[third..2 * third].to_vec()).await;
    assert_eq!(
        (st, b["offset"].as_u64()),
        (200, Some(2 * third as u64)),
        "{b}"
    );
    // Bytes past the declared size are refused and nothing is appended.
    let mut too_much = zip[2 * third..].to_vec();
    too_much.push(0);
    let (st, b) = patch(&s, &id, 2 * third as u64, too_much).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("upload_overflow")),
        "{b}"
    );
    let (_, shown) = s
        .api(Method::GET, &format!("/api/v1/uploads/{id}"), None)
        .await;
    assert_eq!(shown["offset"], 2 * third as u64);
    let (st, b) = patch(&s, &id, 2 * third as u64, zip[2 * third..].to_vec()).await;
    assert_eq!(
        (st, b["offset"].as_u64(), b["complete"].as_bool()),
        (200, Some(len), Some(true)),
        "{b}"
    );

    // The blob is there now: a new upload of the same file has nothing to send.
    let (st, again) = start_upload(&s, &zip).await;
    assert_eq!(st, 200);
    assert_eq!(
        (again["complete"].as_bool(), again["offset"].as_u64()),
        (Some(true), Some(len))
    );

    let (st, bundle) = publish(
        &s,
        json!({"version": "1.0.1", "zip_sha256": digest, "checksum": digest}),
    )
    .await;
    assert_eq!(st, 201, "{bundle}");
    assert_eq!(bundle["zip_sha256"], digest);
    assert_eq!(bundle["size"], len);
    assert_eq!(bundle["manifest_count"], 0);
    let expected_url = format!("{}/dl/{APP}/1.0.1/{digest}.zip", s.url);
    assert_eq!(bundle["url"], expected_url);
    public_channel(&s, "1.0.1").await;

    let (st, answer) = s.post("/updates", &device_body()).await;
    assert_eq!(st, 200, "{answer}");
    assert_eq!(answer["version"], "1.0.1");
    assert_eq!(answer["url"], expected_url);
    assert_eq!(answer["checksum"], digest);

    let resp = get(&s, &expected_url, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/zip")
    );
    assert_eq!(header(&resp, "content-length"), Some(len.to_string()));
    assert_eq!(header(&resp, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(header(&resp, "etag"), Some(format!("\"{digest}\"")));
    assert_eq!(
        header(&resp, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), zip);

    let resp = get(&s, &expected_url, &[("range", "bytes=10-19")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range"),
        Some(format!("bytes 10-19/{len}"))
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), zip[10..20].to_vec());
    // What a resuming Android download sends.
    let resp = get(
        &s,
        &expected_url,
        &[("range", &format!("bytes={}-", len - 100))],
    )
    .await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        zip[zip.len() - 100..].to_vec()
    );
    let resp = get(&s, &expected_url, &[("range", "bytes=-7")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        header(&resp, "content-range"),
        Some(format!("bytes {}-{}/{len}", len - 7, len - 1))
    );
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        zip[zip.len() - 7..].to_vec()
    );
    let resp = get(&s, &expected_url, &[("range", &format!("bytes={len}-"))]).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(
        header(&resp, "content-range"),
        Some(format!("bytes */{len}"))
    );
    let resp = get(&s, &expected_url, &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(resp.status(), 200, "multi-range gets the whole file");
    assert_eq!(resp.bytes().await.unwrap().len(), zip.len());

    let resp = s.http.head(&expected_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), Some(len.to_string()));
    assert!(resp.bytes().await.unwrap().is_empty());

    let resp = get(
        &s,
        &expected_url,
        &[("if-none-match", &format!("\"{digest}\""))],
    )
    .await;
    assert_eq!(resp.status(), 304);
    let resp = get(&s, &expected_url, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(resp.status(), 200);

    // Only this bundle's blobs are served under its path.
    let other = put_blob(&s, b"not part of 1.0.1").await;
    for path in [
        format!("/dl/{APP}/1.0.1/{other}.zip"),
        format!("/dl/{APP}/1.0.1/{other}"),
        format!("/dl/{APP}/9.9.9/{digest}.zip"),
        format!("/dl/com.other.app/1.0.1/{digest}.zip"),
    ] {
        let resp = get(&s, &format!("{}{path}", s.url), &[]).await;
        assert_eq!(resp.status(), 404, "{path}");
    }

    // A deleted bundle is not served any more (forced: a channel serves it).
    let (st, _) = s
        .api(
            Method::DELETE,
            &format!("/api/v1/apps/{APP}/bundles/1.0.1?force=true"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(get(&s, &expected_url, &[]).await.status(), 404);
}

#[tokio::test]
async fn a_manifest_bundle_serves_every_file_with_real_sizes() {
    let s = Server::start().await;
    create_app(&s).await;
    let index = b"<!doctype html><title>delta</title>".to_vec();
    let script = noise(5000, 3);
    let script_on_wire = noise(3000, 4); // stands in for its Brotli form
    let index_sha = sha(&index);

    let resp = s
        .http
        .put(format!("{}/api/v1/blobs/{index_sha}", s.url))
        .bearer_auth(&s.key)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    let (st, b) = Server::read(resp).await;
    assert_eq!(
        (st, b["sha256"].as_str(), b["size"].as_u64()),
        (201, Some(index_sha.as_str()), Some(index.len() as u64))
    );
    let resp = s
        .http
        .put(format!("{}/api/v1/blobs/{index_sha}", s.url))
        .bearer_auth(&s.key)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "stored once");
    let resp = s
        .http
        .put(format!("{}/api/v1/blobs/{}", s.url, sha(b"claimed")))
        .bearer_auth(&s.key)
        .body(b"other bytes".to_vec())
        .send()
        .await
        .unwrap();
    let (st, b) = Server::read(resp).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (422, Some("checksum_mismatch")),
        "{b}"
    );

    let wire_sha = sha(&script_on_wire);
    let (st, b) = s
        .api(
            Method::POST,
            "/api/v1/blobs/missing",
            Some(&json!({"sha256": [index_sha, wire_sha.to_uppercase()]})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["missing"], json!([wire_sha]));

    let manifest = json!([
        {"file_name": "index.html", "file_hash": index_sha, "blob_sha256": index_sha},
        {"file_name": "assets/app.js.br", "file_hash": sha(&script), "blob_sha256": wire_sha},
    ]);
    let (st, b) = publish(&s, json!({"version": "1.0.2", "manifest": manifest})).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (422, Some("blob_missing")),
        "{b}"
    );
    assert_eq!(b["missing"], json!([wire_sha]));

    put_blob(&s, &script_on_wire).await;
    let (st, bundle) = publish(&s, json!({"version": "1.0.2", "manifest": manifest})).await;
    assert_eq!(st, 201, "{bundle}");
    assert_eq!(bundle["manifest_count"], 2);
    public_channel(&s, "1.0.2").await;

    let (st, answer) = s.post("/updates", &device_body()).await;
    assert_eq!(st, 200, "{answer}");
    let files = answer["manifest"].as_array().expect("manifest").clone();
    assert_eq!(files.len(), 2);
    let expected = [
        ("index.html", index_sha.clone(), index.clone()),
        ("assets/app.js.br", wire_sha.clone(), script_on_wire.clone()),
    ];
    for (file, (name, blob, bytes)) in files.iter().zip(expected.iter()) {
        assert_eq!(file["file_name"], *name);
        let url = format!("{}/dl/{APP}/1.0.2/{blob}", s.url);
        assert_eq!(file["download_url"], url);
        let resp = get(&s, &url, &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(header(&resp, "content-encoding"), None);
        assert_eq!(resp.bytes().await.unwrap().to_vec(), *bytes);
    }

    let size_request = with(
        device_body(),
        json!({"version": "1.0.2", "manifest": files}),
    );
    let (st, sizes) = s.post("/updates/manifest_size", &size_request).await;
    assert_eq!(st, 200, "{sizes}");
    assert_eq!(
        sizes["totalSize"],
        (index.len() + script_on_wire.len()) as u64
    );
    assert_eq!(sizes["knownFiles"], 2);
}

#[tokio::test]
async fn invalid_bundles_are_refused_with_their_codes_and_change_nothing() {
    let s = Server::start().await;
    create_app(&s).await;
    let no_index = put_blob(&s, &make_zip(&[("app.js", b"x")])).await;
    let unsafe_name = put_blob(&s, &make_zip(&[("index.html", b"x"), ("../evil.js", b"x")])).await;
    let not_zip = put_blob(&s, b"this is not a zip archive at all").await;
    let good = put_blob(&s, &app_zip()).await;
    let unknown = sha(b"never uploaded");
    let other = sha(b"something else");
    let cases = [
        (
            json!({"version": "2.0.0", "zip_sha256": no_index, "checksum": no_index}),
            "missing_index_html",
        ),
        (
            json!({"version": "2.0.0", "zip_sha256": unsafe_name, "checksum": unsafe_name}),
            "unsafe_entry_name",
        ),
        (
            json!({"version": "2.0.0", "zip_sha256": not_zip, "checksum": not_zip}),
            "not_a_zip",
        ),
        (
            json!({"version": "2.0.0", "zip_sha256": good, "checksum": other}),
            "checksum_mismatch",
        ),
        (
            json!({"version": "2.0.0", "zip_sha256": unknown, "checksum": unknown}),
            "blob_missing",
        ),
        (
            json!({"version": "2.0.0", "manifest": [{"file_name": "../x.js", "file_hash": good, "blob_sha256": good}]}),
            "unsafe_entry_name",
        ),
        (
            json!({"version": "2.0.0", "manifest": [{"file_name": "app.js", "file_hash": good, "blob_sha256": good}]}),
            "missing_index_html",
        ),
        (
            json!({"version": "2.0.0", "manifest": [
                {"file_name": "index.html", "file_hash": good, "blob_sha256": good},
                {"file_name": "index.html.br", "file_hash": other, "blob_sha256": good}]}),
            "duplicate_manifest_entry",
        ),
        (
            json!({"version": "2.0.0", "manifest": [{"file_name": "index.html", "file_hash": other, "blob_sha256": good}]}),
            "checksum_mismatch",
        ),
    ];
    for (body, code) in cases {
        let (st, b) = publish(&s, body.clone()).await;
        assert_eq!(
            (st, b["error"].as_str()),
            (422, Some(code)),
            "{body} -> {b}"
        );
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (st, b) = publish(&s, json!({"version": "2.0.0", "zip_sha256": good, "external_url": "https://x.example/a.zip", "checksum": good})).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_body")),
        "{b}"
    );
    let (st, b) = publish(&s, json!({"version": "2.0.0", "zip_sha256": good})).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_body")),
        "{b}"
    );
    let (_, list) = s
        .api(
            Method::GET,
            &format!("/api/v1/apps/{APP}/bundles?include_deleted=true"),
            None,
        )
        .await;
    assert_eq!(list["bundles"], json!([]), "nothing was created");

    // An encrypted zip cannot be inspected: it only has to be stored.
    let (st, b) = publish(
        &s,
        json!({
            "version": "2.0.0", "zip_sha256": not_zip, "checksum": good,
            "session_key": "aXY=:a2V5", "encrypted_checksum": "ab".repeat(256), "key_id": "MIIB"
        }),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["encrypted"], true);
    assert_eq!(b["zip_sha256"], not_zip);
}

/// Every file under `blobs/` is a complete blob at its own name.
fn assert_only_complete_blobs(data_dir: &Path) {
    let mut stack = vec![data_dir.join("blobs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(
                sha(&bytes),
                name,
                "{} is not a complete blob",
                entry.path().display()
            );
            let rel = entry
                .path()
                .strip_prefix(data_dir.join("blobs"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert_eq!(rel, format!("{}/{}/{name}", &name[0..2], &name[2..4]));
        }
    }
}

#[tokio::test]
async fn a_kill_mid_upload_keeps_a_durable_prefix_and_the_upload_finishes_after_restart() {
    let mut s = Server::start().await;
    create_app(&s).await;
    let zip = make_zip(&[
        ("index.html", b"<!doctype html>"),
        ("big.bin", &noise(5 * 1024 * 1024, 11)),
    ]);
    let digest = sha(&zip);
    let (st, created) = start_upload(&s, &zip).await;
    assert_eq!(st, 201, "{created}");
    let id = created["upload_id"].as_str().unwrap().to_string();
    // Larger than axum's default body limit: PATCH bodies are streamed, not buffered.
    let first = 5 * 1024 * 1024 / 2;
    let (st, b) = patch(&s, &id, 0, zip[..first].to_vec()).await;
    assert_eq!((st, b["offset"].as_u64()), (200, Some(first as u64)), "{b}");

    // A PATCH that sends another MiB and then stalls, as a dying connection would.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let request = s
        .http
        .patch(format!("{}/api/v1/uploads/{id}", s.url))
        .bearer_auth(&s.key)
        .header("upload-offset", first.to_string())
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let pending = tokio::spawn(request);
    let second = 1024 * 1024;
    tx.send(Ok(zip[first..first + second].to_vec()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    s.sigkill();
    drop(tx);
    let _ = pending.await;

    s.restart();
    let (st, resumed) = start_upload(&s, &zip).await;
    assert_eq!(st, 200, "{resumed}");
    assert_eq!(resumed["upload_id"], id.as_str());
    let offset = resumed["offset"].as_u64().unwrap();
    assert!(
        offset >= first as u64 && offset <= (first + second) as u64,
        "offset {offset}"
    );
    assert_eq!(resumed["complete"], false);
    let (_, list) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}/bundles"), None)
        .await;
    assert_eq!(list["bundles"], json!([]));
    assert_only_complete_blobs(&s.data_dir);

    let (st, done) = patch(&s, &id, offset, zip[offset as usize..].to_vec()).await;
    assert_eq!(
        (st, done["complete"].as_bool()),
        (200, Some(true)),
        "{done}"
    );
    assert_only_complete_blobs(&s.data_dir);
    let (st, b) = publish(
        &s,
        json!({"version": "1.0.1", "zip_sha256": digest, "checksum": digest}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
}

#[tokio::test]
async fn a_broken_patch_keeps_the_bytes_that_arrived() {
    let s = Server::start().await;
    let file = noise(3 * 1024 * 1024, 5);
    let (st, created) = start_upload(&s, &file).await;
    assert_eq!(st, 201, "{created}");
    let id = created["upload_id"].as_str().unwrap().to_string();
    let sent = 1024 * 1024;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let request = s
        .http
        .patch(format!("{}/api/v1/uploads/{id}", s.url))
        .bearer_auth(&s.key)
        .header("upload-offset", "0")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let pending = tokio::spawn(request);
    tx.send(Ok(file[..sent].to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client dies: its body ends with an error and the connection closes.
    tx.send(Err(std::io::Error::other("client crashed")))
        .await
        .unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the request cannot succeed"
    );
    let mut offset = 0;
    for _ in 0..50 {
        let (_, shown) = s
            .api(Method::GET, &format!("/api/v1/uploads/{id}"), None)
            .await;
        offset = shown["offset"].as_u64().unwrap();
        if offset > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        offset, sent as u64,
        "the bytes received before the break are kept"
    );
    let (st, done) = patch(&s, &id, offset, file[sent..].to_vec()).await;
    assert_eq!(
        (st, done["complete"].as_bool()),
        (200, Some(true)),
        "{done}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_uploads_and_gc() {
    let s = Server::start().await;
    let (st, doc) = s.request(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(st, 200);
    for (path, method, id) in [
        ("/api/v1/uploads", "post", "create_upload"),
        ("/api/v1/uploads/{upload_id}", "get", "show_upload"),
        ("/api/v1/uploads/{upload_id}", "patch", "append_upload"),
        ("/api/v1/blobs/{sha256}", "put", "put_blob"),
        ("/api/v1/blobs/missing", "post", "missing_blobs"),
        ("/api/v1/gc", "post", "run_gc"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["operationId"], id,
            "{path} {method}"
        );
    }
    let create = &doc["components"]["schemas"]["CreateBundle"]["properties"];
    for field in ["zip_sha256", "manifest", "external_url", "checksum"] {
        assert!(create.get(field).is_some(), "CreateBundle.{field} missing");
    }
}
