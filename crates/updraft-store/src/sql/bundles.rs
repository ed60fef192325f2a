//! Bundles and their manifest files.

use super::rows::{self, bundle_columns, manifest_columns};
use super::DbConnection;
use super::DbRow;
use super::{begin_snapshot, is_foreign_key_violation, is_unique_violation, EngineStore};
use crate::{
    BundleMetadataPatch, BundleStore, DownloadStore, DownloadTally, Entity, NewBundle, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use updraft_core::model::{Bundle, ManifestFile, Millis};

/// Groups manifest rows (already in position order) by bundle id.
pub(super) fn group_manifests(
    manifest_rows: &[DbRow],
) -> StoreResult<HashMap<i64, Vec<ManifestFile>>> {
    let mut by_bundle: HashMap<i64, Vec<ManifestFile>> = HashMap::new();
    for row in manifest_rows {
        let (bundle_id, file) = rows::manifest_file(row)?;
        by_bundle.entry(bundle_id).or_default().push(file);
    }
    Ok(by_bundle)
}

/// Decodes bundle rows and attaches their manifests.
pub(super) fn assemble_bundles(
    bundle_rows: &[DbRow],
    manifest_rows: &[DbRow],
) -> StoreResult<Vec<Bundle>> {
    let mut manifests = group_manifests(manifest_rows)?;
    bundle_rows
        .iter()
        .map(|row| {
            let mut bundle = rows::bundle(row)?;
            bundle.manifest = manifests.remove(&bundle.id).unwrap_or_default();
            Ok(bundle)
        })
        .collect()
}

/// One bundle row plus its manifest, read on the same connection.
async fn with_manifest(conn: &mut DbConnection, row: &DbRow) -> StoreResult<Bundle> {
    let mut bundle = rows::bundle(row)?;
    let manifest_rows = sqlx::query(concat!(
        "SELECT ",
        manifest_columns!(),
        " FROM manifest_files WHERE bundle_id = $1 ORDER BY position"
    ))
    .bind(bundle.id)
    .fetch_all(&mut *conn)
    .await?;
    bundle.manifest = manifest_rows
        .iter()
        .map(|row| rows::manifest_file(row).map(|(_, file)| file))
        .collect::<StoreResult<_>>()?;
    Ok(bundle)
}

impl EngineStore {
    /// Tells a live duplicate from a name held by a deleted bundle.
    async fn name_conflict(&self, app_id: &str, name: &str) -> StoreError {
        let deleted: Result<Option<bool>, sqlx::Error> =
            sqlx::query_scalar("SELECT deleted FROM bundles WHERE app_id = $1 AND name = $2")
                .bind(app_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await;
        match deleted {
            Ok(Some(true)) => StoreError::DeletedNameReused,
            Ok(_) => StoreError::AlreadyExists(Entity::Bundle),
            Err(err) => err.into(),
        }
    }
}

#[async_trait]
impl BundleStore for EngineStore {
    async fn create_bundle(&self, bundle: NewBundle, now: Millis) -> StoreResult<Bundle> {
        let native_packages = bundle
            .native_packages
            .as_ref()
            .map(rows::json_text)
            .transpose()?;
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO bundles (app_id, name, checksum, encrypted_checksum, session_key, key_id, external_url, \
             storage_path, min_update_version, link, comment, created_at, zip_sha256, size, native_packages) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ",
            bundle_columns!()
        ))
        .bind(&bundle.app_id)
        .bind(&bundle.name)
        .bind(&bundle.checksum)
        .bind(&bundle.encrypted_checksum)
        .bind(&bundle.session_key)
        .bind(&bundle.key_id)
        .bind(&bundle.external_url)
        .bind(&bundle.storage_path)
        .bind(&bundle.min_update_version)
        .bind(&bundle.link)
        .bind(&bundle.comment)
        .bind(now)
        .bind(&bundle.zip_sha256)
        .bind(bundle.size)
        .bind(native_packages)
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(err) if is_unique_violation(&err) => {
                tx.rollback().await?;
                return Err(self.name_conflict(&bundle.app_id, &bundle.name).await);
            }
            Err(err) if is_foreign_key_violation(&err) => {
                return Err(StoreError::NotFound(Entity::App))
            }
            Err(err) => return Err(err.into()),
        };
        let mut created = rows::bundle(&row)?;
        for (position, file) in bundle.manifest.iter().enumerate() {
            sqlx::query(
                "INSERT INTO manifest_files (bundle_id, position, file_name, file_hash, location, size, blob_sha256) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(created.id)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(&file.file_name)
            .bind(&file.file_hash)
            .bind(&file.location)
            .bind(file.size)
            .bind(&file.blob_sha256)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        created.manifest = bundle.manifest;
        Ok(created)
    }

    async fn list_bundles(&self, app_id: &str, include_deleted: bool) -> StoreResult<Vec<Bundle>> {
        // One read transaction: a consistent snapshot of bundles and manifests.
        let mut tx = begin_snapshot(&self.pool).await?;
        let bundle_rows = sqlx::query(concat!(
            "SELECT ",
            bundle_columns!(),
            " FROM bundles WHERE app_id = $1 AND ($2 OR deleted = FALSE) ORDER BY created_at DESC, id DESC"
        ))
        .bind(app_id)
        .bind(include_deleted)
        .fetch_all(&mut *tx)
        .await?;
        let manifest_rows = sqlx::query(
            "SELECT m.bundle_id, m.file_name, m.file_hash, m.location, m.size, m.blob_sha256 \
             FROM manifest_files m JOIN bundles b ON b.id = m.bundle_id \
             WHERE b.app_id = $1 AND ($2 OR b.deleted = FALSE) ORDER BY m.bundle_id, m.position",
        )
        .bind(app_id)
        .bind(include_deleted)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        assemble_bundles(&bundle_rows, &manifest_rows)
    }

    async fn get_bundle(&self, app_id: &str, name: &str) -> StoreResult<Option<Bundle>> {
        let mut tx = begin_snapshot(&self.pool).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            bundle_columns!(),
            " FROM bundles WHERE app_id = $1 AND name = $2"
        ))
        .bind(app_id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let bundle = match row {
            Some(row) => Some(with_manifest(&mut tx, &row).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(bundle)
    }

    async fn update_bundle_metadata(
        &self,
        app_id: &str,
        name: &str,
        patch: BundleMetadataPatch,
    ) -> StoreResult<Bundle> {
        let mut tx = self.begin_write().await?;
        // Each field gets a "change it?" flag and a value, so `Some(None)` can clear it.
        let row = sqlx::query(concat!(
            "UPDATE bundles SET \
             link = CASE WHEN $3 THEN $4 ELSE link END, \
             comment = CASE WHEN $5 THEN $6 ELSE comment END, \
             min_update_version = CASE WHEN $7 THEN $8 ELSE min_update_version END \
             WHERE app_id = $1 AND name = $2 RETURNING ",
            bundle_columns!()
        ))
        .bind(app_id)
        .bind(name)
        .bind(patch.link.is_some())
        .bind(patch.link.flatten())
        .bind(patch.comment.is_some())
        .bind(patch.comment.flatten())
        .bind(patch.min_update_version.is_some())
        .bind(patch.min_update_version.flatten())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Entity::Bundle))?;
        let bundle = with_manifest(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(bundle)
    }

    async fn delete_bundle(&self, app_id: &str, name: &str, now: Millis) -> StoreResult<Bundle> {
        let mut tx = self.begin_write().await?;
        // Deleting twice keeps the first deletion time.
        let row = sqlx::query(concat!(
            "UPDATE bundles SET deleted = TRUE, deleted_at = COALESCE(deleted_at, $3) \
             WHERE app_id = $1 AND name = $2 RETURNING ",
            bundle_columns!()
        ))
        .bind(app_id)
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Entity::Bundle))?;
        let bundle = with_manifest(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(bundle)
    }

    async fn referenced_blobs(&self) -> StoreResult<HashSet<String>> {
        let shas: Vec<String> = sqlx::query_scalar(
            "SELECT zip_sha256 FROM bundles WHERE deleted = FALSE AND zip_sha256 IS NOT NULL \
             UNION SELECT m.blob_sha256 FROM manifest_files m JOIN bundles b ON b.id = m.bundle_id \
             WHERE b.deleted = FALSE AND m.blob_sha256 IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(shas.into_iter().collect())
    }

    async fn app_live_blobs(
        &self,
        app_id: &str,
    ) -> StoreResult<std::collections::HashMap<String, i64>> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT zip_sha256, size FROM bundles \
             WHERE app_id = $1 AND deleted = FALSE AND zip_sha256 IS NOT NULL \
             UNION ALL SELECT m.blob_sha256, m.size FROM manifest_files m \
             JOIN bundles b ON b.id = m.bundle_id \
             WHERE b.app_id = $2 AND b.deleted = FALSE AND m.blob_sha256 IS NOT NULL",
        )
        .bind(app_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sha, size)| (sha, size.unwrap_or(0)))
            .collect())
    }

    async fn app_blobs(&self, app_id: &str, shas: &[String]) -> StoreResult<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in shas.chunks(500) {
            // Each half: the app, then the hashes; numbered on (PostgreSQL)
            // or by position (SQLite), so both halves are bound in order.
            let half = |first: usize| {
                let mut app = String::new();
                super::push_placeholder(&mut app, first);
                let mut list = String::new();
                for i in 0..chunk.len() {
                    list.push_str(if i == 0 { "(" } else { ", (" });
                    super::push_placeholder(&mut list, first + 1 + i);
                    list.push(')');
                }
                (app, list)
            };
            let (app_a, list_a) = half(1);
            let (app_b, list_b) = half(chunk.len() + 2);
            let sql = format!(
                "SELECT zip_sha256 FROM bundles WHERE app_id = {app_a} AND zip_sha256 IN (VALUES {list_a}) \
                 UNION SELECT m.blob_sha256 FROM manifest_files m JOIN bundles b ON b.id = m.bundle_id \
                 WHERE b.app_id = {app_b} AND m.blob_sha256 IN (VALUES {list_b})"
            );
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for _ in 0..2 {
                query = query.bind(app_id);
                for sha in chunk {
                    query = query.bind(sha);
                }
            }
            found.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }
}

#[async_trait]
impl DownloadStore for EngineStore {
    async fn record_downloads(&self, tallies: &[DownloadTally]) -> StoreResult<()> {
        if tallies.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for tally in tallies {
            // The WHERE drops tallies of bundles deleted with their app meanwhile
            // (it also lets SQLite parse the upsert after a SELECT). The table
            // name qualifies the old totals: PostgreSQL has them twice in scope.
            sqlx::query(
                "INSERT INTO bundle_downloads (app_id, bundle_id, day, requests, bytes) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM bundles WHERE id = $2) \
                 ON CONFLICT (app_id, bundle_id, day) DO UPDATE SET \
                 requests = bundle_downloads.requests + excluded.requests, \
                 bytes = bundle_downloads.bytes + excluded.bytes",
            )
            .bind(&tally.app_id)
            .bind(tally.bundle_id)
            .bind(&tally.day)
            .bind(tally.requests)
            .bind(tally.bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
