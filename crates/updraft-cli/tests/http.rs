//! Commands against a scripted HTTP server: what goes on the wire, and how
//! answers (good and bad) come back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use updraft_api::ErrorCode;
use updraft_cli::args::{ChannelSetArgs, DeviceListArgs};
use updraft_cli::{
    execute, AppCommand, BundleCommand, ChannelCommand, Command, DeviceCommand, GlobalOpts,
};
use updraft_cli::{CliCode, LocalCode};

#[derive(Debug)]
struct Recorded {
    /// e.g. `PATCH /api/v1/apps/x/channels/y HTTP/1.1`
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json_body(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Answers each incoming request with the next scripted (status, body) and records it.
struct FakeServer {
    url: String,
    requests: mpsc::Receiver<Recorded>,
}

impl FakeServer {
    fn start(responses: Vec<(u16, &'static str)>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, requests) = mpsc::channel();
        thread::spawn(move || {
            for (status, body) in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (key, value) = line.split_once(':').unwrap();
                    headers.push((key.trim().to_string(), value.trim().to_string()));
                }
                let length: usize = headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
                    .map(|(_, value)| value.parse().unwrap())
                    .unwrap_or(0);
                let mut request_body = vec![0; length];
                reader.read_exact(&mut request_body).unwrap();
                let mut stream = reader.into_inner();
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).unwrap();
                let recorded = Recorded {
                    request_line: request_line.trim_end().to_string(),
                    headers,
                    body: String::from_utf8(request_body).unwrap(),
                };
                if sender.send(recorded).is_err() {
                    return;
                }
            }
        });
        FakeServer { url, requests }
    }

    fn next_request(&self) -> Recorded {
        self.requests
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap()
    }
}

fn global(server: &str, apikey: Option<&str>) -> GlobalOpts {
    GlobalOpts {
        server: server.to_string(),
        apikey: apikey.map(str::to_string),
        json: false,
        wide: false,
        data_dir: PathBuf::from("./unused-data-dir"),
        database_url: None,
        given: updraft_cli::Given {
            server: true,
            store: false,
        },
    }
}

fn empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// An address nothing listens on: bound, then released.
fn dead_server_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

async fn run_against(
    server: &FakeServer,
    command: Command,
    work_dir: &Path,
) -> Result<updraft_cli::Outcome, updraft_cli::CliError> {
    execute(
        &global(&server.url, Some("upd_test_key")),
        command,
        work_dir,
    )
    .await
}

#[tokio::test]
async fn app_list_sends_the_bearer_key_and_returns_the_server_json() {
    let server = FakeServer::start(vec![(
        200,
        r#"{"apps": [{"app_id": "com.example.app", "name": "Example", "expose_metadata": true, "created_at": "2024-05-01T12:30:00Z"}]}"#,
    )]);
    let dir = empty_dir();
    let outcome = run_against(&server, Command::App(AppCommand::List), dir.path())
        .await
        .unwrap();
    let request = server.next_request();
    assert_eq!(request.request_line, "GET /api/v1/apps HTTP/1.1");
    assert_eq!(request.header("authorization"), Some("Bearer upd_test_key"));
    assert_eq!(outcome.json["apps"][0]["app_id"], "com.example.app");
    assert!(outcome.text.starts_with("APP ID"), "{}", outcome.text);
    assert!(
        outcome.text.contains("com.example.app  Example"),
        "{}",
        outcome.text
    );
}

/// An older CLI against a newer server: fields it does not know (on the
/// answer and on its items) are ignored by the typed reading and kept in
/// the `--json` output.
#[tokio::test]
async fn answers_with_fields_this_cli_does_not_know_still_read() {
    let server = FakeServer::start(vec![(
        200,
        r#"{"apps": [{"app_id": "com.example.app", "name": "Example", "expose_metadata": true,
            "created_at": "2024-05-01T12:30:00Z", "region": "eu-west", "limits": {"devices": 5}}],
            "next_cursor": "abc"}"#,
    )]);
    let dir = empty_dir();
    let outcome = run_against(&server, Command::App(AppCommand::List), dir.path())
        .await
        .unwrap();
    assert!(
        outcome.text.contains("com.example.app  Example"),
        "{}",
        outcome.text
    );
    assert_eq!(outcome.json["apps"][0]["region"], "eu-west");
    assert_eq!(outcome.json["next_cursor"], "abc");
}

/// A newer server's error code this CLI has no name for is passed on as it is.
#[tokio::test]
async fn unknown_error_codes_are_passed_on() {
    let server = FakeServer::start(vec![(
        402,
        r#"{"error": "plan_limit_reached", "message": "the plan allows 5 apps", "limit": 5}"#,
    )]);
    let dir = empty_dir();
    let error = run_against(&server, Command::App(AppCommand::List), dir.path())
        .await
        .unwrap_err();
    assert_eq!(
        error.code,
        CliCode::Api(ErrorCode::Other("plan_limit_reached".into()))
    );
    assert_eq!(error.message, "the plan allows 5 apps");
}

#[tokio::test]
async fn app_add_posts_id_and_name() {
    let server = FakeServer::start(vec![(
        201,
        r#"{"app_id": "com.example.app", "name": "Example", "expose_metadata": true, "created_at": "2024-05-01T12:30:00Z"}"#,
    )]);
    let dir = empty_dir();
    let command = Command::App(AppCommand::Add {
        app_id: "com.example.app".into(),
        name: Some("Example".into()),
    });
    let outcome = run_against(&server, command, dir.path()).await.unwrap();
    let request = server.next_request();
    assert_eq!(request.request_line, "POST /api/v1/apps HTTP/1.1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json_body(),
        json!({"app_id": "com.example.app", "name": "Example"})
    );
    assert_eq!(outcome.text, "Created app com.example.app (Example).");
}

#[tokio::test]
async fn deletes_answer_status_ok_in_json() {
    let server = FakeServer::start(vec![(204, "")]);
    let dir = empty_dir();
    let command = Command::Bundle(BundleCommand::Delete {
        version: "1.0.0+build/7".into(),
        app_id: Some("com.example.app".into()),
        force: false,
    });
    let outcome = run_against(&server, command, dir.path()).await.unwrap();
    let request = server.next_request();
    assert_eq!(
        request.request_line,
        "DELETE /api/v1/apps/com.example.app/bundles/1.0.0%2Bbuild%2F7 HTTP/1.1"
    );
    assert_eq!(outcome.json, json!({"status": "ok"}));
}

#[tokio::test]
async fn forced_bundle_delete_sends_force_true() {
    let server = FakeServer::start(vec![(204, "")]);
    let dir = empty_dir();
    let command = Command::Bundle(BundleCommand::Delete {
        version: "1.0.0".into(),
        app_id: Some("com.example.app".into()),
        force: true,
    });
    run_against(&server, command, dir.path()).await.unwrap();
    let request = server.next_request();
    assert_eq!(
        request.request_line,
        "DELETE /api/v1/apps/com.example.app/bundles/1.0.0?force=true HTTP/1.1"
    );
}

fn channel_set(channel: &str, app_id: Option<&str>, flags: &[&str]) -> ChannelSetArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        set: ChannelSetArgs,
    }
    let mut argv = vec!["set".to_string(), channel.to_string()];
    argv.extend(app_id.map(str::to_string));
    argv.extend(flags.iter().map(|f| f.to_string()));
    Wrapper::try_parse_from(argv).unwrap().set
}

#[tokio::test]
async fn channel_set_patches_the_encoded_channel_path_with_only_given_fields() {
    let server = FakeServer::start(vec![(
        200,
        r#"{"id": 3, "name": "beta test/x", "bundle": "builtin", "public": true, "ios": false, "android": true,
            "electron": true, "allow_device_self_set": false, "allow_emulator": true, "allow_device": true,
            "allow_dev": true, "allow_prod": true, "disable_auto_update": "major",
            "disable_auto_update_under_native": true, "targeting": {}, "rollout": null,
            "auto_pause": {"enabled": false, "window_minutes": 60, "failure_rate_bps": 500, "confidence": 0.95,
                "min_attempts": 100, "min_failures": 5, "action": "pause", "cooldown_minutes": 60},
            "ramp": {"enabled": false, "steps_bps": [], "min_dwell_minutes": 60, "min_attempts": 100,
                "promote_at_end": false},
            "created_at": "2024-05-01T12:30:00Z", "updated_at": "2024-05-01T12:30:00Z"}"#,
    )]);
    let dir = empty_dir();
    let args = channel_set(
        "beta test/x",
        Some("com.example.app"),
        &["--state", "default", "--no-ios"],
    );
    let outcome = run_against(
        &server,
        Command::Channel(ChannelCommand::Set(args)),
        dir.path(),
    )
    .await
    .unwrap();
    let request = server.next_request();
    assert_eq!(
        request.request_line,
        "PATCH /api/v1/apps/com.example.app/channels/beta%20test%2Fx HTTP/1.1"
    );
    assert_eq!(request.json_body(), json!({"public": true, "ios": false}));
    assert_eq!(
        outcome.text,
        "Updated channel beta test/x of com.example.app: bundle builtin, default, platforms android,electron, \
         self-assign no, disable auto update major, downgrade no, serves dev,prod,emulator,device."
    );
}

#[tokio::test]
async fn app_id_comes_from_capacitor_config_when_omitted() {
    let server = FakeServer::start(vec![(200, r#"{"devices": [], "total": 0}"#)]);
    let dir = empty_dir();
    std::fs::write(
        dir.path().join("capacitor.config.json"),
        r#"{"appId": "com.from.config", "plugins": {"CapacitorUpdater": {"appId": "com.from.updater"}}}"#,
    )
    .unwrap();
    let args = DeviceListArgs {
        app_id: None,
        search: Some("a b".into()),
        custom_id: None,
        bundle: None,
        limit: Some(5),
        offset: None,
    };
    let outcome = run_against(
        &server,
        Command::Device(DeviceCommand::List(args)),
        dir.path(),
    )
    .await
    .unwrap();
    let request = server.next_request();
    assert_eq!(
        request.request_line,
        "GET /api/v1/apps/com.from.updater/devices?search=a+b&limit=5 HTTP/1.1"
    );
    assert_eq!(outcome.text, "No devices.");
}

#[tokio::test]
async fn device_set_puts_the_channel() {
    let server = FakeServer::start(vec![(
        200,
        r#"{"device_id": "abc-1", "channel": "beta", "source": "admin", "created_at": "2024-05-01T12:30:00Z"}"#,
    )]);
    let dir = empty_dir();
    let command = Command::Device(DeviceCommand::Set {
        device_id: "abc-1".into(),
        app_id: Some("com.example.app".into()),
        channel: "beta".into(),
    });
    let outcome = run_against(&server, command, dir.path()).await.unwrap();
    let request = server.next_request();
    assert_eq!(
        request.request_line,
        "PUT /api/v1/apps/com.example.app/devices/abc-1/channel HTTP/1.1"
    );
    assert_eq!(request.json_body(), json!({"channel": "beta"}));
    assert_eq!(
        outcome.text,
        "Device abc-1 of com.example.app now gets channel beta."
    );
}

#[tokio::test]
async fn server_error_body_becomes_the_error() {
    let server = FakeServer::start(vec![(
        409,
        r#"{"error": "channel_already_exists", "message": "channel beta already exists"}"#,
    )]);
    let dir = empty_dir();
    let command = Command::Channel(ChannelCommand::Add {
        channel: "beta".into(),
        app_id: Some("com.example.app".into()),
        default: true,
    });
    let error = run_against(&server, command, dir.path()).await.unwrap_err();
    let request = server.next_request();
    assert_eq!(request.json_body(), json!({"name": "beta", "public": true}));
    assert_eq!(error.code, CliCode::Api(ErrorCode::ChannelAlreadyExists));
    assert_eq!(error.message, "channel beta already exists");
}

#[tokio::test]
async fn error_without_json_body_is_http_status() {
    let server = FakeServer::start(vec![(503, "")]);
    let dir = empty_dir();
    let error = run_against(&server, Command::App(AppCommand::List), dir.path())
        .await
        .unwrap_err();
    assert_eq!(error.code, CliCode::Http(503));
}

#[tokio::test]
async fn unreachable_server_is_connection_failed() {
    let url = dead_server_url();
    let dir = empty_dir();
    let error = execute(
        &global(&url, Some("k")),
        Command::App(AppCommand::List),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::ConnectionFailed));
    assert!(
        error
            .message
            .starts_with(&format!("cannot reach the Updraft server at {url}: ")),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn missing_apikey_is_reported_before_any_request() {
    let url = dead_server_url();
    let dir = empty_dir();
    let error = execute(
        &global(&url, None),
        Command::App(AppCommand::List),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::MissingApikey));
}

#[tokio::test]
async fn missing_app_id_is_reported_before_any_request() {
    let url = dead_server_url();
    let dir = empty_dir();
    let command = Command::Channel(ChannelCommand::List { app_id: None });
    let error = execute(&global(&url, Some("k")), command, dir.path())
        .await
        .unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::MissingAppId));
}

#[tokio::test]
async fn success_with_non_json_body_is_invalid_response() {
    let server = FakeServer::start(vec![(200, "<html>proxy login</html>")]);
    let dir = empty_dir();
    let error = run_against(&server, Command::App(AppCommand::List), dir.path())
        .await
        .unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::InvalidResponse));
}

fn compatibility_command(bundle: &str) -> Command {
    Command::Bundle(BundleCommand::Compatibility(
        updraft_cli::args::BundleCompatibilityArgs {
            app_id: Some("com.example.app".into()),
            channel: "production".into(),
            bundle: Some(bundle.into()),
            package_json: None,
            node_modules: None,
        },
    ))
}

const INCOMPATIBLE_REPORT: &str = r#"{"channel": "production", "bundle": "1.1.0", "live_bundle": "1.0.0", "compatible": false,
    "live_known": true, "bundle_known": true, "packages": [{"name": "@capacitor/camera",
    "bundle_version": "7.0.0", "live_version": "6.0.0", "compatible": false, "reason": "version_mismatch"}]}"#;

#[tokio::test]
async fn incompatible_report_is_the_result_and_a_failure() {
    let server = FakeServer::start(vec![(200, INCOMPATIBLE_REPORT)]);
    let dir = empty_dir();
    let outcome = run_against(&server, compatibility_command("1.1.0"), dir.path())
        .await
        .unwrap();
    let request = server.next_request();
    assert_eq!(
        request.request_line,
        "GET /api/v1/apps/com.example.app/channels/production/compatibility?bundle=1.1.0 HTTP/1.1"
    );
    // The report itself is printed (the JSON unchanged), and the command fails.
    assert_eq!(
        outcome.json,
        serde_json::from_str::<Value>(INCOMPATIBLE_REPORT).unwrap()
    );
    assert!(
        outcome.text.contains("version_mismatch"),
        "{}",
        outcome.text
    );
    let failure = outcome.failure.expect("an incompatible bundle fails");
    assert_eq!(failure.code, CliCode::Api(ErrorCode::IncompatibleBundle));
    assert!(
        failure
            .message
            .contains("@capacitor/camera (version_mismatch)"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("--accept-incompatible"));
}

#[tokio::test]
async fn run_exits_5_for_incompatible_and_0_for_compatible_or_unknown() {
    let compatible = r#"{"channel": "production", "bundle": "1.1.0", "live_bundle": "1.0.0", "compatible": true,
        "live_known": true, "bundle_known": true, "packages": []}"#;
    let live_unknown = r#"{"channel": "production", "bundle": "1.1.0", "live_bundle": "1.0.0", "compatible": true,
        "live_known": false, "bundle_known": true, "packages": []}"#;
    for (body, expected_code) in [(INCOMPATIBLE_REPORT, 5), (compatible, 0), (live_unknown, 0)] {
        let server = FakeServer::start(vec![(200, body)]);
        let code = updraft_cli::run(
            global(&server.url, Some("upd_test_key")),
            compatibility_command("1.1.0"),
        )
        .await;
        assert_eq!(code, expected_code, "{body}");
    }
}
