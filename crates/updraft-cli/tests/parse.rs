//! Command-line parsing, through a wrapper shaped like the `updraft` binary's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use clap::{CommandFactory, Parser};
use serde_json::json;
use updraft_cli::args::{ChannelState, DisableAutoUpdateArg, RoleArg};
use updraft_cli::{
    ApikeyCommand, AppCommand, BundleCommand, ChannelCommand, Command, DeviceCommand, GlobalOpts,
};
use updraft_cli::{CliCode, LocalCode};

#[derive(clap::Parser, Debug)]
#[command(name = "updraft")]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    #[arg(long)]
    config: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Top {
    Serve(ServeArgs),
    #[command(flatten)]
    Client(Command),
}

fn parse(args: &[&str]) -> Cli {
    let argv = std::iter::once("updraft").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(error) => panic!("{args:?} did not parse: {error}"),
    }
}

fn client_command(args: &[&str]) -> Command {
    match parse(args).command {
        Top::Client(command) => command,
        Top::Serve(_) => panic!("parsed as serve"),
    }
}

fn parse_error(args: &[&str]) -> clap::error::ErrorKind {
    let argv = std::iter::once("updraft").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} parsed but should not: {cli:?}"),
        Err(error) => error.kind(),
    }
}

#[test]
fn definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn serve_still_parses_next_to_the_client_commands() {
    assert!(matches!(
        parse(&["serve", "--config", "x.toml"]).command,
        Top::Serve(_)
    ));
}

#[test]
fn global_options_work_after_the_subcommand() {
    let cli = parse(&[
        "app",
        "list",
        "--server",
        "https://updraft.example.com",
        "--apikey",
        "upd_secret",
        "--json",
        "--data-dir",
        "/var/lib/updraft",
    ]);
    assert_eq!(cli.global.server, "https://updraft.example.com");
    assert_eq!(cli.global.apikey.as_deref(), Some("upd_secret"));
    assert!(cli.global.json);
    assert_eq!(
        cli.global.data_dir,
        std::path::PathBuf::from("/var/lib/updraft")
    );
}

#[test]
fn global_defaults() {
    if ["UPDRAFT_SERVER", "UPDRAFT_APIKEY", "UPDRAFT_DATA_DIR"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return; // the environment overrides the defaults under test
    }
    let cli = parse(&["app", "list"]);
    assert_eq!(cli.global.server, "http://127.0.0.1:8080");
    assert_eq!(cli.global.apikey, None);
    assert!(!cli.global.json);
    assert_eq!(
        cli.global.data_dir,
        std::path::PathBuf::from("./updraft-data")
    );
}

#[test]
fn apikey_commands() {
    match client_command(&["apikey", "create", "--name", "ci"]) {
        Command::Apikey(ApikeyCommand::Create(args)) => {
            assert_eq!(args.name, "ci");
            assert_eq!(args.role, RoleArg::Admin);
            assert_eq!(args.app_id, None);
            assert_eq!(args.expires_in_days, None);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&[
        "apikey",
        "create",
        "--name",
        "ci",
        "--role",
        "viewer",
        "--app",
        "com.example.app",
        "--expires-in-days",
        "30",
    ]) {
        Command::Apikey(ApikeyCommand::Create(args)) => {
            assert_eq!(args.role, RoleArg::Viewer);
            assert_eq!(args.app_id.as_deref(), Some("com.example.app"));
            assert_eq!(args.expires_in_days, Some(30));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client_command(&["apikey", "list"]),
        Command::Apikey(ApikeyCommand::List)
    ));
    match client_command(&["apikey", "revoke", "ci"]) {
        Command::Apikey(ApikeyCommand::Revoke { id_or_name }) => assert_eq!(id_or_name, "ci"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_error(&["apikey", "create", "--name", "x", "--role", "owner"]),
        clap::error::ErrorKind::InvalidValue
    );
    assert_eq!(
        parse_error(&["apikey", "create", "--name", "x", "--expires-in-days", "0"]),
        clap::error::ErrorKind::ValueValidation
    );
    assert_eq!(
        parse_error(&["apikey", "create"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn app_commands() {
    match client_command(&["app", "add", "com.example.app", "--name", "Example"]) {
        Command::App(AppCommand::Add { app_id, name }) => {
            assert_eq!(app_id, "com.example.app");
            assert_eq!(name.as_deref(), Some("Example"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client_command(&["app", "list"]),
        Command::App(AppCommand::List)
    ));
    match client_command(&["app", "delete", "com.example.app"]) {
        Command::App(AppCommand::Delete { app_id, yes }) => {
            assert_eq!(app_id, "com.example.app");
            assert!(!yes);
        }
        other => panic!("{other:?}"),
    }
    for flag in ["--yes", "-y"] {
        match client_command(&["app", "delete", "com.example.app", flag]) {
            Command::App(AppCommand::Delete { yes, .. }) => assert!(yes, "{flag}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        parse_error(&["app", "add"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn bundle_upload_with_every_option() {
    let command = client_command(&[
        "bundle",
        "upload",
        "com.example.app",
        "--bundle",
        "1.4.3",
        "--external",
        "https://cdn.example.com/1.4.3.zip",
        "--checksum",
        "ab12",
        "--channel",
        "production",
        "--min-update-version",
        "1.0.0",
        "--link",
        "https://example.com/notes",
        "--comment",
        "fixes",
        "--iv-session-key",
        "aXY=:a2V5",
        "--key-id",
        "MIIBCgKC",
        "--encrypted-checksum",
        "cd34",
    ]);
    let Command::Bundle(BundleCommand::Upload(args)) = command else {
        panic!("{command:?}");
    };
    assert_eq!(args.app_id.as_deref(), Some("com.example.app"));
    assert_eq!(
        wire(args.request_body().unwrap()),
        json!({
            "version": "1.4.3",
            "external_url": "https://cdn.example.com/1.4.3.zip",
            "checksum": "ab12",
            "channel": "production",
            "min_update_version": "1.0.0",
            "link": "https://example.com/notes",
            "comment": "fixes",
            "session_key": "aXY=:a2V5",
            "key_id": "MIIBCgKC",
            "encrypted_checksum": "cd34"
        })
    );
}

#[test]
fn bundle_upload_minimal_sends_only_required_fields() {
    let command = client_command(&[
        "bundle",
        "upload",
        "-b",
        "2.0.0",
        "-e",
        "https://x.test/a.zip",
        "--checksum",
        "ff",
    ]);
    let Command::Bundle(BundleCommand::Upload(args)) = command else {
        panic!("{command:?}");
    };
    assert_eq!(args.app_id, None);
    assert_eq!(
        wire(args.request_body().unwrap()),
        json!({"version": "2.0.0", "external_url": "https://x.test/a.zip", "checksum": "ff"})
    );
}

#[test]
fn bundle_upload_argument_errors() {
    // Without --path nor --external the path is the project's webDir (read when it runs).
    let Command::Bundle(BundleCommand::Upload(args)) =
        client_command(&["bundle", "upload", "--checksum", "ff"])
    else {
        panic!("not a bundle upload");
    };
    assert_eq!((args.path, args.bundle), (None, None));
    // An unencrypted external bundle without a checksum is refused before any request.
    let Command::Bundle(BundleCommand::Upload(args)) = client_command(&[
        "bundle",
        "upload",
        "--bundle",
        "1.0.0",
        "--external",
        "https://x.test/a.zip",
    ]) else {
        panic!("not a bundle upload");
    };
    assert!(args.request_body().is_err());
    assert_eq!(
        parse_error(&[
            "bundle",
            "upload",
            "--bundle",
            "1.0.0",
            "--external",
            "https://x.test/a.zip",
            "--checksum",
            "ff",
            "--session-key",
            "a:b",
            "--iv-session-key",
            "c:d",
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
}

#[test]
fn bundle_list_and_delete() {
    match client_command(&["bundle", "list", "com.example.app", "--include-deleted"]) {
        Command::Bundle(BundleCommand::List {
            app_id,
            include_deleted,
        }) => {
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
            assert!(include_deleted);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["bundle", "list"]) {
        Command::Bundle(BundleCommand::List {
            app_id,
            include_deleted,
        }) => {
            assert_eq!(app_id, None);
            assert!(!include_deleted);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["bundle", "delete", "1.0.0", "com.example.app"]) {
        Command::Bundle(BundleCommand::Delete {
            version,
            app_id,
            force,
        }) => {
            assert_eq!(version, "1.0.0");
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
            assert!(!force);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["bundle", "delete", "1.0.0", "--force"]) {
        Command::Bundle(BundleCommand::Delete { force, .. }) => assert!(force),
        other => panic!("{other:?}"),
    }
}

#[test]
fn channel_add_list_delete() {
    match client_command(&[
        "channel",
        "add",
        "production",
        "com.example.app",
        "--default",
    ]) {
        Command::Channel(ChannelCommand::Add {
            channel,
            app_id,
            default,
        }) => {
            assert_eq!(channel, "production");
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
            assert!(default);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["channel", "add", "beta"]) {
        Command::Channel(ChannelCommand::Add {
            channel,
            app_id,
            default,
        }) => {
            assert_eq!(channel, "beta");
            assert_eq!(app_id, None);
            assert!(!default);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["channel", "list", "com.example.app"]) {
        Command::Channel(ChannelCommand::List { app_id }) => {
            assert_eq!(app_id.as_deref(), Some("com.example.app"))
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["channel", "delete", "beta"]) {
        Command::Channel(ChannelCommand::Delete {
            channel,
            app_id,
            yes,
        }) => {
            assert_eq!(channel, "beta");
            assert_eq!(app_id, None);
            assert!(!yes);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["channel", "delete", "beta", "--yes"]) {
        Command::Channel(ChannelCommand::Delete { yes, .. }) => assert!(yes),
        other => panic!("{other:?}"),
    }
}

/// A request body as it goes on the wire.
fn wire(body: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(body).unwrap()
}

fn channel_set_body(flags: &[&str]) -> Result<serde_json::Value, updraft_cli::CliError> {
    let mut args = vec!["channel", "set", "production", "com.example.app"];
    args.extend_from_slice(flags);
    match client_command(&args) {
        Command::Channel(ChannelCommand::Set(set)) => {
            assert_eq!(set.channel, "production");
            assert_eq!(set.app_id.as_deref(), Some("com.example.app"));
            set.patch_body().map(wire)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn channel_set_sends_only_given_flags() {
    assert_eq!(
        channel_set_body(&["--bundle", "1.4.3"]).unwrap(),
        json!({"bundle": "1.4.3"})
    );
    assert_eq!(
        channel_set_body(&["--bundle", "builtin"]).unwrap(),
        json!({"bundle": "builtin"})
    );
    assert_eq!(
        channel_set_body(&["--state", "default"]).unwrap(),
        json!({"public": true})
    );
    assert_eq!(
        channel_set_body(&["--state", "normal"]).unwrap(),
        json!({"public": false})
    );
    assert_eq!(
        channel_set_body(&["--no-ios", "--android"]).unwrap(),
        json!({"ios": false, "android": true})
    );
}

#[test]
fn channel_set_maps_every_flag_pair_to_its_field() {
    let positive = channel_set_body(&[
        "--ios",
        "--android",
        "--electron",
        "--self-assign",
        "--downgrade",
        "--dev",
        "--prod",
        "--emulator",
        "--device",
        "--disable-auto-update",
        "patch",
    ])
    .unwrap();
    assert_eq!(
        positive,
        json!({
            "ios": true, "android": true, "electron": true, "allow_device_self_set": true,
            // --downgrade allows going under native: the stored "disable" flag is false.
            "disable_auto_update_under_native": false,
            "allow_dev": true, "allow_prod": true, "allow_emulator": true, "allow_device": true,
            "disable_auto_update": "patch"
        })
    );
    let negative = channel_set_body(&[
        "--no-ios",
        "--no-android",
        "--no-electron",
        "--no-self-assign",
        "--no-downgrade",
        "--no-dev",
        "--no-prod",
        "--no-emulator",
        "--no-device",
    ])
    .unwrap();
    assert_eq!(
        negative,
        json!({
            "ios": false, "android": false, "electron": false, "allow_device_self_set": false,
            "disable_auto_update_under_native": true,
            "allow_dev": false, "allow_prod": false, "allow_emulator": false, "allow_device": false
        })
    );
}

#[test]
fn channel_set_pair_given_together_is_a_usage_error() {
    for pair in [["--ios", "--no-ios"], ["--no-ios", "--ios"]] {
        let mut argv = vec!["channel", "set", "production"];
        argv.extend(pair);
        assert_eq!(parse_error(&argv), clap::error::ErrorKind::ArgumentConflict);
    }
}

#[test]
fn channel_set_policies_and_alias() {
    for (arg, sent) in [
        ("major", "major"),
        ("minor", "minor"),
        ("patch", "patch"),
        ("metadata", "metadata"),
        ("version_number", "metadata"),
        ("none", "none"),
    ] {
        assert_eq!(
            channel_set_body(&["--disable-auto-update", arg]).unwrap(),
            json!({"disable_auto_update": sent}),
            "{arg}"
        );
    }
    assert_eq!(
        parse_error(&[
            "channel",
            "set",
            "beta",
            "--disable-auto-update",
            "everything"
        ]),
        clap::error::ErrorKind::InvalidValue
    );
    assert_eq!(
        parse_error(&["channel", "set", "beta", "--state", "public"]),
        clap::error::ErrorKind::InvalidValue
    );
}

#[test]
fn channel_set_without_flags_is_an_error() {
    let error = channel_set_body(&[]).unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::NothingToSet));
}

#[test]
fn channel_state_and_policy_values_are_typed() {
    match client_command(&[
        "channel",
        "set",
        "beta",
        "--state",
        "default",
        "--disable-auto-update",
        "minor",
    ]) {
        Command::Channel(ChannelCommand::Set(set)) => {
            assert_eq!(set.state, Some(ChannelState::Default));
            assert_eq!(set.disable_auto_update, Some(DisableAutoUpdateArg::Minor));
            assert_eq!(set.app_id, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn device_commands() {
    match client_command(&[
        "device",
        "set",
        "ABC-123",
        "com.example.app",
        "--channel",
        "beta",
    ]) {
        Command::Device(DeviceCommand::Set {
            device_id,
            app_id,
            channel,
        }) => {
            assert_eq!(device_id, "ABC-123");
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
            assert_eq!(channel, "beta");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_error(&["device", "set", "abc"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    match client_command(&["device", "unset", "abc"]) {
        Command::Device(DeviceCommand::Unset { device_id, app_id }) => {
            assert_eq!(device_id, "abc");
            assert_eq!(app_id, None);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&[
        "device",
        "list",
        "com.example.app",
        "--search",
        "ab",
        "--custom-id",
        "user-1",
        "--bundle",
        "1.0.0",
        "--limit",
        "10",
    ]) {
        Command::Device(DeviceCommand::List(args)) => {
            assert_eq!(args.app_id.as_deref(), Some("com.example.app"));
            assert_eq!(
                args.query(),
                vec![
                    ("search", "ab".to_string()),
                    ("custom_id", "user-1".to_string()),
                    ("bundle", "1.0.0".to_string()),
                    ("limit", "10".to_string()),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["device", "list"]) {
        Command::Device(DeviceCommand::List(args)) => assert!(args.query().is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_error(&["device", "list", "--limit", "0"]),
        clap::error::ErrorKind::ValueValidation
    );
    match client_command(&["device", "show", "abc", "com.example.app"]) {
        Command::Device(DeviceCommand::Show { device_id, app_id }) => {
            assert_eq!(device_id, "abc");
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["device", "explain", "abc"]) {
        Command::Device(DeviceCommand::Explain { device_id, app_id }) => {
            assert_eq!(device_id, "abc");
            assert_eq!(app_id, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn help_documents_the_flag_pairs_and_hides_the_apikey_value() {
    let mut command = Cli::command();
    // Global options reach subcommands when the command is built.
    command.build();
    let channel_set = command
        .find_subcommand_mut("channel")
        .and_then(|channel| channel.find_subcommand_mut("set"))
        .unwrap();
    let help = channel_set.render_long_help().to_string();
    if std::env::var_os("SHOW_HELP").is_some() {
        println!("{help}");
    }
    for flag in [
        "--no-ios",
        "--self-assign",
        "--no-downgrade",
        "--disable-auto-update <LEVEL>",
        "--state <STATE>",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        help.contains("--apikey <KEY>"),
        "global options are listed on subcommands"
    );
}

#[test]
fn bundle_upload_from_a_path() {
    let Command::Bundle(BundleCommand::Upload(args)) = client_command(&[
        "bundle",
        "upload",
        "com.example.app",
        "--path",
        "dist",
        "--bundle",
        "1.4.3",
        "--channel",
        "production",
        "--key-v2",
        ".capgo_key_v2",
        "--delta",
    ]) else {
        panic!("not a bundle upload");
    };
    assert_eq!(args.path.as_deref(), Some(std::path::Path::new("dist")));
    assert_eq!(
        args.key_v2.as_deref(),
        Some(std::path::Path::new(".capgo_key_v2"))
    );
    assert!(args.delta);
    assert_eq!(args.external, None);
    assert_eq!(args.checksum, None);
}

#[test]
fn bundle_upload_path_conflicts_with_registration_flags() {
    for extra in [
        &["--external", "https://x.test/a.zip"][..],
        &["--session-key", "a:b"][..],
        &["--encrypted-checksum", "ff"][..],
        &["--key-id", "MIIB"][..],
    ] {
        let mut args = vec!["bundle", "upload", "--path", "dist", "--bundle", "1.0.0"];
        args.extend_from_slice(extra);
        assert_eq!(
            parse_error(&args),
            clap::error::ErrorKind::ArgumentConflict,
            "{extra:?}"
        );
    }
    // Encryption and delta files need something to upload.
    assert_eq!(
        parse_error(&[
            "bundle",
            "upload",
            "--bundle",
            "1.0.0",
            "--external",
            "https://x.test/a.zip",
            "--checksum",
            "ff",
            "--delta",
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
}

#[test]
fn key_create_and_gc_parse() {
    let Command::Key(updraft_cli::KeyCommand::Create { dir, force }) =
        client_command(&["key", "create", "--dir", "keys", "--force"])
    else {
        panic!("not key create");
    };
    assert_eq!(dir, std::path::PathBuf::from("keys"));
    assert!(force);
    assert!(matches!(client_command(&["gc"]), Command::Gc));
}

#[test]
fn device_simulate_defaults_and_flags() {
    let Command::Device(DeviceCommand::Simulate(args)) = client_command(&[
        "device",
        "simulate",
        "com.example.app",
        "--platform",
        "ios",
        "--version-build",
        "2.1.0",
        "--channel",
        "beta",
        "--public-key",
        ".capgo_key_v2.pub",
        "--download",
        "manifest",
    ]) else {
        panic!("not device simulate");
    };
    assert_eq!(args.app_id.as_deref(), Some("com.example.app"));
    assert_eq!(args.platform, updraft_cli::args::PlatformArg::Ios);
    assert_eq!(args.version_build, "2.1.0");
    assert_eq!(args.version_name, "builtin");
    assert_eq!(args.channel.as_deref(), Some("beta"));
    assert_eq!(args.download, updraft_cli::args::DownloadMode::Manifest);
    assert_eq!(
        parse_error(&["device", "simulate", "--platform", "windows"]),
        clap::error::ErrorKind::InvalidValue
    );
}

#[test]
fn bundle_upload_key_flags_exclude_each_other() {
    let base = ["bundle", "upload", "--path", "dist", "--bundle", "1.0.0"];
    for extra in [
        &["--no-key", "--key-v2", "k"][..],
        &["--no-key", "--key-data-v2", "PEM"][..],
        &["--key-v2", "k", "--key-data-v2", "PEM"][..],
        &["--delta", "--delta-only"][..],
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        assert_eq!(
            parse_error(&args),
            clap::error::ErrorKind::ArgumentConflict,
            "{extra:?}"
        );
    }
    let mut args = base.to_vec();
    args.extend_from_slice(&["--no-key", "--delta-only"]);
    let Command::Bundle(BundleCommand::Upload(upload)) = client_command(&args) else {
        panic!("not a bundle upload");
    };
    assert!(upload.no_key && upload.delta_only && !upload.delta);
}

// ---- Release safety: rollouts, policies, targeting, history, schedules, compatibility ----

#[test]
fn channel_set_rollout_percent_becomes_basis_points() {
    assert_eq!(
        channel_set_body(&["--rollout-bundle", "1.4.0", "--rollout-percentage", "12.5"]).unwrap(),
        json!({"rollout_bundle": "1.4.0", "rollout_percentage_bps": 1250})
    );
    assert_eq!(
        channel_set_body(&["--rollout-percentage", "0.01"]).unwrap(),
        json!({"rollout_percentage_bps": 1})
    );
    assert_eq!(
        channel_set_body(&["--rollout-percentage", "100"]).unwrap(),
        json!({"rollout_percentage_bps": 10000})
    );
    assert_eq!(
        channel_set_body(&["--rollout-percentage-bps", "250"]).unwrap(),
        json!({"rollout_percentage_bps": 250})
    );
    for bad in ["100.5", "-1", "abc", "NaN"] {
        let flag = format!("--rollout-percentage={bad}");
        assert_eq!(
            parse_error(&["channel", "set", "p", &flag]),
            clap::error::ErrorKind::ValueValidation,
            "{bad}"
        );
    }
    assert_eq!(
        parse_error(&["channel", "set", "p", "--rollout-percentage-bps", "10001"]),
        clap::error::ErrorKind::ValueValidation
    );
    assert_eq!(
        parse_error(&[
            "channel",
            "set",
            "p",
            "--rollout-percentage",
            "5",
            "--rollout-percentage-bps",
            "500"
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
}

#[test]
fn channel_set_rollout_actions() {
    for (flag, action) in [
        ("--rollout-pause", "pause"),
        ("--rollout-resume", "resume"),
        ("--rollout-promote", "promote"),
        ("--rollout-rollback", "rollback"),
    ] {
        assert_eq!(
            channel_set_body(&[flag]).unwrap(),
            json!({"rollout_action": action}),
            "{flag}"
        );
    }
    for pair in [
        ["--rollout-pause", "--rollout-resume"],
        ["--rollout-pause", "--rollout-promote"],
        ["--rollout-resume", "--rollout-rollback"],
        ["--rollout-promote", "--rollout-rollback"],
        ["--rollout-promote", "--bundle"],
    ] {
        let mut args = vec!["channel", "set", "p"];
        args.extend(pair);
        if pair[1] == "--bundle" {
            args.push("1.0.0");
        }
        assert_eq!(
            parse_error(&args),
            clap::error::ErrorKind::ArgumentConflict,
            "{pair:?}"
        );
    }
    assert_eq!(
        parse_error(&[
            "channel",
            "set",
            "p",
            "--rollout-rollback",
            "--rollout-percentage",
            "5"
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
    // Accepting incompatibility goes with a change, and alone changes nothing.
    assert_eq!(
        channel_set_body(&["--bundle", "2.0.0", "--accept-incompatible"]).unwrap(),
        json!({"bundle": "2.0.0", "accept_incompatible": true})
    );
    assert_eq!(
        channel_set_body(&["--accept-incompatible"])
            .unwrap_err()
            .code,
        CliCode::Local(LocalCode::NothingToSet)
    );
}

#[test]
fn channel_set_auto_pause_policy_is_a_partial_object() {
    assert_eq!(
        channel_set_body(&[
            "--auto-pause-enabled",
            "--auto-pause-window-minutes",
            "30",
            "--auto-pause-failure-rate-bps",
            "200",
            "--auto-pause-confidence",
            "0.99",
            "--auto-pause-min-attempts",
            "50",
            "--auto-pause-min-failures",
            "3",
            "--auto-pause-action",
            "rollback",
            "--auto-pause-cooldown-minutes",
            "120",
        ])
        .unwrap(),
        json!({"auto_pause": {
            "enabled": true, "window_minutes": 30, "failure_rate_bps": 200, "confidence": 0.99,
            "min_attempts": 50, "min_failures": 3, "action": "rollback", "cooldown_minutes": 120
        }})
    );
    assert_eq!(
        channel_set_body(&["--auto-pause-disabled"]).unwrap(),
        json!({"auto_pause": {"enabled": false}})
    );
    assert_eq!(
        channel_set_body(&["--auto-pause-action", "notify"]).unwrap(),
        json!({"auto_pause": {"action": "notify"}})
    );
    for (flag, bad) in [
        ("--auto-pause-confidence", "1"),
        ("--auto-pause-confidence", "0"),
        ("--auto-pause-window-minutes", "0"),
        ("--auto-pause-cooldown-minutes", "10081"),
        ("--auto-pause-failure-rate-bps", "10001"),
        ("--auto-pause-action", "explode"),
    ] {
        let kind = parse_error(&["channel", "set", "p", flag, bad]);
        assert!(
            matches!(
                kind,
                clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
            ),
            "{flag} {bad}: {kind:?}"
        );
    }
}

#[test]
fn channel_set_ramp_steps_are_percent_lists() {
    assert_eq!(
        channel_set_body(&[
            "--ramp-enabled",
            "--ramp-steps",
            "1,5,25,100",
            "--ramp-dwell-minutes",
            "60",
            "--ramp-min-attempts",
            "200",
            "--no-ramp-promote",
        ])
        .unwrap(),
        json!({"ramp": {"enabled": true, "steps_bps": [100, 500, 2500, 10000],
            "min_dwell_minutes": 60, "min_attempts": 200, "promote_at_end": false}})
    );
    assert_eq!(
        channel_set_body(&["--ramp-steps", "0.5, 12.5,100"]).unwrap(),
        json!({"ramp": {"steps_bps": [50, 1250, 10000]}})
    );
    for bad in ["5,1,100", "1,5,50", "0,100", "", "1,1,100"] {
        assert_eq!(
            parse_error(&["channel", "set", "p", "--ramp-steps", bad]),
            clap::error::ErrorKind::ValueValidation,
            "{bad:?}"
        );
    }
}

#[test]
fn channel_set_targeting_flags() {
    assert_eq!(
        channel_set_body(&[
            "--target-platform",
            "ios",
            "--target-platform",
            "android",
            "--target-os-version",
            ">=14",
            "--target-native-version",
            ">=1.4, <2",
            "--target-plugin-version",
            ">=8.40",
            "--target-install-source",
            "Google_Play",
            "--target-custom-id",
            "qa-1",
            "--target-custom-id",
            "qa-2",
            "--target-custom-id-prefix",
            "beta-",
            "--target-device",
            "ABC-1",
        ])
        .unwrap(),
        json!({"targeting": {
            "platforms": ["ios", "android"], "os_version": ">=14", "native_version": ">=1.4, <2",
            "plugin_version": ">=8.40", "install_sources": ["google_play"],
            "custom_ids": ["qa-1", "qa-2"], "custom_id_prefix": "beta-", "device_ids": ["abc-1"]
        }})
    );
    assert_eq!(
        channel_set_body(&["--clear-targeting", "--clear-rollout-targeting"]).unwrap(),
        json!({"targeting": {}, "rollout_targeting": {}})
    );
    assert_eq!(
        parse_error(&[
            "channel",
            "set",
            "p",
            "--clear-targeting",
            "--target-platform",
            "ios"
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
    assert_eq!(
        channel_set_body(&[
            "--rollout-target-platform",
            "android",
            "--rollout-target-native-version",
            ">=2",
            "--rollout-target-custom-id",
            "me",
            "--rollout-target-device",
            "DEV-9",
        ])
        .unwrap(),
        json!({"rollout_targeting": {"platforms": ["android"], "native_version": ">=2",
            "custom_ids": ["me"], "device_ids": ["dev-9"]}})
    );
}

#[test]
fn channel_set_rollout_targeting_has_every_channel_criterion() {
    assert_eq!(
        channel_set_body(&[
            "--rollout-target-platform",
            "ios",
            "--rollout-target-os-version",
            ">=17",
            "--rollout-target-native-version",
            ">=2",
            "--rollout-target-plugin-version",
            ">=8.40",
            "--rollout-target-install-source",
            "TestFlight",
            "--rollout-target-install-source",
            "app_store",
            "--rollout-target-custom-id",
            "qa-1",
            "--rollout-target-custom-id-prefix",
            "beta-",
            "--rollout-target-device",
            "DEV-9",
        ])
        .unwrap(),
        json!({"rollout_targeting": {
            "platforms": ["ios"], "os_version": ">=17", "native_version": ">=2",
            "plugin_version": ">=8.40", "install_sources": ["testflight", "app_store"],
            "custom_ids": ["qa-1"], "custom_id_prefix": "beta-", "device_ids": ["dev-9"]
        }})
    );
    for (flag, value) in [
        ("--rollout-target-os-version", ">=17"),
        ("--rollout-target-plugin-version", ">=8"),
        ("--rollout-target-install-source", "app_store"),
        ("--rollout-target-custom-id-prefix", "beta-"),
    ] {
        assert_eq!(
            parse_error(&[
                "channel",
                "set",
                "p",
                "--clear-rollout-targeting",
                flag,
                value
            ]),
            clap::error::ErrorKind::ArgumentConflict,
            "{flag} with --clear-rollout-targeting"
        );
    }
}

#[test]
fn channel_set_new_rollout_criteria_merge_like_the_channel_ones() {
    let Command::Channel(ChannelCommand::Set(set)) = client_command(&[
        "channel",
        "set",
        "p",
        "--rollout-target-os-version",
        ">=17",
        "--rollout-target-custom-id-prefix",
        "beta-",
    ]) else {
        panic!("not channel set");
    };
    assert!(set.merges_targeting());
    let current = json!({
        "name": "p",
        "targeting": {"platforms": ["android"]},
        "rollout": {"bundle": "1.4.0", "targeting": {"os_version": ">=14", "install_sources": ["app_store"]}}
    });
    // The channel's own targeting is not touched; the rollout's os_version is
    // replaced, its install_sources kept, custom_id_prefix added.
    assert_eq!(
        wire(
            set.patch_body_with(Some(&serde_json::from_value(current.clone()).unwrap()))
                .unwrap()
        ),
        json!({"rollout_targeting": {
            "os_version": ">=17", "install_sources": ["app_store"], "custom_id_prefix": "beta-"
        }})
    );
}

#[test]
fn channel_set_targeting_merges_into_the_current_channel() {
    let Command::Channel(ChannelCommand::Set(set)) = client_command(&[
        "channel",
        "set",
        "p",
        "--target-platform",
        "ios",
        "--rollout-target-device",
        "d1",
    ]) else {
        panic!("not channel set");
    };
    assert!(set.merges_targeting());
    let current = json!({
        "name": "p",
        "targeting": {"platforms": ["android"], "os_version": ">=14", "custom_ids": []},
        "rollout": {"bundle": "1.4.0", "targeting": {"native_version": ">=1", "device_ids": ["old"]}}
    });
    assert_eq!(
        wire(
            set.patch_body_with(Some(&serde_json::from_value(current.clone()).unwrap()))
                .unwrap()
        ),
        json!({
            "targeting": {"platforms": ["ios"], "os_version": ">=14", "custom_ids": []},
            "rollout_targeting": {"native_version": ">=1", "device_ids": ["d1"]}
        })
    );
    let Command::Channel(ChannelCommand::Set(plain)) =
        client_command(&["channel", "set", "p", "--clear-targeting"])
    else {
        panic!("not channel set");
    };
    assert!(!plain.merges_targeting());
}

#[test]
fn bundle_upload_rollout_and_compatibility_flags() {
    let Command::Bundle(BundleCommand::Upload(args)) = client_command(&[
        "bundle",
        "upload",
        "--bundle",
        "1.4.0",
        "--external",
        "https://x.test/a.zip",
        "--checksum",
        "ab",
        "--channel",
        "production",
        "--rollout",
        "12.5",
        "--accept-incompatible",
        "--package-json",
        "a/package.json,b/package.json",
        "--node-modules",
        "node_modules",
    ]) else {
        panic!("not an upload");
    };
    assert_eq!(args.rollout_bps(), Some(1250));
    assert_eq!(
        args.package_json.as_deref(),
        Some("a/package.json,b/package.json")
    );
    assert_eq!(
        wire(args.request_body().unwrap()),
        json!({"version": "1.4.0", "external_url": "https://x.test/a.zip", "checksum": "ab",
            "channel": "production", "rollout_percentage_bps": 1250, "accept_incompatible": true})
    );
    let base = [
        "bundle",
        "upload",
        "--bundle",
        "1.4.0",
        "--external",
        "https://x.test/a.zip",
        "--checksum",
        "ab",
    ];
    let with = |extra: &[&'static str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        parse_error(&args)
    };
    // A rollout or an override needs the channel it is about.
    assert_eq!(
        with(&["--rollout", "5"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        with(&["--accept-incompatible"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        with(&[
            "-c",
            "p",
            "--rollout",
            "5",
            "--rollout-percentage-bps",
            "500"
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
    assert_eq!(
        with(&[
            "-c",
            "p",
            "--accept-incompatible",
            "--ignore-metadata-check"
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
    assert_eq!(
        with(&["--ignore-metadata-check", "--package-json", "x"]),
        clap::error::ErrorKind::ArgumentConflict
    );
    assert_eq!(
        with(&["-c", "p", "--rollout", "101"]),
        clap::error::ErrorKind::ValueValidation
    );
}

#[test]
fn bundle_compatibility_parses() {
    match client_command(&[
        "bundle",
        "compatibility",
        "com.example.app",
        "--channel",
        "production",
        "--bundle",
        "1.2.0",
    ]) {
        Command::Bundle(BundleCommand::Compatibility(args)) => {
            assert_eq!(args.app_id.as_deref(), Some("com.example.app"));
            assert_eq!(args.channel, "production");
            assert_eq!(args.bundle.as_deref(), Some("1.2.0"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_error(&["bundle", "compatibility"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        parse_error(&[
            "bundle",
            "compatibility",
            "-c",
            "p",
            "--bundle",
            "1.0.0",
            "--package-json",
            "x"
        ]),
        clap::error::ErrorKind::ArgumentConflict
    );
}

#[test]
fn channel_history_rollback_decisions_show() {
    match client_command(&[
        "channel",
        "history",
        "production",
        "com.x.y",
        "--limit",
        "5",
    ]) {
        Command::Channel(ChannelCommand::History {
            channel,
            app_id,
            limit,
        }) => {
            assert_eq!(
                (channel.as_str(), app_id.as_deref(), limit),
                ("production", Some("com.x.y"), Some(5))
            );
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["channel", "rollback", "production", "--to", "1.2.0"]) {
        Command::Channel(ChannelCommand::Rollback {
            channel,
            app_id,
            to,
            force,
        }) => {
            assert_eq!(
                (channel.as_str(), app_id, to.as_deref(), force),
                ("production", None, Some("1.2.0"), false)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client_command(&["channel", "decisions", "production"]),
        Command::Channel(ChannelCommand::Decisions { limit: None, .. })
    ));
    assert!(matches!(
        client_command(&["channel", "show", "production", "com.x.y"]),
        Command::Channel(ChannelCommand::Show { .. })
    ));
}

#[test]
fn schedule_commands_and_times() {
    use updraft_cli::args::{RunAt, ScheduleCommand};
    let Command::Schedule(ScheduleCommand::Add(add)) = client_command(&[
        "schedule",
        "add",
        "production",
        "com.x.y",
        "--bundle",
        "1.5.0",
        "--at",
        "+30m",
        "--rollout",
        "5",
        "--accept-incompatible",
    ]) else {
        panic!("not schedule add");
    };
    assert_eq!(add.at, RunAt::In(30 * 60_000));
    assert_eq!(
        wire(add.request_body(1_000)),
        json!({"channel": "production", "bundle": "1.5.0", "run_at": 1_000 + 30 * 60_000,
            "rollout_percentage_bps": 500, "accept_incompatible": true})
    );
    let at = |text: &str| match client_command(&[
        "schedule", "add", "p", "--bundle", "1.0.0", "--at", text,
    ]) {
        Command::Schedule(ScheduleCommand::Add(add)) => add.at,
        other => panic!("{other:?}"),
    };
    assert_eq!(at("+2s"), RunAt::In(2_000));
    assert_eq!(at("+2h"), RunAt::In(7_200_000));
    assert_eq!(at("+1d"), RunAt::In(86_400_000));
    assert_eq!(at("1767225600000"), RunAt::At(1_767_225_600_000));
    assert_eq!(
        at("2026-12-01T09:00:00Z"),
        RunAt::Text("2026-12-01T09:00:00Z".into())
    );
    for bad in ["+2y", "tomorrow", "+", "2026-12-01"] {
        assert_eq!(
            parse_error(&["schedule", "add", "p", "--bundle", "1.0.0", "--at", bad]),
            clap::error::ErrorKind::ValueValidation,
            "{bad}"
        );
    }
    assert!(matches!(
        client_command(&["schedule", "list"]),
        Command::Schedule(ScheduleCommand::List { app_id: None })
    ));
    assert!(matches!(
        client_command(&["schedule", "cancel", "7", "com.x.y"]),
        Command::Schedule(ScheduleCommand::Cancel { id: 7, .. })
    ));
}

#[test]
fn audit_and_webhook_commands() {
    use updraft_cli::ops::WebhookCommand;
    match client_command(&[
        "audit",
        "com.example.app",
        "--action",
        "channel.",
        "--actor",
        "key:ci",
        "--since",
        "7d",
        "--limit",
        "10",
    ]) {
        Command::Audit(args) => {
            assert_eq!(args.app_id.as_deref(), Some("com.example.app"));
            assert_eq!(args.action.as_deref(), Some("channel."));
            assert_eq!(args.actor.as_deref(), Some("key:ci"));
            assert_eq!(args.since.as_deref(), Some("7d"));
            assert_eq!(args.limit, 10);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&["audit"]) {
        Command::Audit(args) => {
            assert_eq!(args.app_id, None);
            assert_eq!(args.limit, 50);
        }
        other => panic!("{other:?}"),
    }
    match client_command(&[
        "webhook",
        "add",
        "https://hooks.example.com/x",
        "--app",
        "com.example.app",
        "--event",
        "bundle.uploaded",
        "--event",
        "rollout.paused",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]) {
        Command::Webhook(WebhookCommand::Add {
            url,
            app_id,
            events,
            secret,
            disabled,
        }) => {
            assert_eq!(url, "https://hooks.example.com/x");
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
            assert_eq!(events, vec!["bundle.uploaded", "rollout.paused"]);
            assert_eq!(
                secret.as_deref(),
                Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            );
            assert!(!disabled);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client_command(&["webhook", "list"]),
        Command::Webhook(WebhookCommand::List { app_id: None })
    ));
    for (sub, expected) in [("delete", "3"), ("test", "3"), ("deliveries", "3")] {
        match client_command(&["webhook", sub, "3"]) {
            Command::Webhook(WebhookCommand::Delete { id })
            | Command::Webhook(WebhookCommand::Test { id })
            | Command::Webhook(WebhookCommand::Deliveries { id, .. }) => {
                assert_eq!(id, expected)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn capgo_style_encrypted_external_upload_needs_no_plain_checksum() {
    let command = client_command(&[
        "bundle",
        "upload",
        "--bundle",
        "1.5.0",
        "--external",
        "https://x.test/a.zip",
        "--iv-session-key",
        "aXY=:a2V5",
        "--encrypted-checksum",
        "cd34",
    ]);
    let Command::Bundle(BundleCommand::Upload(args)) = command else {
        panic!("{command:?}");
    };
    assert_eq!(
        wire(args.request_body().unwrap()),
        json!({"version": "1.5.0", "external_url": "https://x.test/a.zip",
            "session_key": "aXY=:a2V5", "encrypted_checksum": "cd34"})
    );
    // An encrypted checksum without a session key is no encrypted bundle.
    let command = client_command(&[
        "bundle",
        "upload",
        "--bundle",
        "1.5.0",
        "--external",
        "https://x.test/a.zip",
        "--encrypted-checksum",
        "cd34",
    ]);
    let Command::Bundle(BundleCommand::Upload(args)) = command else {
        panic!("{command:?}");
    };
    let error = args.request_body().unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::InvalidArgument));
    assert!(
        error.message.contains("--iv-session-key"),
        "{}",
        error.message
    );
}

#[test]
fn upload_create_channel_needs_a_channel_and_is_sent() {
    assert_eq!(
        parse_error(&[
            "bundle",
            "upload",
            "--bundle",
            "1.0.0",
            "--external",
            "https://x.test/a.zip",
            "--checksum",
            "ff",
            "--create-channel",
        ]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    let command = client_command(&[
        "bundle",
        "upload",
        "--bundle",
        "1.0.0",
        "--external",
        "https://x.test/a.zip",
        "--checksum",
        "ff",
        "--channel",
        "nightly",
        "--create-channel",
    ]);
    let Command::Bundle(BundleCommand::Upload(args)) = command else {
        panic!("{command:?}");
    };
    assert_eq!(
        wire(args.request_body().unwrap())["create_channel"],
        json!(true)
    );
}

#[test]
fn channel_set_and_rollback_take_force() {
    match client_command(&["channel", "rollback", "production", "--force"]) {
        Command::Channel(ChannelCommand::Rollback { force, .. }) => assert!(force),
        other => panic!("{other:?}"),
    }
    match client_command(&[
        "channel",
        "set",
        "production",
        "--bundle",
        "1.0.0",
        "--force",
    ]) {
        Command::Channel(ChannelCommand::Set(args)) => assert!(args.force),
        other => panic!("{other:?}"),
    }
}

#[test]
fn given_tells_chosen_options_from_defaults() {
    use updraft_cli::Given;
    let given = |args: &[&str]| {
        let argv = std::iter::once("updraft").chain(args.iter().copied());
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        Given::from_matches(&matches)
    };
    let none = Given::default();
    assert_eq!(given(&["apikey", "list"]), none);
    assert_eq!(
        given(&["apikey", "list", "--data-dir", "d"]),
        Given {
            server: false,
            store: true
        }
    );
    assert_eq!(
        given(&["--server", "http://x", "apikey", "list"]),
        Given {
            server: true,
            store: false
        }
    );
    assert_eq!(
        given(&["apikey", "list", "--server", "http://x"]),
        Given {
            server: true,
            store: false
        }
    );
    assert!(given(&["apikey", "list", "--database-url", "postgres://h/d"]).store);
    assert!(!given(&["apikey", "list", "--database-url", " "]).store);
}

#[test]
fn login_logout_and_whoami() {
    match parse(&[
        "login",
        "--server",
        "https://u.example.com",
        "--apikey-stdin",
    ]) {
        Cli {
            global,
            command: Top::Client(Command::Login(args)),
        } => {
            assert!(args.apikey_stdin);
            assert_eq!(global.server, "https://u.example.com");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(client_command(&["logout"]), Command::Logout));
    assert!(matches!(client_command(&["whoami"]), Command::Whoami));
}
