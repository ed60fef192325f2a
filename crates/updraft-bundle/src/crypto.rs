//! Capgo "v2" encryption (protocol §4): RSA private-encrypt with PKCS#1 v1.5 type-1
//! padding (a raw, unhashed PKCS#1 v1.5 signature), AES-128-CBC with PKCS#7 for the
//! payload. Every byte produced here is what Node's `privateEncrypt` and
//! `createCipheriv('aes-128-cbc')` produce, so both plugin platforms accept it.

use crate::error::BundleError;
use aes::Aes128;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use rand::RngCore;
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Pkcs1v15Sign};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// The only modulus size both platforms handle (256-byte blocks, §4.2).
const KEY_BITS: u32 = 2048;
const RSA_BLOCK_BYTES: usize = 256;
const AES_BLOCK: usize = 16;
/// Read size for streamed AES; a multiple of the block size.
const STREAM_CHUNK: usize = 64 * 1024;

type Aes128CbcEnc = cbc::Encryptor<Aes128>;
type Aes128CbcDec = cbc::Decryptor<Aes128>;

/// An RSA-2048 private key (stays with the CLI or server).
#[derive(Clone)]
pub struct PrivateKey {
    inner: rsa::PrivateKey,
}

/// An RSA-2048 public key (embedded in the app).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: rsa::PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicKey(..)")
    }
}

fn require_2048_bits(key: &impl PublicKeyParts) -> Result<(), BundleError> {
    let bits = key.n().as_ref().bit_width();
    if bits != KEY_BITS {
        return Err(BundleError::InvalidKey(format!(
            "the key is {bits}-bit but the updater plugin only works with 2048-bit RSA keys"
        )));
    }
    Ok(())
}

impl PrivateKey {
    /// Parses PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, BundleError> {
        let pem = pem.trim();
        let inner = rsa::PrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs8_pem(pem))
            .map_err(|err| {
                BundleError::InvalidKey(format!(
                    "not an RSA private key in PKCS#1 or PKCS#8 PEM form ({err})"
                ))
            })?;
        require_2048_bits(&inner)?;
        Ok(PrivateKey { inner })
    }

    /// PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), the only form the Capgo CLI accepts.
    pub fn to_pem(&self) -> Result<String, BundleError> {
        self.inner
            .to_pkcs1_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|err| {
                BundleError::InvalidKey(format!("cannot encode the private key ({err})"))
            })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.to_public_key(),
        }
    }

    /// RSA private-encrypt with PKCS#1 v1.5 type-1 padding (Node `privateEncrypt`).
    fn private_encrypt(&self, data: &[u8]) -> Result<Vec<u8>, BundleError> {
        self.inner
            .sign(Pkcs1v15Sign::new_unprefixed(), data)
            .map_err(|err| BundleError::InvalidKey(format!("RSA private-encrypt failed ({err})")))
    }
}

impl PublicKey {
    /// Parses PKCS#1 (`BEGIN RSA PUBLIC KEY`) or SPKI (`BEGIN PUBLIC KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, BundleError> {
        let pem = pem.trim();
        let inner = rsa::PublicKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::PublicKey::from_public_key_pem(pem))
            .map_err(|err| {
                BundleError::InvalidKey(format!(
                    "not an RSA public key in PKCS#1 or SPKI PEM form ({err})"
                ))
            })?;
        require_2048_bits(&inner)?;
        Ok(PublicKey { inner })
    }

    /// PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`), the only form Android accepts.
    pub fn to_pem(&self) -> Result<String, BundleError> {
        self.inner
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|err| BundleError::InvalidKey(format!("cannot encode the public key ({err})")))
    }

    /// The §4.6 key id of this key's PKCS#1 PEM.
    pub fn key_id(&self) -> Result<String, BundleError> {
        Ok(key_id(&self.to_pem()?))
    }

    /// RSA public-decrypt of a type-1 padded block, as the devices do (§4.3).
    fn public_decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, BundleError> {
        if ciphertext.len() != RSA_BLOCK_BYTES {
            return Err(BundleError::DecryptFailed(format!(
                "an RSA block must be {RSA_BLOCK_BYTES} bytes, got {}",
                ciphertext.len()
            )));
        }
        let modulus = self.inner.n().as_ref().to_be_bytes_trimmed_vartime();
        // Both are 256 big-endian bytes, so byte order equals numeric order.
        if ciphertext >= &modulus[..] {
            return Err(BundleError::DecryptFailed(
                "the RSA block is not smaller than the key modulus".to_string(),
            ));
        }
        let precision = self.inner.n_bits_precision();
        let cipher_number = BoxedUint::from_be_slice(ciphertext, precision)
            .map_err(|err| BundleError::DecryptFailed(format!("bad RSA block ({err:?})")))?;
        let plain_number = rsa::hazmat::rsa_encrypt(&self.inner, &cipher_number)
            .map_err(|err| BundleError::DecryptFailed(format!("RSA operation failed ({err})")))?;
        let plain_bytes = plain_number.to_be_bytes();
        // Left-pad/trim to the modulus length: precision may be limb-aligned above 2048 bits.
        let block = left_align(&plain_bytes, RSA_BLOCK_BYTES);
        strip_type1_padding(&block)
    }
}

fn left_align(bytes: &[u8], len: usize) -> Vec<u8> {
    if bytes.len() >= len {
        bytes[bytes.len() - len..].to_vec()
    } else {
        let mut out = vec![0u8; len - bytes.len()];
        out.extend_from_slice(bytes);
        out
    }
}

/// `00 01 FF…FF 00 data`, with at least 8 `FF` bytes (RFC 8017 §9.2 / EMSA-PKCS1-v1_5).
fn strip_type1_padding(block: &[u8]) -> Result<Vec<u8>, BundleError> {
    let bad = || {
        BundleError::DecryptFailed(
            "the RSA block does not carry PKCS#1 v1.5 type-1 padding".to_string(),
        )
    };
    if block.len() < 11 || block[0] != 0x00 || block[1] != 0x01 {
        return Err(bad());
    }
    let separator = block[2..]
        .iter()
        .position(|&byte| byte != 0xFF)
        .ok_or_else(bad)?
        + 2;
    if block[separator] != 0x00 || separator < 10 {
        return Err(bad());
    }
    Ok(block[separator + 1..].to_vec())
}

/// Adapts rand 0.8's OS generator to the rand_core generation rsa 0.10 uses.
struct OsRandom;

impl rsa::rand_core::TryRng for OsRandom {
    type Error = rand::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::rngs::OsRng.try_fill_bytes(dst)
    }
}

impl rsa::rand_core::TryCryptoRng for OsRandom {}

/// Generates an RSA-2048 key pair with e = 65537.
pub fn generate_key_pair() -> Result<(PrivateKey, PublicKey), BundleError> {
    let inner = rsa::PrivateKey::new(&mut OsRandom, KEY_BITS as usize)
        .map_err(|err| BundleError::InvalidKey(format!("RSA key generation failed ({err})")))?;
    let private_key = PrivateKey { inner };
    let public_key = private_key.public_key();
    Ok((private_key, public_key))
}

/// §4.6: the first 20 characters of the PEM body with the BEGIN/END lines and all
/// whitespace removed.
pub fn key_id(public_pem: &str) -> String {
    let body: String = public_pem
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|ch| !ch.is_whitespace())
        .collect();
    body.chars().take(20).collect()
}

/// The AES-128 key and IV of one bundle (and of all its delta files).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    aes_key: [u8; 16],
    iv: [u8; 16],
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A fresh random key and IV from the OS generator.
    pub fn generate() -> Self {
        let mut aes_key = [0u8; 16];
        let mut iv = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut aes_key);
        rand::rngs::OsRng.fill_bytes(&mut iv);
        SessionKey { aes_key, iv }
    }

    /// Builds a session key from known bytes (tests, fixtures).
    pub fn from_parts(aes_key: [u8; 16], iv: [u8; 16]) -> Self {
        SessionKey { aes_key, iv }
    }

    pub fn aes_key(&self) -> &[u8; 16] {
        &self.aes_key
    }

    pub fn iv(&self) -> &[u8; 16] {
        &self.iv
    }

    /// The wire `session_key`: `base64(iv):base64(rsa_private_encrypt(aes_key))`,
    /// standard alphabet, padded, no whitespace (iOS rejects anything else).
    pub fn seal(&self, private_key: &PrivateKey) -> Result<String, BundleError> {
        let encrypted_key = private_key.private_encrypt(&self.aes_key)?;
        Ok(format!(
            "{}:{}",
            BASE64.encode(self.iv),
            BASE64.encode(encrypted_key)
        ))
    }

    /// What a device does with the wire `session_key` (iOS checks: 16-byte IV and key).
    pub fn open(wire: &str, public_key: &PublicKey) -> Result<SessionKey, BundleError> {
        let (iv_b64, key_b64) = wire.split_once(':').ok_or_else(|| {
            BundleError::DecryptFailed("the session key has no ':' between IV and key".to_string())
        })?;
        let iv = BASE64.decode(iv_b64).map_err(|err| {
            BundleError::DecryptFailed(format!("the session key IV is not base64 ({err})"))
        })?;
        let encrypted_key = BASE64.decode(key_b64).map_err(|err| {
            BundleError::DecryptFailed(format!("the session key is not base64 ({err})"))
        })?;
        let iv: [u8; 16] = iv.as_slice().try_into().map_err(|_| {
            BundleError::DecryptFailed(format!("the session key IV is {} bytes, not 16", iv.len()))
        })?;
        let aes_key = public_key.public_decrypt(&encrypted_key)?;
        let aes_key: [u8; 16] = aes_key.as_slice().try_into().map_err(|_| {
            BundleError::DecryptFailed(format!("the AES key is {} bytes, not 16", aes_key.len()))
        })?;
        Ok(SessionKey { aes_key, iv })
    }

    fn encryptor(&self) -> Aes128CbcEnc {
        Aes128CbcEnc::new(&self.aes_key.into(), &self.iv.into())
    }

    fn decryptor(&self) -> Aes128CbcDec {
        Aes128CbcDec::new(&self.aes_key.into(), &self.iv.into())
    }
}

/// AES-128-CBC/PKCS#7 encryption of a byte slice (nothing prepended; the IV travels in the session key).
pub fn encrypt_bytes(session: &SessionKey, plaintext: &[u8]) -> Vec<u8> {
    session.encryptor().encrypt_padded_vec::<Pkcs7>(plaintext)
}

/// AES-128-CBC/PKCS#7 decryption of a byte slice.
pub fn decrypt_bytes(session: &SessionKey, ciphertext: &[u8]) -> Result<Vec<u8>, BundleError> {
    session
        .decryptor()
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| {
            BundleError::DecryptFailed(
                "AES-CBC decryption failed: wrong key or bad padding".to_string(),
            )
        })
}

/// Reads until `buffer` is full or the input ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Streams a reader through AES-128-CBC/PKCS#7 into a writer; returns the bytes written.
pub fn encrypt_stream(
    session: &SessionKey,
    mut reader: impl Read,
    mut writer: impl Write,
) -> Result<u64, BundleError> {
    let mut encryptor = session.encryptor();
    let mut buffer = vec![0u8; STREAM_CHUNK];
    let mut written = 0u64;
    loop {
        let filled = read_full(&mut reader, &mut buffer)?;
        if filled == STREAM_CHUNK {
            for chunk in buffer.chunks_exact_mut(AES_BLOCK) {
                encrypt_in_place(&mut encryptor, chunk);
            }
            writer.write_all(&buffer)?;
            written += STREAM_CHUNK as u64;
            continue;
        }
        // Last (partial) chunk: PKCS#7 always adds 1..=16 bytes.
        let pad = AES_BLOCK - filled % AES_BLOCK;
        let mut tail = buffer[..filled].to_vec();
        tail.resize(filled + pad, pad as u8);
        for chunk in tail.chunks_exact_mut(AES_BLOCK) {
            encrypt_in_place(&mut encryptor, chunk);
        }
        writer.write_all(&tail)?;
        written += tail.len() as u64;
        writer.flush()?;
        return Ok(written);
    }
}

fn encrypt_in_place(encryptor: &mut Aes128CbcEnc, chunk: &mut [u8]) {
    let mut block = Block::<Aes128CbcEnc>::default();
    block.copy_from_slice(chunk);
    encryptor.encrypt_block(&mut block);
    chunk.copy_from_slice(&block);
}

fn decrypt_in_place(decryptor: &mut Aes128CbcDec, chunk: &mut [u8]) {
    let mut block = Block::<Aes128CbcDec>::default();
    block.copy_from_slice(chunk);
    decryptor.decrypt_block(&mut block);
    chunk.copy_from_slice(&block);
}

/// Streams AES-128-CBC/PKCS#7 ciphertext into plaintext; returns the bytes written.
pub fn decrypt_stream(
    session: &SessionKey,
    mut reader: impl Read,
    mut writer: impl Write,
) -> Result<u64, BundleError> {
    let mut decryptor = session.decryptor();
    let mut buffer = vec![0u8; STREAM_CHUNK];
    // The last block holds the padding, so one decrypted block is held back until
    // we know whether more input follows.
    let mut held_back: Option<[u8; AES_BLOCK]> = None;
    let mut written = 0u64;
    loop {
        let filled = read_full(&mut reader, &mut buffer)?;
        if filled % AES_BLOCK != 0 {
            return Err(BundleError::DecryptFailed(
                "the ciphertext length is not a multiple of the AES block size".to_string(),
            ));
        }
        for chunk in buffer[..filled].chunks_exact_mut(AES_BLOCK) {
            decrypt_in_place(&mut decryptor, chunk);
            if let Some(previous) = held_back.take() {
                writer.write_all(&previous)?;
                written += AES_BLOCK as u64;
            }
            let mut block = [0u8; AES_BLOCK];
            block.copy_from_slice(chunk);
            held_back = Some(block);
        }
        if filled < STREAM_CHUNK {
            break;
        }
    }
    let last = held_back
        .ok_or_else(|| BundleError::DecryptFailed("the ciphertext is empty".to_string()))?;
    let pad = usize::from(last[AES_BLOCK - 1]);
    if pad == 0
        || pad > AES_BLOCK
        || last[AES_BLOCK - pad..]
            .iter()
            .any(|&byte| usize::from(byte) != pad)
    {
        return Err(BundleError::DecryptFailed(
            "AES-CBC decryption failed: wrong key or bad padding".to_string(),
        ));
    }
    writer.write_all(&last[..AES_BLOCK - pad])?;
    written += (AES_BLOCK - pad) as u64;
    writer.flush()?;
    Ok(written)
}

/// Streams `src` through AES-128-CBC into `dst`; returns the bytes written.
pub fn encrypt_file(session: &SessionKey, src: &Path, dst: &Path) -> Result<u64, BundleError> {
    let input = File::open(src)?;
    let output = BufWriter::new(File::create(dst)?);
    encrypt_stream(session, input, output)
}

/// Streams `src` through AES-128-CBC decryption into `dst`; returns the bytes written.
pub fn decrypt_file(session: &SessionKey, src: &Path, dst: &Path) -> Result<u64, BundleError> {
    let input = File::open(src)?;
    let output = BufWriter::new(File::create(dst)?);
    decrypt_stream(session, input, output)
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// V3 checksum: 512 lowercase hex chars of RSA private-encrypt over the 32 raw digest bytes.
pub fn encrypt_checksum(private_key: &PrivateKey, sha256_hex: &str) -> Result<String, BundleError> {
    if !is_sha256_hex(sha256_hex) {
        return Err(BundleError::ChecksumMismatch {
            expected: "a 64-character hex SHA-256".to_string(),
            actual: sha256_hex.to_string(),
        });
    }
    let digest = hex::decode(sha256_hex).map_err(|err| BundleError::ChecksumMismatch {
        expected: "a 64-character hex SHA-256".to_string(),
        actual: format!("{sha256_hex} ({err})"),
    })?;
    Ok(hex::encode(private_key.private_encrypt(&digest)?))
}

/// What a device does: hex when it matches `^[0-9a-fA-F]+$`, else base64; the block
/// must be 256 bytes; the result is the 64-char lowercase hex of the plaintext.
pub fn decrypt_checksum(
    public_key: &PublicKey,
    hex_or_base64: &str,
) -> Result<String, BundleError> {
    let is_hex =
        !hex_or_base64.is_empty() && hex_or_base64.bytes().all(|byte| byte.is_ascii_hexdigit());
    let block = if is_hex {
        hex::decode(hex_or_base64).map_err(|err| {
            BundleError::DecryptFailed(format!("the checksum is not valid hex ({err})"))
        })?
    } else {
        BASE64.decode(hex_or_base64).map_err(|err| {
            BundleError::DecryptFailed(format!("the checksum is neither hex nor base64 ({err})"))
        })?
    };
    let plaintext = public_key.public_decrypt(&block)?;
    Ok(hex::encode(plaintext))
}

/// What the server stores for an encrypted bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedBundle {
    /// Wire `session_key`.
    pub session_key: String,
    /// Plain SHA-256 hex of the plaintext zip.
    pub checksum: String,
    /// V3 RSA form of `checksum`, the value sent to devices.
    pub encrypted_checksum: String,
    /// §4.6 key id of the matching public key.
    pub key_id: String,
}

/// Encrypts `zip` into `out` with a fresh session key (protocol §4.4).
pub fn encrypt_bundle(
    zip: &Path,
    out: &Path,
    private_key: &PrivateKey,
) -> Result<EncryptedBundle, BundleError> {
    let checksum = crate::sha256_file(zip)?;
    let session = SessionKey::generate();
    encrypt_file(&session, zip, out)?;
    Ok(EncryptedBundle {
        session_key: session.seal(private_key)?,
        encrypted_checksum: encrypt_checksum(private_key, &checksum)?,
        checksum,
        key_id: private_key.public_key().key_id()?,
    })
}
