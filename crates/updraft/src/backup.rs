//! `updraft backup --out FILE`, `updraft backup --verify FILE` and
//! `updraft restore FILE`: one file that holds a consistent snapshot of a
//! running installation and the bundle files it serves.
//!
//! The file is a tar archive, in this order:
//!
//! - `manifest.json`: format and versions, the source, every table of the
//!   database snapshot (rows and SHA-256), every file (SHA-256 and size);
//! - `database/updraft.db`: the snapshot, a standalone SQLite database with
//!   this binary's schema (see `updraft_store::backup`);
//! - `blobs/<sha256>`: each file's bytes, unless the installation keeps them
//!   in object storage and the backup was taken without `--include-blobs`
//!   (then the manifest lists them, and a restore finds them in a bucket).
//!
//! Each entry is checked as it is written and as it is read: a backup is
//! written to a temporary file, synced and renamed into place only once
//! whole, and a restore writes nothing the checks have not passed.

use crate::config::redact_url;
use crate::migrate::{mib, parse_option, table_progress, Progress};
use anyhow::{anyhow, Context};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use updraft_core::model::{Clock, SystemClock};
use updraft_store::backup::{BackupError, Engine, Snapshot, SnapshotInfo, TableSummary};
use updraft_store::blob::{BlobStore, LocalBlobStore, ObjectBlobStore};

/// What `format` says in every manifest.
const FORMAT: &str = "updraft-backup";
/// The archive layout this binary writes and reads; a newer one is refused.
const FORMAT_VERSION: u32 = 1;
const MANIFEST_ENTRY: &str = "manifest.json";
const DATABASE_ENTRY: &str = "database/updraft.db";
const BLOB_PREFIX: &str = "blobs/";
/// A manifest is a list of files: even a million of them stay well below.
const MAX_MANIFEST_BYTES: u64 = 1 << 30;
/// Files stat'ed (or read) from the store at the same time.
const BLOB_CONCURRENCY: usize = 8;

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["out", "verify"])))]
pub struct BackupArgs {
    /// Write a backup of the installation `updraft serve` uses (same
    /// configuration: --data-dir, --database-url, updraft.toml, UPDRAFT_*)
    /// to FILE, replacing it only once the new one is complete
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Check the backup FILE (every checksum, every file) without restoring it
    #[arg(long, value_name = "FILE")]
    pub verify: Option<PathBuf>,
    /// With object storage: put the files' bytes in the backup too (default:
    /// only their list and checksums; the bucket keeps the bytes)
    #[arg(long)]
    pub include_blobs: bool,
    /// Configuration file (default: ./updraft.toml when it exists)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup file (from `updraft backup --out`)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Object storage (s3://bucket/prefix) for the bundle files: where they
    /// are put, or, for a backup taken without their bytes, where they are
    #[arg(long, value_name = "S3_URL")]
    pub storage: Option<String>,
    /// Object-storage setting (endpoint, region, access_key_id, allow_http, …),
    /// like the server's `[storage_options]`; repeatable
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub storage_options: Vec<(String, String)>,
}

/// How a backup command ended; the exit code tells scripts which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It could not be done (I/O, connection, configuration, missing files).
    Failed = 1,
    /// The backup file is damaged, truncated or not a backup.
    Damaged = 3,
    /// The backup comes from a newer Updraft (archive format or schema).
    TooNew = 4,
    /// The restore target is not empty; nothing was written.
    NotEmpty = 5,
}

#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub error: anyhow::Error,
}

impl Failure {
    fn new(outcome: Outcome, error: anyhow::Error) -> Failure {
        Failure { outcome, error }
    }

    fn damaged(message: String) -> Failure {
        Failure::new(Outcome::Damaged, anyhow!(message))
    }

    fn context(self, context: String) -> Failure {
        Failure {
            outcome: self.outcome,
            error: self.error.context(context),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::new(Outcome::Failed, error.into())
    }
}

/// A store failure, with its outcome.
fn store_failure(err: BackupError) -> Failure {
    let outcome = match &err {
        BackupError::NewerSchema { .. } => Outcome::TooNew,
        BackupError::Damaged(_) => Outcome::Damaged,
        BackupError::TargetNotEmpty { .. } => Outcome::NotEmpty,
        _ => Outcome::Failed,
    };
    Failure::new(outcome, err.into())
}

/// Prints the error and turns the outcome into the exit code.
pub fn exit_code(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.outcome as u8)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    /// The Updraft that wrote the backup.
    updraft_version: String,
    created_at: String,
    source: Source,
    database: DatabaseEntry,
    blobs: Blobs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Source {
    engine: Engine,
    /// The installation's latest migration, in its engine's numbering.
    schema_version: i64,
    /// Where the database was (passwords left out).
    database: String,
    /// Where the files were: a directory, or `s3://bucket/prefix`.
    storage: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DatabaseEntry {
    path: String,
    /// The snapshot file's engine: always SQLite.
    engine: Engine,
    /// The snapshot file's latest migration (SQLite's numbering).
    schema_version: i64,
    size: u64,
    sha256: String,
    tables: Vec<TableSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Blobs {
    /// Whether the archive holds the files' bytes.
    included: bool,
    /// Object storage the files were in (`s3://bucket/prefix`), if any.
    storage: Option<String>,
    count: u64,
    bytes: u64,
    files: Vec<BlobItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BlobItem {
    sha256: String,
    size: u64,
    /// The object's key in the bucket, for files in object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// `updraft backup …`.
pub async fn backup(
    json: bool,
    sources: crate::config::Sources,
    args: BackupArgs,
    clock: &dyn Clock,
) -> Result<(), Failure> {
    match (&args.verify, &args.out) {
        (Some(file), _) => verify(file, json).await,
        (None, Some(out)) => {
            let settings = crate::config::load(&sources)?;
            write_backup(&settings, out, args.include_blobs, json, clock).await
        }
        (None, None) => Err(anyhow!("give --out FILE or --verify FILE").into()),
    }
}

/// Removes a temporary file unless it was kept.
struct PendingFile {
    path: PathBuf,
    kept: bool,
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A new file only its owner may read (a backup holds API-key hashes and keys).
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A directory path's parent ("." for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

async fn write_backup(
    settings: &crate::config::Settings,
    out: &Path,
    include_blobs: bool,
    json: bool,
    clock: &dyn Clock,
) -> Result<(), Failure> {
    let started = Instant::now();
    let created_at = clock.now();
    let server = &settings.server;
    let out_dir = parent_of(out);
    if !out_dir.is_dir() {
        return Err(anyhow!("{} is not a directory", out_dir.display()).into());
    }
    let file_name = out
        .file_name()
        .ok_or_else(|| anyhow!("{} names no file", out.display()))?
        .to_string_lossy()
        .into_owned();
    // The snapshot is staged beside the backup (that disk has the room).
    let work = tempfile::Builder::new()
        .prefix(".updraft-backup-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("cannot create a work directory in {}", out_dir.display()))?;
    let snapshot_file = work.path().join(updraft_store::sqlite::DB_FILE_NAME);

    let (snapshot, database_described) = match &settings.database() {
        Some(db) => {
            let snapshot = updraft_store::backup::snapshot_postgres(&db.url, &snapshot_file)
                .await
                .map_err(store_failure)
                .map_err(|f| f.context(format!("backing up PostgreSQL {}", redact_url(&db.url))))?;
            (snapshot, redact_url(&db.url))
        }
        None => {
            let db_file = server.data_dir.join(updraft_store::sqlite::DB_FILE_NAME);
            if !db_file.is_file() {
                return Err(anyhow!(
                    "no installation at {} (point --data-dir or UPDRAFT_DATA_DIR at the server's data directory, or --database-url at its database)",
                    db_file.display()
                )
                .into());
            }
            let snapshot = updraft_store::backup::snapshot_sqlite(&db_file, &snapshot_file)
                .await
                .map_err(store_failure)
                .map_err(|f| f.context(format!("backing up {}", db_file.display())))?;
            (snapshot, format!("sqlite:{}", db_file.display()))
        }
    };
    let snapshot_secs = started.elapsed().as_secs_f64();

    let (store, storage_described): (Arc<dyn BlobStore>, String) = match &server.storage_url {
        Some(url) => {
            let store = ObjectBlobStore::from_url(url, &server.storage_options, work.path())
                .context("cannot use the object storage")?;
            (Arc::new(store), url.clone())
        }
        None => {
            let store = LocalBlobStore::open(&server.data_dir, Arc::new(SystemClock))
                .with_context(|| {
                    format!("cannot open the files in {}", server.data_dir.display())
                })?;
            (
                Arc::new(store),
                server
                    .data_dir
                    .join(updraft_store::blob::BLOBS_DIR)
                    .display()
                    .to_string(),
            )
        }
    };
    let included = server.storage_url.is_none() || include_blobs;
    let files = blob_sizes(
        store.as_ref(),
        &snapshot.info.referenced_blobs,
        &storage_described,
    )
    .await?;

    let (db_size, db_sha256) = {
        let path = snapshot_file.clone();
        tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .context("hashing the snapshot")??
    };
    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        updraft_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: updraft_core::analytics::rfc3339(created_at),
        source: Source {
            engine: snapshot.source_engine,
            schema_version: snapshot.source_schema_version,
            database: database_described,
            storage: storage_described,
        },
        database: DatabaseEntry {
            path: DATABASE_ENTRY.to_string(),
            engine: Engine::Sqlite,
            schema_version: snapshot.info.schema_version(),
            size: db_size,
            sha256: db_sha256,
            tables: snapshot.info.tables.clone(),
        },
        blobs: Blobs {
            included,
            storage: server.storage_url.clone(),
            count: files.len() as u64,
            bytes: files.iter().map(|f| f.size).sum(),
            files,
        },
    };

    let pending = PendingFile {
        path: out_dir.join(format!(".{file_name}.partial-{}", random_suffix())),
        kept: false,
    };
    let written = {
        let manifest = manifest.clone();
        let temp = pending.path.clone();
        let store = store.clone();
        let handle = tokio::runtime::Handle::current();
        let mtime = u64::try_from(created_at / 1000).unwrap_or(0);
        tokio::task::spawn_blocking(move || {
            write_archive(&temp, &manifest, &snapshot_file, store, handle, mtime)
        })
        .await
        .context("writing the backup")??
    };
    let mut pending = pending;
    std::fs::rename(&pending.path, out)
        .with_context(|| format!("cannot move the backup into place at {}", out.display()))?;
    pending.kept = true;
    sync_dir(&out_dir).with_context(|| format!("cannot sync {}", out_dir.display()))?;
    drop(work);
    let seconds = started.elapsed().as_secs_f64();
    report_backup(
        out,
        &manifest,
        &snapshot,
        written,
        seconds,
        snapshot_secs,
        json,
    )?;
    Ok(())
}

fn report_backup(
    out: &Path,
    manifest: &Manifest,
    snapshot: &Snapshot,
    bytes: u64,
    seconds: f64,
    snapshot_secs: f64,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let summary = serde_json::json!({
            "file": out.display().to_string(),
            "bytes": bytes,
            "seconds": seconds,
            "snapshot_seconds": snapshot_secs,
            "manifest": manifest,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "Backup written to {} ({} in {seconds:.1} s; database snapshot in {snapshot_secs:.1} s)",
        out.display(),
        mib(bytes)
    );
    println!(
        "  database: {} {} (schema {}), snapshot of {}",
        snapshot.source_engine.name(),
        manifest.source.database,
        manifest.source.schema_version,
        manifest.created_at
    );
    print_tables(&manifest.database.tables);
    let blobs = &manifest.blobs;
    if blobs.included {
        println!(
            "  files: {} ({}) from {}, each checked against its SHA-256",
            blobs.count,
            mib(blobs.bytes),
            manifest.source.storage
        );
    } else {
        println!(
            "  files: {} ({}) listed with their SHA-256; their bytes stay in {} (--include-blobs puts them in the backup)",
            blobs.count,
            mib(blobs.bytes),
            manifest.source.storage
        );
    }
    println!(
        "Not in the backup: configuration (updraft.toml, UPDRAFT_* settings such as webhook_secret_key) and uploads in progress."
    );
    Ok(())
}

fn print_tables(tables: &[TableSummary]) {
    let width = tables
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    for table in tables {
        println!("    {:<width$}  {:>12} rows", table.name, table.rows);
    }
}

/// The size of every blob the snapshot references; all must be there.
async fn blob_sizes(
    store: &dyn BlobStore,
    referenced: &BTreeSet<String>,
    described: &str,
) -> Result<Vec<BlobItem>, Failure> {
    let mut results = futures_util::stream::iter(referenced.iter().cloned())
        .map(|sha256| async move {
            let size = store.stat(&sha256).await;
            (sha256, size)
        })
        .buffer_unordered(BLOB_CONCURRENCY);
    let mut files = BTreeMap::new();
    let mut missing = Vec::new();
    while let Some((sha256, size)) = results.next().await {
        match size.with_context(|| format!("cannot look up file {sha256} in {described}"))? {
            Some(size) => {
                files.insert(sha256, size);
            }
            None => missing.push(sha256),
        }
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(anyhow!(
            "{} file(s) that live bundles of the snapshot use are missing from {described}: {}; nothing was written",
            missing.len(),
            missing.join(", ")
        )
        .into());
    }
    Ok(files
        .into_iter()
        .map(|(sha256, size)| BlobItem {
            key: store.object_key(&sha256),
            sha256,
            size,
        })
        .collect())
}

fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// A reader that must yield exactly `size` bytes hashing to `sha256`, and
/// fails (`InvalidData`) at its end otherwise: a short, long or changed
/// file is never taken for the right one.
struct Verified<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    size: u64,
    sha256: String,
    what: String,
}

impl<R: Read> Verified<R> {
    fn new(inner: R, size: u64, sha256: &str, what: String) -> Verified<R> {
        Verified {
            inner,
            hasher: Sha256::new(),
            read: 0,
            size,
            sha256: sha256.to_string(),
            what,
        }
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.read != self.size {
                return Err(invalid(format!(
                    "{}: {} bytes instead of {}",
                    self.what, self.read, self.size
                )));
            }
            let actual = hex::encode(self.hasher.clone().finalize());
            if actual != self.sha256 {
                return Err(invalid(format!(
                    "{}: its bytes hash to {actual}, not {}",
                    self.what, self.sha256
                )));
            }
            return Ok(0);
        }
        self.read += n as u64;
        if self.read > self.size {
            return Err(invalid(format!(
                "{}: more than {} bytes",
                self.what, self.size
            )));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn entry_header(path: &str, size: u64, mtime: u64) -> std::io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Writes the archive to `temp` (runs on a blocking thread; blob reads go
/// through `handle`) and syncs it; returns its size.
fn write_archive(
    temp: &Path,
    manifest: &Manifest,
    database: &Path,
    store: Arc<dyn BlobStore>,
    handle: tokio::runtime::Handle,
    mtime: u64,
) -> Result<u64, Failure> {
    let file = create_private(temp).with_context(|| format!("cannot create {}", temp.display()))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let manifest_bytes = serde_json::to_vec_pretty(manifest)?;
    builder
        .append(
            &entry_header(MANIFEST_ENTRY, manifest_bytes.len() as u64, mtime)?,
            manifest_bytes.as_slice(),
        )
        .context("writing the manifest")?;
    let db = std::fs::File::open(database)
        .with_context(|| format!("cannot read {}", database.display()))?;
    builder
        .append(
            &entry_header(DATABASE_ENTRY, manifest.database.size, mtime)?,
            Verified::new(
                db,
                manifest.database.size,
                &manifest.database.sha256,
                "the database snapshot".to_string(),
            ),
        )
        .context("writing the database snapshot")?;
    if manifest.blobs.included {
        for item in &manifest.blobs.files {
            let reader = handle
                .block_on(store.open(&item.sha256))
                .with_context(|| format!("cannot read file {}", item.sha256))?
                .ok_or_else(|| {
                    anyhow!(
                        "file {} vanished from the store during the backup",
                        item.sha256
                    )
                })?;
            let range = handle
                .block_on(reader.range(0, item.size))
                .with_context(|| format!("cannot read file {}", item.sha256))?;
            let bytes = tokio_util::io::SyncIoBridge::new_with_handle(range, handle.clone());
            builder
                .append(
                    &entry_header(&format!("{BLOB_PREFIX}{}", item.sha256), item.size, mtime)?,
                    Verified::new(
                        bytes,
                        item.size,
                        &item.sha256,
                        format!("file {}", item.sha256),
                    ),
                )
                .with_context(|| format!("writing file {}", item.sha256))?;
        }
    }
    let writer = builder.into_inner().context("finishing the archive")?;
    let file = writer
        .into_inner()
        .map_err(|e| anyhow!("writing the backup: {}", e.error()))?;
    file.sync_all().context("syncing the backup")?;
    Ok(file.metadata()?.len())
}

/// What reading a backup found.
struct ReadBackup {
    manifest: Manifest,
    info: SnapshotInfo,
    /// The database snapshot, extracted and checked.
    database: PathBuf,
}

/// Parses and checks the manifest: its format first, so that a newer
/// format is told apart from a damaged file.
fn parse_manifest(bytes: &[u8]) -> Result<Manifest, Failure> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Failure::damaged(format!("the manifest is not valid JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(Failure::damaged(
            "not an Updraft backup (its manifest does not say format \"updraft-backup\")"
                .to_string(),
        ));
    }
    let version = value.get("format_version").and_then(|v| v.as_u64());
    match version {
        Some(v) if v > u64::from(FORMAT_VERSION) => {
            let by = value
                .get("updraft_version")
                .and_then(|v| v.as_str())
                .unwrap_or("a newer version");
            return Err(Failure::new(
                Outcome::TooNew,
                anyhow!(
                    "the backup's format is version {v}, written by Updraft {by}; this Updraft ({}) reads format {FORMAT_VERSION}: restore it with that Updraft (or a newer one)",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        Some(_) => {}
        None => {
            return Err(Failure::damaged(
                "the manifest has no format_version".to_string(),
            ))
        }
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| Failure::damaged(format!("the manifest is incomplete: {e}")))?;
    let known = updraft_store::backup::known_schema_version();
    if manifest.database.schema_version > known {
        return Err(Failure::new(
            Outcome::TooNew,
            anyhow!(
                "the backup's database schema is at migration {}, newer than this binary knows (Updraft {} knows migrations up to {known}); it was written by Updraft {}: restore it with that Updraft (or a newer one)",
                manifest.database.schema_version,
                env!("CARGO_PKG_VERSION"),
                manifest.updraft_version
            ),
        ));
    }
    if manifest.database.path != DATABASE_ENTRY {
        return Err(Failure::damaged(format!(
            "the manifest names the database {:?}",
            manifest.database.path
        )));
    }
    let mut names = BTreeSet::new();
    for item in &manifest.blobs.files {
        if !updraft_store::blob::is_sha256_hex(&item.sha256) || !names.insert(&item.sha256) {
            return Err(Failure::damaged(format!(
                "the manifest lists the file {:?} (not a SHA-256, or twice)",
                item.sha256
            )));
        }
    }
    Ok(manifest)
}

fn archive_error(e: std::io::Error) -> Failure {
    Failure::damaged(format!("the archive is damaged or truncated: {e}"))
}

/// Copies `from` (a verifying reader) to `to`: read failures mean a damaged
/// backup, write failures a failed restore.
fn copy_checked(from: &mut dyn Read, to: &mut dyn Write) -> Result<u64, Failure> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(archive_error(e)),
        };
        to.write_all(&buffer[..n]).context("writing")?;
        total += n as u64;
    }
    Ok(total)
}

/// Reads the whole backup `file` in order, checking everything: the
/// manifest, the database (extracted to `database`, its SHA-256, SQLite's
/// `quick_check`, every table's rows and checksum, its schema) and every
/// file, each handed to `on_blob` as a reader that fails unless the bytes
/// are exactly the listed ones. Runs on a blocking thread.
fn read_backup(
    file: &Path,
    database: &Path,
    handle: &tokio::runtime::Handle,
    on_blob: &mut dyn FnMut(&BlobItem, &mut dyn Read) -> Result<(), Failure>,
) -> Result<ReadBackup, Failure> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, input));
    let mut entries = archive.entries().map_err(archive_error)?;

    let mut next_entry = |what: &str| -> Result<tar::Entry<'_, _>, Failure> {
        match entries.next() {
            Some(entry) => entry.map_err(archive_error),
            None => Err(Failure::damaged(format!(
                "the archive ends before {what} (truncated?)"
            ))),
        }
    };
    let manifest = {
        let mut entry = next_entry("its manifest")?;
        let path = entry.path().map_err(archive_error)?.into_owned();
        if path != Path::new(MANIFEST_ENTRY) {
            return Err(Failure::damaged(format!(
                "not an Updraft backup: the first entry is {}, not {MANIFEST_ENTRY}",
                path.display()
            )));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_MANIFEST_BYTES)
            .read_to_end(&mut bytes)
            .map_err(archive_error)?;
        parse_manifest(&bytes)?
    };
    {
        let mut entry = next_entry("the database")?;
        let path = entry.path().map_err(archive_error)?.into_owned();
        if path != Path::new(DATABASE_ENTRY) {
            return Err(Failure::damaged(format!(
                "the second entry is {}, not {DATABASE_ENTRY}",
                path.display()
            )));
        }
        let mut out = create_private(database)
            .with_context(|| format!("cannot create {}", database.display()))?;
        let mut verified = Verified::new(
            &mut entry,
            manifest.database.size,
            &manifest.database.sha256,
            "the database snapshot".to_string(),
        );
        copy_checked(&mut verified, &mut out)?;
        out.sync_all().context("syncing the database")?;
    }
    let info = handle
        .block_on(updraft_store::backup::inspect(database))
        .map_err(store_failure)?;
    check_database(&manifest, &info)?;

    let expected: BTreeMap<&str, &BlobItem> = manifest
        .blobs
        .files
        .iter()
        .map(|item| (item.sha256.as_str(), item))
        .collect();
    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(archive_error)?;
        let path = entry.path().map_err(archive_error)?.into_owned();
        let path_text = path.to_string_lossy().into_owned();
        let item = path_text
            .strip_prefix(BLOB_PREFIX)
            .and_then(|sha256| expected.get(sha256))
            .filter(|_| manifest.blobs.included)
            .ok_or_else(|| {
                Failure::damaged(format!(
                    "the archive holds {path_text}, which its manifest does not list"
                ))
            })?;
        if !seen.insert(item.sha256.clone()) {
            return Err(Failure::damaged(format!(
                "the archive holds {path_text} twice"
            )));
        }
        let mut verified = Verified::new(
            &mut entry,
            item.size,
            &item.sha256,
            format!("file {}", item.sha256),
        );
        on_blob(item, &mut verified)?;
    }
    if manifest.blobs.included && seen.len() != expected.len() {
        let missing = expected.len() - seen.len();
        return Err(Failure::damaged(format!(
            "the archive ends with {missing} of its {} files missing (truncated?)",
            expected.len()
        )));
    }
    Ok(ReadBackup {
        manifest,
        info,
        database: database.to_path_buf(),
    })
}

/// The extracted database against the manifest.
fn check_database(manifest: &Manifest, info: &SnapshotInfo) -> Result<(), Failure> {
    info.check_known().map_err(store_failure)?;
    if info.schema_version() != manifest.database.schema_version {
        return Err(Failure::damaged(format!(
            "the database is at migration {}, the manifest says {}",
            info.schema_version(),
            manifest.database.schema_version
        )));
    }
    if info.tables != manifest.database.tables {
        let listed: BTreeMap<&str, &TableSummary> = manifest
            .database
            .tables
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let differing: Vec<String> = info
            .tables
            .iter()
            .filter(|t| listed.get(t.name.as_str()).copied() != Some(*t))
            .map(|t| t.name.clone())
            .chain(
                manifest
                    .database
                    .tables
                    .iter()
                    .filter(|t| !info.tables.iter().any(|i| i.name == t.name))
                    .map(|t| t.name.clone()),
            )
            .collect();
        return Err(Failure::damaged(format!(
            "the database's tables do not match the manifest: {}",
            differing.join(", ")
        )));
    }
    let listed: BTreeSet<&str> = manifest
        .blobs
        .files
        .iter()
        .map(|f| f.sha256.as_str())
        .collect();
    let unlisted: Vec<&str> = info
        .referenced_blobs
        .iter()
        .map(String::as_str)
        .filter(|sha256| !listed.contains(sha256))
        .collect();
    if !unlisted.is_empty() {
        return Err(Failure::damaged(format!(
            "the database uses {} file(s) the manifest does not list: {}",
            unlisted.len(),
            unlisted.join(", ")
        )));
    }
    Ok(())
}

/// `updraft backup --verify FILE`.
async fn verify(file: &Path, json: bool) -> Result<(), Failure> {
    let work = tempfile::Builder::new()
        .prefix(".updraft-verify-")
        .tempdir()
        .context("cannot create a work directory")?;
    let database = work.path().join(updraft_store::sqlite::DB_FILE_NAME);
    let path = file.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let read = tokio::task::spawn_blocking(move || {
        read_backup(&path, &database, &handle, &mut |_, reader| {
            copy_checked(reader, &mut std::io::sink()).map(|_| ())
        })
    })
    .await
    .context("verifying the backup")?
    .map_err(|f| f.context(format!("{} is not a usable backup", file.display())))?;
    let manifest = &read.manifest;
    let rows: u64 = read.info.tables.iter().map(|t| t.rows).sum();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "file": file.display().to_string(),
                "valid": true,
                "manifest": manifest,
            }))?
        );
        return Ok(());
    }
    println!(
        "{}: a complete Updraft backup (format {}, written by Updraft {} at {})",
        file.display(),
        manifest.format_version,
        manifest.updraft_version,
        manifest.created_at
    );
    println!(
        "  database: snapshot of {} {} (schema {}); {} tables, {rows} rows, SQLite quick_check ok, every table's checksum matches",
        manifest.source.engine.name(),
        manifest.source.database,
        manifest.source.schema_version,
        read.info.tables.len()
    );
    if manifest.blobs.included {
        println!(
            "  files: {} ({}), each present and matching its SHA-256",
            manifest.blobs.count,
            mib(manifest.blobs.bytes)
        );
    } else {
        println!(
            "  files: {} ({}) listed, not in the file: their bytes are in {} (not checked here)",
            manifest.blobs.count,
            mib(manifest.blobs.bytes),
            manifest
                .blobs
                .storage
                .as_deref()
                .unwrap_or("object storage")
        );
    }
    drop(read);
    Ok(())
}

/// Where `updraft restore` puts the installation.
enum Target {
    /// An embedded installation: a new (or empty) data directory.
    Directory(PathBuf),
    /// A PostgreSQL database; local files (without --storage) go to `data_dir`.
    Postgres { url: String, data_dir: PathBuf },
}

/// Removes a directory tree unless it was kept.
struct PendingDir {
    path: PathBuf,
    kept: bool,
}

impl Drop for PendingDir {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `None` when `dir` is absent or empty; else what it holds, for the message.
fn dir_contents(dir: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(None),
            Some(entry) => Ok(Some(entry?.file_name().to_string_lossy().into_owned())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Ok(Some("(it is a file)".to_string()))
        }
        Err(e) => Err(anyhow!("cannot read {}: {e}", dir.display())),
    }
}

/// Reads only the manifest (the first entry) of a backup.
fn read_manifest_only(file: &Path) -> Result<Manifest, Failure> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(archive_error)?;
    let mut entry = match entries.next() {
        Some(entry) => entry.map_err(archive_error)?,
        None => return Err(Failure::damaged("the file is empty".to_string())),
    };
    if entry.path().map_err(archive_error)?.as_ref() != Path::new(MANIFEST_ENTRY) {
        return Err(Failure::damaged(format!(
            "not an Updraft backup: its first entry is not {MANIFEST_ENTRY}"
        )));
    }
    let mut bytes = Vec::new();
    (&mut entry)
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)
        .map_err(archive_error)?;
    parse_manifest(&bytes)
}

/// `updraft restore FILE`.
pub async fn restore(
    global: updraft_cli::GlobalOpts,
    data_dir_from_default: bool,
    args: RestoreArgs,
) -> Result<(), Failure> {
    let target = match global.database_url.as_deref().filter(|u| !u.trim().is_empty()) {
        Some(url) => Target::Postgres {
            url: crate::config::check_database_url("--database-url", url)?,
            data_dir: global.data_dir.clone(),
        },
        None if !data_dir_from_default => Target::Directory(global.data_dir.clone()),
        None => {
            return Err(anyhow!(
                "name the installation to restore into: --data-dir DIR (SQLite and local files) or --database-url postgres://… [--storage s3://…]"
            )
            .into())
        }
    };
    let started = Instant::now();
    let file = args.file.clone();
    let manifest = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || read_manifest_only(&file))
            .await
            .context("reading the backup")??
    };

    // The target must be empty: checked before anything is written.
    match &target {
        Target::Directory(dir) => {
            if let Some(found) = dir_contents(dir)? {
                return Err(Failure::new(
                    Outcome::NotEmpty,
                    anyhow!(
                        "{} is not empty (it holds {found}); restore into a new or empty directory. Nothing was changed",
                        dir.display()
                    ),
                ));
            }
        }
        Target::Postgres { url, .. } => {
            updraft_store::backup::ensure_postgres_empty(url)
                .await
                .map_err(store_failure)
                .map_err(|f| {
                    f.context(format!(
                        "restoring into {} refused; nothing was changed",
                        redact_url(url)
                    ))
                })?;
        }
    }
    if !manifest.blobs.included && !manifest.blobs.files.is_empty() && args.storage.is_none() {
        return Err(anyhow!(
            "this backup lists {} files without their bytes (they were in {}): pass --storage s3://… naming the bucket that holds them",
            manifest.blobs.count,
            manifest.blobs.storage.as_deref().unwrap_or("object storage")
        )
        .into());
    }

    // Where everything is assembled: for a directory, a sibling renamed into
    // place at the end; for PostgreSQL, a temporary directory.
    let (work, staged_dir) = match &target {
        Target::Directory(dir) => {
            let parent = parent_of(dir);
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            let name = dir
                .file_name()
                .ok_or_else(|| anyhow!("{} names no directory", dir.display()))?
                .to_string_lossy()
                .into_owned();
            let staged = parent.join(format!(".{name}.restore-{}", random_suffix()));
            std::fs::create_dir(&staged)
                .with_context(|| format!("cannot create {}", staged.display()))?;
            (
                None,
                Some(PendingDir {
                    path: staged,
                    kept: false,
                }),
            )
        }
        Target::Postgres { .. } => (
            Some(
                tempfile::Builder::new()
                    .prefix(".updraft-restore-")
                    .tempdir()
                    .context("cannot create a work directory")?,
            ),
            None,
        ),
    };
    let work_path = match (&work, &staged_dir) {
        (Some(work), _) => work.path().to_path_buf(),
        (None, Some(staged)) => staged.path.clone(),
        (None, None) => return Err(anyhow!("no work directory").into()),
    };
    let store: Arc<dyn BlobStore> = match (&args.storage, &target) {
        (Some(url), _) => {
            let staging = work_path.join("staging");
            std::fs::create_dir_all(&staging)
                .with_context(|| format!("cannot create {}", staging.display()))?;
            let store = ObjectBlobStore::from_url(url, &args.storage_options, &staging)
                .context("cannot use the object storage")?;
            store
                .check()
                .await
                .with_context(|| format!("cannot use {url}"))?;
            Arc::new(store)
        }
        (None, Target::Directory(_)) => Arc::new(
            LocalBlobStore::open(&work_path, Arc::new(SystemClock))
                .with_context(|| format!("cannot create files in {}", work_path.display()))?,
        ),
        (None, Target::Postgres { data_dir, .. }) => Arc::new(
            LocalBlobStore::open(data_dir, Arc::new(SystemClock))
                .with_context(|| format!("cannot create files in {}", data_dir.display()))?,
        ),
    };

    let database = work_path.join(updraft_store::sqlite::DB_FILE_NAME);
    let read = {
        let file = file.clone();
        let store = store.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let blob_handle = handle.clone();
            read_backup(&file, &database, &handle, &mut |item, reader| {
                put_blob(store.as_ref(), item, reader, &blob_handle)
            })
        })
        .await
        .context("reading the backup")?
        .map_err(|f| f.context(format!("restoring {}", args.file.display())))?
    };
    if !read.manifest.blobs.included {
        check_blobs_in(
            store.as_ref(),
            &read.manifest.blobs.files,
            args.storage.as_deref(),
        )
        .await?;
    }

    match &target {
        Target::Directory(dir) => {
            let Some(mut staged) = staged_dir else {
                return Err(anyhow!("no staging directory").into());
            };
            // Fails (and changes nothing) if the directory got files meanwhile.
            std::fs::rename(&staged.path, dir).map_err(|e| {
                Failure::new(
                    Outcome::NotEmpty,
                    anyhow!(
                        "cannot put the restored installation at {}: {e}",
                        dir.display()
                    ),
                )
            })?;
            staged.kept = true;
            sync_dir(&parent_of(dir))?;
        }
        Target::Postgres { url, .. } => {
            let mut progress = Progress::new();
            let copied =
                updraft_store::backup::restore_into_postgres(&read.database, url, &mut |event| {
                    table_progress(&mut progress, event)
                })
                .await;
            progress.finish();
            copied
                .map_err(store_failure)
                .map_err(|f| f.context(format!("restoring into {} failed", redact_url(url))))?;
        }
    }
    drop(work);
    report_restore(
        &file,
        &read.manifest,
        &target,
        &args,
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Stages one file from the archive and publishes it in `store` (which
/// hashes it again); nothing reaches the store unless it verified.
fn put_blob(
    store: &dyn BlobStore,
    item: &BlobItem,
    reader: &mut dyn Read,
    handle: &tokio::runtime::Handle,
) -> Result<(), Failure> {
    let staged =
        store
            .staging_dir()
            .join(format!("restore-{}-{}.part", item.sha256, random_suffix()));
    let guard = PendingFile {
        path: staged.clone(),
        kept: false,
    };
    let mut out =
        create_private(&staged).with_context(|| format!("cannot stage {}", staged.display()))?;
    copy_checked(reader, &mut out)?;
    out.sync_all().context("syncing a staged file")?;
    drop(out);
    let info = handle
        .block_on(store.put_file(&staged, Some(&item.sha256)))
        .with_context(|| format!("cannot store file {}", item.sha256))?;
    drop(guard);
    if info.size != item.size {
        return Err(anyhow!(
            "file {} was stored with {} bytes, not {}",
            item.sha256,
            info.size,
            item.size
        )
        .into());
    }
    Ok(())
}

/// A backup without the files' bytes: every listed file must be in `store`
/// with its size.
async fn check_blobs_in(
    store: &dyn BlobStore,
    files: &[BlobItem],
    described: Option<&str>,
) -> Result<(), Failure> {
    let described = described.unwrap_or("the storage");
    let mut results = futures_util::stream::iter(files)
        .map(|item| async move { (item, store.stat(&item.sha256).await) })
        .buffer_unordered(BLOB_CONCURRENCY);
    let mut missing = Vec::new();
    while let Some((item, size)) = results.next().await {
        match size.with_context(|| format!("cannot look up file {} in {described}", item.sha256))? {
            Some(size) if size == item.size => {}
            Some(size) => {
                missing.push(format!("{} ({size} bytes, not {})", item.sha256, item.size))
            }
            None => missing.push(item.sha256.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(anyhow!(
        "{} of the backup's {} files are not in {described}: {}; nothing was restored",
        missing.len(),
        files.len(),
        missing.join(", ")
    )
    .into())
}

fn report_restore(
    file: &Path,
    manifest: &Manifest,
    target: &Target,
    args: &RestoreArgs,
    seconds: f64,
) {
    let rows: u64 = manifest.database.tables.iter().map(|t| t.rows).sum();
    let (where_to, settings) = match target {
        Target::Directory(dir) => (
            dir.display().to_string(),
            vec![format!("UPDRAFT_DATA_DIR={}", dir.display())],
        ),
        Target::Postgres { url, data_dir } => {
            let mut settings = vec![format!("UPDRAFT_DATABASE_URL={}", redact_url(url))];
            if args.storage.is_none() {
                settings.push(format!("UPDRAFT_DATA_DIR={}", data_dir.display()));
            }
            (redact_url(url), settings)
        }
    };
    println!(
        "Restored {} (taken {} from {} {}) into {where_to} in {seconds:.1} s: {} tables, {rows} rows, {} files ({}).",
        file.display(),
        manifest.created_at,
        manifest.source.engine.name(),
        manifest.source.database,
        manifest.database.tables.len(),
        manifest.blobs.count,
        mib(manifest.blobs.bytes)
    );
    println!("Start it with (environment):");
    for line in settings {
        println!("  {line}");
    }
    if let Some(storage) = &args.storage {
        println!("  UPDRAFT_STORAGE_URL={storage}  (plus the AWS_* / [storage_options] used here)");
    }
    println!(
        "and the configuration of the original installation (updraft.toml, UPDRAFT_* settings such as webhook_secret_key): it is not in the backup."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut reader: impl Read) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn the_verifying_reader_passes_only_the_exact_bytes() {
        let data = b"bundle bytes".to_vec();
        let right = Verified::new(data.as_slice(), 12, &sha(&data), "f".into());
        assert_eq!(read_all(right).unwrap(), data);
        let short = Verified::new(&data[..11], 12, &sha(&data), "f".into());
        assert!(read_all(short).is_err());
        let long = Verified::new(data.as_slice(), 11, &sha(&data[..11]), "f".into());
        assert!(read_all(long).is_err());
        let mut changed = data.clone();
        changed[0] ^= 1;
        let changed = Verified::new(changed.as_slice(), 12, &sha(&data), "f".into());
        let err = read_all(changed).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    fn manifest_json(format_version: u64, schema_version: i64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "format": FORMAT,
            "format_version": format_version,
            "updraft_version": "9.9.9",
            "created_at": "2026-01-01T00:00:00.000Z",
            "source": {"engine": "sqlite", "schema_version": schema_version, "database": "sqlite:x", "storage": "x"},
            "database": {"path": DATABASE_ENTRY, "engine": "sqlite", "schema_version": schema_version,
                         "size": 1, "sha256": "00", "tables": []},
            "blobs": {"included": true, "storage": null, "count": 0, "bytes": 0, "files": []},
        }))
        .unwrap()
    }

    #[test]
    fn manifests_from_newer_updrafts_are_told_apart_from_damage() {
        let known = updraft_store::backup::known_schema_version();
        assert!(parse_manifest(&manifest_json(1, known)).is_ok());
        let newer_format = parse_manifest(&manifest_json(2, known)).unwrap_err();
        assert_eq!(newer_format.outcome, Outcome::TooNew);
        assert!(format!("{:#}", newer_format.error).contains("9.9.9"));
        let newer_schema = parse_manifest(&manifest_json(1, known + 1)).unwrap_err();
        assert_eq!(newer_schema.outcome, Outcome::TooNew);
        assert_eq!(
            parse_manifest(b"{\"format\": \"zip\"}")
                .unwrap_err()
                .outcome,
            Outcome::Damaged
        );
        assert_eq!(
            parse_manifest(b"{not json").unwrap_err().outcome,
            Outcome::Damaged
        );
    }
}
