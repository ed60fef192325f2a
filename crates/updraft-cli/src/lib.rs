//! Updraft's command line: a client of the management API (`app`, `bundle`,
//! `channel`, `device`, `apikey`), its login (`login`, `logout`, `whoami`),
//! and the offline key commands (`apikey` with `--data-dir`), which open the
//! server's database directly.
//!
//! The `updraft` binary flattens [`Command`] next to its own `serve` and calls [`run`].

pub mod apikeys;
pub mod app_id;
pub mod args;
pub mod cleanup;
pub mod client;
pub mod commands;
pub mod confirm;
pub mod error;
pub mod exists;
pub mod explain;
pub mod keys;
pub mod login;
pub mod native;
pub mod offline;
pub mod ops;
pub mod output;
pub mod project;
pub mod release;
pub mod render;
pub mod requests;
pub mod simulate;
pub mod stats;
pub mod table;
pub mod term;
pub mod time;
pub mod upload;
pub mod users;

pub use args::{
    ApikeyCommand, AppCommand, BundleCommand, BundleUploadArgs, ChannelCommand, ChannelSetArgs,
    Command, DeviceCommand, DeviceListArgs, DeviceSimulateArgs, Given, GlobalOpts, KeyCommand,
};
pub use error::{CliCode, CliError, Exit, LocalCode};
pub use output::Outcome;

use client::ApiClient;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs one command, prints its result, and returns the exit code
/// ([`Exit`]: 0 done, 1 refused, 2 usage, 3 not allowed, 4 unreachable,
/// 5 incompatible; docs/cli.md).
///
/// Errors go to stderr as `error: <message> [<code>]`; with `--json` the
/// `{"error", "message"}` object is also printed on stdout. A result that is a
/// failure ([`Outcome::failure`]) is printed as usual, then its error line on
/// stderr. A reader that stopped reading (`| head`) is not a failure: the
/// command ends quietly with 0.
///
/// The login file (`updraft login`) fills in the server and key that flags
/// and the environment left open ([`login::apply`]).
pub async fn run(mut global: GlobalOpts, cmd: Command) -> i32 {
    term::init(global.json, global.wide);
    let work_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    // `login` itself decides what of the file it keeps.
    if !matches!(cmd, Command::Login(_) | Command::Logout) {
        let (_, stored) = login::load();
        login::apply(&mut global, stored.as_ref());
    }
    let failure = match execute(&global, cmd, &work_dir).await {
        Ok(outcome) => {
            outcome.print(global.json);
            // The result on stdout is the whole story (one JSON document with
            // `--json`); the error line is for people and the exit code for scripts.
            match outcome.failure {
                Some(failure) => failure,
                None => return i32::from(Exit::Done.code()),
            }
        }
        Err(error) if error.is_local(LocalCode::StdoutClosed) => {
            return i32::from(Exit::Done.code())
        }
        Err(error) => {
            if global.json {
                output::print_json(&error.to_json());
            }
            error
        }
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        failure.report_line_styled(term::current().stderr_color)
    );
    i32::from(failure.exit().code())
}

/// Runs one command without printing. `work_dir` is where `capacitor.config.json` is looked for.
pub async fn execute(
    global: &GlobalOpts,
    cmd: Command,
    work_dir: &Path,
) -> Result<Outcome, CliError> {
    match cmd {
        Command::Apikey(command) => apikeys::run(global, command).await,
        Command::Login(args) => login::login(global, login::load().1.as_ref(), &args).await,
        Command::Logout => login::logout(login::load().1.as_ref()),
        Command::Whoami => login::whoami(&connect(global)?).await,
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
        Command::User(command) => users::run_user_command(command, global).await,
    }
}

fn connect(global: &GlobalOpts) -> Result<ApiClient, CliError> {
    ApiClient::new(&global.server, global.apikey.as_deref())
}
