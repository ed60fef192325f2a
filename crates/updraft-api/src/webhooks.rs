//! Webhooks and their delivery log (`/webhooks`).

use crate::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use updraft_core::model::{Webhook, WebhookDelivery};
use utoipa::ToSchema;

/// A webhook. Lists show the secret masked (`whsec_…` + its last 4
/// characters); only the answer to its creation shows it whole.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct WebhookView {
    pub id: i64,
    /// `null` = events of every app.
    pub app_id: Option<String>,
    pub url: String,
    pub secret: String,
    /// Event types it receives; empty = all.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: String,
}

impl WebhookView {
    /// The stored webhook shown with `secret` (the plaintext, or its masked form).
    pub fn with_secret(hook: Webhook, secret: String) -> Self {
        WebhookView {
            id: hook.id,
            app_id: hook.app_id,
            url: hook.url,
            secret,
            events: hook.events,
            enabled: hook.enabled,
            created_at: rfc3339(hook.created_at),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http:// or https:// URL that receives the POSTs.
    pub url: String,
    /// Only this app's events; omitted = every app (unscoped admin keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Event types to receive; omitted or empty = all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// `whsec_` + base64 of 24 to 64 bytes; omitted = generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// One event for one webhook, with its attempts so far.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeliveryView {
    pub id: i64,
    pub webhook_id: i64,
    /// The `webhook-id` header, the same on every retry.
    pub message_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// The body that is sent and signed.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(d: WebhookDelivery) -> Self {
        let payload = serde_json::from_str(&d.payload).unwrap_or(Value::String(d.payload));
        DeliveryView {
            id: d.id,
            webhook_id: d.webhook_id,
            message_id: d.message_id,
            event_type: d.event_type,
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
            payload,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}
