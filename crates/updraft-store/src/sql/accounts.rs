//! Console users, their recovery codes and their sessions. Passwords are
//! stored as argon2id hashes, session tokens and recovery codes as SHA-256:
//! none of them can be read back.

use super::{is_unique_violation, DbRow, EngineStore};
use crate::{
    Entity, NewSession, NewUser, Session, SessionStore, StoreError, StoreResult, UserCredentials,
    UserPatch, UserStore,
};
use async_trait::async_trait;
use sqlx::Row;
use updraft_core::account::User;
use updraft_core::model::{Millis, Role};

macro_rules! user_columns {
    () => {
        "id, email, role, apps, disabled, totp_secret IS NOT NULL AS totp_enabled, created_at, \
         updated_at, password_changed_at"
    };
}
macro_rules! credential_columns {
    () => {
        "password_hash, totp_secret, totp_pending_secret"
    };
}
macro_rules! session_columns {
    () => {
        "token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at"
    };
}

fn user(row: &DbRow) -> StoreResult<User> {
    let role: String = row.try_get("role")?;
    let apps: Option<String> = row.try_get("apps")?;
    let apps = apps
        .map(|text| {
            serde_json::from_str::<Vec<String>>(&text)
                .map_err(|_| StoreError::Backend(format!("unexpected stored user apps: {text:?}")))
        })
        .transpose()?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unexpected stored role: {role:?}")))?,
        apps,
        disabled: row.try_get("disabled")?,
        totp_enabled: row.try_get("totp_enabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        password_changed_at: row.try_get("password_changed_at")?,
    })
}

fn credentials(row: &DbRow) -> StoreResult<UserCredentials> {
    Ok(UserCredentials {
        user: user(row)?,
        password_hash: row.try_get("password_hash")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_pending_secret: row.try_get("totp_pending_secret")?,
    })
}

fn session(row: &DbRow) -> StoreResult<Session> {
    Ok(Session {
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn apps_json(apps: &Option<Vec<String>>) -> Option<String> {
    apps.as_ref()
        .map(|apps| serde_json::to_string(apps).unwrap_or_else(|_| "[]".to_string()))
}

fn taken(err: sqlx::Error) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::AlreadyExists(Entity::User)
    } else {
        err.into()
    }
}

const INSERT_USER: &str = concat!(
    "INSERT INTO users (email, password_hash, role, apps, disabled, created_at, updated_at, \
     password_changed_at) VALUES ($1, $2, $3, $4, FALSE, $5, $5, $5) RETURNING ",
    user_columns!()
);

#[async_trait]
impl UserStore for EngineStore {
    async fn create_user(&self, new: NewUser, now: Millis) -> StoreResult<User> {
        let row = sqlx::query(INSERT_USER)
            .bind(&new.email)
            .bind(&new.password_hash)
            .bind(new.role.as_str())
            .bind(apps_json(&new.apps))
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(taken)?;
        user(&row)
    }

    async fn create_first_user(&self, new: NewUser, now: Millis) -> StoreResult<Option<User>> {
        // The write transaction holds the engine's one writer lock (on
        // PostgreSQL the cluster-wide advisory lock): two nodes starting at
        // once cannot both see no user.
        let mut tx = self.begin_write().await?;
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if any.is_some() {
            return Ok(None);
        }
        let row = sqlx::query(INSERT_USER)
            .bind(&new.email)
            .bind(&new.password_hash)
            .bind(new.role.as_str())
            .bind(apps_json(&new.apps))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(taken)?;
        let created = user(&row)?;
        tx.commit().await?;
        Ok(Some(created))
    }

    async fn get_user(&self, id: i64) -> StoreResult<Option<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
    }

    async fn user_credentials(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", ",
            credential_columns!(),
            " FROM users WHERE lower(email) = lower($1)"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(credentials)
        .transpose()
    }

    async fn user_credentials_by_id(&self, id: i64) -> StoreResult<Option<UserCredentials>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", ",
            credential_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(credentials)
        .transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user)
        .collect()
    }

    async fn update_user(&self, id: i64, patch: UserPatch, now: Millis) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Entity::User))?;
        let before = user(&row)?;
        let role = patch.role.unwrap_or(before.role);
        let apps = patch.apps.clone().unwrap_or_else(|| before.apps.clone());
        let disabled = patch.disabled.unwrap_or(before.disabled);
        if role == before.role && apps == before.apps && disabled == before.disabled {
            return Ok(before);
        }
        let row = sqlx::query(concat!(
            "UPDATE users SET role = $2, apps = $3, disabled = $4, updated_at = $5 WHERE id = $1 \
             RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(role.as_str())
        .bind(apps_json(&apps))
        .bind(disabled)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let after = user(&row)?;
        // What a session may do changed (or it may do nothing now): sign in again.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn set_password(&self, id: i64, password_hash: &str, now: Millis) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3 \
             WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Entity::User))?;
        let changed = user(&row)?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn set_totp_pending(
        &self,
        id: i64,
        secret: Option<&str>,
        now: Millis,
    ) -> StoreResult<User> {
        let row = sqlx::query(concat!(
            "UPDATE users SET totp_pending_secret = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(secret)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound(Entity::User))?;
        user(&row)
    }

    async fn enable_totp(
        &self,
        id: i64,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
        now: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
             totp_last_step = $3, updated_at = $4 WHERE id = $1 AND totp_pending_secret = $2",
        )
        .bind(id)
        .bind(secret)
        .bind(step)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query(
                "INSERT INTO user_recovery_codes (user_id, code_hash, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn disable_totp(&self, id: i64, now: Millis) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, \
             totp_last_step = NULL, updated_at = $2 WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(Entity::User))?;
        let changed = user(&row)?;
        sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn claim_totp_step(&self, id: i64, step: i64) -> StoreResult<bool> {
        let claimed = sqlx::query(
            "UPDATE users SET totp_last_step = $2 \
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id)
        .bind(step)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    async fn use_recovery_code(&self, id: i64, code_hash: &str) -> StoreResult<bool> {
        let used =
            sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1 AND code_hash = $2")
                .bind(id)
                .bind(code_hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(used == 1)
    }

    async fn count_recovery_codes(&self, id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM user_recovery_codes WHERE user_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[async_trait]
impl SessionStore for EngineStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<Session> {
        let inserted = sqlx::query(concat!(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, \
             expires_at) VALUES ($1, $2, $3, $4, $4, $5) RETURNING ",
            session_columns!()
        ))
        .bind(&new.token_hash)
        .bind(new.user_id)
        .bind(&new.csrf_token)
        .bind(new.created_at)
        .bind(new.expires_at)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => session(&row),
            Err(err) if super::is_foreign_key_violation(&err) => {
                Err(StoreError::NotFound(Entity::User))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn get_session(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(session)
        .transpose()
    }

    async fn touch_session(&self, token_hash: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2",
        )
        .bind(token_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted == 1)
    }

    async fn delete_user_sessions(&self, user_id: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn delete_expired_sessions(
        &self,
        now: Millis,
        idle_before: Millis,
        max_rows: i64,
    ) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions \
             WHERE expires_at <= $1 OR last_seen_at <= $2 LIMIT $3)",
        )
        .bind(now)
        .bind(idle_before)
        .bind(max_rows)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
