//! Crypto against the plugin's own contract vectors (tests/data/crypto-rsa.json) and
//! round trips of everything a device decodes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use std::sync::OnceLock;
use updraft_bundle::crypto::{decrypt_stream, encrypt_stream};
use updraft_bundle::{
    decrypt_bytes, decrypt_checksum, decrypt_file, encrypt_bundle, encrypt_bytes, encrypt_checksum,
    encrypt_file, generate_key_pair, key_id, sha256_bytes, sha256_file, PrivateKey, PublicKey,
    SessionKey,
};

fn fixture() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/crypto-rsa.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fixture_public_key() -> PublicKey {
    PublicKey::from_pem(fixture()["publicKeyPem"].as_str().unwrap()).unwrap()
}

/// Key generation is slow in debug builds: one pair for the whole file.
fn key_pair() -> &'static (PrivateKey, PublicKey) {
    static PAIR: OnceLock<(PrivateKey, PublicKey)> = OnceLock::new();
    PAIR.get_or_init(|| generate_key_pair().unwrap())
}

#[test]
fn fixture_rsa_public_decrypt_vectors() {
    let fixture = fixture();
    let public_key = fixture_public_key();
    let vectors = fixture["rsaPublicDecrypt"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for vector in vectors {
        let ciphertext = vector["input"]["ciphertextHex"].as_str().unwrap();
        let expected = vector["expect"]["plaintextHex"].as_str().unwrap();
        // decrypt_checksum is the generic public-decrypt that returns hex.
        assert_eq!(
            decrypt_checksum(&public_key, ciphertext).unwrap(),
            expected,
            "{}",
            vector["id"]
        );
    }
}

#[test]
fn fixture_session_key_opens_to_the_expected_aes_key() {
    let fixture = fixture();
    let public_key = fixture_public_key();
    let ciphertext = hex::decode(
        fixture["rsaPublicDecrypt"][0]["input"]["ciphertextHex"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let iv = [0x11u8; 16];
    let wire = format!("{}:{}", base64_std(&iv), base64_std(&ciphertext));
    let session = SessionKey::open(&wire, &public_key).unwrap();
    assert_eq!(session.aes_key(), &[0xABu8; 16]);
    assert_eq!(session.iv(), &iv);
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn fixture_decrypt_checksum_hex_and_base64() {
    let fixture = fixture();
    let public_key = fixture_public_key();
    for vector in fixture["decryptChecksum"].as_array().unwrap() {
        let input = vector["input"]["checksumHex"].as_str().unwrap();
        let expected = vector["expect"]["decryptedHex"].as_str().unwrap();
        assert_eq!(decrypt_checksum(&public_key, input).unwrap(), expected);
        // Upper-case hex is still hex for the plugin.
        assert_eq!(
            decrypt_checksum(&public_key, &input.to_uppercase()).unwrap(),
            expected
        );
        // The same block in base64 is accepted too.
        let as_base64 = base64_std(&hex::decode(input).unwrap());
        assert_eq!(decrypt_checksum(&public_key, &as_base64).unwrap(), expected);
    }
    for vector in fixture["decryptChecksumInvalid"].as_array().unwrap() {
        let input = vector["input"]["checksumHex"].as_str().unwrap();
        let err = decrypt_checksum(&public_key, input).unwrap_err();
        assert_eq!(err.code(), "decrypt_failed", "{}", vector["id"]);
    }
    assert_eq!(
        decrypt_checksum(&public_key, "").unwrap_err().code(),
        "decrypt_failed"
    );
    // A 256-byte block that is not type-1 padded.
    assert_eq!(
        decrypt_checksum(&public_key, &"01".repeat(256))
            .unwrap_err()
            .code(),
        "decrypt_failed"
    );
}

#[test]
fn fixture_key_id_and_key_loading() {
    let fixture = fixture();
    for vector in fixture["calcKeyId"].as_array().unwrap() {
        let pem = vector["input"]["publicKeyPem"].as_str().unwrap();
        assert_eq!(key_id(pem), vector["expect"]["keyId"].as_str().unwrap());
        assert_eq!(
            PublicKey::from_pem(pem).unwrap().key_id().unwrap(),
            vector["expect"]["keyId"].as_str().unwrap()
        );
    }
    for vector in fixture["rsaPublicKeyLoad"].as_array().unwrap() {
        let pem = vector["input"]["publicKeyPem"].as_str().unwrap();
        let loads = vector["expect"]["loads"].as_bool().unwrap();
        let result = PublicKey::from_pem(pem);
        assert_eq!(result.is_ok(), loads, "{}", vector["id"]);
        if let Err(err) = result {
            assert_eq!(err.code(), "invalid_key");
        }
    }
}

#[test]
fn key_id_ignores_line_breaks_and_crlf() {
    let pem = "-----BEGIN RSA PUBLIC KEY-----\r\nMIIBCg\r\nKCAQEA  qJikYizo wR4j\r\n-----END RSA PUBLIC KEY-----\r\n";
    assert_eq!(key_id(pem), "MIIBCgKCAQEAqJikYizo");
}

#[test]
fn public_key_round_trips_through_pkcs1_pem() {
    let public_key = fixture_public_key();
    let pem = public_key.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"), "{pem}");
    let expected = fixture()["publicKeyPem"].as_str().unwrap().to_string();
    assert_eq!(pem.trim_end(), expected.trim_end());
}

#[test]
fn generated_keys_are_2048_bit_pkcs1_and_reload() {
    let (private_key, public_key) = key_pair();
    let private_pem = private_key.to_pem().unwrap();
    let public_pem = public_key.to_pem().unwrap();
    assert!(private_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"));
    // Every 2048-bit PKCS#1 public key starts like this (§4.6).
    assert!(
        key_id(&public_pem).starts_with("MIIBCgKCAQEA"),
        "{}",
        key_id(&public_pem)
    );
    let reloaded = PrivateKey::from_pem(&private_pem).unwrap();
    assert_eq!(reloaded.public_key(), *public_key);
    assert_eq!(PublicKey::from_pem(&public_pem).unwrap(), *public_key);
}

fn test_key(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn keys_of_other_sizes_are_refused() {
    // Generated with `openssl genrsa -traditional` for this test.
    for bits in ["1024", "4096"] {
        let err = PublicKey::from_pem(&test_key(&format!("rsa-{bits}-public.pem"))).unwrap_err();
        assert_eq!(err.code(), "invalid_key");
        assert!(err.to_string().contains(&format!("{bits}-bit")), "{err}");
        let err = PrivateKey::from_pem(&test_key(&format!("rsa-{bits}-private.pem"))).unwrap_err();
        assert_eq!(err.code(), "invalid_key");
        assert!(err.to_string().contains(&format!("{bits}-bit")), "{err}");
    }
    assert_eq!(
        PrivateKey::from_pem("not a key").unwrap_err().code(),
        "invalid_key"
    );
}

#[test]
fn session_key_seal_open_round_trip_and_wire_format() {
    let (private_key, public_key) = key_pair();
    let session = SessionKey::generate();
    let wire = session.seal(private_key).unwrap();
    assert!(!wire.chars().any(char::is_whitespace), "{wire}");
    let (iv_part, key_part) = wire.split_once(':').unwrap();
    assert_eq!(iv_part.len(), 24, "16 bytes in padded base64");
    assert!(iv_part.ends_with("=="));
    assert_eq!(key_part.len(), 344, "256 bytes in padded base64");
    assert!(
        !wire.contains('-') && !wire.contains('_'),
        "standard alphabet only: {wire}"
    );
    let opened = SessionKey::open(&wire, public_key).unwrap();
    assert_eq!(opened, session);
    // PKCS#1 v1.5 type-1 is deterministic: same key bytes, same ciphertext.
    assert_eq!(session.seal(private_key).unwrap(), wire);
    // A different key pair cannot open it.
    let other = fixture_public_key();
    assert_eq!(
        SessionKey::open(&wire, &other).unwrap_err().code(),
        "decrypt_failed"
    );
    assert_eq!(
        SessionKey::open("no-colon", public_key).unwrap_err().code(),
        "decrypt_failed"
    );
}

#[test]
fn checksum_is_512_hex_and_decrypts_to_the_digest() {
    let (private_key, public_key) = key_pair();
    let digest = sha256_bytes(b"some bundle bytes");
    let encrypted = encrypt_checksum(private_key, &digest).unwrap();
    assert_eq!(encrypted.len(), 512);
    assert!(
        encrypted
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')),
        "{encrypted}"
    );
    assert_eq!(decrypt_checksum(public_key, &encrypted).unwrap(), digest);
    assert_eq!(
        encrypt_checksum(private_key, &digest).unwrap(),
        encrypted,
        "deterministic"
    );
    assert_ne!(
        encrypt_checksum(private_key, &sha256_bytes(b"other")).unwrap(),
        encrypted
    );
    assert_eq!(
        encrypt_checksum(private_key, "abc").unwrap_err().code(),
        "checksum_mismatch"
    );
}

#[test]
fn aes_matches_a_known_vector() {
    // NIST SP 800-38A F.2.1 CBC-AES128.Encrypt, first block, plus one PKCS#7 padding block.
    let key: [u8; 16] = hex::decode("2b7e151628aed2a6abf7158809cf4f3c")
        .unwrap()
        .try_into()
        .unwrap();
    let iv: [u8; 16] = hex::decode("000102030405060708090a0b0c0d0e0f")
        .unwrap()
        .try_into()
        .unwrap();
    let session = SessionKey::from_parts(key, iv);
    let plaintext = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
    let ciphertext = encrypt_bytes(&session, &plaintext);
    assert_eq!(ciphertext.len(), 32);
    assert_eq!(
        hex::encode(&ciphertext[..16]),
        "7649abac8119b246cee98e9b12e9197d"
    );
    assert_eq!(decrypt_bytes(&session, &ciphertext).unwrap(), plaintext);
}

#[test]
fn aes_bytes_and_streams_agree_for_every_length_near_block_and_chunk_edges() {
    let session = SessionKey::generate();
    let chunk = 64 * 1024;
    for len in [
        0usize,
        1,
        15,
        16,
        17,
        31,
        32,
        1000,
        chunk - 1,
        chunk,
        chunk + 1,
        2 * chunk + 5,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let whole = encrypt_bytes(&session, &data);
        assert_eq!(
            whole.len(),
            (len / 16 + 1) * 16,
            "PKCS#7 always pads, len {len}"
        );
        let mut streamed = Vec::new();
        let written = encrypt_stream(&session, data.as_slice(), &mut streamed).unwrap();
        assert_eq!(streamed, whole, "len {len}");
        assert_eq!(written, whole.len() as u64);
        let mut decrypted = Vec::new();
        let written = decrypt_stream(&session, whole.as_slice(), &mut decrypted).unwrap();
        assert_eq!(decrypted, data, "len {len}");
        assert_eq!(written, len as u64);
        assert_eq!(decrypt_bytes(&session, &whole).unwrap(), data);
    }
}

#[test]
fn aes_decrypt_with_the_wrong_key_fails_or_differs() {
    let session = SessionKey::from_parts([1u8; 16], [2u8; 16]);
    let ciphertext = encrypt_bytes(&session, b"hello bundle");
    let wrong = SessionKey::from_parts([3u8; 16], [2u8; 16]);
    match decrypt_bytes(&wrong, &ciphertext) {
        Err(err) => assert_eq!(err.code(), "decrypt_failed"),
        Ok(plain) => assert_ne!(plain, b"hello bundle"),
    }
    assert_eq!(
        decrypt_bytes(&session, &ciphertext[..15])
            .unwrap_err()
            .code(),
        "decrypt_failed"
    );
    let mut sink = Vec::new();
    assert_eq!(
        decrypt_stream(&session, &ciphertext[..15], &mut sink)
            .unwrap_err()
            .code(),
        "decrypt_failed"
    );
    assert_eq!(
        decrypt_stream(&session, &[][..], &mut sink)
            .unwrap_err()
            .code(),
        "decrypt_failed"
    );
}

#[test]
fn encrypt_bundle_produces_what_a_device_can_verify() {
    let (private_key, public_key) = key_pair();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("bundle.zip");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&zip, &content).unwrap();
    let encrypted_path = dir.path().join("bundle.enc");
    let bundle = encrypt_bundle(&zip, &encrypted_path, private_key).unwrap();
    assert_eq!(bundle.checksum, sha256_bytes(&content));
    assert_eq!(bundle.key_id, public_key.key_id().unwrap());
    assert_eq!(
        std::fs::metadata(&encrypted_path).unwrap().len(),
        (200_000 / 16 + 1) * 16
    );
    // Device side: open the session key, decrypt the file, compare with the decrypted checksum.
    let session = SessionKey::open(&bundle.session_key, public_key).unwrap();
    let decrypted_path = dir.path().join("bundle.dec");
    assert_eq!(
        decrypt_file(&session, &encrypted_path, &decrypted_path).unwrap(),
        200_000
    );
    assert_eq!(
        sha256_file(&decrypted_path).unwrap(),
        decrypt_checksum(public_key, &bundle.encrypted_checksum).unwrap()
    );
    assert_eq!(std::fs::read(&decrypted_path).unwrap(), content);
    // encrypt_file is the same stream.
    let again = dir.path().join("again.enc");
    encrypt_file(&session, &zip, &again).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&encrypted_path).unwrap()
    );
}

#[test]
fn pkcs8_and_spki_inputs_are_accepted_and_written_back_as_pkcs1() {
    let (private_key, public_key) = key_pair();
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private_rsa = rsa::PrivateKey::from_pkcs1_pem(&private_key.to_pem().unwrap()).unwrap();
    let pkcs8 = private_rsa.to_pkcs8_pem(LineEnding::LF).unwrap();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    let from_pkcs8 = PrivateKey::from_pem(&pkcs8).unwrap();
    assert!(from_pkcs8
        .to_pem()
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let spki = private_rsa
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    assert!(spki.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(PublicKey::from_pem(&spki).unwrap(), *public_key);
}
