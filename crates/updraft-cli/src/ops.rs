//! `updraft audit` (who changed what) and `updraft webhook …` (signed event
//! notifications and their delivery log).

use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::Outcome;
use crate::render::{opt_cell, opt_time, text_cell, time_text, yes_no};
use crate::requests::NoBody;
use crate::table::Table;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Map, Value};
use updraft_api::{AuditList, CreateWebhook, DeliveryList, DeliveryView, WebhookList, WebhookView};

#[derive(Args, Clone, Debug)]
pub struct AuditArgs {
    /// Only this app's changes
    pub app_id: Option<String>,
    /// Only this action (`bundle.create`), or a prefix ending in a dot (`channel.`)
    #[arg(long)]
    pub action: Option<String>,
    /// Only changes by this actor (`key:<name>`, `control-loop`, `schedule:<id>`, `cli:offline`)
    #[arg(long)]
    pub actor: Option<String>,
    /// Only changes since: 7d, 24h, 30m, 2w, YYYY-MM-DD or epoch milliseconds
    #[arg(long)]
    pub since: Option<String>,
    /// Only changes before: same forms as --since
    #[arg(long)]
    pub until: Option<String>,
    /// Only entries older than this id (the `next_before_id` of a previous page)
    #[arg(long)]
    pub before_id: Option<i64>,
    /// How many entries, newest first
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Subcommand, Clone, Debug)]
pub enum WebhookCommand {
    /// Add a webhook; its signing secret is shown once
    Add {
        /// http:// or https:// URL that receives the events
        url: String,
        /// Only this app's events (default: every app)
        #[arg(long = "app")]
        app_id: Option<String>,
        /// An event type to receive (repeat for more; default: all)
        #[arg(long = "event")]
        events: Vec<String>,
        /// Signing secret (`whsec_` + base64); default: generated
        #[arg(long)]
        secret: Option<String>,
        /// Create it disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List webhooks
    List {
        /// Only this app's webhooks and the global ones
        #[arg(long = "app")]
        app_id: Option<String>,
    },
    /// Delete a webhook and its delivery log
    Delete {
        /// Webhook id
        id: String,
    },
    /// Send a `webhook.test` event
    Test {
        /// Webhook id
        id: String,
    },
    /// A webhook's deliveries, newest first
    Deliveries {
        /// Webhook id
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

fn non_blank(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

pub async fn audit(client: &ApiClient, args: &AuditArgs) -> Result<Outcome, CliError> {
    if args.limit < 1 {
        return Err(CliError::invalid_argument("--limit must be at least 1"));
    }
    let mut query = vec![("limit", args.limit.to_string())];
    for (key, value) in [
        ("app_id", &args.app_id),
        ("action", &args.action),
        ("actor", &args.actor),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(value) = non_blank(value) {
            query.push((key, value));
        }
    }
    if let Some(before_id) = args.before_id {
        query.push(("before_id", before_id.to_string()));
    }
    let page = client.get::<AuditList>(&["audit"], &query).await?;
    let text = audit_table(&page.value);
    let next = page.value.next_before_id;
    let mut outcome = Outcome::new(page.json, text);
    if let Some(next) = next {
        outcome = outcome.with_note(format!("Older entries: add --before-id {next}"));
    }
    Ok(outcome)
}

/// Time, actor, action, app, target: newest first, as the server sends them.
pub fn audit_table(page: &AuditList) -> String {
    if page.entries.is_empty() {
        return "No audit entries.".to_string();
    }
    let mut table = Table::new(&["ID", "TIME", "ACTOR", "ACTION", "APP", "TARGET", "CHANGE"]);
    for entry in &page.entries {
        table.push_row(vec![
            entry.id.to_string(),
            time_text(&entry.at),
            text_cell(&entry.actor),
            text_cell(&entry.action),
            opt_cell(entry.app_id.as_deref()),
            text_cell(&entry.target),
            audit_change(entry.before.as_ref(), entry.after.as_ref()),
        ]);
    }
    table.render()
}

/// Fields that change with every write and say nothing about what changed.
const UNINTERESTING: [&str; 2] = ["updated_at", "created_at"];

/// The fields of a snapshot (the API's view of a channel, a bundle, …) that
/// the change column names first: what a channel serves.
#[derive(Deserialize, Default, PartialEq)]
struct Serves {
    #[serde(default)]
    bundle: Option<Value>,
    #[serde(default)]
    rollout: Option<Value>,
}

impl Serves {
    fn of(snapshot: &Map<String, Value>) -> Serves {
        Serves::deserialize(Value::Object(snapshot.clone())).unwrap_or_default()
    }
}

/// A rollout as the change column shows it; absent fields as a newer or
/// older server may leave them.
#[derive(Deserialize, Default)]
struct RolloutSummary {
    #[serde(default)]
    bundle: Option<Value>,
    #[serde(default)]
    percentage_bps: u64,
    #[serde(default)]
    paused: bool,
}

/// A value as a short cell: strings bare, `null` as `-`, anything else as JSON.
fn short(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// A rollout object as `1.1.0 @ 10%` (`-` for none).
fn rollout_text(rollout: Option<&Value>) -> String {
    match rollout {
        Some(rollout @ Value::Object(_)) => {
            let rollout = RolloutSummary::deserialize(rollout).unwrap_or_default();
            let mut text = format!(
                "{} @ {}",
                short(rollout.bundle.as_ref()),
                crate::render::percent(rollout.percentage_bps)
            );
            if rollout.paused {
                text.push_str(" (paused)");
            }
            text
        }
        _ => "-".to_string(),
    }
}

/// What an entry changed, by name: `bundle 1.0.2 → 1.0.1`, `rollout - → 1.1.0 @ 10%`,
/// `public false → true`; `created` / `deleted` for the whole object.
pub fn audit_change(before: Option<&Value>, after: Option<&Value>) -> String {
    let before = before.filter(|v| !v.is_null());
    let after = after.filter(|v| !v.is_null());
    let (before, after) = match (before, after) {
        (None, None) => return "-".to_string(),
        (None, Some(_)) => return "created".to_string(),
        (Some(_), None) => return "deleted".to_string(),
        (Some(before), Some(after)) => (before, after),
    };
    let (Some(old), Some(new)) = (before.as_object(), after.as_object()) else {
        return format!("{} → {}", short(Some(before)), short(Some(after)));
    };
    let mut changes = Vec::new();
    // What a channel serves first, then every other changed field.
    let (was, is) = (Serves::of(old), Serves::of(new));
    if was.bundle != is.bundle {
        changes.push(format!(
            "bundle {} → {}",
            short(was.bundle.as_ref()),
            short(is.bundle.as_ref())
        ));
    }
    if was.rollout != is.rollout {
        let (from, to) = (
            rollout_text(was.rollout.as_ref()),
            rollout_text(is.rollout.as_ref()),
        );
        changes.push(if from == to {
            format!("rollout {to} (settings)")
        } else {
            format!("rollout {from} → {to}")
        });
    }
    // Every other field, generically: snapshots are of many kinds.
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if ["bundle", "rollout"].contains(&key.as_str()) || UNINTERESTING.contains(&key.as_str()) {
            continue;
        }
        let (from, to) = (old.get(key.as_str()), new.get(key.as_str()));
        if from == to {
            continue;
        }
        match (from, to) {
            (Some(Value::Object(_)) | Some(Value::Array(_)), _)
            | (_, Some(Value::Object(_)) | Some(Value::Array(_))) => changes.push(key.clone()),
            _ => changes.push(format!("{key} {} → {}", short(from), short(to))),
        }
    }
    if changes.is_empty() {
        "-".to_string()
    } else {
        changes.join(", ")
    }
}

/// `all` for a webhook of every app or every event.
fn all_when_empty(text: String) -> String {
    if text == "-" {
        "all".to_string()
    } else {
        text
    }
}

fn events_cell(events: &[String]) -> String {
    all_when_empty(text_cell(&events.join(",")))
}

pub fn webhooks_table(list: &WebhookList) -> String {
    if list.webhooks.is_empty() {
        return "No webhooks. Add one with `updraft webhook add URL`.".to_string();
    }
    let mut table = Table::new(&["ID", "APP", "URL", "EVENTS", "ENABLED", "SECRET", "CREATED"]);
    for hook in &list.webhooks {
        table.push_row(vec![
            hook.id.to_string(),
            all_when_empty(opt_cell(hook.app_id.as_deref())),
            text_cell(&hook.url),
            events_cell(&hook.events),
            yes_no(hook.enabled),
            text_cell(&hook.secret),
            time_text(&hook.created_at),
        ]);
    }
    table.render()
}

pub fn deliveries_table(list: &DeliveryList) -> String {
    if list.deliveries.is_empty() {
        return "No deliveries yet.".to_string();
    }
    let mut table = Table::new(&[
        "ID",
        "EVENT",
        "STATUS",
        "ATTEMPTS",
        "LAST CODE",
        "LAST ERROR",
        "NEXT ATTEMPT",
        "CREATED",
        "MESSAGE ID",
    ])
    .wide_only(&["NEXT ATTEMPT", "MESSAGE ID"]);
    for delivery in &list.deliveries {
        table.push_row(vec![
            delivery.id.to_string(),
            text_cell(&delivery.event_type),
            text_cell(&delivery.status),
            delivery.attempts.to_string(),
            delivery
                .last_status_code
                .map_or_else(|| "-".to_string(), |code| code.to_string()),
            opt_cell(delivery.last_error.as_deref()),
            opt_time(delivery.next_attempt_at.as_deref()),
            time_text(&delivery.created_at),
            text_cell(&delivery.message_id),
        ]);
    }
    table.render()
}

fn webhook_id(id: &str) -> Result<&str, CliError> {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::invalid_argument(format!(
            "a webhook id is a number (see `updraft webhook list`), not {id:?}"
        )));
    }
    Ok(id)
}

pub async fn webhook(client: &ApiClient, command: WebhookCommand) -> Result<Outcome, CliError> {
    match command {
        WebhookCommand::Add {
            url,
            app_id,
            events,
            secret,
            disabled,
        } => {
            let body = CreateWebhook {
                url: url.trim().to_string(),
                app_id: non_blank(&app_id),
                events: (!events.is_empty()).then_some(events),
                secret: non_blank(&secret),
                enabled: Some(!disabled),
            };
            let created = client.post::<WebhookView>(&["webhooks"], &body).await?;
            let hook = &created.value;
            let text = format!(
                "Created webhook {} for {} ({} events) → {}\nSigning secret: {}",
                hook.id,
                hook.app_id.as_deref().unwrap_or("every app"),
                events_cell(&hook.events),
                text_cell(&hook.url),
                text_cell(&hook.secret),
            );
            Ok(Outcome::new(created.json, text).with_note(
                "Store the secret now: lists show it masked. Receivers verify the \
                 webhook-signature header with it (Standard Webhooks).",
            ))
        }
        WebhookCommand::List { app_id } => {
            let query: Vec<(&str, String)> = non_blank(&app_id)
                .map(|app| vec![("app_id", app)])
                .unwrap_or_default();
            let list = client.get::<WebhookList>(&["webhooks"], &query).await?;
            let text = webhooks_table(&list.value);
            Ok(Outcome::new(list.json, text))
        }
        WebhookCommand::Delete { id } => {
            let id = webhook_id(&id)?;
            client.delete(&["webhooks", id]).await?;
            Ok(Outcome::status_ok(format!("Deleted webhook {id}.")))
        }
        WebhookCommand::Test { id } => {
            let id = webhook_id(&id)?;
            let delivery = client
                .post::<DeliveryView>(&["webhooks", id, "test"], &NoBody {})
                .await?;
            let text = format!(
                "Queued a webhook.test event for webhook {id} (delivery {}, message {}). \
                 See `updraft webhook deliveries {id}`.",
                delivery.value.id,
                text_cell(&delivery.value.message_id),
            );
            Ok(Outcome::new(delivery.json, text))
        }
        WebhookCommand::Deliveries { id, limit } => {
            let id = webhook_id(&id)?;
            if limit < 1 {
                return Err(CliError::invalid_argument("--limit must be at least 1"));
            }
            let list = client
                .get::<DeliveryList>(
                    &["webhooks", id, "deliveries"],
                    &[("limit", limit.to_string())],
                )
                .await?;
            let text = deliveries_table(&list.value);
            Ok(Outcome::new(list.json, text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{CliCode, LocalCode};
    use serde_json::json;

    /// A JSON answer read as the type the CLI reads it as.
    fn typed<T: serde::de::DeserializeOwned>(json: Value) -> T {
        serde_json::from_value(json).unwrap()
    }

    /// The change column of an entry with these `before` and `after`.
    fn change(entry: Value) -> String {
        audit_change(entry.get("before"), entry.get("after"))
    }

    #[test]
    fn audit_table_shows_time_actor_action_app_target() {
        let page = json!({"entries": [
            {"id": 7, "at": "2024-05-01T12:30:05.042Z", "actor": "key:ci", "action": "bundle.create",
             "app_id": "com.example.app", "target": "1.2.0", "before": null, "after": {}},
            {"id": 6, "at": "2024-05-01T12:00:00.000Z", "actor": "cli:offline", "action": "apikey.create",
             "app_id": null, "target": "ci"}
        ], "next_before_id": null});
        let text = audit_table(&typed(page));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            vec![
                "7",
                "2024-05-01",
                "12:30",
                "key:ci",
                "bundle.create",
                "com.example.app",
                "1.2.0",
                "created"
            ]
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            vec![
                "6",
                "2024-05-01",
                "12:00",
                "cli:offline",
                "apikey.create",
                "-",
                "ci",
                "-"
            ]
        );
        assert_eq!(
            audit_table(&typed(json!({"entries": []}))),
            "No audit entries."
        );
    }

    #[test]
    fn audit_change_names_bundles_and_changed_settings() {
        let release = json!({"before": {"id": 1, "bundle": "1.0.2", "public": false, "rollout": null,
                "updated_at": "a", "targeting": {"platforms": []}},
            "after": {"id": 1, "bundle": "1.0.1", "public": true, "updated_at": "b",
                "rollout": {"bundle": "1.1.0", "percentage_bps": 1000, "paused": false},
                "targeting": {"platforms": ["ios"]}}});
        assert_eq!(
            change(release),
            "bundle 1.0.2 → 1.0.1, rollout - → 1.1.0 @ 10%, public false → true, targeting"
        );
        assert_eq!(
            change(json!({"before": {"bundle": "1.0.0"}, "after": null})),
            "deleted"
        );
        assert_eq!(
            change(json!({"before": {"updated_at": "a"}, "after": {"updated_at": "b"}})),
            "-"
        );
    }

    #[test]
    fn webhooks_table_says_all_for_global_hooks_and_every_event() {
        let list = json!({"webhooks": [
            {"id": 1, "app_id": null, "url": "https://h.example.com", "events": [], "enabled": true,
             "secret": "whsec_…abcd", "created_at": "2024-05-01T12:30:05.042Z"},
            {"id": 2, "app_id": "com.example.app", "url": "https://i.example.com",
             "events": ["bundle.uploaded", "rollout.paused"], "enabled": false,
             "secret": "whsec_…wxyz", "created_at": "2024-05-01T12:30:05.042Z"}
        ]});
        let text = webhooks_table(&typed(list));
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[1][..6],
            [
                "1",
                "all",
                "https://h.example.com",
                "all",
                "yes",
                "whsec_…abcd"
            ]
        );
        assert_eq!(
            lines[2][..6],
            [
                "2",
                "com.example.app",
                "https://i.example.com",
                "bundle.uploaded,rollout.paused",
                "no",
                "whsec_…wxyz"
            ]
        );
    }

    #[test]
    fn webhook_ids_are_numbers() {
        assert_eq!(webhook_id(" 12 ").unwrap(), "12");
        assert_eq!(
            webhook_id("abc").unwrap_err().code,
            CliCode::Local(LocalCode::InvalidArgument)
        );
        assert_eq!(
            webhook_id("").unwrap_err().code,
            CliCode::Local(LocalCode::InvalidArgument)
        );
    }
}
