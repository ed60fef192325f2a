//! Console accounts, free of I/O: email normalisation, the password policy
//! and its argon2id hashes, TOTP codes (RFC 6238), recovery codes and
//! session tokens. Shared by the server's account service and the CLI's
//! offline `updraft user …` commands, so both hash and check alike.

use crate::model::{Millis, Role};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Shortest password accepted (characters).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bytes): argon2 takes any length, but hashing
/// megabytes per sign-in attempt would be a cheap way to load the server.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Recovery codes made when TOTP is enabled (each works once).
pub const RECOVERY_CODES: usize = 10;
/// TOTP: 30-second steps, 6 digits, one step of clock skew either way.
pub const TOTP_STEP_SECONDS: u64 = 30;
pub const TOTP_DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
const TOTP_SECRET_BYTES: usize = 20;
/// Bytes of randomness in a session token and a CSRF token (256 bits).
const TOKEN_BYTES: usize = 32;

/// A console user as the rest of the server sees it: never the password
/// hash, the TOTP secret or the recovery codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    /// Normalised (trimmed, lower case): unique.
    pub email: String,
    pub role: Role,
    /// Limited to these apps; `None` = every app.
    pub apps: Option<Vec<String>>,
    pub disabled: bool,
    /// A confirmed TOTP second factor is required at sign-in.
    pub totp_enabled: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub password_changed_at: Millis,
}

impl User {
    /// Whether the user may act on `app_id` (`None` = the whole server).
    pub fn can_see(&self, app_id: &str) -> bool {
        self.apps
            .as_ref()
            .is_none_or(|apps| apps.iter().any(|a| a == app_id))
    }

    /// The audit actor of a change the user makes.
    pub fn actor(&self) -> String {
        format!("user:{}", self.email)
    }
}

/// Why an email, password or code is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountInputError {
    #[error("the email address {0:?} is not valid: it needs one @ with a name before and a domain after, and no spaces")]
    InvalidEmail(String),
    #[error("the password is too short: at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("the app list must name at least one app (leave it out for every app)")]
    EmptyAppList,
    #[error("the password could not be hashed: {0}")]
    Hashing(String),
}

/// Trimmed and in lower case: `Ada@Example.COM ` and `ada@example.com` are
/// one account.
pub fn normalize_email(raw: &str) -> Result<String, AccountInputError> {
    let email = raw.trim().to_lowercase();
    let invalid = || AccountInputError::InvalidEmail(raw.trim().to_string());
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(email)
        }
        _ => Err(invalid()),
    }
}

/// The password policy: long enough, not absurdly long.
pub fn check_password(password: &str) -> Result<(), AccountInputError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountInputError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountInputError::PasswordTooLong);
    }
    Ok(())
}

/// An app scope as given: `[]` is refused (it would be "no app at all"),
/// names are trimmed, sorted and deduplicated.
pub fn normalize_apps(apps: Option<Vec<String>>) -> Result<Option<Vec<String>>, AccountInputError> {
    let Some(apps) = apps else {
        return Ok(None);
    };
    let mut apps: Vec<String> = apps
        .into_iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if apps.is_empty() {
        return Err(AccountInputError::EmptyAppList);
    }
    apps.sort();
    apps.dedup();
    Ok(Some(apps))
}

/// The argon2id PHC string of `password` (the crate's default parameters:
/// 19 MiB, 2 passes, 1 lane — OWASP's recommended minimum), after the policy.
pub fn hash_password(password: &str) -> Result<String, AccountInputError> {
    check_password(password)?;
    hash_unchecked(password)
}

fn hash_unchecked(password: &str) -> Result<String, AccountInputError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountInputError::Hashing(e.to_string()))
}

/// Whether `password` matches the stored PHC string (false for a string
/// that does not parse).
pub fn verify_password(stored: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of nothing anybody knows, checked against when the email is
/// unknown (or the account disabled), so that the answer takes as long as
/// for a real account and timing does not reveal which emails exist.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: String = random_token();
        hash_unchecked(&random).unwrap_or_default()
    })
}

/// 256 random bits, URL-safe (hex): session tokens and CSRF tokens.
pub fn random_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// What is stored of a session token or a recovery code: its SHA-256 (hex).
/// These are random (256 bits, or 50 bits used once behind a password), so a
/// fast hash is enough; only passwords need argon2.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new TOTP secret.
pub fn new_totp_secret() -> Vec<u8> {
    let bytes: [u8; TOTP_SECRET_BYTES] = rand::thread_rng().gen();
    bytes.to_vec()
}

/// The secret as authenticator apps take it (RFC 4648 base32, no padding).
pub fn totp_secret_base32(secret: &[u8]) -> String {
    match totp_rs::Secret::Raw(secret.to_vec()).to_encoded() {
        totp_rs::Secret::Encoded(text) => text,
        totp_rs::Secret::Raw(_) => String::new(),
    }
}

/// The secret back from its base32 text.
pub fn totp_secret_from_base32(text: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::Encoded(text.to_string()).to_bytes().ok()
}

/// The `otpauth://` URI an authenticator app scans (as a QR code) to enrol.
pub fn totp_uri(secret: &[u8], issuer: &str, email: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}",
        issuer = percent_encode(issuer),
        account = percent_encode(email),
        secret = totp_secret_base32(secret),
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(char::from(byte))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn totp(secret: &[u8]) -> Option<totp_rs::TOTP> {
    // Skew 0: the steps either side are tried one by one, to know which matched.
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        TOTP_DIGITS,
        0,
        TOTP_STEP_SECONDS,
        secret.to_vec(),
    )
    .ok()
}

/// The TOTP step a time falls in.
pub fn totp_step(now: Millis) -> u64 {
    u64::try_from(now.max(0)).unwrap_or(0) / 1000 / TOTP_STEP_SECONDS
}

/// The code of `step` (what an authenticator app shows then).
pub fn totp_code(secret: &[u8], step: u64) -> Option<String> {
    totp(secret).map(|t| t.generate(step * TOTP_STEP_SECONDS))
}

/// The step (current, previous or next) whose code `code` is, if any: the
/// caller refuses a step already used. Compared in constant time.
pub fn totp_matching_step(secret: &[u8], code: &str, now: Millis) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret)?;
    let current = totp_step(now);
    // Every candidate is computed, so the time taken does not say which matched.
    let mut matched = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        if totp.check(&code, step * TOTP_STEP_SECONDS) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// Ten recovery codes, `xxxxx-xxxxx` from an alphabet without look-alikes
/// (50 bits each); only their hashes ([`recovery_code_hash`]) are stored.
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut code = String::with_capacity(11);
            for i in 0..10 {
                if i == 5 {
                    code.push('-');
                }
                code.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
            }
            code
        })
        .collect()
}

/// The stored form of a recovery code: case, spaces and dashes do not matter.
pub fn recovery_code_hash(code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    token_hash(&normalized)
}

/// Whether a second-factor answer looks like a TOTP code (digits) rather
/// than a recovery code.
pub fn looks_like_totp_code(code: &str) -> bool {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == TOTP_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c",
            "ada@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_have_a_minimum_length() {
        assert_eq!(
            check_password("short"),
            Err(AccountInputError::PasswordTooShort)
        );
        assert_eq!(
            check_password("elevenchars"),
            Err(AccountInputError::PasswordTooShort)
        );
        assert!(check_password("twelve chars").is_ok());
        assert_eq!(
            check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(AccountInputError::PasswordTooLong)
        );
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password(
            "not a phc string",
            "correct horse battery"
        ));
        // Salted: the same password hashes differently.
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
        assert!(dummy_password_hash().starts_with("$argon2id$"));
        assert!(!verify_password(dummy_password_hash(), ""));
    }

    #[test]
    fn totp_matches_rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1 secret; the last 6 of its 8 digits.
        let secret = b"12345678901234567890";
        assert_eq!(totp_code(secret, 59 / 30).unwrap(), "287082");
        assert_eq!(totp_code(secret, 1_111_111_109 / 30).unwrap(), "081804");
        assert_eq!(totp_code(secret, 1_234_567_890 / 30).unwrap(), "005924");
    }

    #[test]
    fn totp_accepts_one_step_either_way_and_says_which() {
        let secret = new_totp_secret();
        let now: Millis = 1_700_000_015_000;
        let step = totp_step(now);
        for candidate in [step - 1, step, step + 1] {
            let code = totp_code(&secret, candidate).unwrap();
            assert_eq!(totp_matching_step(&secret, &code, now), Some(candidate));
        }
        let far = totp_code(&secret, step + 2).unwrap();
        if far != totp_code(&secret, step).unwrap() {
            assert_eq!(totp_matching_step(&secret, &far, now), None);
        }
        assert_eq!(totp_matching_step(&secret, "12345", now), None);
        assert_eq!(totp_matching_step(&secret, "abcdef", now), None);
        let spaced = totp_code(&secret, step).unwrap();
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(totp_matching_step(&secret, &spaced, now), Some(step));
    }

    #[test]
    fn base32_round_trips() {
        let secret = new_totp_secret();
        let text = totp_secret_base32(&secret);
        assert_eq!(totp_secret_from_base32(&text).unwrap(), secret);
        let uri = totp_uri(&secret, "Updraft", "ada@example.com");
        assert!(uri.starts_with("otpauth://totp/Updraft:ada@example.com?secret="));
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(
            recovery_code_hash(code),
            recovery_code_hash(&code.to_uppercase().replace('-', " "))
        );
        assert!(!looks_like_totp_code(code));
        assert!(looks_like_totp_code("123 456"));
    }

    #[test]
    fn app_scopes_are_normalised() {
        assert_eq!(normalize_apps(None).unwrap(), None);
        assert_eq!(
            normalize_apps(Some(vec![])),
            Err(AccountInputError::EmptyAppList)
        );
        assert_eq!(
            normalize_apps(Some(vec!["b".into(), " a ".into(), "b".into()])).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }
}
