//! Cross-checks with Node's crypto, the implementation the Capgo CLI uses. Skipped
//! (with a notice) when `node` is not on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use std::process::Command;
use updraft_bundle::{encrypt_bundle, encrypt_checksum, generate_key_pair, sha256_bytes};

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

const SCRIPT: &str = r#"
const crypto = require('crypto');
const fs = require('fs');
const [publicPem, privatePem, sessionKey, checksum, encPath, aesKeyHex] = process.argv.slice(1);
const pub = fs.readFileSync(publicPem, 'utf8');
const priv = fs.readFileSync(privatePem, 'utf8');
const [ivB64, keyB64] = sessionKey.split(':');
const aesKey = crypto.publicDecrypt({ key: pub, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.from(keyB64, 'base64'));
const iv = Buffer.from(ivB64, 'base64');
const decipher = crypto.createDecipheriv('aes-128-cbc', aesKey, iv);
const plain = Buffer.concat([decipher.update(fs.readFileSync(encPath)), decipher.final()]);
const digest = crypto.publicDecrypt({ key: pub, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.from(checksum, 'hex')).toString('hex');
const cliChecksum = crypto.privateEncrypt({ key: priv, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.from(digest, 'hex')).toString('hex');
const cliKey = crypto.privateEncrypt({ key: priv, padding: crypto.constants.RSA_PKCS1_PADDING }, aesKey).toString('base64');
console.log(JSON.stringify({
  ivLen: iv.length,
  aesKeyLen: aesKey.length,
  plainSha: crypto.createHash('sha256').update(plain).digest('hex'),
  digest,
  sameChecksum: cliChecksum === checksum,
  sameKey: cliKey === keyB64,
}));
"#;

#[test]
fn node_decrypts_what_we_encrypt_and_privately_encrypts_the_same_bytes() {
    if !node_available() {
        eprintln!("NOTICE: node is not on PATH; skipping the Node crypto interop test");
        return;
    }
    let (private_key, public_key) = generate_key_pair().unwrap();
    let work = tempfile::tempdir().unwrap();
    let public_path = work.path().join("key.pub");
    let private_path = work.path().join("key");
    std::fs::write(&public_path, public_key.to_pem().unwrap()).unwrap();
    std::fs::write(&private_path, private_key.to_pem().unwrap()).unwrap();
    let zip = work.path().join("bundle.zip");
    let content: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&zip, &content).unwrap();
    let encrypted = work.path().join("bundle.enc");
    let bundle = encrypt_bundle(&zip, &encrypted, &private_key).unwrap();
    let output = Command::new("node")
        .arg("-e")
        .arg(SCRIPT)
        .arg(&public_path)
        .arg(&private_path)
        .arg(&bundle.session_key)
        .arg(&bundle.encrypted_checksum)
        .arg(&encrypted)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["ivLen"], 16);
    assert_eq!(result["aesKeyLen"], 16);
    assert_eq!(result["plainSha"], sha256_bytes(&content));
    assert_eq!(result["digest"], bundle.checksum);
    assert_eq!(
        result["sameChecksum"], true,
        "privateEncrypt must equal our checksum byte for byte"
    );
    assert_eq!(
        result["sameKey"], true,
        "privateEncrypt must equal our sealed key byte for byte"
    );
    assert_eq!(
        encrypt_checksum(&private_key, &bundle.checksum).unwrap(),
        bundle.encrypted_checksum
    );
}

const DELTA_SCRIPT: &str = r#"
const crypto = require('crypto');
const fs = require('fs');
const zlib = require('zlib');
const [blobPath, aesKeyHex, ivHex] = process.argv.slice(1);
const decipher = crypto.createDecipheriv('aes-128-cbc', Buffer.from(aesKeyHex, 'hex'), Buffer.from(ivHex, 'hex'));
const compressed = Buffer.concat([decipher.update(fs.readFileSync(blobPath)), decipher.final()]);
const plain = zlib.brotliDecompressSync(compressed);
console.log(crypto.createHash('sha256').update(plain).digest('hex'));
"#;

#[test]
fn node_decodes_an_encrypted_brotli_delta_file() {
    if !node_available() {
        eprintln!("NOTICE: node is not on PATH; skipping the Node delta interop test");
        return;
    }
    let (private_key, _public_key) = generate_key_pair().unwrap();
    let session = updraft_bundle::SessionKey::generate();
    let work = tempfile::tempdir().unwrap();
    let script: Vec<u8> = "export const value = 'delta';\n".repeat(2000).into_bytes();
    let zip_path = work.path().join("bundle.zip");
    {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        writer.start_file("index.html", options).unwrap();
        writer.write_all(b"<html></html>").unwrap();
        writer.start_file("app.js", options).unwrap();
        writer.write_all(&script).unwrap();
        writer.finish().unwrap();
    }
    let files = updraft_bundle::build_delta(
        &zip_path,
        &work.path().join("blobs"),
        Some((&session, &private_key)),
    )
    .unwrap();
    let app = files
        .iter()
        .find(|file| file.file_name == "app.js.br")
        .expect("app.js is compressed");
    let output = Command::new("node")
        .arg("-e")
        .arg(DELTA_SCRIPT)
        .arg(&app.path)
        .arg(hex::encode(session.aes_key()))
        .arg(hex::encode(session.iv()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        sha256_bytes(&script)
    );
}
