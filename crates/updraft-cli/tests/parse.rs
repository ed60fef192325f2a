//! Command-line parsing, through a wrapper shaped like the `updraft` binary's.

use clap::{CommandFactory, Parser};
use serde_json::json;
use updraft_cli::args::{ChannelState, DisableAutoUpdateArg, RoleArg};
use updraft_cli::{
    ApikeyCommand, AppCommand, BundleCommand, ChannelCommand, Command, DeviceCommand, GlobalOpts,
};

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
        Command::App(AppCommand::Delete { app_id }) => assert_eq!(app_id, "com.example.app"),
        other => panic!("{other:?}"),
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
        args.request_body().unwrap(),
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
        args.request_body().unwrap(),
        json!({"version": "2.0.0", "external_url": "https://x.test/a.zip", "checksum": "ff"})
    );
}

#[test]
fn bundle_upload_argument_errors() {
    assert_eq!(
        parse_error(&["bundle", "upload", "--bundle", "1.0.0", "--checksum", "ff"]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        parse_error(&[
            "bundle",
            "upload",
            "--bundle",
            "1.0.0",
            "--external",
            "https://x.test/a.zip"
        ]),
        clap::error::ErrorKind::MissingRequiredArgument
    );
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
        Command::Bundle(BundleCommand::Delete { version, app_id }) => {
            assert_eq!(version, "1.0.0");
            assert_eq!(app_id.as_deref(), Some("com.example.app"));
        }
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
        Command::Channel(ChannelCommand::Delete { channel, app_id }) => {
            assert_eq!(channel, "beta");
            assert_eq!(app_id, None);
        }
        other => panic!("{other:?}"),
    }
}

fn channel_set_body(flags: &[&str]) -> Result<serde_json::Value, updraft_cli::CliError> {
    let mut args = vec!["channel", "set", "production", "com.example.app"];
    args.extend_from_slice(flags);
    match client_command(&args) {
        Command::Channel(ChannelCommand::Set(set)) => {
            assert_eq!(set.channel, "production");
            assert_eq!(set.app_id.as_deref(), Some("com.example.app"));
            set.patch_body()
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
fn channel_set_last_of_a_pair_wins() {
    assert_eq!(
        channel_set_body(&["--ios", "--no-ios"]).unwrap(),
        json!({"ios": false})
    );
    assert_eq!(
        channel_set_body(&["--no-ios", "--ios"]).unwrap(),
        json!({"ios": true})
    );
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
    assert_eq!(error.code, "nothing_to_set");
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
