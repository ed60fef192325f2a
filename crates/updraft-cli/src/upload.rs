//! `bundle upload --path`: zip (or check) the bundle, optionally encrypt it and
//! cut it into delta files, upload everything resumably, then register it.

use crate::args::BundleUploadArgs;
use crate::client::{ApiClient, RawAnswer};
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf};
use updraft_api::{
    BundleView, CreateBundle, CreateUpload, ErrorCode, ErrorView, ManifestEntryInput, MissingBlobs,
    MissingBlobsQuery, UploadStatus,
};
use updraft_bundle::crypto::{self, PrivateKey, SessionKey};
use updraft_bundle::delta::{self, DeltaFile};
use updraft_bundle::limits::ZipLimits;

/// Bytes per PATCH: each acknowledged chunk is durable on the server, so a
/// broken connection costs at most one chunk.
const CHUNK_BYTES: u64 = 8 * 1024 * 1024;
/// Consecutive failed attempts before giving up on an upload.
const MAX_ATTEMPTS: u32 = 8;
/// A chunk on a slow link may take a while; the connection's own errors end it sooner.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(600);
/// Hashes per `blobs/missing` question (the server takes up to 10,000).
const MISSING_QUERY_BATCH: usize = 1000;

/// The plaintext zip, and what was learnt while making or checking it.
struct PreparedZip {
    path: PathBuf,
    checksum: String,
    size: u64,
    calls_notify_app_ready: bool,
}

struct Encryption {
    key: PrivateKey,
    session: SessionKey,
    session_key: String,
    key_id: String,
}

pub async fn upload_bundle(
    client: &ApiClient,
    app_id: &str,
    args: &BundleUploadArgs,
    work_dir: &Path,
    show_progress: bool,
) -> Result<Outcome, CliError> {
    let source = match &args.path {
        Some(path) => work_dir.join(path),
        None => return Err(CliError::invalid_argument("--path DIR_OR_ZIP is required")),
    };
    let source = source.as_path();
    // Before the slow part: a project whose dependencies are not installed fails now.
    let (native_packages, native_warning) = crate::release::upload_native_packages(
        args.ignore_metadata_check,
        args.package_json.as_deref(),
        args.node_modules.as_deref(),
        work_dir,
    )?;
    let work = tempfile::tempdir().map_err(|e| io_error("cannot create a temporary folder", &e))?;
    let zip = prepare_zip(source, work.path())?;
    let mut warnings: Vec<String> = native_warning.into_iter().collect();
    if !zip.calls_notify_app_ready {
        warnings.push(
            "warning: no file of the bundle calls notifyAppReady(); the plugin rolls an update back \
             when the app does not call it soon after start"
                .to_string(),
        );
    }
    if let Some(given) = args.checksum.as_deref() {
        if !given.trim().eq_ignore_ascii_case(&zip.checksum) {
            return Err(CliError::new(
                ErrorCode::ChecksumMismatch,
                format!(
                    "--checksum {given} does not match the bundle's SHA-256 {}",
                    zip.checksum
                ),
            ));
        }
    }

    let version = args.bundle.clone().unwrap_or_default();
    let exists_check = crate::exists::Checksum::Plain(&zip.checksum);
    if args.version_exists_ok {
        // Before the slow part: a CI job run again uploads nothing.
        if let Some(outcome) =
            crate::exists::same_version(client, app_id, &version, exists_check).await?
        {
            return Ok(outcome);
        }
    }

    let encryption = match private_key_pem(args, work_dir)? {
        Some((pem, origin)) => {
            if let Some(origin) = origin {
                warnings.push(format!(
                    "note: encrypting with {} (pass --no-key to upload in clear)",
                    origin.display()
                ));
            }
            Some(load_encryption(&pem)?)
        }
        None => None,
    };
    let with_delta = args.delta || args.delta_only;
    let (served_zip, encrypted_checksum) = match &encryption {
        Some(enc) => {
            let out = work.path().join("bundle.enc");
            let (src, dst, session) = (zip.path.clone(), out.clone(), enc.session.clone());
            blocking(move || crypto::encrypt_file(&session, &src, &dst).map_err(CliError::from))
                .await?;
            let checksum = crypto::encrypt_checksum(&enc.key, &zip.checksum)?;
            (out, Some(checksum))
        }
        None => (zip.path.clone(), None),
    };
    let served_sha = {
        let path = served_zip.clone();
        blocking(move || updraft_bundle::sha256_file(&path).map_err(Into::into)).await?
    };
    let served_size = file_size(&served_zip)?;

    let mut manifest = Vec::new();
    if with_delta {
        let files = {
            let (zip_path, out) = (zip.path.clone(), work.path().join("delta"));
            let enc = encryption
                .as_ref()
                .map(|e| (e.session.clone(), e.key.clone()));
            blocking(move || {
                std::fs::create_dir_all(&out)?;
                let enc_ref = enc.as_ref().map(|(s, k)| (s, k));
                delta::build_delta(&zip_path, &out, enc_ref).map_err(CliError::from)
            })
            .await?
        };
        upload_delta_files(client, &files, show_progress).await?;
        manifest = files
            .iter()
            .map(|file| ManifestEntryInput {
                file_name: file.file_name.clone(),
                file_hash: file.file_hash.clone(),
                blob_sha256: file.blob_sha256.clone(),
                size: i64::try_from(file.size).ok(),
            })
            .collect();
    }

    if !args.delta_only {
        upload_blob(client, &served_zip, &served_sha, served_size, show_progress).await?;
    }

    let (session_key, key_id) = match (&encryption, &encrypted_checksum) {
        (Some(enc), Some(_)) => (Some(enc.session_key.clone()), Some(enc.key_id.clone())),
        _ => (None, None),
    };
    let body = CreateBundle {
        zip_sha256: (!args.delta_only).then(|| served_sha.clone()),
        checksum: Some(zip.checksum.clone()),
        session_key,
        key_id,
        encrypted_checksum: encrypted_checksum.clone(),
        manifest: (!manifest.is_empty()).then_some(manifest),
        native_packages: native_packages.clone(),
        ..args.new_bundle()
    };
    let bundle = match client
        .post::<BundleView>(&["apps", app_id, "bundles"], &body)
        .await
    {
        Ok(bundle) => bundle,
        // Registered meanwhile by another run of the same job.
        Err(error) if args.version_exists_ok && error.is(&ErrorCode::BundleAlreadyExists) => {
            return crate::exists::same_version(client, app_id, &version, exists_check)
                .await?
                .ok_or(error);
        }
        Err(error) => return Err(crate::release::explain_incompatible(error)),
    };

    let version = bundle.value.version.clone();
    let mut text = format!(
        "Uploaded bundle {version} of {app_id} ({}, sha256 {}{}{}).",
        human_bytes(zip.size),
        zip.checksum,
        if encryption.is_some() {
            ", encrypted"
        } else {
            ""
        },
        if args.delta_only {
            ", delta files only"
        } else if args.delta {
            ", with delta files"
        } else {
            ""
        },
    );
    text.push_str(&crate::commands::channel_outcome(
        args.channel.as_deref(),
        args.rollout_bps(),
    ));
    let mut outcome = Outcome::new(bundle.json, text);
    for warning in warnings {
        outcome = outcome.with_warning(warning);
    }
    Ok(outcome)
}

/// Zips a folder deterministically, or checks a given zip with the same rules
/// the server applies (an encrypted bundle cannot be checked after encryption).
fn prepare_zip(source: &Path, work: &Path) -> Result<PreparedZip, CliError> {
    let meta = std::fs::metadata(source).map_err(|e| {
        CliError::new(
            LocalCode::PathNotFound,
            format!("cannot read --path {}: {e}", source.display()),
        )
    })?;
    if meta.is_dir() {
        let out = work.join("bundle.zip");
        let packed = updraft_bundle::pack::pack_dir(source, &out)?;
        updraft_bundle::inspect::inspect_zip(&out, &ZipLimits::default())?;
        Ok(PreparedZip {
            size: packed.bytes,
            checksum: packed.sha256,
            calls_notify_app_ready: packed.calls_notify_app_ready,
            path: out,
        })
    } else {
        let summary = updraft_bundle::inspect::inspect_zip(source, &ZipLimits::default())?;
        let checksum = updraft_bundle::sha256_file(source)?;
        Ok(PreparedZip {
            size: meta.len(),
            checksum,
            calls_notify_app_ready: summary.calls_notify_app_ready,
            path: source.to_path_buf(),
        })
    }
}

/// The private key to encrypt with, and where it was found when nobody named it:
/// `--key-data-v2`, `--key-v2 PATH`, else `./.capgo_key_v2` unless `--no-key`.
fn private_key_pem(
    args: &BundleUploadArgs,
    work_dir: &Path,
) -> Result<Option<(String, Option<PathBuf>)>, CliError> {
    if let Some(pem) = &args.key_data_v2 {
        return Ok(Some((pem.clone(), None)));
    }
    let (path, implicit) = match &args.key_v2 {
        Some(path) => (work_dir.join(path), false),
        None if args.no_key => return Ok(None),
        None => {
            let default = work_dir.join(crate::keys::PRIVATE_KEY_FILE);
            if !default.is_file() {
                return Ok(None);
            }
            (default, true)
        }
    };
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        CliError::new(
            ErrorCode::InvalidKey,
            format!("cannot read the private key {}: {e}", path.display()),
        )
    })?;
    Ok(Some((pem, implicit.then_some(path))))
}

fn load_encryption(pem: &str) -> Result<Encryption, CliError> {
    let key = PrivateKey::from_pem(pem)?;
    let public_pem = key.public_key().to_pem()?;
    let session = SessionKey::generate();
    let session_key = session.seal(&key)?;
    Ok(Encryption {
        key_id: crypto::key_id(&public_pem),
        key,
        session,
        session_key,
    })
}

async fn upload_delta_files(
    client: &ApiClient,
    files: &[DeltaFile],
    show_progress: bool,
) -> Result<(), CliError> {
    // Entries with identical content share one blob: ask about and send each once.
    let mut seen = HashSet::new();
    let unique: Vec<&DeltaFile> = files
        .iter()
        .filter(|file| seen.insert(file.blob_sha256.as_str()))
        .collect();
    let mut missing = Vec::new();
    for batch in unique.chunks(MISSING_QUERY_BATCH) {
        let hashes: Vec<String> = batch.iter().map(|f| f.blob_sha256.clone()).collect();
        let query = MissingBlobsQuery { sha256: hashes };
        let answer = client
            .post::<MissingBlobs>(&["blobs", "missing"], &query)
            .await?;
        let listed: HashSet<&str> = answer.value.missing.iter().map(String::as_str).collect();
        missing.extend(
            batch
                .iter()
                .filter(|f| listed.contains(f.blob_sha256.as_str()))
                .copied(),
        );
    }
    let total: u64 = missing.iter().map(|f| f.size).sum();
    let bar = progress_bar(total, "delta files", show_progress);
    for file in missing {
        let bytes = tokio::fs::read(&file.path)
            .await
            .map_err(|e| io_error("cannot read a delta file", &e))?;
        let len = bytes.len() as u64;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = client
                .send_raw(
                    Method::PUT,
                    &["blobs", &file.blob_sha256],
                    &[("content-type", "application/octet-stream".to_string())],
                    reqwest::Body::from(bytes.clone()),
                    CHUNK_TIMEOUT,
                )
                .await;
            match result {
                Ok(RawAnswer::Success(_)) => break,
                Ok(RawAnswer::Refused(status, answer))
                    if !is_transient(status) || attempt >= MAX_ATTEMPTS =>
                {
                    return Err(answer_error(status, &answer));
                }
                Err(error)
                    if !error.is_local(LocalCode::ConnectionFailed) || attempt >= MAX_ATTEMPTS =>
                {
                    return Err(error)
                }
                _ => tokio::time::sleep(backoff(attempt)).await,
            }
        }
        bar.inc(len);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Uploads one file through a resumable upload session. A session for the same
/// content is picked up where it stopped, by this run or an earlier one.
async fn upload_blob(
    client: &ApiClient,
    path: &Path,
    sha256: &str,
    size: u64,
    show_progress: bool,
) -> Result<(), CliError> {
    let body = CreateUpload {
        size,
        sha256: sha256.to_string(),
    };
    let created = client.post::<UploadStatus>(&["uploads"], &body).await?;
    let upload_id = created.value.upload_id.clone();
    let mut status = Progress::of(&created.value);
    let resumed_from = if status.complete {
        size
    } else {
        status.offset.min(size)
    };
    let bar = progress_bar(size, "bundle", show_progress);
    if resumed_from > 0 {
        // The bytes already on the server are not this run's: the bar starts
        // there and its rate counts only what this run sends.
        bar.set_position(resumed_from);
        // Record the jump, then forget its rate.
        bar.tick();
        bar.reset_eta();
        if show_progress {
            print_above_progress(&bar, &resume_line(resumed_from, size));
        }
    }
    let started = std::time::Instant::now();
    let mut failures = 0u32;
    loop {
        if status.complete {
            break;
        }
        if upload_id.is_empty() {
            return Err(CliError::new(
                LocalCode::InvalidResponse,
                "the server did not say which upload session to use",
            ));
        }
        let offset = status.offset;
        bar.set_position(offset);
        let len = CHUNK_BYTES.min(size.saturating_sub(offset));
        let attempt = send_chunk(client, &upload_id, path, offset, len, bar.clone()).await;
        match attempt {
            Ok(RawAnswer::Success(answer)) => {
                failures = 0;
                status = Progress::deserialize(&answer).map_err(|error| {
                    CliError::new(
                        LocalCode::InvalidResponse,
                        format!("the server's upload status is not understood: {error}"),
                    )
                })?;
            }
            Ok(RawAnswer::Refused(StatusCode::CONFLICT, answer))
                if answer.detail::<u64>("offset").is_some() =>
            {
                // Our idea of the offset was stale (an earlier attempt landed): go on from the server's.
                failures += 1;
                status = Progress {
                    offset: answer.detail::<u64>("offset").unwrap_or(offset),
                    complete: false,
                };
            }
            Ok(RawAnswer::Refused(code, answer)) if !is_transient(code) => {
                return Err(answer_error(code, &answer))
            }
            Ok(RawAnswer::Refused(code, answer)) => {
                failures += 1;
                if failures >= MAX_ATTEMPTS {
                    return Err(answer_error(code, &answer));
                }
                tokio::time::sleep(backoff(failures)).await;
                status = current_status(client, &upload_id).await?;
            }
            Err(error)
                if error.is_local(LocalCode::ConnectionFailed) && failures + 1 < MAX_ATTEMPTS =>
            {
                failures += 1;
                print_above_progress(
                    &bar,
                    &format!("connection lost ({}); resuming", error.message),
                );
                tokio::time::sleep(backoff(failures)).await;
                status = current_status(client, &upload_id).await?;
            }
            Err(error) => return Err(error),
        }
    }
    bar.finish_and_clear();
    if show_progress && resumed_from < size {
        print_above_progress(
            &bar,
            &sent_line(size - resumed_from, started.elapsed(), resumed_from),
        );
    }
    Ok(())
}

/// Said before a resumed upload goes on.
fn resume_line(resumed_from: u64, size: u64) -> String {
    if resumed_from >= size {
        format!(
            "bundle: already on the server ({}, uploaded by an earlier run)",
            human_bytes(size)
        )
    } else {
        format!(
            "bundle: resuming an earlier upload from {} of {} ({resumed_from} bytes already on the server)",
            human_bytes(resumed_from),
            human_bytes(size)
        )
    }
}

/// Said when the upload is done: what this run sent, and at what rate.
fn sent_line(sent: u64, elapsed: std::time::Duration, resumed_from: u64) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        format!("{}/s", human_bytes((sent as f64 / seconds) as u64))
    } else {
        "-".to_string()
    };
    let resumed = if resumed_from > 0 {
        format!(", resumed after {resumed_from} bytes sent earlier")
    } else {
        String::new()
    };
    format!(
        "bundle: sent {sent} bytes ({}) in {seconds:.1} s at {rate}{resumed}",
        human_bytes(sent)
    )
}

/// The server's durable offset, retried while the server cannot be reached.
async fn current_status(client: &ApiClient, upload_id: &str) -> Result<Progress, CliError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client
            .get::<UploadStatus>(&["uploads", upload_id], &[])
            .await
        {
            Ok(status) => return Ok(Progress::of(&status.value)),
            Err(error) if error.is_local(LocalCode::ConnectionFailed) && attempt < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn send_chunk(
    client: &ApiClient,
    upload_id: &str,
    path: &Path,
    offset: u64,
    len: u64,
    bar: ProgressBar,
) -> Result<RawAnswer, CliError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error("cannot open the bundle", &e))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| io_error("cannot read the bundle", &e))?;
    let reader = CountingReader {
        inner: file.take(len),
        bar,
    };
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader));
    client
        .send_raw(
            Method::PATCH,
            &["uploads", upload_id],
            &[
                ("upload-offset", offset.to_string()),
                (
                    "content-type",
                    "application/offset+octet-stream".to_string(),
                ),
                ("content-length", len.to_string()),
            ],
            body,
            CHUNK_TIMEOUT,
        )
        .await
}

/// Moves the progress bar as bytes leave.
struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.bar.inc(read as u64);
        poll
    }
}

fn progress_bar(total: u64, label: &str, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

fn print_above_progress(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(6)))
}

/// A refusal as the CLI's error: the server's code and sentence.
fn answer_error(status: StatusCode, answer: &ErrorView) -> CliError {
    let text = serde_json::to_vec(&answer.to_json()).unwrap_or_default();
    crate::client::error_from_response(status, &text)
}

/// Where an upload stands: what the loop needs of [`UploadStatus`] (a
/// chunk's answer, or the offset a 409 names).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct Progress {
    offset: u64,
    complete: bool,
}

impl Progress {
    fn of(status: &UploadStatus) -> Progress {
        Progress {
            offset: status.offset,
            complete: status.complete,
        }
    }
}

fn file_size(path: &Path) -> Result<u64, CliError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| io_error("cannot read the bundle", &e))
}

fn io_error(what: &str, error: &std::io::Error) -> CliError {
    CliError::new(LocalCode::IoError, format!("{what}: {error}"))
}

/// Runs CPU- or disk-heavy work (zipping, hashing, encrypting) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CliError> + Send + 'static,
) -> Result<T, CliError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        CliError::new(
            ErrorCode::InternalError,
            format!("a worker thread failed: {e}"),
        )
    })?
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_uploads_say_so_and_count_only_this_runs_bytes() {
        assert_eq!(
            resume_line(3 * 1024 * 1024, 8 * 1024 * 1024),
            "bundle: resuming an earlier upload from 3.0 MiB of 8.0 MiB (3145728 bytes already on the server)"
        );
        assert!(resume_line(10, 10).contains("already on the server"));
        // 5 MiB in 2 s: 2.5 MiB/s, not (3 + 5) MiB / 2 s.
        assert_eq!(
            sent_line(5 * 1024 * 1024, Duration::from_secs(2), 3 * 1024 * 1024),
            "bundle: sent 5242880 bytes (5.0 MiB) in 2.0 s at 2.5 MiB/s, resumed after 3145728 bytes sent earlier"
        );
        assert!(!sent_line(1, Duration::ZERO, 0).contains("resumed"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(6), backoff(20));
    }

    #[test]
    fn transient_statuses() {
        assert!(is_transient(StatusCode::BAD_GATEWAY));
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!is_transient(StatusCode::CONFLICT));
    }
}
