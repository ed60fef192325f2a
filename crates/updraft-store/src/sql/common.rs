//! The SQL implementation of the storage traits, shared by every engine.
//!
//! The files of `src/sql/` are not a module of their own: `sqlite/mod.rs`
//! and `postgres/mod.rs` each include all of them with
//! `#[path = "../sql/<file>.rs"] mod <file>;`, so the same text is compiled
//! once per engine against that engine's `sqlx` types. Everything a shared
//! file needs from its engine it names through `super::`:
//!
//! - `Db`, `DbRow`, `DbConnection` and `EngineStore` (the store type the
//!   traits are implemented for; it has a `pool` field);
//! - `EngineStore::begin_write()` (a transaction that holds the engine's one
//!   writer lock), `EngineStore::read_pool()` (where release loads go) and
//!   `begin_snapshot(pool)` (a read transaction that sees one snapshot);
//! - `push_placeholder` and `MAX_PARAMETERS` for multi-row statements;
//! - dialect macros, defined before the `mod` lines so they are in textual
//!   scope: `not_indexed!()`. Portable SQL is preferred over a macro
//!   (`TRUE`/`FALSE`, `CAST(SUM(x) AS BIGINT)`, `ON CONFLICT`, `RETURNING`,
//!   qualified columns in upserts, no unsigned binds).
//!
//! This file holds the helpers that are the same for every engine.

/// A unique constraint refused the write (SQLite's and PostgreSQL's codes
/// both map to sqlx's portable classification).
pub(super) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A foreign key refused the write.
pub(super) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Page size of a list: 0 (or less) means the default, and there is a cap.
pub(super) fn clamp_limit(limit: i64) -> i64 {
    const DEFAULT_LIMIT: i64 = 50;
    const MAX_LIMIT: i64 = 1000;
    if limit <= 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    }
}
