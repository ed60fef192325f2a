//! Schema migrations at start: run what this binary has and the database
//! lacks, say which ran (from which version to which), and refuse a
//! database that a newer Updraft has already migrated further.

use crate::{StoreError, StoreResult};
use sqlx::migrate::{Migrate, Migrator};

/// What `migrate` found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// The database's latest applied migration before (0 = a new database).
    pub from: i64,
    /// ... and after.
    pub to: i64,
    /// `version description` of each migration applied now, in order.
    pub applied: Vec<String>,
}

/// The decision over plain version lists: the database's latest migration
/// when it has any that this binary does not know.
pub fn unknown_latest(applied: &[i64], known: &[i64]) -> Option<i64> {
    applied.iter().filter(|v| !known.contains(v)).max().copied()
}

/// Runs `migrator` on `conn` (`engine` names the database in messages).
pub async fn migrate<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    engine: &str,
) -> StoreResult<MigrationReport> {
    let failed =
        |e: sqlx::migrate::MigrateError| StoreError::Backend(format!("migration failed: {e}"));
    // Nodes starting together: one looks and migrates at a time (PostgreSQL's
    // advisory lock is re-entrant, so `run_direct` taking it again is fine).
    if migrator.locking {
        conn.lock().await.map_err(&failed)?;
    }
    let result = migrate_locked(migrator, conn, engine, failed).await;
    if migrator.locking {
        if let Err(err) = conn.unlock().await {
            tracing::warn!(error = %err, "cannot release the migration lock");
        }
    }
    result
}

/// The versions of the migrations the database records as applied.
async fn applied_versions<C: Migrate>(
    conn: &mut C,
) -> Result<Vec<i64>, sqlx::migrate::MigrateError> {
    Ok(conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect())
}

async fn migrate_locked<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    engine: &str,
    failed: impl Fn(sqlx::migrate::MigrateError) -> StoreError,
) -> StoreResult<MigrationReport> {
    conn.ensure_migrations_table().await.map_err(&failed)?;
    let before = applied_versions(conn).await.map_err(&failed)?;
    let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let binary_latest = known.iter().max().copied().unwrap_or(0);
    if let Some(db_latest) = unknown_latest(&before, &known) {
        return Err(StoreError::Backend(format!(
            "the {engine} database's schema is at migration {db_latest}, newer than this \
             binary knows (Updraft {} knows migrations up to {binary_latest}): a newer Updraft \
             has upgraded this database. Run that version (or a newer one), or restore a \
             backup taken before the upgrade; an older binary cannot downgrade the schema",
            env!("CARGO_PKG_VERSION")
        )));
    }
    migrator.run_direct(conn).await.map_err(&failed)?;
    let after = applied_versions(conn).await.map_err(&failed)?;
    let applied = migrator
        .iter()
        .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    Ok(MigrationReport {
        from: before.iter().max().copied().unwrap_or(0),
        to: after.iter().max().copied().unwrap_or(0),
        applied,
    })
}

/// The log line of a report.
pub fn log(report: &MigrationReport, engine: &str) {
    if report.applied.is_empty() {
        tracing::info!(engine, version = report.to, "database schema is up to date");
    } else {
        tracing::info!(
            engine,
            from = report.from,
            to = report.to,
            applied = %report.applied.join(", "),
            "database schema migrated from version {} to {}",
            report.from,
            report.to
        );
    }
}

#[cfg(test)]
mod tests {
    use super::unknown_latest;

    #[test]
    fn a_migration_this_binary_lacks_is_found() {
        assert_eq!(unknown_latest(&[1, 2, 3], &[1, 2, 3, 4]), None);
        assert_eq!(unknown_latest(&[], &[1, 2]), None);
        assert_eq!(unknown_latest(&[1, 2, 3, 8, 9], &[1, 2, 3]), Some(9));
    }
}
