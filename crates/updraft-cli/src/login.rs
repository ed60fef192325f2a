//! `updraft login`, `logout` and `whoami`, and the per-user login file they
//! keep: the server and an API key, so that keys stay out of shell history.
//!
//! Precedence, for every command: flags > environment > login file >
//! defaults. The file's key is only used for the file's server: a command
//! sent to another server (`--server`, `UPDRAFT_SERVER`) never carries it.

use crate::args::{GlobalOpts, LoginArgs};
use crate::client::ApiClient;
use crate::error::{CliError, LocalCode};
use crate::output::Outcome;
use crate::time::short_time;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use updraft_api::{ApiKeyView, Whoami};

/// The file's name in the per-user config directory's `updraft` folder.
pub const LOGIN_FILE: &str = "login.toml";

/// What `updraft login` stores.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub server: String,
    pub apikey: String,
}

/// `$XDG_CONFIG_HOME/updraft/login.toml`, else `~/.config/updraft/login.toml`
/// (the XDG layout on macOS too; Windows' roaming AppData). `None` when there
/// is no home directory to find it in.
pub fn login_path() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    let strategy = etcetera::choose_base_strategy().ok()?;
    Some(strategy.config_dir().join("updraft").join(LOGIN_FILE))
}

/// The stored login, `Ok(None)` when there is none.
pub fn read_login(path: &Path) -> Result<Option<Login>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(CliError::new(
                LocalCode::LoginFileError,
                format!("cannot read {}: {error}", path.display()),
            ))
        }
    };
    toml::from_str(&text).map(Some).map_err(|error| {
        CliError::new(
            LocalCode::LoginFileError,
            format!(
                "{} is not a login file `updraft login` wrote ({}); remove it with `updraft logout`",
                path.display(),
                error.message()
            ),
        )
    })
}

/// Writes `login` to `path` atomically (a new file renamed over the old one),
/// readable by its owner only from its creation: the key is never in a file
/// others may read, not even for a moment, and a crash leaves the old file or
/// the new one, never half of one.
pub fn write_login(path: &Path, login: &Login) -> Result<(), CliError> {
    let failed = |error: &dyn std::fmt::Display| {
        CliError::new(
            LocalCode::LoginFileError,
            format!("cannot write {}: {error}", path.display()),
        )
    };
    let dir = path
        .parent()
        .ok_or_else(|| failed(&"the path has no folder"))?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| failed(&e))?;
    let text = format!(
        "# Written by `updraft login`; `updraft logout` removes it.\n{}",
        toml::to_string(login).map_err(|e| failed(&e))?
    );
    // tempfile creates the file with mode 0600 (O_EXCL, in the same folder,
    // so that the rename below is atomic); set again in case a umask or
    // platform differs, before the key is written into it.
    let mut file = tempfile::Builder::new()
        .prefix(".login-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| failed(&e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| failed(&e))?;
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| failed(&e))?;
    file.persist(path).map_err(|e| failed(&e.error))?;
    // The rename itself is durable once the folder is synced.
    #[cfg(unix)]
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// Whether two server URLs name the same server (`http://Host:80/` is
/// `http://host`); URLs that do not parse are compared as text.
pub fn same_server(a: &str, b: &str) -> bool {
    let normal = |text: &str| {
        let text = text.trim().trim_end_matches('/');
        Url::parse(text)
            .map(|url| url.as_str().trim_end_matches('/').to_string())
            .unwrap_or_else(|_| text.to_string())
    };
    normal(a) == normal(b)
}

/// Fills in what flags and the environment left open from the login file:
/// the server when none was chosen, and the key when none was given and the
/// server is the file's.
pub fn apply(global: &mut GlobalOpts, login: Option<&Login>) {
    let Some(login) = login else {
        return;
    };
    if !global.given.server {
        global.server = login.server.clone();
        global.given.server = true;
    }
    let no_key = global
        .apikey
        .as_deref()
        .is_none_or(|key| key.trim().is_empty());
    if no_key && same_server(&global.server, &login.server) {
        global.apikey = Some(login.apikey.clone());
    }
}

/// The login file and what is in it; an unreadable or broken file is a
/// warning (printed on stderr) and counts as none, so that it blocks no command.
pub fn load() -> (Option<PathBuf>, Option<Login>) {
    let Some(path) = login_path() else {
        return (None, None);
    };
    match read_login(&path) {
        Ok(login) => {
            if login.is_some() {
                warn_if_readable_by_others(&path);
            }
            (Some(path), login)
        }
        Err(error) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "warning: ignoring the login file: {}",
                error.message
            );
            (Some(path), None)
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let _ = writeln!(
                std::io::stderr().lock(),
                "warning: {} holds an API key but others may read it (mode {mode:o}): \
                 chmod 600 it, or log in again",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

fn no_config_dir() -> CliError {
    CliError::new(
        LocalCode::LoginFileError,
        "cannot find your config folder: set HOME (or XDG_CONFIG_HOME)",
    )
}

/// `updraft login`. `global` is as the flags and environment left it (the
/// login file not applied), `stored` the login file's content.
pub async fn login(
    global: &GlobalOpts,
    stored: Option<&Login>,
    args: &LoginArgs,
) -> Result<Outcome, CliError> {
    let path = login_path().ok_or_else(no_config_dir)?;
    let server = match stored {
        Some(login) if !global.given.server => login.server.clone(),
        _ => global.server.clone(),
    };
    let apikey = if args.apikey_stdin {
        read_key_line(&mut std::io::stdin().lock())?
    } else if let Some(key) = global
        .apikey
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        key.to_string()
    } else if std::io::stdin().is_terminal() {
        let prompt = format!("API key for {server}: ");
        rpassword::prompt_password(prompt).map_err(|error| {
            CliError::new(
                LocalCode::IoError,
                format!("cannot read the key from the terminal: {error}"),
            )
        })?
    } else {
        return Err(CliError::new(
            LocalCode::MissingApikey,
            "stdin is not a terminal to ask for the key on: pipe it with \
             `updraft login --apikey-stdin` (or give UPDRAFT_APIKEY)",
        ));
    };
    let apikey = apikey.trim().to_string();
    if apikey.is_empty() {
        return Err(CliError::new(
            LocalCode::MissingApikey,
            "the API key is empty",
        ));
    }
    // Checked first: a key the server refuses is never stored.
    let client = ApiClient::new(&server, Some(&apikey))?;
    let answer = client
        .get::<Whoami>(&["whoami"], &[])
        .await
        .map_err(|error| {
            CliError::new(
                error.code.clone(),
                format!("{} (nothing was stored)", error.message),
            )
        })?;
    let login = Login {
        server: client.server().to_string(),
        apikey,
    };
    write_login(&path, &login)?;
    let key = &answer.value.apikey;
    let text = format!(
        "Logged in to {} as API key \"{}\" ({}). Saved in {} (readable by you only).",
        login.server,
        key.name,
        scope_text(key),
        path.display()
    );
    let outcome = Outcome::new(
        json!({"server": login.server, "login_file": path.display().to_string(), "apikey": answer.json["apikey"]}),
        text,
    );
    Ok(match stored {
        Some(old) if !same_server(&old.server, &login.server) => {
            outcome.with_note(format!("(This replaced the login for {}.)", old.server))
        }
        _ => outcome,
    })
}

/// The first line of `input`, without its line end.
fn read_key_line(input: &mut impl BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|error| {
        CliError::new(
            LocalCode::IoError,
            format!("cannot read the key from stdin: {error}"),
        )
    })?;
    Ok(line.trim().to_string())
}

/// `updraft logout`: removes the file, and says what it removed.
pub fn logout(stored: Option<&Login>) -> Result<Outcome, CliError> {
    let path = login_path().ok_or_else(no_config_dir)?;
    match std::fs::remove_file(&path) {
        Ok(()) => {
            let what = match stored {
                Some(login) => format!(
                    "the login for {} (key {}…)",
                    login.server,
                    login.apikey.chars().take(8).collect::<String>()
                ),
                None => "the login file".to_string(),
            };
            Ok(Outcome::new(
                json!({"removed": path.display().to_string(), "server": stored.map(|l| l.server.clone())}),
                format!(
                    "Removed {what}: {}. The key itself still works until it is revoked \
                     (`updraft apikey revoke`).",
                    path.display()
                ),
            ))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::new(
            json!({"removed": null, "server": null}),
            format!("Not logged in: there is no {}.", path.display()),
        )),
        Err(error) => Err(CliError::new(
            LocalCode::LoginFileError,
            format!("cannot remove {}: {error}", path.display()),
        )),
    }
}

/// `updraft whoami`.
pub async fn whoami(client: &ApiClient) -> Result<Outcome, CliError> {
    let answer = client.get::<Whoami>(&["whoami"], &[]).await?;
    let key = &answer.value.apikey;
    let text = format!(
        "server   {}\nkey      {} (id {}, {}…)\nrole     {}\napps     {}\nexpires  {}",
        client.server(),
        key.name,
        key.id,
        key.prefix,
        key.role,
        key.app_id.as_deref().unwrap_or("all"),
        key.expires_at
            .as_deref()
            .map_or_else(|| "never".to_string(), short_time),
    );
    Ok(Outcome::new(answer.json, text))
}

/// `role admin, all apps, no expiry`.
fn scope_text(key: &ApiKeyView) -> String {
    let apps = match &key.app_id {
        Some(app) => format!("app {app} only"),
        None => "all apps".to_string(),
    };
    let expiry = match &key.expires_at {
        Some(at) => format!("expires {}", short_time(at)),
        None => "no expiry".to_string(),
    };
    format!("role {}, {apps}, {expiry}", key.role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Given;

    fn global(server: &str, given_server: bool, apikey: Option<&str>) -> GlobalOpts {
        GlobalOpts {
            server: server.into(),
            apikey: apikey.map(str::to_string),
            json: false,
            wide: false,
            data_dir: "./updraft-data".into(),
            database_url: None,
            given: Given {
                server: given_server,
                store: false,
            },
        }
    }

    fn stored() -> Login {
        Login {
            server: "https://updates.example.com".into(),
            apikey: "upd_fromfile".into(),
        }
    }

    #[test]
    fn flags_and_environment_win_over_the_login_file() {
        // Nothing chosen: the file's server and key.
        let mut g = global(crate::args::DEFAULT_SERVER, false, None);
        apply(&mut g, Some(&stored()));
        assert_eq!(g.server, "https://updates.example.com");
        assert_eq!(g.apikey.as_deref(), Some("upd_fromfile"));
        assert!(g.given.server);

        // A key given: the file's server, the given key.
        let mut g = global(crate::args::DEFAULT_SERVER, false, Some("upd_given"));
        apply(&mut g, Some(&stored()));
        assert_eq!(g.server, "https://updates.example.com");
        assert_eq!(g.apikey.as_deref(), Some("upd_given"));

        // The same server chosen (spelled differently): the file's key.
        let mut g = global("https://UPDATES.example.com:443/", true, None);
        apply(&mut g, Some(&stored()));
        assert_eq!(g.apikey.as_deref(), Some("upd_fromfile"));

        // Another server chosen: the file's key is never sent to it.
        let mut g = global("http://127.0.0.1:9999", true, None);
        apply(&mut g, Some(&stored()));
        assert_eq!(g.server, "http://127.0.0.1:9999");
        assert_eq!(g.apikey, None);

        // No file: nothing changes.
        let mut g = global(crate::args::DEFAULT_SERVER, false, None);
        apply(&mut g, None);
        assert_eq!(g.server, crate::args::DEFAULT_SERVER);
        assert!(!g.given.server);
    }

    #[test]
    fn the_file_round_trips_and_is_replaced_atomically() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("deep").join("updraft").join(LOGIN_FILE);
        assert_eq!(read_login(&path).unwrap(), None);
        write_login(&path, &stored()).unwrap();
        assert_eq!(read_login(&path).unwrap(), Some(stored()));
        let other = Login {
            server: "http://127.0.0.1:8080".into(),
            apikey: "upd_second".into(),
        };
        write_login(&path, &other).unwrap();
        assert_eq!(read_login(&path).unwrap(), Some(other));
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(LOGIN_FILE)]);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_and_its_folder_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("updraft").join(LOGIN_FILE);
        // An older, wider file is replaced by an owner-only one.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "server = \"x\"\napikey = \"y\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_login(&path, &stored()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let fresh = root.path().join("new").join("updraft").join(LOGIN_FILE);
        write_login(&fresh, &stored()).unwrap();
        let meta = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(meta(&fresh), 0o600);
        assert_eq!(meta(fresh.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_broken_file_is_named_with_the_way_out() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join(LOGIN_FILE);
        std::fs::write(&path, "server = 3\n").unwrap();
        let error = read_login(&path).unwrap_err();
        assert!(error.is_local(LocalCode::LoginFileError));
        assert!(
            error.message.contains("updraft logout"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_key_is_the_first_line_of_stdin() {
        let mut input = std::io::Cursor::new(b"  upd_abc \nrest\n".to_vec());
        assert_eq!(read_key_line(&mut input).unwrap(), "upd_abc");
    }
}
