//! The commands that talk to a server through the management API.

use crate::app_id::resolve_app_id;
use crate::args::{AppCommand, BundleCommand, ChannelCommand, DeviceCommand};
use crate::client::ApiClient;
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use crate::render;
use crate::requests::AcceptUnencrypted;
use std::path::Path;
use updraft_api::{
    AppList, AppView, BundleList, BundleView, ChannelList, ChannelSettings, ChannelUpdateView,
    ChannelView, CreateApp, CreateChannel, DeviceDetail, DeviceList, ErrorCode, GcReport,
    OverrideView, SetOverride,
};
use updraft_core::guards::{closest_names, did_you_mean};

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
    let list = client
        .get::<ChannelList>(&["apps", app_id, "channels"], &[])
        .await?;
    let names: Vec<&str> = list
        .value
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if names.contains(&channel) {
        return Ok(());
    }
    let suggestions = closest_names(channel, names.iter().copied());
    Err(CliError::new(
        ErrorCode::ChannelNotFound,
        format!(
            "channel {channel} of {app_id} does not exist{}; nothing was uploaded (pass \
             --create-channel to create it)",
            did_you_mean(&suggestions)
        ),
    ))
}

/// A `bundle_in_use` refusal with the CLI's way round it.
fn explain_in_use(error: CliError) -> CliError {
    if !error.is(&ErrorCode::BundleInUse) {
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
pub async fn with_downgrade_guard<B, T, F, Fut>(
    force: bool,
    mut body: B,
    send: F,
) -> Result<T, CliError>
where
    B: AcceptUnencrypted + Clone,
    F: Fn(B) -> Fut,
    Fut: std::future::Future<Output = Result<T, CliError>>,
{
    if force {
        body.accept_unencrypted();
        return send(body).await;
    }
    match send(body.clone()).await {
        Err(error) if error.is(&ErrorCode::EncryptionDowngrade) => {
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
                return Err(CliError::new(LocalCode::Cancelled, "nothing was changed"));
            }
            body.accept_unencrypted();
            send(body).await
        }
        other => other,
    }
}

pub async fn app(client: &ApiClient, command: AppCommand) -> Result<Outcome, CliError> {
    match command {
        AppCommand::Add { app_id, name } => {
            let body = CreateApp {
                app_id,
                name,
                expose_metadata: None,
            };
            let app = client.post::<AppView>(&["apps"], &body).await?;
            let text = format!("Created app {} ({}).", app.value.app_id, app.value.name);
            Ok(Outcome::new(app.json, text))
        }
        AppCommand::List => {
            let list = client.get::<AppList>(&["apps"], &[]).await?;
            let text = render::apps_table(&list.value);
            Ok(Outcome::new(list.json, text))
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

/// Fills `--bundle` from ./package.json and `--path` (unless `--external`)
/// from the Capacitor config's `webDir`, as the Capgo CLI does; returns what
/// was filled in, for the output.
fn fill_upload_defaults(
    args: &mut crate::args::BundleUploadArgs,
    work_dir: &Path,
) -> Result<Vec<String>, CliError> {
    let mut filled = Vec::new();
    if args.bundle.is_none() {
        let version = crate::project::package_version(work_dir, "--bundle")?;
        filled.push(format!("--bundle {version} (the version of package.json)"));
        args.bundle = Some(version);
    }
    if args.path.is_none() && args.external.is_none() {
        let web_dir = crate::project::web_dir(work_dir)?;
        filled.push(format!(
            "--path {} (the webDir of the Capacitor config)",
            web_dir.display()
        ));
        args.path = Some(web_dir);
    }
    Ok(filled)
}

/// Says on stderr which flags came from the project (plain output only).
fn with_defaults_note(outcome: Outcome, filled: Vec<String>) -> Outcome {
    if filled.is_empty() {
        return outcome;
    }
    let note = format!("note: used {}", filled.join(" and "));
    match &outcome.note {
        Some(existing) => {
            let combined = format!("{existing}\n{note}");
            outcome.with_note(combined)
        }
        None => outcome.with_note(note),
    }
}

pub async fn bundle(
    client: &ApiClient,
    command: BundleCommand,
    work_dir: &Path,
    show_progress: bool,
) -> Result<Outcome, CliError> {
    match command {
        BundleCommand::Upload(mut args) => {
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            let defaults = fill_upload_defaults(&mut args, work_dir)?;
            if let (Some(channel), false) = (args.channel.as_deref(), args.create_channel) {
                // Before anything is uploaded: a typo must not create a channel.
                existing_channel_or_suggest(client, &app_id, channel).await?;
            }
            if args.path.is_some() {
                let show = show_progress && !args.no_progress;
                let outcome =
                    crate::upload::upload_bundle(client, &app_id, &args, work_dir, show).await?;
                return Ok(with_defaults_note(outcome, defaults));
            }
            let mut body = args.request_body()?;
            if args.version_exists_ok {
                let checksum = match (&body.checksum, &body.encrypted_checksum) {
                    (Some(plain), _) => Some(crate::exists::Checksum::Plain(plain)),
                    (None, Some(encrypted)) => Some(crate::exists::Checksum::Encrypted(encrypted)),
                    (None, None) => None,
                };
                if let Some(checksum) = checksum {
                    if let Some(outcome) =
                        crate::exists::same_version(client, &app_id, &body.version, checksum)
                            .await?
                    {
                        return Ok(with_defaults_note(outcome, defaults));
                    }
                }
            }
            let (packages, warning) = crate::release::upload_native_packages(
                args.ignore_metadata_check,
                args.package_json.as_deref(),
                args.node_modules.as_deref(),
                work_dir,
            )?;
            body.native_packages = packages;
            let bundle = client
                .post::<BundleView>(&["apps", &app_id, "bundles"], &body)
                .await
                .map_err(crate::release::explain_incompatible)?;
            let text = format!(
                "Registered bundle {} of {app_id}.{}",
                bundle.value.version,
                channel_outcome(args.channel.as_deref(), args.rollout_bps())
            );
            let mut outcome = Outcome::new(bundle.json, text);
            if let Some(warning) = warning {
                outcome = outcome.with_warning(warning);
            }
            Ok(with_defaults_note(outcome, defaults))
        }
        BundleCommand::Cleanup(args) => crate::cleanup::cleanup(client, &args, work_dir).await,
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
            let list = client
                .get::<BundleList>(&["apps", &app_id, "bundles"], &query)
                .await?;
            let text = render::bundles_table(&list.value, include_deleted);
            Ok(Outcome::new(list.json, text))
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
            let body = CreateChannel {
                name: channel,
                settings: ChannelSettings {
                    public: default.then_some(true),
                    ..ChannelSettings::default()
                },
            };
            let created = client
                .post::<ChannelView>(&["apps", &app_id, "channels"], &body)
                .await?;
            let text = format!(
                "Created channel {} of {app_id}: {}.",
                created.value.name,
                render::channel_summary(&created.value)
            );
            Ok(Outcome::new(created.json, text))
        }
        ChannelCommand::Set(mut args) => {
            if args.latest {
                args.bundle = Some(crate::project::package_version(work_dir, "--latest")?);
            }
            if !args.latest_remote {
                // Checked before any request: an empty change fails without a server.
                args.patch_body()?;
            }
            let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
            if args.latest_remote {
                args.bundle = Some(newest_bundle(client, &app_id).await?);
            }
            let body = if args.merges_targeting() {
                let current =
                    crate::release::current_channel(client, &app_id, &args.channel).await?;
                args.patch_body_with(Some(&(&current).into()))?
            } else {
                args.patch_body()?
            };
            let path = ["apps", app_id.as_str(), "channels", args.channel.as_str()];
            let updated = with_downgrade_guard(args.force, body, |body| async move {
                client
                    .patch::<ChannelUpdateView>(&path, &body)
                    .await
                    .map_err(crate::release::explain_incompatible)
            })
            .await?;
            let channel = &updated.value.channel;
            let text = match &updated.value.unchanged {
                // Said plainly, exit 0: asking for the state a channel is in is not an error.
                Some(reason) => format!("Nothing changed: {} ({}).", reason.message, reason.code),
                None if !updated.value.changed => {
                    format!("Nothing changed on channel {} of {app_id}.", channel.name)
                }
                None => format!(
                    "Updated channel {} of {app_id}: {}.",
                    channel.name,
                    render::channel_summary(channel)
                ),
            };
            Ok(Outcome::new(updated.json, text))
        }
        ChannelCommand::List { app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let list = client
                .get::<ChannelList>(&["apps", &app_id, "channels"], &[])
                .await?;
            let text = render::channels_table(&list.value);
            Ok(Outcome::new(list.json, text))
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

/// The newest bundle of the app that is not deleted (`channel set --latest-remote`).
async fn newest_bundle(client: &ApiClient, app_id: &str) -> Result<String, CliError> {
    let list = client
        .get::<BundleList>(&["apps", app_id, "bundles"], &[])
        .await?;
    // The list is newest first.
    list.value
        .bundles
        .into_iter()
        .find(|bundle| !bundle.deleted)
        .map(|bundle| bundle.version)
        .ok_or_else(|| {
            CliError::new(
                ErrorCode::BundleNotFound,
                format!("{app_id} has no bundle yet; upload one with `updraft bundle upload`"),
            )
        })
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
                .put::<OverrideView>(
                    &["apps", &app_id, "devices", &device_id, "channel"],
                    &SetOverride { channel },
                )
                .await?;
            let text = format!(
                "Device {} of {app_id} now gets channel {}.",
                assigned.value.device_id, assigned.value.channel
            );
            Ok(Outcome::new(assigned.json, text))
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
                .get::<DeviceList>(&["apps", &app_id, "devices"], &args.query())
                .await?;
            let text = render::devices_table(&list.value);
            Ok(Outcome::new(list.json, text))
        }
        DeviceCommand::Simulate(_) => Err(CliError::new(
            ErrorCode::InternalError,
            "device simulate runs without a management client",
        )),
        DeviceCommand::Show { device_id, app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let device = client
                .get::<DeviceDetail>(&["apps", &app_id, "devices", &device_id], &[])
                .await?;
            let text = render::device_details(&device.value, &device.json);
            Ok(Outcome::new(device.json, text))
        }
        DeviceCommand::Explain { device_id, app_id } => {
            let app_id = resolve_app_id(app_id.as_deref(), work_dir)?;
            let explained = client
                .get::<updraft_api::DeviceExplanation>(
                    &["apps", &app_id, "devices", &device_id, "explain"],
                    &[],
                )
                .await?;
            let text = crate::explain::render(&explained.value);
            Ok(Outcome::new(explained.json, text))
        }
    }
}

pub async fn gc(client: &ApiClient) -> Result<Outcome, CliError> {
    let result = client
        .post::<GcReport>(&["gc"], &crate::requests::NoBody {})
        .await?;
    let report = &result.value;
    let text = format!(
        "Deleted {} unused files ({}); {} files are in use.",
        report.deleted_blobs,
        crate::upload::human_bytes(report.freed_bytes),
        report.kept_blobs
    );
    Ok(Outcome::new(result.json, text))
}
