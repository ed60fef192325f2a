//! SQLite implementation of the storage traits (embedded default).
//!
//! The statements live in `src/sql/` and are shared with PostgreSQL (see
//! `src/sql/common.rs` for the scheme); what is specific to SQLite stays in
//! this module: connection options, `BEGIN IMMEDIATE`, `?` parameter markers
//! in multi-row statements and the dialect macros below.

/// Keeps SQLite off every index for a scan that must walk the primary key.
macro_rules! not_indexed {
    () => {
        " NOT INDEXED"
    };
}

#[path = "../sql/accounts.rs"]
mod accounts;
#[path = "../sql/analytics.rs"]
mod analytics;
#[path = "../sql/apikeys.rs"]
mod apikeys;
#[path = "../sql/apps.rs"]
mod apps;
#[path = "../sql/audit.rs"]
mod audit;
#[path = "../sql/bundles.rs"]
mod bundles;
#[path = "../sql/channels.rs"]
mod channels;
#[path = "../sql/common.rs"]
mod common;
#[path = "../sql/devices.rs"]
mod devices;
#[path = "../sql/overrides.rs"]
mod overrides;
#[path = "../sql/release.rs"]
mod release;
#[path = "../sql/release_safety.rs"]
mod release_safety;
#[path = "../sql/rows.rs"]
mod rows;
#[path = "../sql/settings.rs"]
mod settings;
#[path = "../sql/uploads.rs"]
mod uploads;
#[path = "../sql/webhooks.rs"]
mod webhooks;

use crate::{StoreError, StoreResult};
use common::{clamp_limit, is_foreign_key_violation, is_unique_violation};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};
use std::path::Path;
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "updraft.db";

/// Connections for reads, which run beside the writer (WAL).
const MAX_READ_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// 2,048 pages of 4 KiB: the WAL grows to about 8 MiB between checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: &str = "2048";
/// Per connection, in KiB (negative = KiB for SQLite): 8 MiB keeps the hot
/// index pages of the stats tables cached without growing RSS much (a
/// larger writer cache measured slower for big stats commits, not faster).
const PAGE_CACHE_SIZE: &str = "-8192";

/// Storage in one SQLite file: a pool of readers and one writer connection.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time anyway; with one connection, write
    /// transactions queue here in order instead of polling SQLite's lock in
    /// its busy handler (which sleeps up to 100 ms between tries).
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/updraft.db`, WAL mode,
    /// synchronous=FULL (an acknowledged write survives a power cut / kill),
    /// foreign_keys=ON, busy_timeout 5s, and runs the migrations.
    pub async fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        tokio::fs::create_dir_all(data_dir).await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        Self::open_path(&data_dir.join(DB_FILE_NAME)).await
    }

    /// Opens (creating if needed) the database at exactly `db_file` and runs
    /// the migrations. Tests point it at a file in a temp dir they keep alive.
    pub async fn open_path(db_file: &Path) -> StoreResult<SqliteStore> {
        owner_only(db_file)?;
        let options = SqliteConnectOptions::new()
            .filename(db_file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // A multi-row statement inside a transaction keeps a statement
            // journal (to undo just that statement); in memory it costs a
            // page copy instead of a temp-file write.
            .pragma("temp_store", "memory")
            // Checkpoint every WAL_AUTOCHECKPOINT_PAGES rather than SQLite's
            // 1,000: one stats commit can write that much, and pages that
            // several commits touch are then copied to the database once.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .pragma("cache_size", PAGE_CACHE_SIZE);
        let cannot_open = |e: sqlx::Error| damaged(db_file, e);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(close_if_left_in_transaction)
            .connect_with(options.clone())
            .await
            .map_err(cannot_open)?;
        {
            let mut conn = writer.acquire().await.map_err(|e| damaged(db_file, e))?;
            let report = crate::schema::migrate(&MIGRATOR, &mut *conn, "SQLite")
                .await
                .map_err(|e| match e {
                    StoreError::Backend(m) if is_damage_message(&m) => damaged_message(db_file, &m),
                    other => other,
                })?;
            crate::schema::log(&report, "SQLite");
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_READ_CONNECTIONS)
            .after_release(close_if_left_in_transaction)
            .connect_with(options)
            .await
            .map_err(cannot_open)?;
        Ok(SqliteStore { pool, writer })
    }

    /// `PRAGMA quick_check`: reads every page (O(size of the file)); an
    /// error names what is damaged and what to do.
    pub async fn quick_check(&self) -> StoreResult<()> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| StoreError::Backend(format!("quick_check could not run: {e}")))?;
        if rows.len() == 1 && rows[0] == "ok" {
            return Ok(());
        }
        let shown: Vec<&str> = rows.iter().take(5).map(String::as_str).collect();
        Err(StoreError::Backend(format!(
            "the database is damaged (PRAGMA quick_check found {} problem(s): {}). Stop \
             Updraft and restore updraft.db from a backup; to start anyway, set \
             UPDRAFT_STARTUP_QUICK_CHECK=false",
            rows.len(),
            shown.join("; ")
        )))
    }

    /// The read pool, for maintenance tasks (backup, diagnostics) and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The one connection write transactions run on, for tests.
    pub fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Waits for running queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// A write transaction that takes the write lock up front, so it never
    /// fails half-way on a lock upgrade (a deferred SQLite transaction that
    /// reads first can get SQLITE_BUSY when it starts writing). The shared
    /// code relies on it: a read-then-write inside it sees no other writer.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where release loads read: the one file.
    async fn read_pool(&self) -> StoreResult<&SqlitePool> {
        Ok(&self.pool)
    }
}

/// Whether a connection coming back to its pool may be used again: not when
/// sqlx still counts it inside a transaction. That happens after a failed
/// COMMIT on a full disk (or an I/O error): SQLite has already rolled the
/// transaction back by itself, so the ROLLBACK that dropping the
/// `Transaction` sends fails ("no transaction is active") and sqlx never
/// lowers its depth; every later `BEGIN` on that connection would then fail
/// ("attempted to call begin_with at non-zero transaction depth") until a
/// restart. Closing it instead makes the pool open a fresh one for the next
/// write. The ping first waits for that queued ROLLBACK to run.
fn close_if_left_in_transaction(
    conn: &mut SqliteConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        use sqlx::{Connection, TransactionManager};
        conn.ping().await?;
        let depth = <Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth(conn);
        if depth > 0 {
            tracing::warn!(
                depth,
                "a database connection was left inside a failed transaction; replacing it"
            );
            return Ok(false);
        }
        Ok(true)
    })
}

/// This binary's SQLite migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite's words for a file that is not (or no longer) a whole database.
fn is_damage_message(message: &str) -> bool {
    message.contains("malformed") || message.contains("not a database")
}

fn damaged_message(db_file: &Path, detail: &str) -> StoreError {
    StoreError::Backend(format!(
        "the database {} is damaged or not an Updraft database ({detail}). Stop Updraft and \
         restore it from a backup, or move it away to start an empty installation",
        db_file.display()
    ))
}

/// An error opening the file, in plain words when the file is damaged.
fn damaged(db_file: &Path, err: sqlx::Error) -> StoreError {
    let detail = err.to_string();
    if is_damage_message(&detail) {
        damaged_message(db_file, &detail)
    } else {
        StoreError::Backend(format!("cannot open {}: {detail}", db_file.display()))
    }
}

// What the shared files in `src/sql/` name through `super::`.
type Db = Sqlite;
type DbRow = SqliteRow;
type DbConnection = SqliteConnection;
type EngineStore = SqliteStore;

/// SQLITE_MAX_VARIABLE_NUMBER's default.
const MAX_PARAMETERS: usize = 32_766;

/// Anonymous markers: SQLite looks numbered ones up by name, one by one,
/// which is quadratic in a statement with thousands of them.
fn push_placeholder(sql: &mut String, _number: usize) {
    sql.push('?');
}

/// The database holds API key hashes, webhook secrets and the URL-signing
/// key: it is created readable by its owner only (0600, whatever the umask;
/// SQLite gives its `-wal` and `-shm` files the database file's mode), and
/// an existing one and its companions are brought down to 0600.
pub(crate) fn owner_only(db_file: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |path: &Path, e: std::io::Error| {
            StoreError::Backend(format!("cannot secure {}: {e}", path.display()))
        };
        if !db_file.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(db_file)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(db_file, e)),
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db_file.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| failed(&path, e))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(&path, e)),
            }
        }
    }
    Ok(())
}

/// A read transaction: a deferred SQLite transaction reads one snapshot.
async fn begin_snapshot(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
    Ok(pool.begin().await?)
}

/// Both engines convert through here (the impl must exist once per crate).
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_transient(&err) {
            StoreError::Unavailable(err.to_string())
        } else {
            StoreError::Backend(err.to_string())
        }
    }
}

/// Errors after which nothing was written and the same request may succeed
/// shortly (the connection involved is replaced by its pool).
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes keep the primary code in the low byte.
                let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1);
                // SQLITE_BUSY, _LOCKED, _READONLY, _IOERR, _FULL, _CANTOPEN.
                matches!(primary, 5 | 6 | 8 | 10 | 13 | 14)
            } else {
                is_transient_sqlstate(&code)
            }
        }
        _ => false,
    }
}

/// PostgreSQL: connection exceptions (08…), insufficient resources such as a
/// full disk (53…), the server shutting down (57P01–57P03), a cancelled or
/// timed-out statement (57014), a lock wait past `lock_timeout` (55P03), and
/// serialization failures and deadlocks (40001, 40P01: the transaction was
/// rolled back as a whole).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01"
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_postgres_errors_are_told_apart() {
        for code in [
            "08006", "08003", "53100", "57P01", "40001", "40P01", "55P03",
        ] {
            assert!(super::is_transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22001"] {
            assert!(!super::is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn multi_row_statements_use_anonymous_markers() {
        assert_eq!(super::analytics::placeholders(1, 1), "(?)");
        assert_eq!(super::analytics::placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
