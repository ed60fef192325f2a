//! Signed event notifications (Standard Webhooks), queued durably and
//! delivered in the background with retries.
//!
//! `emit` stores one delivery per interested webhook before it returns, so a
//! restart resumes them; the worker sends what is due, signs every attempt
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC>`)
//! and records the outcome.

use crate::audit::{self, AuditService};
use crate::auth::Caller;
use crate::metrics::{db_operation, Metrics};
use crate::webhook_secrets::SecretBox;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use updraft_api::webhooks::WebhookView;
use updraft_core::analytics::rfc3339;
use updraft_core::model::{Clock, Millis, Webhook, WebhookDelivery};
use updraft_store::{DeliveryAttempt, DueDelivery, NewWebhook, StoreError, WebhookStore};

/// Event types.
pub mod events {
    pub const BUNDLE_UPLOADED: &str = "bundle.uploaded";
    pub const CHANNEL_CHANGED: &str = "channel.changed";
    pub const ROLLOUT_STARTED: &str = "rollout.started";
    /// The rollout's percentage went up (by hand or by the ramp).
    pub const ROLLOUT_ADVANCED: &str = "rollout.advanced";
    /// The rollout's percentage was lowered by hand.
    pub const ROLLOUT_REDUCED: &str = "rollout.reduced";
    pub const ROLLOUT_PAUSED: &str = "rollout.paused";
    pub const ROLLOUT_RESUMED: &str = "rollout.resumed";
    pub const ROLLOUT_ROLLED_BACK: &str = "rollout.rolled_back";
    pub const ROLLOUT_PROMOTED: &str = "rollout.promoted";
    /// Auto-pause with action `notify` found the rollout failing.
    pub const ROLLOUT_ALERT: &str = "rollout.alert";
    pub const WEBHOOK_TEST: &str = "webhook.test";

    pub const ALL: [&str; 11] = [
        BUNDLE_UPLOADED,
        CHANNEL_CHANGED,
        ROLLOUT_STARTED,
        ROLLOUT_ADVANCED,
        ROLLOUT_REDUCED,
        ROLLOUT_PAUSED,
        ROLLOUT_RESUMED,
        ROLLOUT_ROLLED_BACK,
        ROLLOUT_PROMOTED,
        ROLLOUT_ALERT,
        WEBHOOK_TEST,
    ];
}

/// Standard Webhooks' secret prefix.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes of a generated secret.
const SECRET_BYTES: usize = 32;
/// The spec's bounds on a secret's key length.
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;
/// Retries never wait longer than this.
const MAX_RETRY_DELAY_MS: u64 = 10 * 60 * 60 * 1000;
/// How often the worker looks for due deliveries when nobody wakes it.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Deliveries taken per round, and sent at the same time.
const BATCH_SIZE: i64 = 64;
const CONCURRENT_SENDS: usize = 8;

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let key: [u8; SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The HMAC key of a `whsec_…` secret, if it is one (24 to 64 bytes).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = BASE64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (MIN_KEY_BYTES..=MAX_KEY_BYTES)
        .contains(&key.len())
        .then_some(key)
}

/// A secret as lists show it: `whsec_…` and its last 4 characters.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("{SECRET_PREFIX}…{tail}")
}

/// The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key,
/// "{id}.{timestamp}.{body}")). `None` when the secret is not a valid one.
pub fn sign(secret: &str, message_id: &str, timestamp_secs: i64, body: &str) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(format!("{message_id}.{timestamp_secs}.{body}").as_bytes());
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The body of an event: `{"type", "timestamp", "data"}`.
pub fn payload(event_type: &str, at: Millis, data: Value) -> String {
    json!({"type": event_type, "timestamp": rfc3339(at), "data": data}).to_string()
}

/// How long to wait after the `attempt`-th failed attempt (1-based):
/// `base * 4^(attempt-1)`, capped at 10 hours.
pub fn retry_delay_ms(base_ms: u64, attempt: u32) -> u64 {
    let factor = 4_u64.saturating_pow(attempt.saturating_sub(1));
    base_ms.saturating_mul(factor).min(MAX_RETRY_DELAY_MS)
}

/// Whether `url` is an absolute http(s) URL with a host.
pub fn is_valid_url(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            matches!(parsed.scheme(), "http" | "https")
                && parsed.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// How deliveries are sent: the request timeout and the retries (from the
/// `webhook_*` settings; the composition root builds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    pub timeout_ms: u64,
    pub retry_base_ms: u64,
    pub max_attempts: u32,
}

/// Queues events and delivers them: the store of webhooks and deliveries,
/// the clock (queue, due and attempt times), the secrets, and the signal
/// that wakes this service's worker when something was queued.
pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    secrets: Arc<SecretBox>,
    audit: Arc<AuditService>,
    settings: DeliverySettings,
    wake: Notify,
}

/// A webhook to create, checked, with its secret in plaintext.
pub struct WebhookToCreate {
    /// `None` = events of every app.
    pub app_id: Option<String>,
    pub url: String,
    pub secret: String,
    /// Empty = every event type.
    pub events: Vec<String>,
    pub enabled: bool,
}

impl WebhookService {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        secrets: Arc<SecretBox>,
        audit: Arc<AuditService>,
        settings: DeliverySettings,
    ) -> WebhookService {
        WebhookService {
            store,
            clock,
            metrics,
            secrets,
            audit,
            settings,
            wake: Notify::new(),
        }
    }

    /// Queues `data` as event `event_type` of `app_id` for every webhook that
    /// wants it; returns once the deliveries are stored (they go out in the
    /// background). Failures are logged: the change that caused the event is done.
    pub async fn emit(&self, app_id: &str, event_type: &str, data: Value) {
        let now = self.clock.now();
        let body = payload(event_type, now, data);
        match self
            .store
            .enqueue_event(app_id, event_type, &body, now)
            .await
        {
            Ok(queued) if !queued.is_empty() => self.wake.notify_one(),
            Ok(_) => {}
            Err(err) => {
                self.metrics.record_database_error(db_operation::API);
                tracing::error!(error = %err, app_id, event_type, "webhook event could not be queued");
            }
        }
    }

    /// The webhooks of `app_id` and the global ones (`None`: every webhook), by id.
    pub async fn list(
        &self,
        app_id: Option<&str>,
    ) -> Result<Vec<updraft_core::model::Webhook>, StoreError> {
        self.store.list_webhooks(app_id).await
    }

    /// Stores a webhook (its secret sealed) and audits it with the secret
    /// masked.
    pub async fn create(
        &self,
        caller: &Caller,
        new: WebhookToCreate,
    ) -> Result<Webhook, StoreError> {
        let hook = self
            .store
            .create_webhook(NewWebhook {
                app_id: new.app_id,
                url: new.url,
                secret: self.secrets.seal(&new.secret),
                events: new.events,
                enabled: new.enabled,
                created_at: self.clock.now(),
            })
            .await?;
        self.audit
            .log(
                caller,
                hook.app_id.as_deref(),
                "webhook.create",
                &hook.id.to_string(),
                None,
                audit::view(&self.masked(hook.clone())),
            )
            .await;
        Ok(hook)
    }

    /// Deletes a webhook (with its queued deliveries) and audits it.
    pub async fn delete(&self, caller: &Caller, hook: Webhook) -> Result<(), StoreError> {
        self.store.delete_webhook(hook.id).await?;
        let before = audit::view(&self.masked(hook.clone()));
        self.audit
            .log(
                caller,
                hook.app_id.as_deref(),
                "webhook.delete",
                &hook.id.to_string(),
                before,
                None,
            )
            .await;
        Ok(())
    }

    /// The webhook as the API shows it, its secret masked (it is decrypted to
    /// take its last 4 characters; one that does not decrypt shows as
    /// `whsec_…????`).
    pub fn masked(&self, hook: Webhook) -> WebhookView {
        let secret = match self.secrets.open(&hook.secret) {
            Ok(plain) => mask_secret(&plain),
            Err(err) => {
                tracing::error!(webhook = hook.id, error = %err, "webhook secret cannot be decrypted");
                mask_secret("????")
            }
        };
        WebhookView::with_secret(hook, secret)
    }

    /// The webhook with this id, if there is one.
    pub async fn get(&self, id: i64) -> Result<Option<updraft_core::model::Webhook>, StoreError> {
        self.store.get_webhook(id).await
    }

    /// The newest `limit` deliveries of a webhook, newest first.
    pub async fn deliveries(
        &self,
        webhook_id: i64,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        self.store.list_deliveries(webhook_id, limit).await
    }

    /// Queues a `webhook.test` event for one webhook and returns its delivery.
    pub async fn send_test(&self, webhook_id: i64) -> Result<WebhookDelivery, StoreError> {
        let now = self.clock.now();
        let body = payload(
            events::WEBHOOK_TEST,
            now,
            json!({"webhook_id": webhook_id, "message": "This is a test event from Updraft"}),
        );
        let delivery = self
            .store
            .enqueue_for_webhook(webhook_id, events::WEBHOOK_TEST, &body, now)
            .await?;
        self.wake.notify_one();
        Ok(delivery)
    }

    /// Runs the delivery worker until `stop` turns true.
    pub fn spawn_worker(
        self: &Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let http = match reqwest::Client::builder()
                .timeout(Duration::from_millis(service.settings.timeout_ms.max(1)))
                // A redirect is an answer other than 2xx: not followed, so a
                // receiver cannot bounce signed events elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("updraft-webhooks/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(client) => client,
                Err(err) => {
                    tracing::error!(error = %err, "webhook HTTP client could not be built; no deliveries");
                    return;
                }
            };
            loop {
                // A full batch means more may be waiting: go again at once.
                let full = service.deliver_due(&http).await;
                if *stop.borrow() {
                    break;
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = service.wake.notified() => {}
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    }

    /// Sends one batch of due deliveries; returns whether the batch was full.
    async fn deliver_due(&self, http: &reqwest::Client) -> bool {
        let due = match self
            .store
            .due_deliveries(self.clock.now(), BATCH_SIZE)
            .await
        {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read due webhook deliveries");
                return false;
            }
        };
        let full = due.len() as i64 >= BATCH_SIZE;
        // An attempt that could not be recorded stays due: going again at once
        // would resend it in a tight loop while the database is failing.
        let unrecorded = std::sync::atomic::AtomicBool::new(false);
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENT_SENDS, |due| {
                let unrecorded = &unrecorded;
                async move {
                    let attempt = self.attempt(http, &due).await;
                    self.metrics.record_webhook_attempt(attempt.succeeded);
                    match self.store.record_delivery_attempt(attempt).await {
                        Ok(_) => {}
                        // Its webhook was deleted while it was being sent.
                        Err(StoreError::NotFound(_)) => {}
                        Err(err) => {
                            unrecorded.store(true, std::sync::atomic::Ordering::Relaxed);
                            tracing::warn!(error = %err, delivery = due.delivery.id, "cannot record a webhook delivery attempt");
                        }
                    }
                }
            })
            .await;
        full && !unrecorded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends one delivery once and describes the outcome.
    async fn attempt(&self, http: &reqwest::Client, due: &DueDelivery) -> DeliveryAttempt {
        let delivery = &due.delivery;
        let attempt_number = delivery.attempts.saturating_add(1);
        let started = self.clock.now();
        let timestamp = started.div_euclid(1000);
        let secret = match self.secrets.open(&due.secret) {
            Ok(secret) => Some(secret),
            Err(err) => {
                tracing::error!(
                    delivery = delivery.id,
                    webhook = delivery.webhook_id,
                    error = %err,
                    "webhook secret cannot be decrypted; delivery not sent"
                );
                None
            }
        };
        let signature = secret
            .as_deref()
            .map(|secret| sign(secret, &delivery.message_id, timestamp, &delivery.payload));
        let (succeeded, status_code, error) = match signature {
            None => (
                false,
                None,
                Some(
                    "the webhook's secret cannot be decrypted with this server's webhook_secret_key"
                        .to_string(),
                ),
            ),
            Some(None) => (
                false,
                None,
                Some("the webhook's secret is not a valid whsec_ key".to_string()),
            ),
            Some(Some(signature)) => {
                let sent = http
                    .post(&due.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("webhook-id", &delivery.message_id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
                    .body(delivery.payload.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        (true, Some(response.status().as_u16()), None)
                    }
                    Ok(response) => (
                        false,
                        Some(response.status().as_u16()),
                        Some(format!(
                            "receiver answered HTTP {}",
                            response.status().as_u16()
                        )),
                    ),
                    Err(err) if err.is_timeout() => (
                        false,
                        None,
                        Some(format!("timed out after {} ms", self.settings.timeout_ms)),
                    ),
                    Err(err) => (false, None, Some(error_chain(&err))),
                }
            }
        };
        let finished = self.clock.now();
        let delay = retry_delay_ms(self.settings.retry_base_ms, attempt_number);
        if !succeeded {
            tracing::info!(
                delivery = delivery.id,
                attempt = attempt_number,
                error = error.as_deref().unwrap_or(""),
                "webhook delivery attempt failed"
            );
        }
        DeliveryAttempt {
            delivery_id: delivery.id,
            at: finished,
            succeeded,
            status_code,
            error,
            retry_at: finished.saturating_add(Millis::try_from(delay).unwrap_or(Millis::MAX)),
            max_attempts: self.settings.max_attempts.max(1),
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn generated_secrets_are_32_byte_keys() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(secret_key(&secret).map(|k| k.len()), Some(32));
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
        assert_eq!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
        assert_eq!(secret_key("whsec_not base64!"), None);
        assert_eq!(
            secret_key(&format!("whsec_{}", BASE64.encode([1u8; 23]))),
            None
        );
        assert_eq!(
            secret_key(&format!("whsec_{}", BASE64.encode([1u8; 65]))),
            None
        );
        assert_eq!(
            secret_key(&format!("whsec_{}", BASE64.encode([7u8; 24]))),
            Some(vec![7u8; 24])
        );
    }

    #[test]
    fn masks_all_but_the_last_four() {
        assert_eq!(
            mask_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "whsec_…LaSw"
        );
        assert_eq!(mask_secret("ab"), "whsec_…ab");
    }

    #[test]
    fn retries_back_off_four_times_longer_up_to_ten_hours() {
        assert_eq!(retry_delay_ms(5_000, 1), 5_000);
        assert_eq!(retry_delay_ms(5_000, 2), 20_000);
        assert_eq!(retry_delay_ms(5_000, 3), 80_000);
        assert_eq!(retry_delay_ms(5_000, 9), 36_000_000);
        assert_eq!(retry_delay_ms(5_000, 60), 36_000_000);
        assert_eq!(retry_delay_ms(100, 3), 1_600);
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        assert!(is_valid_url("https://hooks.example.com/updraft"));
        assert!(is_valid_url("http://127.0.0.1:9000/x"));
        assert!(!is_valid_url("ftp://hooks.example.com"));
        assert!(!is_valid_url("file:///etc/passwd"));
        assert!(!is_valid_url("hooks.example.com"));
        assert!(!is_valid_url(""));
    }

    #[test]
    fn payload_has_type_timestamp_and_data() {
        let body: Value =
            serde_json::from_str(&payload("bundle.uploaded", 0, json!({"version": "1.0.0"})))
                .unwrap();
        assert_eq!(
            body,
            json!({"type": "bundle.uploaded", "timestamp": "1970-01-01T00:00:00.000Z", "data": {"version": "1.0.0"}})
        );
    }
}
