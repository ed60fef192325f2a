//! API keys: only a hash of the secret is stored.

use super::rows::{self, apikey_columns};
use super::{is_unique_violation, EngineStore};
use crate::{hash_api_key, ApiKeyStore, Entity, NewApiKey, StoreError, StoreResult};
use async_trait::async_trait;
use rand::distributions::Alphanumeric;
use rand::Rng;
use updraft_core::model::{ApiKey, Millis};

/// Every secret starts with this, so a leaked key is easy to recognise.
const API_KEY_PREFIX: &str = "upd_";
const SECRET_RANDOM_CHARS: usize = 40;
/// How much of the secret is kept in clear, to tell keys apart in lists.
const SHOWN_PREFIX_CHARS: usize = 8;

fn generate_secret() -> String {
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{API_KEY_PREFIX}{random}")
}

#[async_trait]
impl ApiKeyStore for EngineStore {
    async fn create_api_key(&self, key: NewApiKey, now: Millis) -> StoreResult<(ApiKey, String)> {
        let secret = generate_secret();
        let prefix: String = secret.chars().take(SHOWN_PREFIX_CHARS).collect();
        let inserted = sqlx::query(concat!(
            "INSERT INTO api_keys (name, prefix, key_hash, role, app_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            apikey_columns!()
        ))
        .bind(&key.name)
        .bind(&prefix)
        .bind(hash_api_key(&secret))
        .bind(key.role.as_str())
        .bind(&key.app_id)
        .bind(key.expires_at)
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            // The hash is unique too, but 40 random alphanumerics do not collide.
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists(Entity::ApiKey)),
            Err(err) => Err(err.into()),
            Ok(row) => Ok((rows::api_key(&row)?, secret)),
        }
    }

    async fn find_api_key(&self, secret: &str) -> StoreResult<Option<ApiKey>> {
        sqlx::query(concat!(
            "SELECT ",
            apikey_columns!(),
            " FROM api_keys WHERE key_hash = $1"
        ))
        .bind(hash_api_key(secret))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::api_key)
        .transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        sqlx::query(concat!(
            "SELECT ",
            apikey_columns!(),
            " FROM api_keys ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::api_key)
        .collect()
    }

    async fn revoke_api_key(&self, id_or_name: &str, now: Millis) -> StoreResult<ApiKey> {
        // Revoking again keeps the first revocation time.
        let by_id = id_or_name.parse::<i64>().ok();
        let mut tx = self.begin_write().await?;
        let mut row = None;
        if let Some(id) = by_id {
            row = sqlx::query(concat!(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ",
                apikey_columns!()
            ))
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        }
        // A numeric text that is no key's id may still be a key's name.
        if row.is_none() {
            row = sqlx::query(concat!(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1 RETURNING ",
                apikey_columns!()
            ))
            .bind(id_or_name)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        }
        let row = row.ok_or(StoreError::NotFound(Entity::ApiKey))?;
        let revoked = rows::api_key(&row)?;
        tx.commit().await?;
        Ok(revoked)
    }
}
