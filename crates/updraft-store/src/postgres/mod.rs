//! PostgreSQL implementation of the storage traits, for several Updraft
//! nodes sharing one database.
//!
//! The statements live in `src/sql/` and are shared with SQLite (see
//! `src/sql/common.rs` for the scheme); what is specific to PostgreSQL stays
//! in this module: the pools, the cluster-wide write lock, snapshot reads,
//! `$N` parameter markers in multi-row statements and the dialect macros
//! below. The schema (`migrations/postgres/`) also notifies
//! `updraft_release` with the app id whenever an app, channel, bundle or
//! device override changes, so other nodes can reload that app.

// The shared files are compiled once per engine on purpose (SQLite includes
// them too); this says so once, for clippy.
#![allow(clippy::duplicate_mod)]

/// PostgreSQL's planner needs no hint to walk the primary key.
macro_rules! not_indexed {
    () => {
        ""
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
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};
use std::fmt::Write as _;

/// Per pool (primary, and replica when there is one).
const MAX_CONNECTIONS: u32 = 16;
/// The first connection at start-up.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest wait for the replica to replay what the primary has committed.
const REPLICA_CATCH_UP: std::time::Duration = std::time::Duration::from_millis(1500);
const REPLICA_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How long a query waits for a connection (all busy, or the database
/// unreachable) before it fails: a stats request then gets its 503 well
/// within a phone's request timeout rather than after sqlx's default 30 s.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The transaction-scoped advisory lock every write transaction takes
/// ("UPDRAFTW" in ASCII). One key for the whole database, on purpose.
const WRITE_LOCK_KEY: i64 = 0x5550_4452_4146_5457;

/// Storage in a PostgreSQL database, shared by every Updraft node that
/// points at it.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// A read replica for the release loads.
    read_pool: Option<PgPool>,
    /// Whether `connect` found no schema and created it.
    created_schema: bool,
}

/// One connection first, so that a refused or failing connection is
/// reported as what it is (the pool would only say it timed out), then the pool.
async fn open_pool(url: &str, what: &str) -> StoreResult<PgPool> {
    use sqlx::Connection;
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url))
        .await
        .map_err(|_| {
            StoreError::Backend(format!(
                "cannot connect to {what}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| StoreError::Backend(format!("cannot connect to {what}: {e}")))?;
    probe.close().await?;
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| StoreError::Backend(format!("cannot connect to {what}: {e}")))
}

impl PgStore {
    /// Connects a pool of 16 to `url` and runs the migrations (sqlx takes a
    /// lock for them, so nodes starting together migrate once). With
    /// `read_url` (a read replica), `load_release` and `list_app_ids` read
    /// there; everything else uses the primary.
    pub async fn connect(url: &str, read_url: Option<&str>) -> StoreResult<PgStore> {
        // The URLs may carry a password: errors name the role of the pool only.
        let pool = open_pool(url, "PostgreSQL").await?;
        let created_schema = {
            // sqlx takes an advisory lock around the migrations themselves.
            let mut conn = pool.acquire().await?;
            let report = crate::schema::migrate(&MIGRATOR, &mut *conn, "PostgreSQL").await?;
            crate::schema::log(&report, "PostgreSQL");
            report.from == 0
        };
        let read_pool = match read_url {
            Some(read_url) => Some(open_pool(read_url, "the PostgreSQL replica").await?),
            None => None,
        };
        Ok(PgStore {
            pool,
            read_pool,
            created_schema,
        })
    }

    /// Whether the database was empty and `connect` created Updraft's tables
    /// in it (offline commands say so: they never make a database silently).
    pub fn created_schema(&self) -> bool {
        self.created_schema
    }

    /// The primary's connection pool, for maintenance tasks and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Waits for running queries and closes every connection of both pools.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(read_pool) = &self.read_pool {
            read_pool.close().await;
        }
    }

    /// A write transaction holding the database-wide write lock, which gives
    /// PostgreSQL SQLite's one-writer-at-a-time guarantee that the shared
    /// code relies on (it reads, then writes what it read, inside one
    /// transaction). Several nodes share the database, so the lock is an
    /// advisory lock in the database rather than a mutex in this process;
    /// it is released at commit or rollback. This serialises the writes of
    /// the whole cluster, deliberately: correctness across nodes first.
    /// Single statements outside such a transaction are atomic by themselves.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        // Like SQLite's busy timeout: a writer stuck behind another for this
        // long fails (and rolls back) instead of piling requests up.
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Where release loads read: the replica once it has replayed everything
    /// the primary had committed when this was called, else the primary. A
    /// node that was told of a change (or made one) then never loads a
    /// configuration older than that change, however far the replica lags;
    /// past `REPLICA_CATCH_UP` it reads the primary rather than wait longer.
    async fn read_pool(&self) -> StoreResult<&PgPool> {
        let Some(replica) = &self.read_pool else {
            return Ok(&self.pool);
        };
        // The insert position, not the write position: with asynchronous
        // commit a committed change may not be written out yet.
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&self.pool)
            .await?;
        let deadline = std::time::Instant::now() + REPLICA_CATCH_UP;
        loop {
            // NULL: not a standby (a copy, or the primary itself): read it as it is.
            let caught_up: Result<Option<bool>, sqlx::Error> =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                    .bind(&target)
                    .fetch_one(replica)
                    .await;
            match caught_up {
                Ok(None | Some(true)) => return Ok(replica),
                Ok(Some(false)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(REPLICA_POLL).await;
                }
                Ok(Some(false)) => {
                    tracing::warn!(
                        "the PostgreSQL replica lags more than {} ms; reading the primary",
                        REPLICA_CATCH_UP.as_millis()
                    );
                    return Ok(&self.pool);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the PostgreSQL replica cannot answer; reading the primary");
                    return Ok(&self.pool);
                }
            }
        }
    }
}

/// This binary's PostgreSQL migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

// What the shared files in `src/sql/` name through `super::`.
type Db = Postgres;
type DbRow = PgRow;
type DbConnection = PgConnection;
type EngineStore = PgStore;

/// The wire protocol counts parameters in 16 bits.
const MAX_PARAMETERS: usize = 65_535;

fn push_placeholder(sql: &mut String, number: usize) {
    // Writing to a String cannot fail.
    let _ = write!(sql, "${number}");
}

/// A read transaction that sees one snapshot: PostgreSQL's default (READ
/// COMMITTED) takes a new snapshot per statement.
async fn begin_snapshot(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn multi_row_statements_number_their_markers() {
        assert_eq!(super::analytics::placeholders(1, 1), "($1)");
        assert_eq!(
            super::analytics::placeholders(2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
    }
}
