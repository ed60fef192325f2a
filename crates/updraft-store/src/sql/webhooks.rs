//! Webhooks and their delivery queue: deliveries are rows, so a restart
//! resumes whatever was still pending.

use super::Db;
use super::DbRow;
use super::{clamp_limit, EngineStore};
use crate::{
    DeliveryAttempt, DueDelivery, Entity, NewWebhook, StoreError, StoreResult, WebhookStore,
};
use async_trait::async_trait;
use rand::distributions::Alphanumeric;
use rand::Rng;
use sqlx::{Row, Transaction};
use updraft_core::model::{DeliveryStatus, Millis, Webhook, WebhookDelivery};

const WEBHOOK_COLUMNS: &str = "id, app_id, url, secret, events, enabled, created_at";
const DELIVERY_COLUMNS: &str =
    "id, webhook_id, message_id, event_type, payload, status, attempts, \
     next_attempt_at, last_status_code, last_error, created_at, delivered_at";
const MESSAGE_ID_RANDOM_CHARS: usize = 27;

/// A Standard Webhooks message id: `msg_` + random, unique per delivery.
fn new_message_id() -> String {
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(MESSAGE_ID_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("msg_{random}")
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("unexpected stored {what}: {value:?}"))
}

fn webhook(row: &DbRow) -> StoreResult<Webhook> {
    let events: String = row.try_get("events")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        events: serde_json::from_str(&events).map_err(|_| corrupt("webhook events", &events))?,
        enabled: row.try_get("enabled")?,
        created_at: row.try_get("created_at")?,
    })
}

fn delivery(row: &DbRow) -> StoreResult<WebhookDelivery> {
    let status: String = row.try_get("status")?;
    let attempts: i64 = row.try_get("attempts")?;
    let code: Option<i64> = row.try_get("last_status_code")?;
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        message_id: row.try_get("message_id")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt("delivery status", &status))?,
        attempts: u32::try_from(attempts)
            .map_err(|_| corrupt("delivery attempts", &attempts.to_string()))?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status_code: code
            .map(|c| u16::try_from(c).map_err(|_| corrupt("delivery status code", &c.to_string())))
            .transpose()?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

fn wants(webhook: &Webhook, event_type: &str) -> bool {
    webhook.enabled && (webhook.events.is_empty() || webhook.events.iter().any(|e| e == event_type))
}

async fn insert_delivery(
    tx: &mut Transaction<'static, Db>,
    webhook_id: i64,
    event_type: &str,
    payload: &str,
    now: Millis,
) -> StoreResult<WebhookDelivery> {
    let row = sqlx::query(&format!(
        "INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, status, attempts, \
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(webhook_id)
    .bind(new_message_id())
    .bind(event_type)
    .bind(payload)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    delivery(&row)
}

#[async_trait]
impl WebhookStore for EngineStore {
    async fn create_webhook(&self, new: NewWebhook) -> StoreResult<Webhook> {
        let events = serde_json::to_string(&new.events)
            .map_err(|e| StoreError::Invalid(format!("events: {e}")))?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO webhooks (app_id, url, secret, events, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {WEBHOOK_COLUMNS}"
        ))
        .bind(&new.app_id)
        .bind(&new.url)
        .bind(&new.secret)
        .bind(events)
        .bind(new.enabled)
        .bind(new.created_at)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Err(err) if super::is_foreign_key_violation(&err) => {
                Err(StoreError::NotFound(Entity::App))
            }
            Err(err) => Err(err.into()),
            Ok(row) => webhook(&row),
        }
    }

    async fn list_webhooks(&self, app_id: Option<&str>) -> StoreResult<Vec<Webhook>> {
        let rows = match app_id {
            Some(app_id) => {
                sqlx::query(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE app_id = $1 OR app_id IS NULL ORDER BY id"
                ))
                .bind(app_id)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(webhook).collect()
    }

    async fn replace_webhook_secret(&self, id: i64, current: &str, new: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE webhooks SET secret = $1 WHERE id = $2 AND secret = $3")
            .bind(new)
            .bind(id)
            .bind(current)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(webhook)
        .transpose()
    }

    async fn delete_webhook(&self, id: i64) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(Entity::Webhook));
        }
        Ok(())
    }

    async fn enqueue_event(
        &self,
        app_id: &str,
        event_type: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let mut tx = self.begin_write().await?;
        let hooks = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE (app_id = $1 OR app_id IS NULL) AND enabled ORDER BY id"
        ))
        .bind(app_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(webhook)
        .collect::<StoreResult<Vec<_>>>()?;
        let mut queued = Vec::new();
        for hook in hooks.iter().filter(|h| wants(h, event_type)) {
            queued.push(insert_delivery(&mut tx, hook.id, event_type, payload, now).await?);
        }
        tx.commit().await?;
        Ok(queued)
    }

    async fn enqueue_for_webhook(
        &self,
        webhook_id: i64,
        event_type: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<WebhookDelivery> {
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1")
            .bind(webhook_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(Entity::Webhook));
        }
        let queued = insert_delivery(&mut tx, webhook_id, event_type, payload, now).await?;
        tx.commit().await?;
        Ok(queued)
    }

    async fn due_deliveries(&self, now: Millis, limit: i64) -> StoreResult<Vec<DueDelivery>> {
        let columns = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {columns}, w.url AS url, w.secret AS secret FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
             ORDER BY d.next_attempt_at, d.id LIMIT $2"
        ))
        .bind(now)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    delivery: delivery(row)?,
                    url: row.try_get("url")?,
                    secret: row.try_get("secret")?,
                })
            })
            .collect()
    }

    async fn record_delivery_attempt(
        &self,
        attempt: DeliveryAttempt,
    ) -> StoreResult<WebhookDelivery> {
        let code = attempt.status_code.map(i64::from);
        let row = if attempt.succeeded {
            sqlx::query(&format!(
                "UPDATE webhook_deliveries SET status = 'succeeded', attempts = attempts + 1, \
                 next_attempt_at = NULL, last_status_code = $2, last_error = NULL, delivered_at = $3 \
                 WHERE id = $1 AND status = 'pending' RETURNING {DELIVERY_COLUMNS}"
            ))
            .bind(attempt.delivery_id)
            .bind(code)
            .bind(attempt.at)
            .fetch_optional(&self.pool)
            .await?
        } else {
            sqlx::query(&format!(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, \
                 status = CASE WHEN attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END, \
                 next_attempt_at = CASE WHEN attempts + 1 >= $5 THEN NULL ELSE $4 END, \
                 last_status_code = $2, last_error = $3 \
                 WHERE id = $1 AND status = 'pending' RETURNING {DELIVERY_COLUMNS}"
            ))
            .bind(attempt.delivery_id)
            .bind(code)
            .bind(&attempt.error)
            .bind(attempt.retry_at)
            .bind(i64::from(attempt.max_attempts))
            .fetch_optional(&self.pool)
            .await?
        };
        match row {
            Some(row) => delivery(&row),
            // Finished already, or its webhook was deleted meanwhile.
            None => Err(StoreError::NotFound(Entity::Delivery)),
        }
    }

    async fn list_deliveries(
        &self,
        webhook_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(webhook_id)
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    async fn delete_finished_deliveries_before(
        &self,
        before: Millis,
        max_rows: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN \
             (SELECT id FROM webhook_deliveries \
              WHERE status <> 'pending' AND created_at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(max_rows.max(1))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}
