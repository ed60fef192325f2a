//! `updraft apikey …`: to the server's management API, or directly to its
//! database ([`crate::offline`]), chosen by [`choose`]:
//!
//! 1. `--data-dir`/`--database-url` (flag or environment) → that database;
//! 2. else a configured server (`--server`, `UPDRAFT_SERVER`, the login
//!    file) → the server, unless it does not answer and the local database
//!    exists, which is then used (said on stderr);
//! 3. else the local database when it exists (said on stderr), or a refusal.
//!
//! A local database is never created on the way: only case 1 makes one,
//! and says so.

use crate::args::{ApikeyCommand, ApikeyCreateArgs, GlobalOpts, RoleArg};
use crate::client::ApiClient;
use crate::error::{CliCode, CliError, LocalCode};
use crate::offline::{self, offline_store_exists, offline_store_name};
use crate::output::Outcome;
use crate::time::now_millis;
use std::time::Duration;
use updraft_api::{ApiKeyList, ApiKeyView, CreateApiKey, CreatedApiKey, ErrorCode};

/// How long a configured server has to answer before a local database is used instead.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a key command goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server's management API.
    Server,
    /// The database directly, with the notice to print (why, when it was not asked for).
    Offline(Option<String>),
}

/// Case 1 and 3 of the module's rules; `None` = ask the server (case 2),
/// which [`choose`] decides with a probe.
pub fn plan(global: &GlobalOpts, local_exists: bool) -> Result<Option<Target>, CliError> {
    if global.given.store {
        return Ok(Some(Target::Offline(None)));
    }
    if global.given.server {
        return Ok(None);
    }
    if local_exists {
        return Ok(Some(Target::Offline(Some(format!(
            "note: no server configured (--server, UPDRAFT_SERVER or `updraft login`): \
             working on {} directly",
            offline_store_name(global)
        )))));
    }
    Err(CliError::new(
        LocalCode::ServerNotConfigured,
        format!(
            "no server is configured and there is no Updraft database in {}: log in to the \
             server with `updraft login --server URL` (or pass --server URL and --apikey KEY), \
             or, on the server's host, name its data with --data-dir DIR or --database-url URL \
             (a new data directory is made only when named so)",
            global.data_dir.display()
        ),
    ))
}

/// Where the command goes (see the module's rules).
pub async fn choose(global: &GlobalOpts) -> Result<Target, CliError> {
    let local_exists = !global.given.store && offline_store_exists(global);
    if let Some(target) = plan(global, local_exists)? {
        return Ok(target);
    }
    if local_exists && !answers(&global.server).await {
        return Ok(Target::Offline(Some(format!(
            "note: no Updraft server answers at {}: working on {} directly",
            global.server.trim_end_matches('/'),
            offline_store_name(global)
        ))));
    }
    Ok(Target::Server)
}

/// Whether anything answers HTTP at `server` (any status counts). Asks
/// `/healthz`, which needs no key: a keyless management call would count as
/// a failed authentication against this address.
async fn answers(server: &str) -> bool {
    let url = format!("{}/healthz", server.trim().trim_end_matches('/'));
    let Ok(client) = reqwest::Client::builder()
        .connect_timeout(PROBE_TIMEOUT)
        .timeout(PROBE_TIMEOUT)
        .build()
    else {
        return false;
    };
    client.get(url).send().await.is_ok()
}

/// Runs a key command where [`choose`] says.
pub async fn run(global: &GlobalOpts, command: ApikeyCommand) -> Result<Outcome, CliError> {
    match choose(global).await? {
        Target::Offline(notice) => {
            let opened = offline::open_offline_store(global).await?;
            let outcome =
                offline::apikey_command(opened.store.as_ref(), command, now_millis()).await?;
            Ok(notice
                .into_iter()
                .chain(opened.notices)
                .fold(outcome, Outcome::with_warning))
        }
        Target::Server => {
            let client = ApiClient::new(&global.server, global.apikey.as_deref())
                .map_err(|error| with_hint(error, &global.server))?;
            remote(&client, command)
                .await
                .map_err(|error| with_hint(error, &global.server))
        }
    }
}

/// The command through the management API (admin keys only).
pub async fn remote(client: &ApiClient, command: ApikeyCommand) -> Result<Outcome, CliError> {
    match command {
        ApikeyCommand::Create(args) => {
            let answer = client
                .post::<CreatedApiKey>(&["apikeys"], &create_request(&args)?)
                .await?;
            let mut outcome = offline::created_outcome(&answer.value);
            // What the server sent, fields this CLI does not know included.
            outcome.json = answer.json;
            Ok(outcome)
        }
        ApikeyCommand::List => {
            let answer = client.get::<ApiKeyList>(&["apikeys"], &[]).await?;
            Ok(Outcome::new(
                answer.json,
                offline::api_keys_table(&answer.value.apikeys, now_millis()),
            ))
        }
        ApikeyCommand::Revoke { id_or_name } => {
            let id_or_name = id_or_name.trim();
            if id_or_name.is_empty() {
                return Err(CliError::invalid_argument(
                    "give the id or name of the key to revoke",
                ));
            }
            // Looked up first to name the key in the answer, as the server finds it:
            // by id first, then by name.
            let keys = client.get::<ApiKeyList>(&["apikeys"], &[]).await?.value;
            let key: Option<&ApiKeyView> = keys
                .apikeys
                .iter()
                .find(|k| k.id.to_string() == id_or_name)
                .or_else(|| keys.apikeys.iter().find(|k| k.name == id_or_name));
            client
                .delete(&["apikeys", id_or_name])
                .await
                .map_err(|error| match error.code {
                    CliCode::Api(ErrorCode::ApikeyNotFound) | CliCode::Http(404) => CliError::new(
                        ErrorCode::ApikeyNotFound,
                        format!("no API key with id or name {id_or_name:?}"),
                    ),
                    _ => error,
                })?;
            let text = match key {
                Some(key) => format!("Revoked API key {} ({}).", key.id, key.name),
                None => format!("Revoked API key {id_or_name}."),
            };
            Ok(Outcome::status_ok(text))
        }
    }
}

fn create_request(args: &ApikeyCreateArgs) -> Result<CreateApiKey, CliError> {
    let name = args.name.trim();
    if name.is_empty() {
        return Err(CliError::invalid_argument("--name must not be empty"));
    }
    let role = match args.role {
        RoleArg::Admin => "admin",
        RoleArg::Publisher => "publisher",
        RoleArg::Viewer => "viewer",
    };
    Ok(CreateApiKey {
        name: name.to_string(),
        role: Some(role.to_string()),
        app_id: args
            .app_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string),
        expires_in_days: args.expires_in_days,
    })
}

/// The server's refusal, plus what to do about it: a key command needs an
/// admin key on the server, or the database on the server's host.
fn with_hint(error: CliError, server: &str) -> CliError {
    let server = server.trim().trim_end_matches('/');
    let hint = match &error.code {
        CliCode::Local(LocalCode::MissingApikey) => Some(format!(
            "`updraft apikey` goes to the server at {server}, which needs an admin API key: \
             run `updraft login`, or pass --apikey KEY / UPDRAFT_APIKEY; on the server's host, \
             --data-dir DIR or --database-url URL works on its database directly (the first key)"
        )),
        CliCode::Api(ErrorCode::Unauthorized) | CliCode::Http(401) => Some(format!(
            "{}; log in again with `updraft login --server {server}`, or make a key on the \
             server's host with `updraft apikey create --data-dir DIR`",
            error.message
        )),
        CliCode::Api(ErrorCode::Forbidden) | CliCode::Http(403) => Some(format!(
            "{}; API keys are managed with an admin key that is not limited to one app",
            error.message
        )),
        _ => None,
    };
    match hint {
        Some(message) => CliError::new(error.code, message),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Given;

    fn global(server: bool, store: bool) -> GlobalOpts {
        GlobalOpts {
            server: "http://127.0.0.1:9".into(),
            apikey: None,
            json: false,
            wide: false,
            data_dir: "./no-such-updraft-data".into(),
            database_url: None,
            given: Given { server, store },
        }
    }

    #[test]
    fn an_explicit_database_wins_then_a_server_then_a_local_database() {
        assert_eq!(
            plan(&global(true, true), true).unwrap(),
            Some(Target::Offline(None))
        );
        assert_eq!(
            plan(&global(false, true), false).unwrap(),
            Some(Target::Offline(None))
        );
        assert_eq!(plan(&global(true, false), true).unwrap(), None);
        assert_eq!(plan(&global(true, false), false).unwrap(), None);
        match plan(&global(false, false), true).unwrap() {
            Some(Target::Offline(Some(notice))) => {
                assert!(notice.contains("no server configured"), "{notice}")
            }
            other => panic!("{other:?}"),
        }
        let refused = plan(&global(false, false), false).unwrap_err();
        assert!(refused.is_local(LocalCode::ServerNotConfigured));
        assert!(refused.message.contains("updraft login"));
        assert!(refused.message.contains("--data-dir"));
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_falls_back_only_to_an_existing_database() {
        let root = tempfile::tempdir().unwrap();
        // Port 9 (discard) on loopback: nothing listens there in the tests.
        let mut g = global(true, false);
        g.data_dir = root.path().to_path_buf();
        assert_eq!(choose(&g).await.unwrap(), Target::Server);
        std::fs::write(root.path().join(updraft_store::sqlite::DB_FILE_NAME), b"").unwrap();
        match choose(&g).await.unwrap() {
            Target::Offline(Some(notice)) => assert!(notice.contains("no Updraft server answers")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_say_how_to_get_an_admin_key() {
        let missing = with_hint(CliError::new(LocalCode::MissingApikey, "x"), "http://h:1/");
        assert!(missing.message.contains("updraft login"));
        assert!(missing.message.contains("http://h:1"));
        let forbidden = with_hint(
            CliError::new(
                ErrorCode::Forbidden,
                "this API key's role (viewer) cannot do this",
            ),
            "http://h:1",
        );
        assert!(forbidden
            .message
            .starts_with("this API key's role (viewer)"));
        assert!(forbidden.message.contains("admin key"));
        let other = CliError::new(ErrorCode::AppNotFound, "app x does not exist");
        assert_eq!(with_hint(other.clone(), "http://h:1"), other);
    }
}
