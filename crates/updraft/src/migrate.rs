//! `updraft migrate --to postgres://… [--storage s3://…]`: copies this
//! embedded installation (`<data_dir>/updraft.db` and the files under
//! `<data_dir>/blobs`) into PostgreSQL and object storage, verifies the copy
//! and prints the configuration to switch to. The work is in
//! `updraft_store::migrate`; this is the command-line side.

use crate::config::redact_url;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;
use updraft_store::blob::{LocalBlobStore, ObjectBlobStore};
use updraft_store::migrate::{
    check_blobs_present, copy_blobs, copy_database, ensure_target_empty, open_source,
    target_has_setting, BlobProgress, CopyProgress, MigrateError, TableCopy,
};
use updraft_store::PgStore;

#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    /// The PostgreSQL database to copy into (must be empty)
    #[arg(long, value_name = "POSTGRES_URL")]
    pub to: String,
    /// Copy bundle files into this object storage (s3://bucket/prefix) too
    #[arg(long, value_name = "S3_URL")]
    pub storage: Option<String>,
    /// Object-storage setting (endpoint, region, access_key_id, allow_http, …),
    /// like the server's `[storage_options]`; repeatable
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub storage_options: Vec<(String, String)>,
}

pub(crate) fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Progress on stderr: a bar on a terminal, plain lines otherwise (logs, CI).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    /// For plain lines: the last count printed, to print every 10 %.
    last_printed: u64,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            bar: None,
            last_printed: 0,
        }
    }

    fn start(&mut self, label: &str, total: u64, bytes: bool) {
        self.finish();
        self.last_printed = 0;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if bytes {
                "{prefix:>20} [{bar:30}] {pos}/{len} files {msg}"
            } else {
                "{prefix:>20} [{bar:30}] {pos}/{len} rows"
            };
            let style = ProgressStyle::with_template(template)
                .map(|style| style.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            self.bar = Some(bar);
        } else {
            eprintln!("{label}: {total} {}", if bytes { "files" } else { "rows" });
        }
    }

    fn update(&mut self, label: &str, done: u64, total: u64, message: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(message);
            }
            None => {
                let step = (total / 10).max(1);
                if done == total || done >= self.last_printed + step {
                    self.last_printed = done;
                    eprintln!("{label}: {done}/{total} {message}");
                }
            }
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn millis_now() -> i64 {
    use updraft_core::model::Clock;
    updraft_core::model::SystemClock.now()
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Keys whose values are secrets: never printed.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("secret") || name.contains("token") || name.contains("password")
}

pub async fn run(data_dir: &Path, args: MigrateArgs) -> anyhow::Result<()> {
    let db_file = data_dir.join(updraft_store::sqlite::DB_FILE_NAME);
    if !db_file.is_file() {
        bail!(
            "no embedded installation at {} (point --data-dir or UPDRAFT_DATA_DIR at the server's data directory)",
            db_file.display()
        );
    }
    let to = crate::config::check_database_url("--to", &args.to)?;
    let to = to.as_str();
    let local = LocalBlobStore::open(
        data_dir,
        std::sync::Arc::new(updraft_core::model::SystemClock),
    )
    .with_context(|| format!("cannot open the files in {}", data_dir.display()))?;
    let remote = match &args.storage {
        Some(url) => {
            let staging = data_dir.join("staging");
            std::fs::create_dir_all(&staging)
                .with_context(|| format!("cannot create {}", staging.display()))?;
            let store = ObjectBlobStore::from_url(url, &args.storage_options, &staging)
                .context("cannot use the object storage")?;
            Some(store)
        }
        None => None,
    };
    // The database is checked before any file moves: a target that will be
    // refused gets nothing, not even files.
    let target = PgStore::connect(to, None)
        .await
        .with_context(|| format!("cannot prepare {}", redact_url(to)))?;
    ensure_target_empty(target.pool())
        .await
        .with_context(|| format!("copying into {} refused", redact_url(to)))?;
    let mut progress = Progress::new();

    // Files first: a failure here leaves the database untouched, so running
    // the command again simply continues (files already there are kept).
    let mut blob_bytes = 0;
    let mut blobs_verified = BTreeSet::new();
    let mut blobs_uploaded = 0;
    if let Some(remote) = &remote {
        let report = copy_blobs(
            &local,
            remote,
            &BTreeSet::new(),
            &BTreeSet::new(),
            &mut blob_progress(&mut progress, "files"),
        )
        .await;
        progress.finish();
        let report = report.context("copying the bundle files failed (the database was not touched; run the command again once fixed)")?;
        blob_bytes += report.bytes;
        blobs_uploaded += report.uploaded;
        blobs_verified = report.verified;
    }

    let source = open_source(&db_file)
        .await
        .with_context(|| format!("cannot open {}", db_file.display()))?;
    let snapshot_at = millis_now();
    eprintln!(
        "Copying a snapshot of {} taken at {}: writes the running server makes after it are not copied.",
        db_file.display(),
        updraft_core::analytics::rfc3339(snapshot_at)
    );
    let copied = copy_database(&source, target.pool(), &mut |event| {
        table_progress(&mut progress, event)
    })
    .await;
    progress.finish();
    source.close().await;
    let signing_key = match &copied {
        Ok(_) => target_has_setting(target.pool(), updraft_server::storage::signing::KEY_SETTING)
            .await
            .context("cannot read the copied settings")?,
        Err(_) => false,
    };
    target.close().await;
    let copy = match copied {
        Ok(copy) => copy,
        Err(MigrateError::Verification { tables }) => {
            print_tables(&tables);
            bail!(
                "the copy does not match the source ({}); nothing was committed to {}",
                describe_failures(&tables),
                redact_url(to)
            );
        }
        Err(err) => {
            return Err(err).with_context(|| format!("copying into {} failed", redact_url(to)))
        }
    };

    println!(
        "Database copied into {} (snapshot of {}):",
        redact_url(to),
        updraft_core::analytics::rfc3339(snapshot_at)
    );
    print_tables(&copy.tables);

    let referenced = copy.referenced_blobs.len();
    match &remote {
        Some(remote) => {
            let report = copy_blobs(
                &local,
                remote,
                &copy.referenced_blobs,
                &blobs_verified,
                &mut blob_progress(&mut progress, "new files"),
            )
            .await;
            progress.finish();
            let report = report.context(
                "the database is copied, but copying the bundle files failed: devices would not get every file",
            )?;
            blob_bytes += report.bytes;
            blobs_uploaded += report.uploaded;
            blobs_verified.extend(report.verified);
            println!(
                "Files: {} in {} ({} uploaded, {}; {referenced} used by live bundles), each read back and its SHA-256 checked.",
                blobs_verified.len(),
                args.storage.as_deref().unwrap_or_default(),
                blobs_uploaded,
                mib(blob_bytes)
            );
        }
        None => {
            match check_blobs_present(&local, &copy).await {
                Ok(count) => println!(
                    "Files: not moved; the {count} files live bundles use stay in {} (keep data_dir).",
                    data_dir.join("blobs").display()
                ),
                // Already missing before the migration: not the copy's fault.
                Err(MigrateError::MissingBlobs(missing)) => eprintln!(
                    "warning: {} files live bundles use are missing from {} (they were before the migration): {}",
                    missing.len(),
                    data_dir.join("blobs").display(),
                    missing.join(", ")
                ),
                Err(err) => return Err(err).context("checking the local files failed"),
            }
        }
    }

    print_configuration(data_dir, to, &args, signing_key);
    Ok(())
}

pub(crate) fn table_progress(progress: &mut Progress, event: CopyProgress<'_>) {
    match event {
        CopyProgress::TableStarted { table, rows } => progress.start(table, rows, false),
        CopyProgress::RowsCopied {
            table,
            copied,
            rows,
        } => progress.update(table, copied, rows, String::new()),
        CopyProgress::Verifying { table, rows } => {
            if progress.bar.is_none() && rows > 0 {
                eprintln!("{table}: verifying");
            }
        }
        CopyProgress::TableVerified(_) => progress.finish(),
    }
}

fn blob_progress<'a>(
    progress: &'a mut Progress,
    label: &'a str,
) -> impl FnMut(BlobProgress) + Send + 'a {
    let mut total = 0;
    move |event| match event {
        BlobProgress::Started {
            total: files,
            total_bytes,
        } => {
            total = files;
            progress.start(label, files, true);
            progress.update(label, 0, files, format!("of {}", mib(total_bytes)));
        }
        BlobProgress::Done { done, bytes } => progress.update(label, done, total, mib(bytes)),
    }
}

fn describe_failures(tables: &[TableCopy]) -> String {
    tables
        .iter()
        .filter(|t| !t.verified())
        .map(|t| t.table.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_tables(tables: &[TableCopy]) {
    let width = tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "  {:<width$}  {:>12}  {:>12}  checksum",
        "table", "rows", "in target"
    );
    for table in tables {
        println!(
            "  {:<width$}  {:>12}  {:>12}  {}",
            table.table,
            table.rows,
            table.target_rows,
            if table.checksum == table.target_checksum {
                "ok"
            } else {
                "MISMATCH"
            }
        );
    }
}

fn print_configuration(data_dir: &Path, to: &str, args: &MigrateArgs, signing_key: bool) {
    let data_dir_text = data_dir.display().to_string();
    println!();
    println!(
        "Writes after the snapshot are not in the copy: stop `updraft serve` before switching,"
    );
    println!("or run this again into a fresh, empty database right before switching.");
    println!();
    println!("Then start updraft with (environment):");
    println!("  UPDRAFT_DATABASE_URL={}", redact_url(to));
    // The server reads object-store settings from AWS_* variables (the
    // options given here win, as they did for this copy).
    let mut aws: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("AWS_"))
        .collect();
    for (key, value) in &args.storage_options {
        let key = key.trim().to_ascii_uppercase();
        let name = if key.starts_with("AWS_") {
            key
        } else {
            format!("AWS_{key}")
        };
        aws.insert(name, value.clone());
    }
    if let Some(storage) = &args.storage {
        println!("  UPDRAFT_STORAGE_URL={storage}");
        for (name, value) in &aws {
            if is_secret(name) {
                println!("  {name}=<the value used for this migration>");
            } else {
                println!("  {name}={value}");
            }
        }
    }
    println!("  UPDRAFT_DATA_DIR={data_dir_text}");
    println!("or in updraft.toml:");
    println!("  data_dir = {}", toml_string(&data_dir_text));
    println!("  database_url = {}", toml_string(&redact_url(to)));
    if let Some(storage) = &args.storage {
        println!("  storage_url = {}", toml_string(storage));
        if !args.storage_options.is_empty() {
            println!("  [storage_options]");
            for (key, value) in &args.storage_options {
                if is_secret(key) {
                    println!("  {key} = \"<the value used for this migration>\"");
                } else {
                    println!("  {key} = {}", toml_string(value));
                }
            }
        }
        if !aws.is_empty() {
            println!(
                "  (AWS_* variables of the environment above that [storage_options] does not set are read too)"
            );
        }
    }
    if redact_url(to) != to {
        println!("(the password is not shown: put the real one back in the database URL)");
    }
    println!();
    // The URL-signing key is a row of `settings`: it moved with the database,
    // so signed links verify on every node that uses it.
    if signing_key {
        println!("URL signing key: copied with the database (every node reads it from there).");
    } else {
        println!("URL signing key: none (signed download URLs are off).");
    }
    if args.storage.is_none() {
        println!(
            "Bundle files stay on this machine in {}: keep data_dir as it is; a second node",
            data_dir.join("blobs").display()
        );
        println!("needs object storage (run again with --storage s3://… into a fresh database).");
    }
}

/// A TOML basic string.
pub(crate) fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_options_are_key_value_pairs() {
        assert_eq!(
            parse_option("endpoint=http://127.0.0.1:9000"),
            Ok(("endpoint".to_string(), "http://127.0.0.1:9000".to_string()))
        );
        assert_eq!(
            parse_option("token=a=b"),
            Ok(("token".to_string(), "a=b".to_string()))
        );
        assert!(parse_option("endpoint").is_err());
        assert!(parse_option("=x").is_err());
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        assert!(is_secret("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret("aws_session_token"));
        assert!(!is_secret("AWS_ACCESS_KEY_ID"));
        assert!(!is_secret("endpoint"));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
