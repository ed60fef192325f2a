//! Resumable upload sessions shared by every node (object-storage mode).
//!
//! `received` only moves inside a write transaction that also records the
//! part holding the new bytes, and only from the offset the writer started
//! at: of two requests for the same offset, exactly one advances it.

use super::EngineStore;
use crate::{StoreResult, UploadPart, UploadSession, UploadStore};
use async_trait::async_trait;
use sqlx::Row;
use updraft_core::model::Millis;

macro_rules! upload_columns {
    () => {
        "upload_id, sha256, size, received, complete, created_at, last_activity"
    };
}

fn session(row: &super::DbRow) -> StoreResult<UploadSession> {
    Ok(UploadSession {
        upload_id: row.try_get("upload_id")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        received: row.try_get("received")?,
        complete: row.try_get("complete")?,
        created_at: row.try_get("created_at")?,
        last_activity: row.try_get("last_activity")?,
    })
}

fn part(row: &super::DbRow) -> StoreResult<UploadPart> {
    Ok(UploadPart {
        start: row.try_get("start")?,
        len: row.try_get("len")?,
        name: row.try_get("name")?,
    })
}

async fn parts_of(
    connection: &mut super::DbConnection,
    upload_id: &str,
) -> StoreResult<Vec<UploadPart>> {
    sqlx::query("SELECT start, len, name FROM upload_parts WHERE upload_id = $1 ORDER BY start")
        .bind(upload_id)
        .fetch_all(connection)
        .await?
        .iter()
        .map(part)
        .collect()
}

#[async_trait]
impl UploadStore for EngineStore {
    async fn find_or_create_upload(
        &self,
        candidate: UploadSession,
        live_after: Millis,
    ) -> StoreResult<(UploadSession, bool)> {
        // The write lock makes the look-up and the insert one step for every node.
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM upload_sessions WHERE sha256 = $1 AND size = $2 AND complete = FALSE \
             AND last_activity > $3 ORDER BY received DESC, created_at, upload_id LIMIT 1"
        ))
        .bind(&candidate.sha256)
        .bind(candidate.size)
        .bind(live_after)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let found = session(&row)?;
            tx.commit().await?;
            return Ok((found, false));
        }
        let row = sqlx::query(concat!(
            "INSERT INTO upload_sessions (",
            upload_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            upload_columns!()
        ))
        .bind(&candidate.upload_id)
        .bind(&candidate.sha256)
        .bind(candidate.size)
        .bind(candidate.received)
        .bind(candidate.complete)
        .bind(candidate.created_at)
        .bind(candidate.last_activity)
        .fetch_one(&mut *tx)
        .await?;
        let created = session(&row)?;
        tx.commit().await?;
        Ok((created, true))
    }

    async fn get_upload(&self, upload_id: &str) -> StoreResult<Option<UploadSession>> {
        sqlx::query(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM upload_sessions WHERE upload_id = $1"
        ))
        .bind(upload_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(session)
        .transpose()
    }

    async fn append_upload_part(
        &self,
        upload_id: &str,
        part: &UploadPart,
        now: Millis,
    ) -> StoreResult<Option<UploadSession>> {
        let mut tx = self.begin_write().await?;
        let advanced = sqlx::query(concat!(
            "UPDATE upload_sessions SET received = received + $3, \
             last_activity = CASE WHEN last_activity > $4 THEN last_activity ELSE $4 END \
             WHERE upload_id = $1 AND received = $2 AND complete = FALSE \
             AND received + $3 <= size RETURNING ",
            upload_columns!()
        ))
        .bind(upload_id)
        .bind(part.start)
        .bind(part.len)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = advanced else {
            return Ok(None);
        };
        let advanced = session(&row)?;
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, start, len, name) VALUES ($1, $2, $3, $4)",
        )
        .bind(upload_id)
        .bind(part.start)
        .bind(part.len)
        .bind(&part.name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(advanced))
    }

    async fn list_upload_parts(&self, upload_id: &str) -> StoreResult<Vec<UploadPart>> {
        let mut connection = self.pool.acquire().await?;
        parts_of(&mut connection, upload_id).await
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        now: Millis,
    ) -> StoreResult<Option<Vec<UploadPart>>> {
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE upload_sessions SET complete = TRUE, last_activity = $2 \
             WHERE upload_id = $1 AND received = size AND complete = FALSE",
        )
        .bind(upload_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Ok(None);
        }
        let parts = parts_of(&mut tx, upload_id).await?;
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(parts))
    }

    async fn delete_upload(&self, upload_id: &str) -> StoreResult<Vec<UploadPart>> {
        let mut tx = self.begin_write().await?;
        let parts = parts_of(&mut tx, upload_id).await?;
        // The parts' rows go with the session (ON DELETE CASCADE).
        sqlx::query("DELETE FROM upload_sessions WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(parts)
    }

    async fn expired_uploads(&self, before: Millis, limit: i64) -> StoreResult<Vec<UploadSession>> {
        sqlx::query(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM upload_sessions WHERE last_activity <= $1 \
             ORDER BY last_activity, upload_id LIMIT $2"
        ))
        .bind(before)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session)
        .collect()
    }
}
