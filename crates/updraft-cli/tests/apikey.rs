//! Offline API key commands against a real SQLite store in a temporary data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

use serde_json::{json, Value};
use updraft_api::ErrorCode;
use updraft_cli::args::{ApikeyCreateArgs, RoleArg};
use updraft_cli::{execute, ApikeyCommand, Command, GlobalOpts, Outcome};
use updraft_cli::{CliCode, LocalCode};
use updraft_store::ApiKeyStore;

fn global(data_dir: &std::path::Path) -> GlobalOpts {
    GlobalOpts {
        // Offline commands must not need a server or a key.
        server: "http://127.0.0.1:9".into(),
        apikey: None,
        json: true,
        wide: false,
        data_dir: data_dir.to_path_buf(),
        // Named explicitly, as `--data-dir` does: the offline path.
        database_url: None,
        given: updraft_cli::Given {
            server: false,
            store: true,
        },
    }
}

async fn apikey(
    data_dir: &std::path::Path,
    command: ApikeyCommand,
) -> Result<Outcome, updraft_cli::CliError> {
    execute(&global(data_dir), Command::Apikey(command), data_dir).await
}

fn create(
    name: &str,
    role: RoleArg,
    app_id: Option<&str>,
    expires_in_days: Option<u32>,
) -> ApikeyCommand {
    ApikeyCommand::Create(ApikeyCreateArgs {
        name: name.into(),
        role,
        app_id: app_id.map(str::to_string),
        expires_in_days,
    })
}

#[tokio::test]
async fn create_prints_a_working_key_once() {
    let root = tempfile::tempdir().unwrap();
    // A data directory that does not exist yet is created, and said so.
    let data_dir = root.path().join("nested").join("data");
    let first = apikey(&data_dir, create("admin", RoleArg::Admin, None, None))
        .await
        .unwrap();
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w.contains("created a new, empty Updraft database")),
        "{:?}",
        first.warnings
    );
    let again = apikey(&data_dir, create("second", RoleArg::Admin, None, None))
        .await
        .unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    {
        use updraft_store::AppStore;
        let store = updraft_store::SqliteStore::open(&data_dir).await.unwrap();
        store
            .create_app("com.example.app", "Example", 1)
            .await
            .unwrap();
    }
    let outcome = apikey(
        &data_dir,
        create("ci", RoleArg::Publisher, Some("com.example.app"), Some(30)),
    )
    .await
    .unwrap();

    let secret = outcome.json["key"].as_str().unwrap().to_string();
    assert_eq!(outcome.text, secret, "plain mode prints just the key");
    assert!(outcome.note.as_deref().unwrap().contains("shown only once"));
    assert_eq!(outcome.json["name"], "ci");
    assert_eq!(outcome.json["role"], "publisher");
    assert_eq!(outcome.json["app_id"], "com.example.app");
    assert!(outcome.json["id"].as_i64().is_some());
    assert!(outcome.json["expires_at"].is_string());
    assert_eq!(outcome.json["revoked_at"], Value::Null);

    // The secret is what the server will look up.
    let store = updraft_store::SqliteStore::open(&data_dir).await.unwrap();
    let found = store.find_api_key(&secret).await.unwrap().unwrap();
    assert_eq!(found.name, "ci");
    assert_eq!(found.app_id.as_deref(), Some("com.example.app"));
    let expires_at = found.expires_at.unwrap();
    let thirty_days = 30 * 86_400_000;
    assert!((expires_at - found.created_at - thirty_days).abs() < 60_000);
}

#[tokio::test]
async fn list_then_revoke_by_name_and_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let first = apikey(dir.path(), create("admin", RoleArg::Admin, None, None))
        .await
        .unwrap();
    apikey(dir.path(), create("viewer", RoleArg::Viewer, None, None))
        .await
        .unwrap();

    let revoked = apikey(
        dir.path(),
        ApikeyCommand::Revoke {
            id_or_name: "viewer".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(revoked.json, json!({"status": "ok"}));
    assert!(
        revoked.text.starts_with("Revoked API key "),
        "{}",
        revoked.text
    );

    let first_id = first.json["id"].as_i64().unwrap().to_string();
    apikey(
        dir.path(),
        ApikeyCommand::Revoke {
            id_or_name: first_id,
        },
    )
    .await
    .unwrap();

    let list = apikey(dir.path(), ApikeyCommand::List).await.unwrap();
    let keys = list.json["apikeys"].as_array().unwrap();
    let mut names: Vec<&str> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["admin", "viewer"]);
    assert!(keys.iter().all(|k| k["revoked_at"].is_string()));
    assert!(
        keys.iter().all(|k| k.get("key").is_none()),
        "secrets are never listed"
    );
    let table_rows: Vec<&str> = list.text.lines().skip(1).collect();
    assert_eq!(table_rows.len(), 2);
    assert!(
        table_rows.iter().all(|row| row.ends_with("revoked")),
        "{}",
        list.text
    );
}

#[tokio::test]
async fn revoking_an_unknown_key_is_apikey_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let error = apikey(
        dir.path(),
        ApikeyCommand::Revoke {
            id_or_name: "nobody".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, CliCode::Api(ErrorCode::ApikeyNotFound));
    assert_eq!(error.message, "no API key with id or name \"nobody\"");
}

#[tokio::test]
async fn duplicate_and_blank_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    apikey(dir.path(), create("ci", RoleArg::Admin, None, None))
        .await
        .unwrap();
    let duplicate = apikey(dir.path(), create("ci", RoleArg::Admin, None, None))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code, CliCode::Api(ErrorCode::ApikeyAlreadyExists));
    assert_eq!(duplicate.message, "an API key named \"ci\" already exists");
    let blank = apikey(dir.path(), create("  ", RoleArg::Admin, None, None))
        .await
        .unwrap_err();
    assert_eq!(blank.code, CliCode::Local(LocalCode::InvalidArgument));
}

#[tokio::test]
async fn empty_list_suggests_creating_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let list = apikey(dir.path(), ApikeyCommand::List).await.unwrap();
    assert_eq!(list.json, json!({"apikeys": []}));
    assert!(list.text.contains("updraft apikey create"));
}

#[tokio::test]
async fn run_returns_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        updraft_cli::run(global(dir.path()), Command::Apikey(ApikeyCommand::List)).await,
        0
    );
    let revoke_unknown = Command::Apikey(ApikeyCommand::Revoke {
        id_or_name: "nobody".into(),
    });
    assert_eq!(
        updraft_cli::run(global(dir.path()), revoke_unknown).await,
        1
    );
}

#[tokio::test]
async fn a_key_limited_to_an_unknown_app_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let error = apikey(
        dir.path(),
        create("ci", RoleArg::Publisher, Some("com.example.missing"), None),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, CliCode::Api(ErrorCode::AppNotFound));
    assert!(
        error.message.contains("com.example.missing") && error.message.contains("updraft app add"),
        "{}",
        error.message
    );
    let malformed = apikey(
        dir.path(),
        create("ci", RoleArg::Publisher, Some("nodots"), None),
    )
    .await
    .unwrap_err();
    assert_eq!(malformed.code, CliCode::Api(ErrorCode::InvalidAppId));
    let list = apikey(dir.path(), ApikeyCommand::List).await.unwrap();
    assert_eq!(list.json, json!({"apikeys": []}));
}

#[tokio::test]
async fn a_default_data_directory_that_is_not_there_is_not_created() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("updraft-data");
    let mut not_named = global(&data_dir);
    not_named.given.store = false;
    let error = execute(
        &not_named,
        Command::Apikey(ApikeyCommand::List),
        root.path(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, CliCode::Local(LocalCode::ServerNotConfigured));
    assert!(!data_dir.exists(), "nothing is created");

    // Once it exists (a server made it), the command works on it and says so.
    apikey(&data_dir, create("admin", RoleArg::Admin, None, None))
        .await
        .unwrap();
    let list = execute(
        &not_named,
        Command::Apikey(ApikeyCommand::List),
        root.path(),
    )
    .await
    .unwrap();
    assert_eq!(list.json["apikeys"].as_array().unwrap().len(), 1);
    assert!(
        list.warnings
            .iter()
            .any(|w| w.contains("no server configured")),
        "{:?}",
        list.warnings
    );
}
