//! The database side of `updraft backup` and `updraft restore`.
//!
//! A backup's database is always one standalone SQLite file with this
//! binary's schema, whatever engine the installation runs on: the online
//! snapshot of an embedded installation is SQLite's own `VACUUM INTO`, and a
//! PostgreSQL installation is read inside one `REPEATABLE READ` transaction
//! (one snapshot of every table) and written into a fresh SQLite file, then
//! read back and compared row by row. Restoring into a data directory puts
//! that file in place; restoring into PostgreSQL is `updraft migrate`'s
//! verified copy ([`crate::migrate::copy_database`]) from it.
//!
//! The tables, their order, columns and the value conversions are the ones
//! `migrate` uses, so a table added to both schemas is backed up without
//! touching this file.
//!
//! The summary of a snapshot file ([`inspect`]) digests every table of the
//! file (row count and a SHA-256 of its rows in primary-key order, each value
//! by its SQLite storage class): what a backup's manifest records and what
//! `updraft backup --verify` recomputes.

use crate::migrate::{self, Cell, MigrateError, TableDigest, TablePlan};
use crate::schema::unknown_latest;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, TypeInfo, ValueRef};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// SQLite counts bind parameters up to this (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_SQLITE_PARAMETERS: usize = 32_766;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("reading the database: {0}")]
    Source(#[source] sqlx::Error),
    #[error("writing the snapshot file: {0}")]
    Snapshot(#[source] sqlx::Error),
    /// A failure of the table copy shared with `updraft migrate`.
    #[error(transparent)]
    Copy(MigrateError),
    #[error("opening the target database: {0}")]
    Target(String),
    /// The snapshot read back differs from what was read; nothing was kept.
    #[error("the snapshot does not match the database it was read from: {0}")]
    Verification(String),
    /// The database (or a backup) was written by a newer Updraft.
    #[error(
        "the {engine} schema is at migration {found}, newer than this binary knows (Updraft {} knows migrations up to {known}): use that Updraft (or a newer one)",
        env!("CARGO_PKG_VERSION")
    )]
    NewerSchema {
        engine: &'static str,
        found: i64,
        known: i64,
    },
    /// The PostgreSQL database has not been migrated to this binary's schema.
    #[error(
        "the PostgreSQL schema is at migration {found}, this binary's is {known}: back up with the Updraft version that serves it, or start this version's `updraft serve` once (it migrates) and back up then"
    )]
    SchemaBehind { found: i64, known: i64 },
    /// The file is not a readable Updraft database.
    #[error("the database file is damaged: {0}")]
    Damaged(String),
    /// The restore target holds data; nothing was written.
    #[error(
        "the target database is not empty (rows in {}); restore into a new, empty database",
        .tables.join(", ")
    )]
    TargetNotEmpty { tables: Vec<String> },
}

impl From<MigrateError> for BackupError {
    fn from(err: MigrateError) -> BackupError {
        match err {
            MigrateError::TargetNotEmpty { tables } => BackupError::TargetNotEmpty { tables },
            other => BackupError::Copy(other),
        }
    }
}

/// The database engines an installation runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// One table of a snapshot file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    pub name: String,
    pub rows: u64,
    /// SHA-256 (hex) over the rows in primary-key order.
    pub checksum: String,
}

/// What a snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The migrations applied to the file (SQLite's numbering), ascending.
    pub applied_migrations: Vec<i64>,
    /// Every table (sqlx's migration history included), by name.
    pub tables: Vec<TableSummary>,
    /// Blobs the live bundles of the snapshot use (zips and manifest files).
    pub referenced_blobs: BTreeSet<String>,
}

impl SnapshotInfo {
    /// The file's latest migration (0 = none).
    pub fn schema_version(&self) -> i64 {
        self.applied_migrations.iter().max().copied().unwrap_or(0)
    }

    /// Refuses a snapshot with a migration this binary does not know.
    pub fn check_known(&self) -> Result<(), BackupError> {
        check_known(&self.applied_migrations, &crate::sqlite::MIGRATOR, "SQLite")
    }
}

/// A snapshot just taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub source_engine: Engine,
    /// The installation's latest migration, in its engine's numbering.
    pub source_schema_version: i64,
    pub info: SnapshotInfo,
}

/// The latest SQLite migration this binary has (a backup file's schema).
pub fn known_schema_version() -> i64 {
    known_versions(&crate::sqlite::MIGRATOR)
        .into_iter()
        .max()
        .unwrap_or(0)
}

fn known_versions(migrator: &sqlx::migrate::Migrator) -> Vec<i64> {
    migrator.iter().map(|m| m.version).collect()
}

fn check_known(
    applied: &[i64],
    migrator: &sqlx::migrate::Migrator,
    engine: &'static str,
) -> Result<(), BackupError> {
    let known = known_versions(migrator);
    match unknown_latest(applied, &known) {
        Some(found) => Err(BackupError::NewerSchema {
            engine,
            found,
            known: known.iter().max().copied().unwrap_or(0),
        }),
        None => Ok(()),
    }
}

const APPLIED_SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// The migrations a SQLite database records as applied, ascending.
async fn applied_sqlite(conn: &mut SqliteConnection) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(APPLIED_SQL).fetch_all(conn).await
}

/// The same for PostgreSQL.
async fn applied_postgres(
    conn: &mut sqlx::postgres::PgConnection,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(APPLIED_SQL).fetch_all(conn).await
}

/// Takes a consistent snapshot of the embedded database at `db_file` (the
/// server may keep writing: SQLite's `VACUUM INTO` reads one snapshot) into
/// the new file `out`, and summarises it.
pub async fn snapshot_sqlite(db_file: &Path, out: &Path) -> Result<Snapshot, BackupError> {
    if !db_file.is_file() {
        return Err(BackupError::Source(sqlx::Error::Configuration(
            format!("no database at {}", db_file.display()).into(),
        )));
    }
    // Not `query_only` (SQLite counts writing the INTO file as a write), but
    // nothing here writes the installation: VACUUM INTO only reads it.
    let options = SqliteConnectOptions::new()
        .filename(db_file)
        .busy_timeout(Duration::from_secs(30));
    let mut source = SqliteConnection::connect_with(&options)
        .await
        .map_err(BackupError::Source)?;
    let result = async {
        let applied = applied_sqlite(&mut source)
            .await
            .map_err(BackupError::Source)?;
        check_known(&applied, &crate::sqlite::MIGRATOR, "SQLite")?;
        let out_text = out
            .to_str()
            .ok_or_else(|| BackupError::Target(format!("{} is not a UTF-8 path", out.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(out_text)
            .execute(&mut source)
            .await
            .map_err(BackupError::Source)?;
        Ok::<_, BackupError>(applied.iter().max().copied().unwrap_or(0))
    }
    .await;
    let _ = source.close().await;
    let source_schema_version = result?;
    self_contained(out).await?;
    let info = inspect(out).await?;
    Ok(Snapshot {
        source_engine: Engine::Sqlite,
        source_schema_version,
        info,
    })
}

/// Turns a snapshot file into one self-contained file (rollback journal,
/// no `-wal` beside it), readable by a read-only connection.
async fn self_contained(file: &Path) -> Result<(), BackupError> {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .journal_mode(SqliteJournalMode::Delete);
    let conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(BackupError::Snapshot)?;
    conn.close().await.map_err(BackupError::Snapshot)
}

/// Reads every table of the PostgreSQL database at `url` inside one
/// REPEATABLE READ transaction (one snapshot: the server keeps writing) into
/// the new SQLite file `out` with this binary's schema, reads the file back
/// and compares every table, and summarises it. The database must be at
/// this binary's schema.
pub async fn snapshot_postgres(url: &str, out: &Path) -> Result<Snapshot, BackupError> {
    let mut pg = sqlx::postgres::PgConnection::connect(url)
        .await
        .map_err(BackupError::Source)?;
    let result = export_postgres(&mut pg, out).await;
    let _ = pg.close().await;
    let source_schema_version = result?;
    let info = inspect(out).await?;
    Ok(Snapshot {
        source_engine: Engine::Postgres,
        source_schema_version,
        info,
    })
}

/// Returns the source's schema version.
async fn export_postgres(
    pg: &mut sqlx::postgres::PgConnection,
    out: &Path,
) -> Result<i64, BackupError> {
    // The one snapshot every read below sees.
    let mut tx = pg
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(BackupError::Source)?;
    let applied = applied_postgres(&mut tx)
        .await
        .map_err(BackupError::Source)?;
    check_known(&applied, &crate::postgres::MIGRATOR, "PostgreSQL")?;
    let known = known_versions(&crate::postgres::MIGRATOR);
    let found = applied.iter().max().copied().unwrap_or(0);
    if known.iter().any(|v| !applied.contains(v)) {
        return Err(BackupError::SchemaBehind {
            found,
            known: known.iter().max().copied().unwrap_or(0),
        });
    }
    let plans = migrate::pg_plan(&mut tx).await?;

    // The empty file, with this binary's SQLite schema, made on the one
    // connection that fills it: a store's WAL pools, once closed, could still
    // hold the file while this connection leaves WAL mode (`database is
    // locked` under load).
    crate::sqlite::owner_only(out).map_err(|e| BackupError::Target(e.to_string()))?;
    let options = SqliteConnectOptions::new()
        .filename(out)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete)
        // A scratch file until it is complete and verified; the archive
        // that holds it is synced.
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
        .foreign_keys(false)
        .busy_timeout(Duration::from_secs(5));
    let mut file = SqliteConnection::connect_with(&options)
        .await
        .map_err(BackupError::Snapshot)?;
    crate::schema::migrate(&crate::sqlite::MIGRATOR, &mut file, "SQLite")
        .await
        .map_err(|e| BackupError::Target(e.to_string()))?;
    migrate::check_source_schema(&mut file, &plans).await?;

    let mut digests = Vec::with_capacity(plans.len());
    let mut write = file.begin().await.map_err(BackupError::Snapshot)?;
    for plan in &plans {
        digests.push(export_table(&mut tx, &mut write, plan).await?);
        continue_sequence(&mut tx, &mut write, plan).await?;
    }
    write.commit().await.map_err(BackupError::Snapshot)?;
    // Reads only.
    tx.rollback().await.map_err(BackupError::Source)?;

    let mut mismatched = Vec::new();
    for (plan, (rows, checksum)) in plans.iter().zip(&digests) {
        let (file_rows, file_checksum) = sqlite_plan_digest(&mut file, plan).await?;
        if file_rows != *rows || file_checksum != *checksum {
            mismatched.push(format!(
                "{} ({rows} rows read, {file_rows} in the file)",
                plan.name
            ));
        }
    }
    file.close().await.map_err(BackupError::Snapshot)?;
    if !mismatched.is_empty() {
        return Err(BackupError::Verification(mismatched.join("; ")));
    }
    Ok(found)
}

/// Streams one PostgreSQL table (key order) into the SQLite file; returns
/// the digest of what was read.
async fn export_table(
    source: &mut sqlx::postgres::PgConnection,
    target: &mut SqliteConnection,
    plan: &TablePlan,
) -> Result<(u64, String), BackupError> {
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        migrate::column_list(plan)?,
        migrate::ident(&plan.name)?,
        migrate::key_order(plan, true)?
    );
    let batch = migrate::BATCH_ROWS
        .min(MAX_SQLITE_PARAMETERS / plan.columns.len().max(1))
        .max(1);
    let mut digest = TableDigest::new();
    let mut pending = Vec::with_capacity(batch);
    let mut rows = sqlx::query(&sql).fetch(&mut *source);
    while let Some(row) = rows.try_next().await.map_err(BackupError::Source)? {
        let cells = plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| migrate::pg_cell(&row, i, column.kind))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BackupError::Source)?;
        digest.add_row(&cells);
        pending.push(cells);
        if pending.len() == batch {
            insert_sqlite(target, plan, std::mem::take(&mut pending)).await?;
        }
    }
    insert_sqlite(target, plan, pending).await?;
    Ok(digest.finish())
}

async fn insert_sqlite(
    target: &mut SqliteConnection,
    plan: &TablePlan,
    rows: Vec<Vec<Cell>>,
) -> Result<(), BackupError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "INSERT INTO {} ({}) ",
        migrate::ident(&plan.name)?,
        migrate::column_list(plan)?
    ));
    builder.push_values(rows, |mut values, row| {
        for cell in row {
            match cell {
                Cell::Int(v) => values.push_bind(v),
                // Flags are 0/1 in SQLite.
                Cell::Bool(v) => values.push_bind(v.map(i64::from)),
                Cell::Text(v) => values.push_bind(v),
                Cell::Float(v) => values.push_bind(v),
                Cell::Bytes(v) => values.push_bind(v),
            };
        }
    });
    builder
        .build()
        .execute(&mut *target)
        .await
        .map_err(BackupError::Snapshot)?;
    Ok(())
}

/// SQLite's AUTOINCREMENT counter continues where the PostgreSQL identity
/// sequence is (it remembers ids of deleted rows too), so a restored
/// installation never hands out an id twice.
async fn continue_sequence(
    source: &mut sqlx::postgres::PgConnection,
    target: &mut SqliteConnection,
    plan: &TablePlan,
) -> Result<(), BackupError> {
    for column in plan.columns.iter().filter(|c| c.identity) {
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass)",
        )
        .bind(migrate::ident(&plan.name)?)
        .bind(&column.name)
        .fetch_one(&mut *source)
        .await
        .map_err(BackupError::Source)?;
        let Some(last) = last else { continue };
        let autoincrement: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? \
             AND sql LIKE '%AUTOINCREMENT%')",
        )
        .bind(&plan.name)
        .fetch_one(&mut *target)
        .await
        .map_err(BackupError::Snapshot)?;
        if !autoincrement {
            continue;
        }
        let updated = sqlx::query("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?")
            .bind(last)
            .bind(&plan.name)
            .execute(&mut *target)
            .await
            .map_err(BackupError::Snapshot)?;
        if updated.rows_affected() == 0 {
            sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)")
                .bind(&plan.name)
                .bind(last)
                .execute(&mut *target)
                .await
                .map_err(BackupError::Snapshot)?;
        }
    }
    Ok(())
}

/// The digest of a SQLite table read with a PostgreSQL plan (values
/// converted as `migrate` converts them), comparable with the source's.
async fn sqlite_plan_digest(
    file: &mut SqliteConnection,
    plan: &TablePlan,
) -> Result<(u64, String), BackupError> {
    let mut digest = TableDigest::new();
    let batch = migrate::BATCH_ROWS;
    let mut last_key: Option<Vec<Cell>> = None;
    loop {
        let page = migrate::sqlite_page(file, plan, last_key.as_deref(), batch).await?;
        let full = page.len() == batch;
        let Some(last) = page.last() else { break };
        last_key = Some(plan.key.iter().map(|&i| last[i].clone()).collect());
        for row in &page {
            digest.add_row(row);
        }
        if !full {
            break;
        }
    }
    Ok(digest.finish())
}

/// Opens a snapshot file read-only, checks that SQLite finds it whole
/// (`PRAGMA quick_check`) and summarises it: migrations, every table's rows
/// and checksum, the blobs it references.
pub async fn inspect(file: &Path) -> Result<SnapshotInfo, BackupError> {
    let options = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .immutable(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| BackupError::Damaged(e.to_string()))?;
    let result = inspect_open(&mut conn).await;
    let _ = conn.close().await;
    result
}

async fn inspect_open(conn: &mut SqliteConnection) -> Result<SnapshotInfo, BackupError> {
    let damaged = |e: sqlx::Error| BackupError::Damaged(e.to_string());
    let check: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(damaged)?;
    if check != ["ok"] {
        let shown: Vec<&str> = check.iter().take(5).map(String::as_str).collect();
        return Err(BackupError::Damaged(format!(
            "PRAGMA quick_check: {}",
            shown.join("; ")
        )));
    }
    let applied = applied_sqlite(&mut *conn).await.map_err(damaged)?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(damaged)?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let (rows, checksum) = file_table_digest(conn, &name).await?;
        tables.push(TableSummary {
            name,
            rows,
            checksum,
        });
    }
    let referenced_blobs = migrate::snapshot_blobs(conn).await?;
    Ok(SnapshotInfo {
        applied_migrations: applied,
        tables,
        referenced_blobs,
    })
}

/// One table's rows in primary-key order (rowid for a table without one),
/// every value digested by its own storage class.
async fn file_table_digest(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<(u64, String), BackupError> {
    let damaged = |e: sqlx::Error| BackupError::Damaged(format!("table {table}: {e}"));
    // (name, pk position) in column order.
    let columns: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(damaged)?;
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let mut key: Vec<&(String, i64)> = columns.iter().filter(|(_, pk)| *pk > 0).collect();
    key.sort_by_key(|(_, pk)| *pk);
    let order = if key.is_empty() {
        "rowid".to_string()
    } else {
        key.iter()
            .map(|(name, _)| quoted(name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let list = columns
        .iter()
        .map(|(name, _)| quoted(name))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {list} FROM {} ORDER BY {order}", quoted(table));
    let mut digest = TableDigest::new();
    let mut rows = sqlx::query(&sql).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.map_err(damaged)? {
        let cells = (0..columns.len())
            .map(|i| storage_cell(&row, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(damaged)?;
        digest.add_row(&cells);
    }
    Ok(digest.finish())
}

/// A value by its storage class. NULL has none: it is digested as one
/// fixed kind.
fn storage_cell(row: &SqliteRow, index: usize) -> Result<Cell, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Cell::Int(None));
    }
    let storage = raw.type_info().name().to_string();
    Ok(match storage.as_str() {
        "INTEGER" => Cell::Int(Some(row.try_get_unchecked::<i64, _>(index)?)),
        "REAL" => Cell::Float(Some(row.try_get_unchecked::<f64, _>(index)?)),
        "TEXT" => Cell::Text(Some(row.try_get_unchecked::<String, _>(index)?)),
        _ => Cell::Bytes(Some(row.try_get_unchecked::<Vec<u8>, _>(index)?)),
    })
}

/// Refuses a PostgreSQL database with a row in any table, before anything
/// (not even the schema migrations) touches it.
pub async fn ensure_postgres_empty(url: &str) -> Result<(), BackupError> {
    let mut conn = sqlx::postgres::PgConnection::connect(url)
        .await
        .map_err(|e| BackupError::Target(e.to_string()))?;
    let result = async {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> $1 ORDER BY table_name",
        )
        .bind(migrate::MIGRATIONS_TABLE)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| BackupError::Target(e.to_string()))?;
        let mut taken = Vec::new();
        for table in tables {
            let has_rows: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS (SELECT 1 FROM \"{}\")",
                table.replace('"', "\"\"")
            ))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| BackupError::Target(e.to_string()))?;
            if has_rows {
                taken.push(table);
            }
        }
        if taken.is_empty() {
            Ok(())
        } else {
            Err(BackupError::TargetNotEmpty { tables: taken })
        }
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Restores the snapshot file `file` (a working copy: it is migrated to this
/// binary's schema first) into the empty PostgreSQL database at `url`
/// (schema created here): `updraft migrate`'s copy, verified table by table
/// and committed only whole.
pub async fn restore_into_postgres(
    file: &Path,
    url: &str,
    progress: &mut (dyn FnMut(migrate::CopyProgress<'_>) + Send),
) -> Result<migrate::DatabaseCopy, BackupError> {
    let upgraded = crate::SqliteStore::open_path(file)
        .await
        .map_err(|e| BackupError::Damaged(e.to_string()))?;
    upgraded.close().await;
    let target = crate::PgStore::connect(url, None)
        .await
        .map_err(|e| BackupError::Target(e.to_string()))?;
    let source = migrate::open_source(file).await?;
    let copied = migrate::copy_database(&source, target.pool(), progress).await;
    source.close().await;
    target.close().await;
    Ok(copied?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_from_a_newer_schema_is_refused() {
        let known = known_schema_version();
        let info = SnapshotInfo {
            applied_migrations: vec![1, known + 1],
            tables: Vec::new(),
            referenced_blobs: BTreeSet::new(),
        };
        assert!(matches!(
            info.check_known(),
            Err(BackupError::NewerSchema { found, .. }) if found == known + 1
        ));
        let current = SnapshotInfo {
            applied_migrations: (1..=known).collect(),
            ..info
        };
        assert!(current.check_known().is_ok());
        assert_eq!(current.schema_version(), known);
    }
}
