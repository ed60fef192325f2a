//! Updraft's command line: a client of the management API (`app`, `bundle`,
//! `channel`, `device`) plus offline API key management (`apikey`), which
//! opens the data directory's database directly.
//!
//! The `updraft` binary flattens [`Command`] next to its own `serve` and calls [`run`].

pub mod app_id;
pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod offline;
pub mod output;
pub mod render;
pub mod table;
pub mod time;

pub use args::{
    ApikeyCommand, AppCommand, BundleCommand, BundleUploadArgs, ChannelCommand, ChannelSetArgs,
    Command, DeviceCommand, DeviceListArgs, GlobalOpts,
};
pub use error::CliError;
pub use output::Outcome;

use client::ApiClient;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs one command, prints its result, and returns the exit code (0 ok, 1 error).
///
/// Errors go to stderr as `error: <message> [<code>]`; with `--json` the
/// `{"error", "message"}` object is also printed on stdout.
pub async fn run(global: GlobalOpts, cmd: Command) -> i32 {
    let work_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match execute(&global, cmd, &work_dir).await {
        Ok(outcome) => {
            outcome.print(global.json);
            0
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
        Command::Apikey(command) => offline::run_apikey_command(command, &global.data_dir).await,
        Command::App(command) => commands::app(&connect(global)?, command).await,
        Command::Bundle(command) => commands::bundle(&connect(global)?, command, work_dir).await,
        Command::Channel(command) => commands::channel(&connect(global)?, command, work_dir).await,
        Command::Device(command) => commands::device(&connect(global)?, command, work_dir).await,
    }
}

fn connect(global: &GlobalOpts) -> Result<ApiClient, CliError> {
    ApiClient::new(&global.server, global.apikey.as_deref())
}
