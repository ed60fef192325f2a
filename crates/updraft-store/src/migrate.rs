//! Moving an embedded installation (SQLite + blob files on disk) into
//! PostgreSQL and, optionally, object storage: `updraft migrate`.
//!
//! The copy is generic: the tables, their order and their columns come from
//! the PostgreSQL schema (created by `PgStore::connect`), and the SQLite
//! schema must match it table for table and column for column, so a table
//! added to both schemas is copied without touching this file, and one added
//! to SQLite only stops the copy instead of being left behind.
//!
//! Everything is read inside one SQLite read transaction: with WAL the
//! running server keeps writing, but the copy sees one fixed snapshot. Writes
//! after the snapshot are not copied. Everything is written inside one
//! PostgreSQL transaction, verified (row counts and a SHA-256 of every row in
//! key order, recomputed from what PostgreSQL returns) before it commits: a
//! failed or mismatched copy leaves the target as it was.

use crate::blob::BlobStore;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Postgres, QueryBuilder, Row, TypeInfo, ValueRef};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Rows per SQLite page and per multi-row INSERT (fewer for wide tables, see
/// [`rows_per_batch`]).
pub(crate) const BATCH_ROWS: usize = 1000;
/// PostgreSQL counts bind parameters in 16 bits.
const MAX_PG_PARAMETERS: usize = 65_535;
/// Blobs copied at the same time (object stores answer slowly, but in parallel).
const BLOB_CONCURRENCY: usize = 8;
/// sqlx's own bookkeeping; each engine has its own migration history.
pub(crate) const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds data; nothing was written.
    #[error(
        "the target database is not empty (rows in {}); migrate into a new, empty database",
        .tables.join(", ")
    )]
    TargetNotEmpty { tables: Vec<String> },
    /// The two schemas do not describe the same tables and columns.
    #[error("the SQLite and PostgreSQL schemas differ: {0}")]
    SchemaMismatch(String),
    /// A stored value does not fit the PostgreSQL column's type.
    #[error("{table}.{column}: {problem}")]
    Value {
        table: String,
        column: String,
        problem: String,
    },
    #[error("reading the SQLite database: {0}")]
    Source(#[source] sqlx::Error),
    #[error("writing PostgreSQL: {0}")]
    Target(#[source] sqlx::Error),
    /// Counts or checksums differ after the copy; it was rolled back.
    #[error("verification failed, nothing was committed: {}", describe_mismatches(.tables))]
    Verification { tables: Vec<TableCopy> },
    /// Blobs the snapshot references are missing from the source store.
    #[error("{} referenced blob(s) are missing from the local store: {}", .0.len(), .0.join(", "))]
    MissingBlobs(Vec<String>),
    #[error("blob {sha256}: {problem}")]
    Blob { sha256: String, problem: String },
}

fn describe_mismatches(tables: &[TableCopy]) -> String {
    tables
        .iter()
        .filter(|t| !t.verified())
        .map(|t| {
            format!(
                "{} ({} rows read, {} in the target, checksums {})",
                t.table,
                t.rows,
                t.target_rows,
                if t.checksum == t.target_checksum {
                    "equal"
                } else {
                    "differ"
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One table's copy: what the snapshot held and what the target holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    /// Rows in the SQLite snapshot (all were copied).
    pub rows: u64,
    /// SHA-256 (hex) over the snapshot's rows in primary-key order.
    pub checksum: String,
    pub target_rows: u64,
    /// The same digest over the rows read back from PostgreSQL.
    pub target_checksum: String,
}

impl TableCopy {
    pub fn verified(&self) -> bool {
        self.rows == self.target_rows && self.checksum == self.target_checksum
    }
}

/// The result of [`copy_database`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseCopy {
    /// In copy (foreign-key) order.
    pub tables: Vec<TableCopy>,
    /// Blobs live bundles of the snapshot use (zips and manifest files):
    /// the target storage must hold every one of them.
    pub referenced_blobs: BTreeSet<String>,
}

/// What [`copy_database`] reports while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyProgress<'a> {
    /// The copy of a table begins; `rows` = its rows in the snapshot.
    TableStarted { table: &'a str, rows: u64 },
    /// `copied` of the table's `rows` are written.
    RowsCopied {
        table: &'a str,
        copied: u64,
        rows: u64,
    },
    /// Reading a table back from PostgreSQL to verify it.
    Verifying { table: &'a str, rows: u64 },
    /// A table verified (or not: see [`TableCopy::verified`]).
    TableVerified(&'a TableCopy),
}

/// Opens the SQLite file of an installation (running or not) for the copy:
/// one connection, reads only, no migrations run. Waits for the server's
/// writes like the server does.
pub async fn open_source(db_file: &Path) -> Result<SqlitePool, MigrateError> {
    if !db_file.is_file() {
        return Err(MigrateError::Source(sqlx::Error::Configuration(
            format!("no database at {}", db_file.display()).into(),
        )));
    }
    let options = SqliteConnectOptions::new()
        .filename(db_file)
        .busy_timeout(Duration::from_secs(30))
        // Belt and braces: this connection can never write the installation.
        .pragma("query_only", "ON");
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(MigrateError::Source)
}

/// A PostgreSQL column type the copy knows how to carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    Int,
    Bool,
    Text,
    Float,
    Bytes,
}

impl ColumnKind {
    fn from_pg(data_type: &str) -> Option<ColumnKind> {
        match data_type {
            "bigint" => Some(ColumnKind::Int),
            "boolean" => Some(ColumnKind::Bool),
            "text" => Some(ColumnKind::Text),
            "double precision" => Some(ColumnKind::Float),
            "bytea" => Some(ColumnKind::Bytes),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) kind: ColumnKind,
    pub(crate) identity: bool,
}

/// How one table is copied.
#[derive(Clone, Debug)]
pub(crate) struct TablePlan {
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    /// Indexes into `columns`, in primary-key order.
    pub(crate) key: Vec<usize>,
}

/// One decoded value, typed by the PostgreSQL column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Float(Option<f64>),
    Bytes(Option<Vec<u8>>),
}

impl Cell {
    /// Feeds the value into a row digest: a type tag, a null flag and a
    /// length-prefixed value, so no two different rows encode alike.
    fn digest_into(&self, hasher: &mut Sha256) {
        fn put(hasher: &mut Sha256, tag: u8, value: Option<&[u8]>) {
            match value {
                None => hasher.update([tag, 0]),
                Some(bytes) => {
                    hasher.update([tag, 1]);
                    hasher.update((bytes.len() as u64).to_be_bytes());
                    hasher.update(bytes);
                }
            }
        }
        match self {
            Cell::Int(v) => put(
                hasher,
                b'i',
                v.map(i64::to_be_bytes).as_ref().map(|b| &b[..]),
            ),
            Cell::Bool(v) => put(
                hasher,
                b'b',
                v.map(|b| [u8::from(b)]).as_ref().map(|b| &b[..]),
            ),
            Cell::Text(v) => put(hasher, b't', v.as_deref().map(str::as_bytes)),
            Cell::Float(v) => put(
                hasher,
                b'f',
                v.map(|f| f.to_bits().to_be_bytes())
                    .as_ref()
                    .map(|b| &b[..]),
            ),
            Cell::Bytes(v) => put(hasher, b'y', v.as_deref()),
        }
    }
}

/// SHA-256 over rows fed one at a time (key order) and their count.
pub(crate) struct TableDigest {
    hasher: Sha256,
    pub(crate) rows: u64,
}

impl TableDigest {
    pub(crate) fn new() -> TableDigest {
        TableDigest {
            hasher: Sha256::new(),
            rows: 0,
        }
    }

    pub(crate) fn add_row(&mut self, row: &[Cell]) {
        self.hasher.update(b"row");
        for cell in row {
            cell.digest_into(&mut self.hasher);
        }
        self.rows += 1;
    }

    pub(crate) fn finish(self) -> (u64, String) {
        (self.rows, hex::encode(self.hasher.finalize()))
    }
}

/// Table and column names are plain identifiers in our schemas; anything
/// else is refused rather than quoted into SQL.
pub(crate) fn ident(name: &str) -> Result<String, MigrateError> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(format!("\"{name}\""))
    } else {
        Err(MigrateError::SchemaMismatch(format!(
            "unexpected identifier {name:?}"
        )))
    }
}

fn rows_per_batch(columns: usize) -> usize {
    BATCH_ROWS.min(MAX_PG_PARAMETERS / columns.max(1)).max(1)
}

/// The PostgreSQL tables in an order that satisfies their foreign keys,
/// each with its columns, types and primary key.
pub(crate) async fn pg_plan(conn: &mut PgConnection) -> Result<Vec<TablePlan>, MigrateError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> $1 ORDER BY table_name",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *conn)
    .await
    .map_err(MigrateError::Target)?;
    if tables.is_empty() {
        return Err(MigrateError::SchemaMismatch(
            "the PostgreSQL database has no tables (was it migrated?)".to_string(),
        ));
    }
    let foreign_keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint c \
         JOIN pg_class child ON child.oid = c.conrelid \
         JOIN pg_class parent ON parent.oid = c.confrelid \
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(MigrateError::Target)?;
    let order = foreign_key_order(&tables, &foreign_keys)?;

    let mut plans = Vec::with_capacity(order.len());
    for table in order {
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             ORDER BY ordinal_position",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .map_err(MigrateError::Target)?;
        let columns = columns
            .into_iter()
            .map(|(name, data_type, identity)| {
                let kind = ColumnKind::from_pg(&data_type).ok_or_else(|| MigrateError::Value {
                    table: table.clone(),
                    column: name.clone(),
                    problem: format!("PostgreSQL type {data_type} is not supported by the copy"),
                })?;
                Ok(Column {
                    name,
                    kind,
                    identity: identity == "YES",
                })
            })
            .collect::<Result<Vec<_>, MigrateError>>()?;
        let key_names: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON TRUE \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE i.indisprimary AND c.relname = $1 \
             AND c.relnamespace = current_schema()::regnamespace \
             ORDER BY k.ord",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .map_err(MigrateError::Target)?;
        if key_names.is_empty() {
            return Err(MigrateError::SchemaMismatch(format!(
                "table {table} has no primary key to copy it in order"
            )));
        }
        let key = key_names
            .iter()
            .map(|name| {
                columns.iter().position(|c| &c.name == name).ok_or_else(|| {
                    MigrateError::SchemaMismatch(format!(
                        "primary key column {table}.{name} not found"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        plans.push(TablePlan {
            name: table,
            columns,
            key,
        });
    }
    Ok(plans)
}

/// Parents before children (Kahn's algorithm; ties by name, so the order is
/// stable). Self-references do not constrain the order.
fn foreign_key_order(
    tables: &[String],
    foreign_keys: &[(String, String)],
) -> Result<Vec<String>, MigrateError> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = tables
        .iter()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    for (child, parent) in foreign_keys {
        if child != parent {
            if let Some(set) = parents.get_mut(child.as_str()) {
                set.insert(parent.as_str());
            }
        }
    }
    let mut order = Vec::with_capacity(tables.len());
    let mut placed = BTreeSet::new();
    while order.len() < tables.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(table, deps)| {
                !placed.contains(*table)
                    && deps
                        .iter()
                        .all(|d| placed.contains(d) || !parents_has(tables, d))
            })
            .map(|(table, _)| *table)
            .collect();
        if ready.is_empty() {
            return Err(MigrateError::SchemaMismatch(
                "the foreign keys form a cycle".to_string(),
            ));
        }
        for table in ready {
            placed.insert(table);
            order.push(table.to_string());
        }
    }
    Ok(order)
}

/// Foreign keys to tables outside the copy (none in our schema) do not block.
fn parents_has(tables: &[String], table: &str) -> bool {
    tables.iter().any(|t| t == table)
}

/// Checks that the SQLite snapshot has exactly the PostgreSQL tables, and
/// each table exactly the PostgreSQL columns.
pub(crate) async fn check_source_schema(
    source: &mut SqliteConnection,
    plans: &[TablePlan],
) -> Result<(), MigrateError> {
    let source_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> ?",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *source)
    .await
    .map_err(MigrateError::Source)?
    .into_iter()
    .collect();
    let target_tables: BTreeSet<String> = plans.iter().map(|p| p.name.clone()).collect();
    let only_source: Vec<_> = source_tables.difference(&target_tables).cloned().collect();
    let only_target: Vec<_> = target_tables.difference(&source_tables).cloned().collect();
    if !only_source.is_empty() || !only_target.is_empty() {
        return Err(MigrateError::SchemaMismatch(format!(
            "tables only in SQLite: [{}]; only in PostgreSQL: [{}] (run this version's `updraft serve` once on the data directory to upgrade it, then migrate)",
            only_source.join(", "),
            only_target.join(", ")
        )));
    }
    for plan in plans {
        let source_columns: BTreeSet<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                .bind(&plan.name)
                .fetch_all(&mut *source)
                .await
                .map_err(MigrateError::Source)?
                .into_iter()
                .collect();
        let target_columns: BTreeSet<String> =
            plan.columns.iter().map(|c| c.name.clone()).collect();
        if source_columns != target_columns {
            let only_source: Vec<_> = source_columns
                .difference(&target_columns)
                .cloned()
                .collect();
            let only_target: Vec<_> = target_columns
                .difference(&source_columns)
                .cloned()
                .collect();
            return Err(MigrateError::SchemaMismatch(format!(
                "table {}: columns only in SQLite: [{}]; only in PostgreSQL: [{}]",
                plan.name,
                only_source.join(", "),
                only_target.join(", ")
            )));
        }
    }
    Ok(())
}

/// Converts one SQLite value by the PostgreSQL column's type; refuses any
/// value the conversion would change (a flag other than 0/1, text in a
/// number column …).
fn sqlite_cell(
    row: &sqlx::sqlite::SqliteRow,
    index: usize,
    table: &str,
    column: &Column,
) -> Result<Cell, MigrateError> {
    let problem = |problem: String| MigrateError::Value {
        table: table.to_string(),
        column: column.name.clone(),
        problem,
    };
    let raw = row.try_get_raw(index).map_err(MigrateError::Source)?;
    if raw.is_null() {
        return Ok(match column.kind {
            ColumnKind::Int => Cell::Int(None),
            ColumnKind::Bool => Cell::Bool(None),
            ColumnKind::Text => Cell::Text(None),
            ColumnKind::Float => Cell::Float(None),
            ColumnKind::Bytes => Cell::Bytes(None),
        });
    }
    // The value's own storage class, not the column's declared type.
    let storage = raw.type_info().name().to_string();
    let decode_err = |e: sqlx::Error| problem(e.to_string());
    match (column.kind, storage.as_str()) {
        (ColumnKind::Int, "INTEGER") => Ok(Cell::Int(Some(
            row.try_get_unchecked::<i64, _>(index).map_err(decode_err)?,
        ))),
        (ColumnKind::Bool, "INTEGER") => {
            match row.try_get_unchecked::<i64, _>(index).map_err(decode_err)? {
                0 => Ok(Cell::Bool(Some(false))),
                1 => Ok(Cell::Bool(Some(true))),
                other => Err(problem(format!("flag value {other} is neither 0 nor 1"))),
            }
        }
        (ColumnKind::Text, "TEXT") => Ok(Cell::Text(Some(
            row.try_get_unchecked::<String, _>(index)
                .map_err(decode_err)?,
        ))),
        (ColumnKind::Float, "REAL") => Ok(Cell::Float(Some(
            row.try_get_unchecked::<f64, _>(index).map_err(decode_err)?,
        ))),
        // A REAL column keeps a whole number as INTEGER when it fits.
        (ColumnKind::Float, "INTEGER") => {
            let value = row.try_get_unchecked::<i64, _>(index).map_err(decode_err)?;
            Ok(Cell::Float(Some(value as f64)))
        }
        (ColumnKind::Bytes, "BLOB") => Ok(Cell::Bytes(Some(
            row.try_get_unchecked::<Vec<u8>, _>(index)
                .map_err(decode_err)?,
        ))),
        (kind, storage) => Err(problem(format!(
            "a {storage} value cannot go into a {kind:?} column"
        ))),
    }
}

pub(crate) fn pg_cell(row: &PgRow, index: usize, kind: ColumnKind) -> Result<Cell, sqlx::Error> {
    Ok(match kind {
        ColumnKind::Int => Cell::Int(row.try_get(index)?),
        ColumnKind::Bool => Cell::Bool(row.try_get(index)?),
        ColumnKind::Text => Cell::Text(row.try_get(index)?),
        ColumnKind::Float => Cell::Float(row.try_get(index)?),
        ColumnKind::Bytes => Cell::Bytes(row.try_get(index)?),
    })
}

pub(crate) fn column_list(plan: &TablePlan) -> Result<String, MigrateError> {
    Ok(plan
        .columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// The primary-key ORDER BY; on PostgreSQL text sorts bytewise ("C") like
/// SQLite's BINARY collation, so both sides walk the rows in one order.
pub(crate) fn key_order(plan: &TablePlan, postgres: bool) -> Result<String, MigrateError> {
    Ok(plan
        .key
        .iter()
        .map(|&i| {
            let column = &plan.columns[i];
            let name = ident(&column.name)?;
            Ok(if postgres && column.kind == ColumnKind::Text {
                format!("{name} COLLATE \"C\"")
            } else {
                name
            })
        })
        .collect::<Result<Vec<_>, MigrateError>>()?
        .join(", "))
}

/// One page of the SQLite table after `after` (the last page's key), in key order.
pub(crate) async fn sqlite_page(
    source: &mut SqliteConnection,
    plan: &TablePlan,
    after: Option<&[Cell]>,
    limit: usize,
) -> Result<Vec<Vec<Cell>>, MigrateError> {
    let mut sql = format!("SELECT {} FROM {}", column_list(plan)?, ident(&plan.name)?);
    if after.is_some() {
        let keys = plan
            .key
            .iter()
            .map(|&i| ident(&plan.columns[i].name))
            .collect::<Result<Vec<_>, _>>()?;
        let marks = vec!["?"; keys.len()].join(", ");
        sql.push_str(&format!(" WHERE ({}) > ({marks})", keys.join(", ")));
    }
    sql.push_str(&format!(
        " ORDER BY {} LIMIT {limit}",
        key_order(plan, false)?
    ));
    let mut query = sqlx::query(&sql);
    if let Some(after) = after {
        for cell in after {
            query = match cell.clone() {
                Cell::Int(v) => query.bind(v),
                // Flags are stored as 0/1 in SQLite.
                Cell::Bool(v) => query.bind(v.map(i64::from)),
                Cell::Text(v) => query.bind(v),
                Cell::Float(v) => query.bind(v),
                Cell::Bytes(v) => query.bind(v),
            };
        }
    }
    let rows = query
        .fetch_all(&mut *source)
        .await
        .map_err(MigrateError::Source)?;
    rows.iter()
        .map(|row| {
            plan.columns
                .iter()
                .enumerate()
                .map(|(i, column)| sqlite_cell(row, i, &plan.name, column))
                .collect()
        })
        .collect()
}

async fn insert_rows(
    target: &mut PgConnection,
    plan: &TablePlan,
    rows: Vec<Vec<Cell>>,
) -> Result<(), MigrateError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "INSERT INTO {} ({}) ",
        ident(&plan.name)?,
        column_list(plan)?
    ));
    builder.push_values(rows, |mut values, row| {
        for cell in row {
            match cell {
                Cell::Int(v) => values.push_bind(v),
                Cell::Bool(v) => values.push_bind(v),
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
        .map_err(MigrateError::Target)?;
    Ok(())
}

/// Refuses a target with any row in any table, without locking anything: the
/// early check before files are copied (the copy checks again, locked).
pub async fn ensure_target_empty(target: &PgPool) -> Result<(), MigrateError> {
    let mut conn = target.acquire().await.map_err(MigrateError::Target)?;
    let plans = pg_plan(&mut conn).await?;
    refuse_rows(&mut conn, &plans).await
}

/// `TargetNotEmpty` naming every table of `plans` that has a row.
pub(crate) async fn refuse_rows(
    target: &mut PgConnection,
    plans: &[TablePlan],
) -> Result<(), MigrateError> {
    let mut taken = Vec::new();
    for plan in plans {
        let has_rows: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            ident(&plan.name)?
        ))
        .fetch_one(&mut *target)
        .await
        .map_err(MigrateError::Target)?;
        if has_rows {
            taken.push(plan.name.clone());
        }
    }
    if taken.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::TargetNotEmpty { tables: taken })
    }
}

/// Whether the copied installation has this setting (e.g. a URL-signing key).
pub async fn target_has_setting(target: &PgPool, name: &str) -> Result<bool, MigrateError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM settings WHERE name = $1)")
        .bind(name)
        .fetch_one(target)
        .await
        .map_err(MigrateError::Target)
}

/// Locks every table against writers (a server started on the target too
/// early) and refuses any row already there.
async fn claim_empty_target(
    target: &mut PgConnection,
    plans: &[TablePlan],
) -> Result<(), MigrateError> {
    let names = plans
        .iter()
        .map(|p| ident(&p.name))
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        names.join(", ")
    ))
    .execute(&mut *target)
    .await
    .map_err(MigrateError::Target)?;
    refuse_rows(target, plans).await
}

/// Identity sequences continue after the highest id SQLite ever handed out
/// (its `sqlite_sequence` remembers ids of deleted rows too), so no id is
/// reused.
async fn continue_identity(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    plan: &TablePlan,
) -> Result<(), MigrateError> {
    for column in plan.columns.iter().filter(|c| c.identity) {
        let column_name = ident(&column.name)?;
        let table_name = ident(&plan.name)?;
        let max_id: Option<i64> =
            sqlx::query_scalar(&format!("SELECT MAX({column_name}) FROM {table_name}"))
                .fetch_one(&mut *target)
                .await
                .map_err(MigrateError::Target)?;
        let has_sequence_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
        )
        .fetch_one(&mut *source)
        .await
        .map_err(MigrateError::Source)?;
        let handed_out: Option<i64> = if has_sequence_table {
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
                .bind(&plan.name)
                .fetch_optional(&mut *source)
                .await
                .map_err(MigrateError::Source)?
        } else {
            None
        };
        let next = max_id.unwrap_or(0).max(handed_out.unwrap_or(0)) + 1;
        sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3, false)")
            .bind(&table_name)
            .bind(&column.name)
            .bind(next)
            .execute(&mut *target)
            .await
            .map_err(MigrateError::Target)?;
    }
    Ok(())
}

/// Reads the whole table back from PostgreSQL in key order (streamed) and
/// digests it exactly as the source rows were.
async fn target_digest(
    target: &mut PgConnection,
    plan: &TablePlan,
) -> Result<(u64, String), MigrateError> {
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        column_list(plan)?,
        ident(&plan.name)?,
        key_order(plan, true)?
    );
    let mut digest = TableDigest::new();
    let mut rows = sqlx::query(&sql).fetch(&mut *target);
    while let Some(row) = rows.try_next().await.map_err(MigrateError::Target)? {
        let cells = plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| pg_cell(&row, i, column.kind))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MigrateError::Target)?;
        digest.add_row(&cells);
    }
    Ok(digest.finish())
}

/// The blobs live bundles of the snapshot use (deleted bundles are served
/// to nobody, and gc may have collected their files already).
pub(crate) async fn snapshot_blobs(
    source: &mut SqliteConnection,
) -> Result<BTreeSet<String>, MigrateError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT zip_sha256 FROM bundles WHERE zip_sha256 IS NOT NULL AND deleted = 0 \
         UNION SELECT m.blob_sha256 FROM manifest_files m \
         JOIN bundles b ON b.id = m.bundle_id \
         WHERE m.blob_sha256 IS NOT NULL AND b.deleted = 0",
    )
    .fetch_all(&mut *source)
    .await
    .map_err(MigrateError::Source)?;
    Ok(names.into_iter().collect())
}

/// Copies every row of the SQLite database (one snapshot) into the empty
/// PostgreSQL database `target` (schema already created by
/// `PgStore::connect`), verifies counts and checksums of every table and
/// commits only when all of them match. Nothing is written when the target
/// holds any row, the schemas differ or the verification fails.
pub async fn copy_database(
    source: &SqlitePool,
    target: &PgPool,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
) -> Result<DatabaseCopy, MigrateError> {
    let mut source_conn = source.acquire().await.map_err(MigrateError::Source)?;
    // A deferred transaction: its first read fixes the snapshot, which every
    // later read of this copy sees, whatever the server writes meanwhile.
    let mut source_tx = source_conn.begin().await.map_err(MigrateError::Source)?;
    sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(&mut *source_tx)
        .await
        .map_err(MigrateError::Source)?;

    let mut target_tx = target.begin().await.map_err(MigrateError::Target)?;
    let plans = pg_plan(&mut target_tx).await?;
    check_source_schema(&mut source_tx, &plans).await?;
    claim_empty_target(&mut target_tx, &plans).await?;

    let mut source_digests = Vec::with_capacity(plans.len());
    for plan in &plans {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(&plan.name)?))
            .fetch_one(&mut *source_tx)
            .await
            .map_err(MigrateError::Source)?;
        let rows = u64::try_from(rows).unwrap_or(0);
        progress(CopyProgress::TableStarted {
            table: &plan.name,
            rows,
        });
        let mut digest = TableDigest::new();
        let batch = rows_per_batch(plan.columns.len());
        let mut last_key: Option<Vec<Cell>> = None;
        loop {
            let page = sqlite_page(&mut source_tx, plan, last_key.as_deref(), batch).await?;
            let full = page.len() == batch;
            let Some(last) = page.last() else { break };
            last_key = Some(plan.key.iter().map(|&i| last[i].clone()).collect());
            for row in &page {
                digest.add_row(row);
            }
            insert_rows(&mut target_tx, plan, page).await?;
            progress(CopyProgress::RowsCopied {
                table: &plan.name,
                copied: digest.rows,
                rows,
            });
            if !full {
                break;
            }
        }
        continue_identity(&mut source_tx, &mut target_tx, plan).await?;
        source_digests.push(digest.finish());
    }
    let referenced_blobs = snapshot_blobs(&mut source_tx).await?;
    // Reads only; ending the snapshot lets the server checkpoint its WAL.
    source_tx.rollback().await.map_err(MigrateError::Source)?;

    let mut tables = Vec::with_capacity(plans.len());
    for (plan, (rows, checksum)) in plans.iter().zip(source_digests) {
        progress(CopyProgress::Verifying {
            table: &plan.name,
            rows,
        });
        let (target_rows, target_checksum) = target_digest(&mut target_tx, plan).await?;
        let copy = TableCopy {
            table: plan.name.clone(),
            rows,
            checksum,
            target_rows,
            target_checksum,
        };
        progress(CopyProgress::TableVerified(&copy));
        tables.push(copy);
    }
    if tables.iter().any(|t| !t.verified()) {
        target_tx.rollback().await.map_err(MigrateError::Target)?;
        return Err(MigrateError::Verification { tables });
    }
    target_tx.commit().await.map_err(MigrateError::Target)?;
    Ok(DatabaseCopy {
        tables,
        referenced_blobs,
    })
}

/// What [`copy_blobs`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobCopy {
    /// Blobs this call put in the target (or found there), each read back
    /// and hashed to its name.
    pub verified: BTreeSet<String>,
    /// Of those, how many were uploaded (the rest were there already).
    pub uploaded: u64,
    /// Bytes of the verified blobs.
    pub bytes: u64,
}

/// What [`copy_blobs`] reports while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobProgress {
    /// `total` blobs of `total_bytes` to copy and verify.
    Started { total: u64, total_bytes: u64 },
    /// One more blob is in the target and verified.
    Done { done: u64, bytes: u64 },
}

/// Copies every blob of `source` plus every blob of `required` (which must
/// all exist in `source`) into `target`, except those in `already_verified`
/// (an earlier pass did them). A blob the target holds with the right size
/// is not uploaded again; every one is then read back from the target and
/// must hash to its name.
///
/// `updraft migrate` runs it twice: before the database copy with nothing
/// required (a failure there leaves the database untouched, so a plain
/// re-run works), and after it with the snapshot's
/// [`DatabaseCopy::referenced_blobs`], which adds what was uploaded between
/// the two.
pub async fn copy_blobs(
    source: &dyn BlobStore,
    target: &dyn BlobStore,
    required: &BTreeSet<String>,
    already_verified: &BTreeSet<String>,
    progress: &mut (dyn FnMut(BlobProgress) + Send),
) -> Result<BlobCopy, MigrateError> {
    let mut sizes: BTreeMap<String, u64> = source
        .list()
        .await
        .map_err(|e| MigrateError::Blob {
            sha256: "(listing the source)".to_string(),
            problem: e.to_string(),
        })?
        .into_iter()
        .map(|entry| (entry.sha256, entry.size))
        .collect();
    let mut missing = Vec::new();
    for sha256 in required {
        if sizes.contains_key(sha256) || already_verified.contains(sha256) {
            continue;
        }
        // Published after the listing? Ask directly.
        let size = source.stat(sha256).await.map_err(|e| MigrateError::Blob {
            sha256: sha256.clone(),
            problem: e.to_string(),
        })?;
        match size {
            Some(size) => {
                sizes.insert(sha256.clone(), size);
            }
            None => missing.push(sha256.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(MigrateError::MissingBlobs(missing));
    }
    sizes.retain(|sha256, _| !already_verified.contains(sha256));

    progress(BlobProgress::Started {
        total: sizes.len() as u64,
        total_bytes: sizes.values().sum(),
    });
    let mut report = BlobCopy::default();
    let mut results = futures_util::stream::iter(sizes)
        .map(|(sha256, size)| async move {
            let uploaded = copy_one_blob(source, target, &sha256, size).await?;
            verify_blob(target, &sha256, size).await?;
            Ok::<_, MigrateError>((sha256, uploaded, size))
        })
        .buffer_unordered(BLOB_CONCURRENCY);
    while let Some(result) = results.next().await {
        let (sha256, uploaded, size) = result?;
        report.verified.insert(sha256);
        report.bytes += size;
        if uploaded {
            report.uploaded += 1;
        }
        progress(BlobProgress::Done {
            done: report.verified.len() as u64,
            bytes: report.bytes,
        });
    }
    Ok(report)
}

/// Returns whether the blob was uploaded (false: already there, same size).
async fn copy_one_blob(
    source: &dyn BlobStore,
    target: &dyn BlobStore,
    sha256: &str,
    size: u64,
) -> Result<bool, MigrateError> {
    let fail = |problem: String| MigrateError::Blob {
        sha256: sha256.to_string(),
        problem,
    };
    match target.stat(sha256).await.map_err(|e| fail(e.to_string()))? {
        Some(existing) if existing == size => return Ok(false),
        _ => {}
    }
    let reader = source
        .open(sha256)
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("vanished from the source store during the copy".to_string()))?;
    let staged = target.staging_dir().join(format!(
        "migrate-{sha256}-{:016x}.part",
        rand::random::<u64>()
    ));
    let result = async {
        let mut input = reader
            .range(0, size)
            .await
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut file = tokio::fs::File::create(&staged)
            .await
            .map_err(|e| fail(format!("cannot stage {}: {e}", staged.display())))?;
        tokio::io::copy(&mut input, &mut file)
            .await
            .map_err(|e| fail(format!("cannot stage: {e}")))?;
        file.flush()
            .await
            .map_err(|e| fail(format!("cannot stage: {e}")))?;
        drop(file);
        target
            .put_file(&staged, Some(sha256))
            .await
            .map_err(|e| fail(e.to_string()))
    }
    .await;
    // put_file consumes the staged file on success; clean up after a failure.
    let _ = tokio::fs::remove_file(&staged).await;
    let info = result?;
    if info.size != size {
        return Err(fail(format!(
            "stored {} bytes, the source has {size}",
            info.size
        )));
    }
    Ok(true)
}

/// Reads the blob back from `target` and checks its size and SHA-256.
async fn verify_blob(target: &dyn BlobStore, sha256: &str, size: u64) -> Result<(), MigrateError> {
    use tokio::io::AsyncReadExt;
    let fail = |problem: String| MigrateError::Blob {
        sha256: sha256.to_string(),
        problem,
    };
    let reader = target
        .open(sha256)
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("missing from the target after the copy".to_string()))?;
    if reader.size != size {
        return Err(fail(format!(
            "the target holds {} bytes, the source {size}",
            reader.size
        )));
    }
    let mut input = reader
        .range(0, size)
        .await
        .map_err(|e| fail(format!("cannot read back: {e}")))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut read_total = 0u64;
    loop {
        let read = input
            .read(&mut buffer)
            .await
            .map_err(|e| fail(format!("cannot read back: {e}")))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        read_total += read as u64;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha256 || read_total != size {
        return Err(fail(format!(
            "read back {read_total} bytes hashing to {actual}"
        )));
    }
    Ok(())
}

/// Checks that every blob live bundles of the snapshot use is in `store`
/// (the installation keeps its local files); returns how many there are.
pub async fn check_blobs_present(
    store: &dyn BlobStore,
    database: &DatabaseCopy,
) -> Result<u64, MigrateError> {
    let mut missing = Vec::new();
    for sha256 in &database.referenced_blobs {
        let present = store.stat(sha256).await.map_err(|e| MigrateError::Blob {
            sha256: sha256.clone(),
            problem: e.to_string(),
        })?;
        if present.is_none() {
            missing.push(sha256.clone());
        }
    }
    if missing.is_empty() {
        Ok(database.referenced_blobs.len() as u64)
    } else {
        Err(MigrateError::MissingBlobs(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parents_come_before_children() {
        let tables = names(&["a_child", "b_parent", "c_grandchild", "d_alone"]);
        let fks = vec![
            ("a_child".to_string(), "b_parent".to_string()),
            ("c_grandchild".to_string(), "a_child".to_string()),
            ("c_grandchild".to_string(), "c_grandchild".to_string()),
        ];
        assert_eq!(
            foreign_key_order(&tables, &fks).unwrap(),
            names(&["b_parent", "d_alone", "a_child", "c_grandchild"])
        );
    }

    #[test]
    fn a_cycle_is_refused() {
        let tables = names(&["a", "b"]);
        let fks = vec![
            ("a".to_string(), "b".to_string()),
            ("b".to_string(), "a".to_string()),
        ];
        assert!(matches!(
            foreign_key_order(&tables, &fks),
            Err(MigrateError::SchemaMismatch(_))
        ));
    }

    #[test]
    fn row_digests_tell_values_apart() {
        let digest = |rows: &[Vec<Cell>]| {
            let mut d = TableDigest::new();
            for row in rows {
                d.add_row(row);
            }
            d.finish().1
        };
        let base = vec![vec![
            Cell::Text(Some("ab".into())),
            Cell::Text(Some("c".into())),
        ]];
        let shifted = vec![vec![
            Cell::Text(Some("a".into())),
            Cell::Text(Some("bc".into())),
        ]];
        let null = vec![vec![Cell::Text(Some("ab".into())), Cell::Text(None)]];
        let empty = vec![vec![
            Cell::Text(Some("ab".into())),
            Cell::Text(Some(String::new())),
        ]];
        assert_ne!(digest(&base), digest(&shifted));
        assert_ne!(digest(&null), digest(&empty));
        assert_ne!(
            digest(&[vec![Cell::Int(Some(1))]]),
            digest(&[vec![Cell::Bool(Some(true))]])
        );
        assert_eq!(digest(&base), digest(&base.clone()));
    }

    #[test]
    fn wide_tables_stay_under_the_parameter_limit() {
        assert_eq!(rows_per_batch(10), 1000);
        assert_eq!(rows_per_batch(100), 655);
        assert!(rows_per_batch(100) * 100 <= MAX_PG_PARAMETERS);
    }

    #[test]
    fn only_plain_identifiers_reach_sql() {
        assert_eq!(ident("stats_events").unwrap(), "\"stats_events\"");
        assert!(ident("x\"; DROP TABLE apps; --").is_err());
    }
}
