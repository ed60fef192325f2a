//! `bundle cleanup --keep N` (the Capgo CLI's `bundle cleanup`): deletes the
//! app's old bundles, keeping the newest N and every bundle in use.
//!
//! What is in use is read first to show the plan, but the deletion itself is
//! the server's ordinary `DELETE` without `force`: the server refuses
//! (`bundle_in_use`) a bundle that a channel serves, a rollout uses or a
//! pending schedule names at the moment of deleting, so a channel pointed at
//! an old bundle between the plan and the deletion keeps it. Such a bundle is
//! reported as kept.

use crate::app_id::resolve_app_id;
use crate::client::ApiClient;
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use clap::Args;
use serde_json::json;
use std::path::Path;
use updraft_api::{BundleList, BundleView, ErrorCode, ScheduleList};

/// The Capgo CLI's default.
pub const DEFAULT_KEEP: u32 = 4;

#[derive(Args, Clone, Debug)]
pub struct CleanupArgs {
    /// App id (default: the appId of ./capacitor.config.json)
    pub app_id: Option<String>,
    /// How many of the newest bundles to keep (bundles in use are kept as well)
    #[arg(short, long, value_name = "N", default_value_t = DEFAULT_KEEP)]
    pub keep: u32,
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Only show what would be deleted
    #[arg(long)]
    pub dry_run: bool,
}

/// Why a bundle is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Among the newest N.
    Newest,
    /// Channels serve it, rollouts use it or pending schedules name it.
    InUse(Vec<String>),
    /// The server refused to delete it (`bundle_in_use`): it came into use
    /// after the plan was made. Its refusal says by what.
    Refused(String),
}

/// The plan: which live bundles stay (and why), which go. `bundles` newest first.
pub fn plan(
    bundles: &[BundleView],
    pending_schedules: &[(i64, String)],
    keep: u32,
) -> (Vec<(String, Keep)>, Vec<String>) {
    let mut kept = Vec::new();
    let mut delete = Vec::new();
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let live = bundles.iter().filter(|bundle| !bundle.deleted);
    for (index, bundle) in live.enumerate() {
        if index < keep {
            kept.push((bundle.version.clone(), Keep::Newest));
            continue;
        }
        let mut uses: Vec<String> = bundle
            .channels
            .iter()
            .map(|channel| format!("channel {channel}"))
            .collect();
        uses.extend(
            bundle
                .rollout_channels
                .iter()
                .map(|channel| format!("rollout on {channel}")),
        );
        uses.extend(
            pending_schedules
                .iter()
                .filter(|(_, name)| *name == bundle.version)
                .map(|(id, _)| format!("schedule #{id}")),
        );
        if uses.is_empty() {
            delete.push(bundle.version.clone());
        } else {
            kept.push((bundle.version.clone(), Keep::InUse(uses)));
        }
    }
    (kept, delete)
}

fn keep_json(kept: &[(String, Keep)]) -> Vec<serde_json::Value> {
    kept.iter()
        .map(|(version, why)| match why {
            Keep::Newest => json!({"version": version, "reason": "newest"}),
            Keep::InUse(uses) => json!({"version": version, "reason": "in_use", "used_by": uses}),
            Keep::Refused(message) => {
                json!({"version": version, "reason": "in_use", "refused": message})
            }
        })
        .collect()
}

pub async fn cleanup(
    client: &ApiClient,
    args: &CleanupArgs,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    let app_id = resolve_app_id(args.app_id.as_deref(), work_dir)?;
    let bundles = client
        .get::<BundleList>(&["apps", &app_id, "bundles"], &[])
        .await?
        .value
        .bundles;
    let schedules: Vec<(i64, String)> = client
        .get::<ScheduleList>(&["apps", &app_id, "schedules"], &[])
        .await?
        .value
        .schedules
        .into_iter()
        .filter(|schedule| schedule.status == "pending")
        .map(|schedule| (schedule.id, schedule.bundle))
        .collect();
    let (mut kept, planned) = plan(&bundles, &schedules, args.keep);
    let in_use = kept
        .iter()
        .filter(|(_, why)| matches!(why, Keep::InUse(_)))
        .count();
    let summary = format!(
        "{} of the {} bundles of {app_id} would be deleted (keeping the newest {}{})",
        planned.len(),
        kept.len() + planned.len(),
        args.keep,
        if in_use > 0 {
            format!(" and {in_use} in use")
        } else {
            String::new()
        }
    );
    if planned.is_empty() {
        let value =
            json!({"dry_run": args.dry_run, "deleted": [], "kept": keep_json(&kept), "failed": []});
        return Ok(Outcome::new(
            value,
            format!(
                "Nothing to delete: {app_id} has {} bundles, the newest {} are kept and the \
                 older ones are in use.",
                kept.len(),
                args.keep
            ),
        ));
    }
    if args.dry_run {
        let value = json!({"dry_run": true, "deleted": [], "would_delete": planned, "kept": keep_json(&kept), "failed": []});
        return Ok(Outcome::new(
            value,
            format!(
                "{summary}: {}. Nothing was deleted (--dry-run).",
                planned.join(", ")
            ),
        ));
    }
    if !args.yes {
        if !crate::confirm::can_ask() {
            return Err(CliError::new(
                LocalCode::ConfirmationRequired,
                format!(
                    "refusing to delete without confirmation: stdin is not a terminal; {summary}: \
                     {}; pass --yes to delete them (or --dry-run to only list them)",
                    planned.join(", ")
                ),
            ));
        }
        let warning = format!(
            "{summary}: {}; a deleted version can never be registered again",
            planned.join(", ")
        );
        if !crate::confirm::yes_no(&warning, "Delete them?")? {
            return Err(CliError::new(LocalCode::Cancelled, "nothing was deleted"));
        }
    }
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for version in planned {
        // No `force`: the server's guard decides at the moment of deleting.
        match client
            .delete_with_query(&["apps", &app_id, "bundles", &version], &[])
            .await
        {
            Ok(_) => deleted.push(version),
            Err(error) if error.is(&ErrorCode::BundleInUse) => {
                kept.push((version, Keep::Refused(error.message)));
            }
            Err(error) if error.is(&ErrorCode::BundleNotFound) => {
                // Deleted meanwhile by someone else: gone either way.
            }
            Err(error) => failed.push((version, error)),
        }
    }
    let failed_json: Vec<_> = failed
        .iter()
        .map(|(version, error)| {
            json!({"version": version, "error": error.code.as_str(), "message": error.message})
        })
        .collect();
    let value = json!({
        "dry_run": false,
        "deleted": deleted,
        "kept": keep_json(&kept),
        "failed": failed_json,
    });
    let mut text = format!(
        "Deleted {} bundles of {app_id}{}; kept {}.",
        deleted.len(),
        if deleted.is_empty() {
            String::new()
        } else {
            format!(" ({})", deleted.join(", "))
        },
        kept.len()
    );
    let became_in_use: Vec<&str> = kept
        .iter()
        .filter(|(_, why)| matches!(why, Keep::Refused(_)))
        .map(|(version, _)| version.as_str())
        .collect();
    if !became_in_use.is_empty() {
        text.push_str(&format!(
            " Kept {} as well: it came into use meanwhile.",
            became_in_use.join(", ")
        ));
    }
    let mut outcome = Outcome::new(value, text);
    if let Some((version, error)) = failed.into_iter().next() {
        outcome = outcome.with_failure(CliError::new(
            error.code,
            format!("bundle {version} could not be deleted: {}", error.message),
        ));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(version: &str, channels: &[&str], rollout: &[&str], deleted: bool) -> BundleView {
        serde_json::from_value(json!({
            "id": 1, "version": version, "checksum": null, "encrypted_checksum": null,
            "session_key": null, "key_id": null, "external_url": null, "zip_sha256": null,
            "size": null, "manifest_count": 0, "url": null, "encrypted": false,
            "min_update_version": null, "link": null, "comment": null, "deleted": deleted,
            "created_at": "2026-12-07T12:00:00Z", "deleted_at": null,
            "channels": channels, "rollout_channels": rollout, "native_packages": null,
        }))
        .unwrap()
    }

    #[test]
    fn keeps_the_newest_and_every_bundle_in_use() {
        let bundles = [
            bundle("1.0.5", &[], &[], false),
            bundle("1.0.4", &[], &[], true),
            bundle("1.0.3", &[], &[], false),
            bundle("1.0.2", &["production"], &[], false),
            bundle("1.0.1", &[], &["beta"], false),
            bundle("1.0.0", &[], &[], false),
            bundle("0.9.0", &[], &[], false),
        ];
        let (kept, delete) = plan(&bundles, &[(7, "1.0.0".into())], 2);
        assert_eq!(delete, vec!["0.9.0".to_string()]);
        assert_eq!(
            kept,
            vec![
                ("1.0.5".to_string(), Keep::Newest),
                ("1.0.3".to_string(), Keep::Newest),
                (
                    "1.0.2".to_string(),
                    Keep::InUse(vec!["channel production".into()])
                ),
                (
                    "1.0.1".to_string(),
                    Keep::InUse(vec!["rollout on beta".into()])
                ),
                ("1.0.0".to_string(), Keep::InUse(vec!["schedule #7".into()])),
            ]
        );
    }

    #[test]
    fn keep_zero_deletes_every_unused_bundle() {
        let bundles = [
            bundle("2.0.0", &["production"], &[], false),
            bundle("1.0.0", &[], &[], false),
        ];
        let (kept, delete) = plan(&bundles, &[], 0);
        assert_eq!(delete, vec!["1.0.0".to_string()]);
        assert_eq!(kept.len(), 1);
    }
}
