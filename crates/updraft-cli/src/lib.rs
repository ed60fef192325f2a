//! Updraft's command line: a client of the management API (`app`, `bundle`,
//! `channel`, `device`) plus offline API key management (`apikey`), which
//! opens the data directory's database directly.
//!
//! The `updraft` binary flattens [`Command`] next to its own `serve` and calls [`run`].

pub mod app_id;
pub mod args;
pub mod client;
pub mod commands;
pub mod confirm;
pub mod error;
pub mod keys;
pub mod native;
pub mod offline;
pub mod ops;
pub mod output;
pub mod release;
pub mod render;
pub mod requests;
pub mod simulate;
pub mod stats;
pub mod table;
pub mod time;
pub mod upload;
pub mod users;

pub use args::{
    ApikeyCommand, AppCommand, BundleCommand, BundleUploadArgs, ChannelCommand, ChannelSetArgs,
    Command, DeviceCommand, DeviceListArgs, DeviceSimulateArgs, GlobalOpts, KeyCommand,
};
pub use error::{CliCode, CliError, LocalCode};
pub use output::Outcome;

use client::ApiClient;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs one command, prints its result, and returns the exit code (0 ok, 1 error).
///
/// Errors go to stderr as `error: <message> [<code>]`; with `--json` the
/// `{"error", "message"}` object is also printed on stdout. A result that is a
/// failure ([`Outcome::failure`]) is printed as usual, then its error line on
/// stderr, and exits 1.
pub async fn run(global: GlobalOpts, cmd: Command) -> i32 {
    let work_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match execute(&global, cmd, &work_dir).await {
        Ok(outcome) => {
            outcome.print(global.json);
            match &outcome.failure {
                // The result on stdout is the whole story (one JSON document with
                // `--json`); the error line is for people and the exit code for scripts.
                Some(failure) => {
                    let _ = writeln!(std::io::stderr().lock(), "{}", failure.report_line());
                    1
                }
                None => 0,
            }
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr().lock(), "{}", error.report_line());
            if global.json {
                output::print_json(&error.to_json());
            }
            1
        }
    }
}

/// Runs one command without printing. `work_dir` is where `capacitor.config.json` is looked for.
pub async fn execute(
    global: &GlobalOpts,
    cmd: Command,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    match cmd {
        Command::Apikey(command) => {
            offline::run_apikey_command(command, &global.data_dir, global.database_url.as_deref())
                .await
        }
        Command::App(command) => commands::app(&connect(global)?, command).await,
        Command::Bundle(command) => {
            commands::bundle(&connect(global)?, command, work_dir, !global.json).await
        }
        Command::Channel(command) => commands::channel(&connect(global)?, command, work_dir).await,
        // The device API is public: simulating a device needs no API key.
        Command::Device(DeviceCommand::Simulate(args)) => {
            let app_id = app_id::resolve_app_id(args.app_id.as_deref(), work_dir)?;
            simulate::simulate(&global.server, &app_id, &args, work_dir).await
        }
        Command::Device(command) => commands::device(&connect(global)?, command, work_dir).await,
        Command::Key(KeyCommand::Create { dir, force }) => {
            keys::create_key_pair(&work_dir.join(dir), force)
        }
        Command::Gc => commands::gc(&connect(global)?).await,
        Command::Stats(args) => stats::stats(&connect(global)?, &args, work_dir).await,
        Command::Events(args::EventsCommand::Export(args)) => {
            stats::export(&connect(global)?, &args, work_dir, global.json).await
        }
        Command::Audit(args) => ops::audit(&connect(global)?, &args).await,
        Command::Webhook(command) => ops::webhook(&connect(global)?, command).await,
        Command::Schedule(command) => release::schedule(&connect(global)?, command, work_dir).await,
        Command::User(command) => {
            users::run_user_command(command, &global.data_dir, global.database_url.as_deref()).await
        }
    }
}

fn connect(global: &GlobalOpts) -> Result<ApiClient, CliError> {
    ApiClient::new(&global.server, global.apikey.as_deref())
}
