//! The commands that talk to a server through the management API.

use crate::app_id::resolve_app_id;
use crate::args::{AppCommand, BundleCommand, ChannelCommand, DeviceCommand};
use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::Outcome;
use crate::render;
use serde_json::{json, Map, Value};
use std::path::Path;
use updraft_core::guards::{
    closest_names, did_you_mean, BUNDLE_IN_USE, CHANNEL_NOT_FOUND, ENCRYPTION_DOWNGRADE,
};

fn text_field(value: &Value, key: &str, fallback: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(fallback)
        .to_string()
}

/// What a new bundle did to `--channel`, as the end of a confirmation (empty without one).
pub fn channel_outcome(channel: Option<&str>, rollout_bps: Option<u32>) -> String {
    match (channel, rollout_bps) {
        (Some(channel), Some(bps)) => format!(
            " Channel {channel} rolls it out to {} of its devices.",
            render::percent(u64::from(bps))
        ),
        (Some(channel), None) => format!(" Channel {channel} now serves it."),
        (None, _) => String::new(),
    }
}

/// Refuses `channel` when the app has no channel of that name, suggesting
/// the closest existing names.
pub async fn existing_channel_or_suggest(
    client: &ApiClient,
    app_id: &str,
    channel: &str,
) -> Result<(), CliError> {
    let list = client.get(&["apps", app_id, "channels"], &[]).await?;
    let names: Vec<&str> = list
        .get("channels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    if names.contains(&channel) {
        return Ok(());
    }
    let suggestions = closest_names(channel, names.iter().copied());
    Err(CliError::new(
        CHANNEL_NOT_FOUND,
        format!(
            "channel {channel} of {app_id} does not exist{}; nothing was uploaded (pass \
             --create-channel to create it)",
            did_you_mean(&suggestions)
        ),
    ))
}

/// A `bundle_in_use` refusal with the CLI's way round it.
fn explain_in_use(error: CliError) -> CliError {
    if error.code != BUNDLE_IN_USE {
        return error;
    }
    let message = error.message.replace(
        "or delete with force=true",
        "or pass --force to delete it anyway",
    );
    CliError::new(error.code, message)
}

/// Sends a release change with `body`; an `encryption_downgrade` refusal is
/// asked about on a terminal (and sent again with `accept_unencrypted` on
/// yes), or else refused with the way round it. `force` sends it accepted
/// from the start.
pub async fn with_downgrade_guard<F, Fut>(
    force: bool,
    mut body: Value,
    send: F,
) -> Result<Value, CliError>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, CliError>>,
{
    if force {
        if let Some(fields) = body.as_object_mut() {
            fields.insert("accept_unencrypted".into(), json!(true));
        }
        return send(body).await;
    }
    match send(body.clone()).await {
        Err(error) if error.code == ENCRYPTION_DOWNGRADE => {
            let warning = error
                .message
                .replace("pass accept_unencrypted to serve it anyway", "")
                .trim_end_matches([' ', ';'])
                .to_string();
            if !crate::confirm::can_ask() {
                return Err(CliError::new(
                    error.code,
                    format!("{warning}; pass --force to serve it anyway"),
                ));
            }
            if !crate::confirm::yes_no(&warning, "Serve it anyway?")? {
                return Err(CliError::new("cancelled", "nothing was changed"));
            }
            if let Some(fields) = body.as_object_mut() {
                fields.insert("accept_unencrypted".into(), json!(true));
            }
            send(body).await
        }
        other => other,
    }
}

pub async fn app(client: &ApiClient, command: AppCommand) -> Result<Outcome, CliError> {
    match command {
        AppCommand::Add { app_id, name } => {
            let mut body = Map::new();
            body.insert("app_id".into(), json!(app_id));
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            let app = client.post(&["apps"], &Value::Object(body)).await?;
            let text = format!(
                "Created app {} ({}).",
                text_field(&app, "app_id", &app_id),
                text_field(&app, "name", &app_id)
            );
            Ok(Outcome::new(app, text))
        }
        AppCommand::List => {
            let list = client.get(&["apps"], &[]).await?;
            let text = render::apps_table(&list);
            Ok(Outcome::new(list, text))
        }
        AppCommand::Delete { app_id, yes } => {
            if !yes {
                crate::confirm::type_name_to_delete(
                    &format!("app {app_id}"),
                    &app_id,
                    "with its channels, bundles, devices and stats",
                )?;
            }
            client.delete(&["apps", &app_id]).await?;
            Ok(Outcome::status_ok(format!(
                "Deleted app {app_id} with its channels, bundles, devices and stats."
            )))
        }
    }
}

pub async fn bundle(
    client: &ApiClient,
    command: BundleCommand,
    work_dir: &Path,
    show_progress: bool,
) -> Result<Outcome, CliError> {
    match command {
        BundleCommand::Upload(args) => {
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            if let (Some(channel), false) = (args.channel.as_deref(), args.create_channel) {
                // Before anything is uploaded: a typo must not create a channel.
                existing_channel_or_suggest(client, &app_id, channel).await?;
            }
            if args.path.is_some() {
                let show = show_progress && !args.no_progress;
                return crate::upload::upload_bundle(client, &app_id, &args, work_dir, show).await;
            }
            let mut body = args.request_body()?;
            let (packages, warning) = crate::release::upload_native_packages(
                args.ignore_metadata_check,
                args.package_json.as_deref(),
                args.node_modules.as_deref(),
                work_dir,
            )?;
            if let (Some(packages), Some(fields)) = (packages, body.as_object_mut()) {
                fields.insert("native_packages".into(), json!(packages));
            }
            let bundle = client
                .post(&["apps", &app_id, "bundles"], &body)
                .await
                .map_err(crate::release::explain_incompatible)?;
            let version = text_field(&bundle, "version", &args.bundle);
            let text = format!(
                "Registered bundle {version} of {app_id}.{}",
                channel_outcome(args.channel.as_deref(), args.rollout_bps())
            );
            let mut outcome = Outcome::new(bundle, text);
            if let Some(warning) = warning {
                outcome = outcome.with_warning(warning);
            }
            Ok(outcome)
        }
        BundleCommand::List {
            app_id,
            include_deleted,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let query = if include_deleted {
                vec![("include_deleted", "true".to_string())]
            } else {
                Vec::new()
            };
            let list = client.get(&["apps", &app_id, "bundles"], &query).await?;
            let text = render::bundles_table(&list, include_deleted);
            Ok(Outcome::new(list, text))
        }
        BundleCommand::Compatibility(args) => {
            crate::release::compatibility(client, &args, work_dir).await
        }
        BundleCommand::Delete {
            version,
            app_id,
            force,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let query = if force {
                vec![("force", "true".to_string())]
            } else {
                Vec::new()
            };
            client
                .delete_with_query(&["apps", &app_id, "bundles", &version], &query)
                .await
                .map_err(explain_in_use)?;
            Ok(Outcome::status_ok(format!(
                "Deleted bundle {version} of {app_id}; this version cannot be registered again."
            )))
        }
    }
}

pub async fn channel(
    client: &ApiClient,
    command: ChannelCommand,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    match command {
        ChannelCommand::Add {
            channel,
            app_id,
            default,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let mut body = Map::new();
            body.insert("name".into(), json!(channel));
            if default {
                body.insert("public".into(), json!(true));
            }
            let created = client
                .post(&["apps", &app_id, "channels"], &Value::Object(body))
                .await?;
            let text = format!(
                "Created channel {} of {app_id}: {}.",
                text_field(&created, "name", &channel),
                render::channel_summary(&created)
            );
            Ok(Outcome::new(created, text))
        }
        ChannelCommand::Set(args) => {
            // Checked before any request: an empty change fails without a server.
            args.patch_body()?;
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            let body = if args.merges_targeting() {
                let current =
                    crate::release::current_channel(client, &app_id, &args.channel).await?;
                args.patch_body_with(Some(&current))?
            } else {
                args.patch_body()?
            };
            let path = ["apps", app_id.as_str(), "channels", args.channel.as_str()];
            let updated = with_downgrade_guard(args.force, body, |body| async move {
                client
                    .patch(&path, &body)
                    .await
                    .map_err(crate::release::explain_incompatible)
            })
            .await?;
            let text = format!(
                "Updated channel {} of {app_id}: {}.",
                text_field(&updated, "name", &args.channel),
                render::channel_summary(&updated)
            );
            Ok(Outcome::new(updated, text))
        }
        ChannelCommand::List { app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let list = client.get(&["apps", &app_id, "channels"], &[]).await?;
            let text = render::channels_table(&list);
            Ok(Outcome::new(list, text))
        }
        ChannelCommand::Show { channel, app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            crate::release::channel_show(client, &app_id, &channel).await
        }
        ChannelCommand::History {
            channel,
            app_id,
            limit,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            crate::release::channel_history(client, &app_id, &channel, limit).await
        }
        ChannelCommand::Rollback {
            channel,
            app_id,
            to,
            force,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            crate::release::channel_rollback(client, &app_id, &channel, to.as_deref(), force).await
        }
        ChannelCommand::Decisions {
            channel,
            app_id,
            limit,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            crate::release::channel_decisions(client, &app_id, &channel, limit).await
        }
        ChannelCommand::Delete {
            channel,
            app_id,
            yes,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            if !yes {
                crate::confirm::type_name_to_delete(
                    &format!("channel {channel} of {app_id}"),
                    &channel,
                    "and its device overrides; devices on it fall back to the default channel",
                )?;
            }
            client
                .delete(&["apps", &app_id, "channels", &channel])
                .await?;
            Ok(Outcome::status_ok(format!(
                "Deleted channel {channel} of {app_id} and its device overrides."
            )))
        }
    }
}

pub async fn device(
    client: &ApiClient,
    command: DeviceCommand,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    match command {
        DeviceCommand::Set {
            device_id,
            app_id,
            channel,
        } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let assigned = client
                .put(
                    &["apps", &app_id, "devices", &device_id, "channel"],
                    &json!({"channel": channel}),
                )
                .await?;
            let text = format!(
                "Device {} of {app_id} now gets channel {}.",
                text_field(&assigned, "device_id", &device_id),
                text_field(&assigned, "channel", &channel)
            );
            Ok(Outcome::new(assigned, text))
        }
        DeviceCommand::Unset { device_id, app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            client
                .delete(&["apps", &app_id, "devices", &device_id, "channel"])
                .await?;
            Ok(Outcome::status_ok(format!(
                "Removed the channel override of device {device_id} of {app_id}."
            )))
        }
        DeviceCommand::List(args) => {
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            let list = client
                .get(&["apps", &app_id, "devices"], &args.query())
                .await?;
            let text = render::devices_table(&list);
            Ok(Outcome::new(list, text))
        }
        DeviceCommand::Simulate(_) => Err(CliError::new(
            "internal_error",
            "device simulate runs without a management client",
        )),
        DeviceCommand::Show { device_id, app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let device = client
                .get(&["apps", &app_id, "devices", &device_id], &[])
                .await?;
            let text = render::device_details(&device);
            Ok(Outcome::new(device, text))
        }
    }
}

pub async fn gc(client: &ApiClient) -> Result<Outcome, CliError> {
    let result = client.post(&["gc"], &json!({})).await?;
    let count = |key: &str| result.get(key).and_then(Value::as_u64).unwrap_or(0);
    let text = format!(
        "Deleted {} unused files ({}); {} files are in use.",
        count("deleted_blobs"),
        crate::upload::human_bytes(count("freed_bytes")),
        count("kept_blobs")
    );
    Ok(Outcome::new(result, text))
}
