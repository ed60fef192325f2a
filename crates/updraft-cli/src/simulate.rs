//! `updraft device simulate`: one update as the plugin performs it — check,
//! download (zip or manifest), decrypt, verify, unpack — reported step by step,
//! so "why does my device not update?" has a plain answer. Failures carry the
//! stat code the plugin would send (`checksum_fail`, `manifest_path_fail`, …).

use crate::args::{DeviceSimulateArgs, DownloadMode, PlatformArg};
use crate::error::{CliCode, CliError, LocalCode};
use crate::output::Outcome;
use crate::upload::human_bytes;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use updraft_api::ErrorCode;
use updraft_bundle::crypto::{self, PublicKey, SessionKey};

const TIMEOUT: Duration = Duration::from_secs(300);

/// What happened, in order; printed as lines, or as the `steps` array with `--json`.
struct Report {
    steps: Vec<Value>,
    lines: Vec<String>,
}

impl Report {
    fn step(&mut self, name: &str, detail: String) {
        self.lines.push(format!("✓ {name}: {detail}"));
        self.steps.push(json!({"step": name, "detail": detail}));
    }
}

struct DeviceKey {
    key: PublicKey,
    key_id: String,
}

pub async fn simulate(
    server: &str,
    app_id: &str,
    args: &DeviceSimulateArgs,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    let device_key = match &args.public_key {
        Some(path) => Some(read_public_key(&work_dir.join(path))?),
        None => None,
    };
    let device_id = match &args.device_id {
        Some(id) => id.trim().to_ascii_lowercase(),
        None => random_uuid(),
    };
    let update_url = args
        .update_url
        .clone()
        .unwrap_or_else(|| format!("{}/updates", server.trim_end_matches('/')));
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(format!(
            "CapacitorUpdater/{} (updraft device simulate)",
            args.plugin_version
        ))
        .build()
        .map_err(|e| CliError::new(LocalCode::ClientError, e.to_string()))?;

    let mut report = Report {
        steps: Vec::new(),
        lines: Vec::new(),
    };
    let request = update_request(app_id, &device_id, args, device_key.as_ref());
    let answer = post_json(&http, &update_url, &request).await?;
    if let Some(code) = answer.get("error").and_then(Value::as_str) {
        let kind = answer.get("kind").and_then(Value::as_str).unwrap_or("-");
        let message = answer.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(CliError::new(
            CliCode::Device(code.to_string()),
            format!("no update for device {device_id}: the server answered {code} (kind {kind}): {message}"),
        ));
    }
    let version = text(&answer, "version");
    if version.is_empty() {
        return Err(CliError::new(
            LocalCode::InvalidResponse,
            format!("the update check answered without a version: {answer}"),
        ));
    }
    let manifest: Vec<Value> = answer
        .get("manifest")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    report.step(
        "update check",
        format!(
            "{update_url} offers {version} to device {device_id} ({})",
            if manifest.is_empty() {
                "zip".to_string()
            } else {
                format!("zip or manifest of {} files", manifest.len())
            }
        ),
    );

    let session_key = text(&answer, "session_key");
    let session =
        match (&device_key, session_key.is_empty()) {
            (_, true) => None,
            (Some(device_key), false) => Some(
                SessionKey::open(&session_key, &device_key.key).map_err(|e| {
                    CliError::new(
                        LocalCode::DecryptFail,
                        format!("cannot open the session key: {e}"),
                    )
                })?,
            ),
            (None, false) => return Err(CliError::new(
                LocalCode::DecryptFail,
                "the bundle is encrypted (session_key is set) but this device has no public key: \
                 pass --public-key .capgo_key_v2.pub",
            )),
        };

    let out = output_dir(args, work_dir, &version)?;
    let use_manifest = match args.download {
        DownloadMode::Auto => !manifest.is_empty(),
        DownloadMode::Zip => false,
        DownloadMode::Manifest => {
            if manifest.is_empty() {
                return Err(CliError::new(
                    LocalCode::NoManifest,
                    format!("the server sent no manifest for {version}"),
                ));
            }
            true
        }
    };
    let scratch =
        tempfile::tempdir().map_err(|e| CliError::new(LocalCode::IoError, e.to_string()))?;
    if use_manifest {
        // iOS decrypts the checksum whenever it holds a key, even for manifests (§4.5).
        if args.platform == PlatformArg::Ios {
            if let Some(device_key) = &device_key {
                crypto::decrypt_checksum(&device_key.key, &text(&answer, "checksum"))
                    .map_err(|e| CliError::new(LocalCode::ChecksumFail, e.to_string()))?;
            }
        }
        download_manifest(
            &http,
            &manifest,
            session.as_ref(),
            device_key.as_ref(),
            &out,
            &mut report,
        )
        .await?;
    } else {
        let url = text(&answer, "url");
        let served = scratch.path().join("download");
        let bytes = download_to(&http, &url, &served).await?;
        report.step("download", format!("{url} ({})", human_bytes(bytes)));
        let plain = match &session {
            Some(session) => {
                let target = scratch.path().join("bundle.zip");
                crypto::decrypt_file(session, &served, &target)
                    .map_err(|e| CliError::new(LocalCode::DecryptFail, e.to_string()))?;
                report.step("decrypt", "AES-128-CBC with the session key".to_string());
                target
            }
            None => served,
        };
        let expected = expected_checksum(
            args.platform,
            device_key.as_ref(),
            &text(&answer, "checksum"),
            !session_key.is_empty(),
        )?;
        let actual = updraft_bundle::sha256_file(&plain)?;
        match expected {
            Some(expected) if expected != actual => {
                return Err(CliError::new(
                    LocalCode::ChecksumFail,
                    format!("the zip's SHA-256 is {actual}, the server promised {expected}"),
                ))
            }
            Some(_) => report.step("verify", format!("SHA-256 {actual} matches")),
            None => report.step(
                "verify",
                "skipped: no checksum and no public key (as the plugin does)".to_string(),
            ),
        }
        let unpacked = updraft_bundle::unpack::unpack_zip(&plain, &out)
            .map_err(|e| CliError::new(LocalCode::UnzipFail, format!("{e} [{}]", e.code())))?;
        report.step(
            "unpack",
            format!(
                "{} files, {} into {}",
                unpacked.files,
                human_bytes(unpacked.bytes),
                unpacked.root.display()
            ),
        );
    }

    let text = format!(
        "{}\nDevice {device_id} would now run bundle {version} (files in {}).",
        report.lines.join("\n"),
        out.display()
    );
    Ok(Outcome::new(
        json!({
            "device_id": device_id,
            "app_id": app_id,
            "version": version,
            "download": if use_manifest { "manifest" } else { "zip" },
            "unpacked_to": out.display().to_string(),
            "steps": report.steps,
            "response": answer,
        }),
        text,
    ))
}

fn update_request(
    app_id: &str,
    device_id: &str,
    args: &DeviceSimulateArgs,
    device_key: Option<&DeviceKey>,
) -> Value {
    let mut body = json!({
        "app_id": app_id,
        "device_id": device_id,
        "platform": args.platform.as_str(),
        "version_name": args.version_name,
        "version_build": args.version_build,
        "version_code": "1",
        "version_os": "14",
        "plugin_version": args.plugin_version,
        "is_emulator": args.emulator,
        "is_prod": !args.dev,
        "custom_id": "",
        "defaultChannel": args.channel.clone().unwrap_or_default(),
    });
    if let Some(key) = device_key {
        body["key_id"] = json!(key.key_id);
    }
    body
}

/// The checksum to compare with, by the platform's rules (§3.3, §4.5); `None` skips the check.
fn expected_checksum(
    platform: PlatformArg,
    device_key: Option<&DeviceKey>,
    checksum: &str,
    encrypted: bool,
) -> Result<Option<String>, CliError> {
    let Some(device_key) = device_key else {
        if checksum.is_empty() {
            return Ok(None);
        }
        if checksum.len() == 8 {
            return Err(CliError::new(
                LocalCode::ChecksumFail,
                "the server sent a CRC32 checksum, which 8.x plugins no longer accept",
            ));
        }
        return Ok(Some(checksum.to_string()));
    };
    if checksum.is_empty() {
        return Err(CliError::new(
            LocalCode::ChecksumRequired,
            "the app has a public key, so the plugin requires a checksum, and the server sent none",
        ));
    }
    // Android decrypts only with a session key; iOS always does when it holds a key.
    let decrypt = encrypted || platform == PlatformArg::Ios;
    if decrypt {
        crypto::decrypt_checksum(&device_key.key, checksum)
            .map(Some)
            .map_err(|e| {
                CliError::new(
                    LocalCode::ChecksumFail,
                    format!("cannot decrypt the checksum: {e}"),
                )
            })
    } else {
        Ok(Some(checksum.to_string()))
    }
}

async fn download_manifest(
    http: &reqwest::Client,
    manifest: &[Value],
    session: Option<&SessionKey>,
    device_key: Option<&DeviceKey>,
    out: &Path,
    report: &mut Report,
) -> Result<(), CliError> {
    let mut targets = HashSet::new();
    let mut total = 0u64;
    for entry in manifest {
        let file_name = text(entry, "file_name");
        let file_hash = text(entry, "file_hash");
        let url = text(entry, "download_url");
        let disk_name = file_name
            .strip_suffix(".br")
            .unwrap_or(&file_name)
            .to_string();
        let path_fail =
            |why: String| CliError::new(LocalCode::ManifestPathFail, format!("{file_name}: {why}"));
        updraft_bundle::names::check_entry_name(&disk_name)
            .map_err(|e| path_fail(e.to_string()))?;
        if !targets.insert(disk_name.clone()) {
            return Err(path_fail("two manifest entries write the same file".into()));
        }
        if file_hash.is_empty() {
            return Err(CliError::new(
                LocalCode::DownloadManifestChecksumFail,
                format!("{file_name} has an empty file_hash"),
            ));
        }
        let expected = match (session, device_key) {
            (Some(_), Some(key)) => {
                crypto::decrypt_checksum(&key.key, &file_hash).map_err(|e| {
                    CliError::new(
                        LocalCode::DownloadManifestChecksumFail,
                        format!("{file_name}: {e}"),
                    )
                })?
            }
            _ => file_hash.clone(),
        };
        let served = fetch(http, &url).await.map_err(|e| {
            CliError::new(
                LocalCode::DownloadManifestFileFail,
                format!("{file_name}: {}", e.message),
            )
        })?;
        total += served.len() as u64;
        let (name, content) = updraft_bundle::unpack::decode_delta_file(
            &file_name, &served, session,
        )
        .map_err(|e| {
            let code = if file_name.ends_with(".br") && session.is_none() {
                LocalCode::DownloadManifestBrotliFail
            } else {
                LocalCode::DecryptFail
            };
            CliError::new(code, format!("{file_name}: {e}"))
        })?;
        let actual = updraft_bundle::sha256_bytes(&content);
        if actual != expected {
            return Err(CliError::new(
                LocalCode::DownloadManifestChecksumFail,
                format!("{file_name}: SHA-256 {actual}, the manifest promised {expected}"),
            ));
        }
        let target = out.join(&name);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| CliError::new(LocalCode::DirectoryPathFail, e.to_string()))?;
        }
        tokio::fs::write(&target, &content)
            .await
            .map_err(|e| CliError::new(LocalCode::IoError, e.to_string()))?;
    }
    report.step(
        "download",
        format!(
            "{} manifest files ({}), each verified",
            manifest.len(),
            human_bytes(total)
        ),
    );
    if !out.join("index.html").is_file() {
        return Err(CliError::new(
            ErrorCode::MissingIndexHtml,
            "the manifest has no index.html at the bundle root",
        ));
    }
    report.step("unpack", format!("files written into {}", out.display()));
    Ok(())
}

async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, CliError> {
    let response = http.post(url).json(body).send().await.map_err(|e| {
        CliError::new(
            LocalCode::ConnectionFailed,
            format!("cannot reach {url}: {e}"),
        )
    })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| CliError::new(LocalCode::ConnectionFailed, format!("{url}: {e}")))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
        CliError::new(
            LocalCode::InvalidResponse,
            format!("{url} answered HTTP {status} with something that is not JSON"),
        )
    })?;
    if !status.is_success() && value.get("error").is_none() {
        return Err(CliError::new(
            CliCode::Http(status.as_u16()),
            format!("{url} answered HTTP {status}"),
        ));
    }
    Ok(value)
}

/// A GET the way the plugin judges it: only 200 and 206 count as success.
async fn start_download(http: &reqwest::Client, url: &str) -> Result<reqwest::Response, CliError> {
    let response = http.get(url).send().await.map_err(|e| {
        CliError::new(
            LocalCode::DownloadFail,
            format!("cannot download {url}: {e}"),
        )
    })?;
    let status = response.status();
    if status.as_u16() != 200 && status.as_u16() != 206 {
        return Err(CliError::new(
            LocalCode::DownloadFail,
            format!("{url} answered HTTP {status}"),
        ));
    }
    Ok(response)
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, CliError> {
    start_download(http, url)
        .await?
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| CliError::new(LocalCode::DownloadFail, format!("{url}: {e}")))
}

/// Streams a download to disk, as the plugin does (only 200 and 206 are accepted).
async fn download_to(http: &reqwest::Client, url: &str, path: &Path) -> Result<u64, CliError> {
    let mut response = start_download(http, url).await?;
    if let Some(encoding) = response.headers().get(reqwest::header::CONTENT_ENCODING) {
        return Err(CliError::new(
            LocalCode::DownloadFail,
            format!(
                "{url} was sent with Content-Encoding {encoding:?}; iOS would decode it and fail"
            ),
        ));
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| CliError::new(LocalCode::IoError, e.to_string()))?;
    let mut written = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CliError::new(LocalCode::DownloadFail, format!("{url}: {e}")))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| CliError::new(LocalCode::IoError, e.to_string()))?;
        written += chunk.len() as u64;
    }
    file.flush()
        .await
        .map_err(|e| CliError::new(LocalCode::IoError, e.to_string()))?;
    Ok(written)
}

fn read_public_key(path: &Path) -> Result<DeviceKey, CliError> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            ErrorCode::InvalidKey,
            format!("cannot read the public key {}: {e}", path.display()),
        )
    })?;
    let key = PublicKey::from_pem(&pem)?;
    Ok(DeviceKey {
        key_id: crypto::key_id(&pem),
        key,
    })
}

/// The default folder is the simulator's own and is replaced; a given one must be empty.
fn output_dir(
    args: &DeviceSimulateArgs,
    work_dir: &Path,
    version: &str,
) -> Result<PathBuf, CliError> {
    let io = |e: std::io::Error| CliError::new(LocalCode::IoError, e.to_string());
    let out = match &args.out {
        Some(out) => {
            let out = work_dir.join(out);
            let occupied = std::fs::read_dir(&out)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false);
            if occupied {
                return Err(CliError::new(
                    LocalCode::OutNotEmpty,
                    format!("{} is not empty", out.display()),
                ));
            }
            out
        }
        None => {
            let safe: String = version
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let out = work_dir.join("updraft-simulated").join(safe);
            if out.exists() {
                std::fs::remove_dir_all(&out).map_err(io)?;
            }
            out
        }
    };
    std::fs::create_dir_all(&out).map_err(io)?;
    Ok(out)
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A random (version 4) UUID, as the plugin's device ids are.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_v4_and_differ() {
        let a = random_uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(updraft_core::validate::is_uuid(&a));
        assert_ne!(a, random_uuid());
    }

    #[test]
    fn without_a_key_plain_checksums_are_compared_and_crc32_fails() {
        let sha = "a".repeat(64);
        assert_eq!(
            expected_checksum(PlatformArg::Ios, None, &sha, false).unwrap(),
            Some(sha.clone())
        );
        assert_eq!(
            expected_checksum(PlatformArg::Android, None, "", false).unwrap(),
            None
        );
        assert_eq!(
            expected_checksum(PlatformArg::Android, None, "deadbeef", false)
                .unwrap_err()
                .code,
            CliCode::Local(LocalCode::ChecksumFail)
        );
    }
}
