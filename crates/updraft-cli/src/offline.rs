//! Commands that work on the server's database directly, without a server:
//! `updraft apikey …` with `--data-dir`/`--database-url` (how the first key
//! is made, before any key exists to call the API with). [`open_offline_store`]
//! is the one way such a command opens the database.

use crate::args::{ApikeyCommand, ApikeyCreateArgs, GlobalOpts};
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use crate::table::Table;
use crate::time::{parse_rfc3339, short_time, MILLIS_PER_DAY};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use updraft_api::{ApiKeyList, ApiKeyView, CreatedApiKey, ErrorCode};
use updraft_core::model::{ApiKey, Millis, Role};
use updraft_core::validate::is_valid_app_id;
use updraft_store::{
    ApiKeyStore, AppStore, AuditStore, NewApiKey, NewAuditEntry, PgStore, SqliteStore, Store,
    StoreError,
};

/// An opened database, and what opening it did that the user must hear of
/// (printed on stderr: add them to the command's [`Outcome`] as warnings).
pub struct OfflineStore {
    pub store: Arc<dyn Store>,
    pub notices: Vec<String>,
}

/// Whether the database `global` names is there already: the PostgreSQL
/// database of a database URL (it must exist to be connected to), or the
/// SQLite file in the data directory.
pub fn offline_store_exists(global: &GlobalOpts) -> bool {
    database_url(global).is_some()
        || global
            .data_dir
            .join(updraft_store::sqlite::DB_FILE_NAME)
            .is_file()
}

/// The database an offline command works on, in words: `the database in ./updraft-data`.
pub fn offline_store_name(global: &GlobalOpts) -> String {
    match database_url(global) {
        Some(_) => "the PostgreSQL database of the database URL".to_string(),
        None => format!("the database in {}", global.data_dir.display()),
    }
}

fn database_url(global: &GlobalOpts) -> Option<&str> {
    global
        .database_url
        .as_deref()
        .map(str::trim)
        .filter(|url| !url.is_empty())
}

/// Opens the database `updraft serve` uses with the same settings: PostgreSQL
/// when a database URL is set, else the data directory's SQLite file.
///
/// Nothing is created silently: a data directory or SQLite file that does
/// not exist yet is created only when it was named explicitly (`--data-dir`,
/// `UPDRAFT_DATA_DIR`: `global.given.store`), and a notice says so; a
/// default or updraft.toml one that is not there is refused
/// (`data_dir_error`).
pub async fn open_offline_store(global: &GlobalOpts) -> Result<OfflineStore, CliError> {
    if let Some(url) = database_url(global) {
        let store = PgStore::connect(url, None).await.map_err(|error| {
            CliError::new(
                LocalCode::StorageError,
                format!("cannot open the PostgreSQL database: {error}"),
            )
        })?;
        let notices = if store.created_schema() {
            vec![
                "note: the PostgreSQL database was empty: created Updraft's tables in it \
                  (a server uses it when started with the same database URL)"
                    .to_string(),
            ]
        } else {
            Vec::new()
        };
        return Ok(OfflineStore {
            store: Arc::new(store),
            notices,
        });
    }
    let data_dir = &global.data_dir;
    let existed = offline_store_exists(global);
    if !existed && !global.given.store {
        return Err(CliError::new(
            LocalCode::DataDirError,
            format!(
                "there is no Updraft database in {}: name the server's data directory with                  --data-dir DIR (or its database with --database-url URL); a new data directory                  is only made when named so",
                data_dir.display()
            ),
        ));
    }
    let store = open_sqlite(data_dir).await?;
    let mut notices = Vec::new();
    if !existed {
        notices.push(format!(
            "note: created a new, empty Updraft database in {} (there was none); a server              uses it when started with --data-dir {}",
            data_dir.display(),
            data_dir.display()
        ));
    }
    Ok(OfflineStore {
        store: Arc::new(store),
        notices,
    })
}

async fn open_sqlite(data_dir: &Path) -> Result<SqliteStore, CliError> {
    std::fs::create_dir_all(data_dir).map_err(|error| {
        CliError::new(
            LocalCode::DataDirError,
            format!(
                "cannot create the data directory {}: {error}",
                data_dir.display()
            ),
        )
    })?;
    SqliteStore::open(data_dir).await.map_err(|error| {
        CliError::new(
            LocalCode::StorageError,
            format!(
                "cannot open the database in {}: {error}",
                data_dir.display()
            ),
        )
    })
}

/// The command against any key store (tests use a temporary one).
pub async fn apikey_command<S: ApiKeyStore + AppStore + AuditStore + ?Sized>(
    store: &S,
    command: ApikeyCommand,
    now: Millis,
) -> Result<Outcome, CliError> {
    match command {
        ApikeyCommand::Create(args) => create(store, args, now).await,
        ApikeyCommand::List => {
            let keys: Vec<ApiKeyView> = store
                .list_api_keys()
                .await?
                .into_iter()
                .map(ApiKeyView::from)
                .collect();
            let text = api_keys_table(&keys, now);
            Ok(Outcome::new(to_json(&ApiKeyList { apikeys: keys }), text))
        }
        ApikeyCommand::Revoke { id_or_name } => {
            let id_or_name = id_or_name.trim();
            if id_or_name.is_empty() {
                return Err(CliError::invalid_argument(
                    "give the id or name of the key to revoke",
                ));
            }
            let before = store
                .list_api_keys()
                .await?
                .into_iter()
                .filter(|k| k.id.to_string() == id_or_name || k.name == id_or_name)
                // By id first, as the store looks it up.
                .min_by_key(|k| k.id.to_string() != id_or_name);
            let key = store
                .revoke_api_key(id_or_name, now)
                .await
                .map_err(|error| match error {
                    StoreError::NotFound(_) => CliError::new(
                        ErrorCode::ApikeyNotFound,
                        format!("no API key with id or name {id_or_name:?}"),
                    ),
                    other => CliError::from(other),
                })?;
            let outcome = Outcome::status_ok(format!("Revoked API key {} ({}).", key.id, key.name));
            // Revoking a revoked key changes nothing: nothing to record.
            if before.as_ref().is_some_and(|k| k.revoked_at.is_some()) {
                return Ok(outcome);
            }
            let entry = offline_entry(
                now,
                &key,
                "apikey.revoke",
                before.as_ref().map(api_key_json),
                Some(api_key_json(&key)),
            );
            Ok(record_audit(store, entry, outcome).await)
        }
    }
}

async fn create<S: ApiKeyStore + AppStore + AuditStore + ?Sized>(
    store: &S,
    args: ApikeyCreateArgs,
    now: Millis,
) -> Result<Outcome, CliError> {
    let name = args.name.trim();
    if name.is_empty() {
        return Err(CliError::invalid_argument("--name must not be empty"));
    }
    let app_id = args
        .app_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    if let Some(app_id) = app_id {
        if !is_valid_app_id(app_id) {
            return Err(CliError::new(
                ErrorCode::InvalidAppId,
                format!("app id {app_id:?} is not a reverse domain"),
            ));
        }
        // As the server: a key limited to an app that does not exist could do nothing.
        if store.get_app(app_id).await?.is_none() {
            return Err(CliError::new(
                ErrorCode::AppNotFound,
                format!(
                    "app {app_id} does not exist in this database: register it first \
                     (`updraft app add {app_id}`), then create the key limited to it"
                ),
            ));
        }
    }
    let expires_at = args
        .expires_in_days
        .map(|days| now.saturating_add(Millis::from(days).saturating_mul(MILLIS_PER_DAY)));
    let role = Role::from(args.role);
    let new_key = NewApiKey {
        name: name.to_string(),
        role,
        app_id: app_id.map(str::to_string),
        expires_at,
    };
    let (key, secret) = store
        .create_api_key(new_key, now)
        .await
        .map_err(|error| match error {
            StoreError::AlreadyExists(_) => CliError::new(
                ErrorCode::ApikeyAlreadyExists,
                format!("an API key named {name:?} already exists"),
            ),
            other => CliError::from(other),
        })?;

    let entry = offline_entry(now, &key, "apikey.create", None, Some(api_key_json(&key)));
    let created = CreatedApiKey {
        apikey: ApiKeyView::from(key),
        key: secret,
    };
    Ok(record_audit(store, entry, created_outcome(&created)).await)
}

/// A new key: the secret alone on stdout (so that `$(updraft apikey create …)`
/// captures it), what it is on stderr; with `--json`, all of it.
pub fn created_outcome(created: &CreatedApiKey) -> Outcome {
    let key = &created.apikey;
    let scope = key
        .app_id
        .as_deref()
        .map(|app| format!(", app {app}"))
        .unwrap_or_default();
    let expiry = key
        .expires_at
        .as_deref()
        .map(|at| format!(", expires {}", short_time(at)))
        .unwrap_or_default();
    let note = format!(
        "Created API key {} \"{}\" (role {}{scope}{expiry}). Store it now: it is shown only once. \
         Use it with `updraft login`, --apikey or UPDRAFT_APIKEY.",
        key.id, key.name, key.role
    );
    Outcome::new(to_json(created), created.key.clone()).with_note(note)
}

/// The audit entry of a key change made on the data directory (no API key acted).
fn offline_entry(
    now: Millis,
    key: &ApiKey,
    action: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> NewAuditEntry {
    offline_audit_entry(now, key.app_id.clone(), action, &key.name, before, after)
}

/// Who an offline command acts as in the audit log: no API key or user acted.
pub const OFFLINE_ACTOR: &str = "cli:offline";

/// The audit entry of a change made on the database directly.
pub fn offline_audit_entry(
    now: Millis,
    app_id: Option<String>,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> NewAuditEntry {
    NewAuditEntry {
        at: now,
        actor: OFFLINE_ACTOR.to_string(),
        api_key_id: None,
        app_id,
        action: action.to_string(),
        target: target.to_string(),
        before,
        after,
    }
}

/// Records the entry; the change is made already, so a failure is only a warning.
pub async fn record_audit<S: AuditStore + ?Sized>(
    store: &S,
    entry: NewAuditEntry,
    outcome: Outcome,
) -> Outcome {
    match store.record_audit(entry).await {
        Ok(_) => outcome,
        Err(error) => outcome.with_warning(format!(
            "warning: the change is made but its audit entry could not be stored: {error}"
        )),
    }
}

/// An API key as the management API shows it (times as RFC 3339).
pub fn api_key_json(key: &ApiKey) -> Value {
    to_json(&ApiKeyView::from(key.clone()))
}

/// A view as JSON. The views are plain data: this cannot fail.
fn to_json(view: &impl serde::Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

fn key_status(key: &ApiKeyView, now: Millis) -> &'static str {
    let expired = key
        .expires_at
        .as_deref()
        .and_then(parse_rfc3339)
        .is_some_and(|at| at <= now);
    if key.revoked_at.is_some() {
        "revoked"
    } else if expired {
        "expired"
    } else {
        "active"
    }
}

/// The keys as `updraft apikey list` shows them, from the server or the database.
pub fn api_keys_table(keys: &[ApiKeyView], now: Millis) -> String {
    if keys.is_empty() {
        return "No API keys. Create one with `updraft apikey create --name NAME`.".to_string();
    }
    let mut table = Table::new(&[
        "ID", "NAME", "PREFIX", "ROLE", "APP", "EXPIRES", "CREATED", "STATUS",
    ]);
    let time = |at: Option<&str>| at.map(short_time).unwrap_or_else(|| "-".to_string());
    for key in keys {
        table.push_row(vec![
            key.id.to_string(),
            key.name.clone(),
            key.prefix.clone(),
            key.role.clone(),
            key.app_id.clone().unwrap_or_else(|| "all".to_string()),
            time(key.expires_at.as_deref()),
            time(Some(&key.created_at)),
            key_status(key, now).to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, revoked_at: Option<Millis>, expires_at: Option<Millis>) -> ApiKey {
        ApiKey {
            id,
            name: format!("key{id}"),
            prefix: "upd_abcd".into(),
            role: Role::Publisher,
            app_id: None,
            expires_at,
            created_at: 1_714_566_605_042,
            revoked_at,
        }
    }

    #[test]
    fn table_shows_status_of_each_key() {
        let now = 1_714_600_000_000;
        let keys = [
            key(1, None, None),
            key(2, Some(now - 1), None),
            key(3, None, Some(now - 1)),
        ];
        let views: Vec<ApiKeyView> = keys.iter().cloned().map(ApiKeyView::from).collect();
        let text = api_keys_table(&views, now);
        let statuses: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(statuses, ["active", "revoked", "expired"]);
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("1   key1  upd_abcd  publisher  all  -"));
    }

    #[test]
    fn json_uses_rfc3339_times() {
        let value = api_key_json(&key(7, None, Some(0)));
        assert_eq!(value["created_at"], "2024-05-01T12:30:05.042Z");
        assert_eq!(value["expires_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["revoked_at"], Value::Null);
        assert_eq!(value["role"], "publisher");
    }
}
