//! `updraft serve`'s settings, in layers: built-in defaults < `updraft.toml`
//! (or `--config PATH`) < environment (`UPDRAFT_*`) < command-line flags.
//!
//! [`Settings`] is the one declaration: the server's own
//! [`ServerConfig`] (defaults, validation and nesting declared on it, see
//! `updraft_server::settings`) plus the settings only the binary reads
//! (log filter and format, database URLs, the start-up check). Every setting is one flat key, the same in each layer: `listen` in the
//! file, `UPDRAFT_LISTEN` in the environment, `--listen` where `updraft
//! serve` has that flag (a command-line argument whose id is the key). The
//! list of settings, their names and defaults are read off the type
//! ([`settings`]), and the README's table is checked against it.
//!
//! figment merges the layers and remembers where each value came from, so a
//! refused value is named as it was given (`UPDRAFT_LISTEN`, or `listen` in
//! `/etc/updraft.toml`).

use anyhow::{bail, Context};
use figment::error::{Actual, Kind};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Deserializer, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use updraft_server::settings::KEY_GROUPS;
use updraft_server::state::ServerConfig;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Configuration file (default: ./updraft.toml when it exists)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address to listen on (env UPDRAFT_LISTEN; default 127.0.0.1:8080)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Base URL of download links (env UPDRAFT_PUBLIC_URL; default: from the request's Host)
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain: serve HTTPS (env UPDRAFT_TLS_CERT; needs --tls-key)
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (env UPDRAFT_TLS_KEY)
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Plain-HTTP listener answering 308 to https (env UPDRAFT_HTTP_REDIRECT_LISTEN)
    #[arg(long, value_name = "ADDR")]
    pub http_redirect_listen: Option<SocketAddr>,
    /// Serve /metrics on this address only (env UPDRAFT_METRICS_LISTEN)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Every setting of `updraft serve`, declared once: here and in
/// [`ServerConfig`].
///
/// Adding a setting is one declaration: a field of `ServerConfig` (or of this
/// type, if only the binary reads it) with its default in `Default` and, when
/// its values need checking, a `#[serde(deserialize_with = …)]` from
/// `updraft_server::settings` (bounds, `0` = off, URLs, seconds). Its
/// `updraft.toml` key is the field's name (a field of a nested group gets the
/// group's prefix, see `KEY_GROUPS`), its environment variable `UPDRAFT_` +
/// the key in capitals, and a refused value is reported under the name it was
/// given. Where it needs a flag, add an argument to [`ServeArgs`] whose id is
/// the key. Then give it a row in the README's configuration table and a line
/// in `updraft.example.toml`: tests fail until both list it.
#[derive(Serialize, Deserialize)]
pub struct Settings {
    /// The server's settings; its fields (and those of its groups) are
    /// top-level keys.
    pub server: ServerConfig,
    /// Log filter, e.g. "info" or "updraft_server=debug" (`RUST_LOG` wins).
    pub log: String,
    /// `text` (colours only on a terminal, never with `NO_COLOR`) or `json`
    /// (one object per line).
    pub log_format: updraft_server::logging::LogFormat,
    /// `PRAGMA quick_check` of the SQLite database before serving.
    pub startup_quick_check: bool,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite file.
    #[serde(deserialize_with = "postgres_url")]
    pub database_url: Option<String>,
    /// A read-only replica's `postgres://…` for the release-configuration reads.
    #[serde(deserialize_with = "postgres_url")]
    pub database_read_url: Option<String>,
    /// With `admin_password`: the console admin created at start-up when
    /// there is no user at all (never changing an existing one).
    pub admin_email: Option<String>,
    /// The password of `admin_email`'s admin (at least 12 characters).
    pub admin_password: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerConfig::default(),
            log: "info,tower_http=warn,sqlx=warn".to_string(),
            log_format: updraft_server::logging::LogFormat::default(),
            startup_quick_check: true,
            database_url: None,
            database_read_url: None,
            admin_email: None,
            admin_password: None,
        }
    }
}

/// Database passwords are not shown.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |url: &Option<String>| url.as_deref().map(redact_url);
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("startup_quick_check", &self.startup_quick_check)
            .field("database_url", &redacted(&self.database_url))
            .field("database_read_url", &redacted(&self.database_read_url))
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Settings {
    /// The start-up admin, when both halves are set; an error when only one is.
    pub fn bootstrap_admin(&self) -> anyhow::Result<Option<(String, String)>> {
        let email = self
            .admin_email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let password = self.admin_password.as_deref().filter(|p| !p.is_empty());
        match (email, password) {
            (Some(email), Some(password)) => Ok(Some((email.to_string(), password.to_string()))),
            (None, None) => Ok(None),
            (Some(_), None) => bail!(
                "UPDRAFT_ADMIN_EMAIL is set without UPDRAFT_ADMIN_PASSWORD: set both (or neither)"
            ),
            (None, Some(_)) => bail!(
                "UPDRAFT_ADMIN_PASSWORD is set without UPDRAFT_ADMIN_EMAIL: set both (or neither)"
            ),
        }
    }

    /// Where the data lives instead of the embedded SQLite file.
    pub fn database(&self) -> Option<DatabaseUrls> {
        self.database_url.clone().map(|url| DatabaseUrls {
            url,
            read_url: self.database_read_url.clone(),
        })
    }
}

/// A PostgreSQL primary and an optional read replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseUrls {
    pub url: String,
    pub read_url: Option<String>,
}

fn postgres_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|url| check_postgres_url(&url).map_err(serde::de::Error::custom))
        .transpose()
}

fn check_postgres_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "must be a postgres:// URL, got {:?}",
            redact_url(url)
        ));
    }
    Ok(url.to_string())
}

pub fn check_database_url(name: &str, url: &str) -> anyhow::Result<String> {
    check_postgres_url(url).map_err(|why| anyhow::anyhow!("{name} {why}"))
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One setting as the type declares it.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The flat key: the `updraft.toml` key, and `UPDRAFT_<KEY>`.
    pub key: String,
    /// Where it sits in [`Settings`].
    pub path: Vec<String>,
    /// Its default; `Value::Empty` = unset.
    pub default: Value,
}

impl Setting {
    /// Its environment variable; a table (`storage_options`) has none.
    pub fn env_var(&self) -> Option<String> {
        (!matches!(self.default, Value::Dict(..)))
            .then(|| format!("UPDRAFT_{}", self.key.to_ascii_uppercase()))
    }
}

/// The groups of [`Settings`] whose fields are settings, as (path, key prefix).
fn group_prefix(path: &str) -> Option<&'static str> {
    if path == "server" {
        return Some("");
    }
    let inner = path.strip_prefix("server.")?;
    KEY_GROUPS
        .iter()
        .find(|(group, _)| *group == inner)
        .map(|(_, prefix)| *prefix)
}

/// The flat key of a path in [`Settings`] (a path into a table setting keeps
/// the rest dotted: `storage_options.endpoint`).
fn key_of<S: AsRef<str>>(path: &[S]) -> String {
    let mut key = String::new();
    let mut at = String::new();
    for (i, segment) in path.iter().enumerate() {
        let segment = segment.as_ref();
        if !at.is_empty() {
            at.push('.');
        }
        at.push_str(segment);
        match group_prefix(&at) {
            Some(prefix) if i + 1 < path.len() => key.push_str(prefix),
            _ => {
                key.push_str(segment);
                for rest in &path[i + 1..] {
                    key.push('.');
                    key.push_str(rest.as_ref());
                }
                break;
            }
        }
    }
    key
}

/// Every setting, read off the type and its defaults.
pub fn settings() -> anyhow::Result<Vec<Setting>> {
    settings_of(&Settings::default())
}

/// Every setting with its value in `values` (as [`Setting::default`]).
fn settings_of(values: &Settings) -> anyhow::Result<Vec<Setting>> {
    fn walk(dict: &Dict, path: &mut Vec<String>, prefix: &str, out: &mut Vec<Setting>) {
        for (name, value) in dict {
            path.push(name.clone());
            match (group_prefix(&path.join(".")), value) {
                (Some(group), Value::Dict(_, inner)) => {
                    walk(inner, path, &format!("{prefix}{group}"), out)
                }
                _ => out.push(Setting {
                    key: format!("{prefix}{name}"),
                    path: path.clone(),
                    default: value.clone(),
                }),
            }
            path.pop();
        }
    }
    let values = Value::serialize(values).context("the settings")?;
    let Value::Dict(_, dict) = values else {
        bail!("the settings are not a table");
    };
    let mut out = Vec::new();
    walk(&dict, &mut Vec::new(), "", &mut out);
    let mut keys: Vec<&str> = out.iter().map(|s| s.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!("two settings are named {}", pair[0]);
    }
    Ok(out)
}

/// Where a layer's values come from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Default,
    File(&'a Path),
    Env,
    Flag,
}

/// One layer of settings, as figment reads it: flat keys placed at their path.
struct Layer {
    metadata: Metadata,
    data: Dict,
}

impl Layer {
    fn new(
        origin: Origin,
        known: &[Setting],
        values: Vec<(String, Value)>,
    ) -> anyhow::Result<Layer> {
        let metadata = match origin {
            Origin::Default => {
                Metadata::named("default").interpolater(|_: &Profile, path: &[&str]| key_of(path))
            }
            Origin::File(file) => Metadata::named("updraft.toml")
                .source(Source::File(file.to_path_buf()))
                .interpolater(|_: &Profile, path: &[&str]| key_of(path)),
            Origin::Env => {
                Metadata::named("environment").interpolater(|_: &Profile, path: &[&str]| {
                    format!("UPDRAFT_{}", key_of(path).to_ascii_uppercase())
                })
            }
            Origin::Flag => {
                Metadata::named("command line").interpolater(|_: &Profile, path: &[&str]| {
                    format!("--{}", key_of(path).replace('_', "-"))
                })
            }
        };
        let mut data = Dict::new();
        for (key, value) in values {
            let Some(setting) = known.iter().find(|s| s.key == key) else {
                match origin {
                    Origin::File(file) => bail!("unknown setting `{key}` in {}", file.display()),
                    _ => bail!("unknown setting `{key}`"),
                }
            };
            insert(&mut data, &setting.path, value);
        }
        Ok(Layer { metadata, data })
    }
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            dict.insert(leaf.clone(), value);
        }
        [head, rest @ ..] => {
            let entry = dict
                .entry(head.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// What the layers above the defaults are made of.
pub struct Sources {
    /// `--config PATH`; without it, `./updraft.toml` when it exists.
    pub config: Option<PathBuf>,
    /// (key, value) of the settings given as flags.
    pub flags: Vec<(String, String)>,
}

impl Sources {
    /// `updraft.toml`'s path and text, if there is one to read.
    fn file(&self) -> anyhow::Result<Option<(PathBuf, String)>> {
        let path = match &self.config {
            Some(path) => path.clone(),
            None if Path::new("updraft.toml").exists() => PathBuf::from("updraft.toml"),
            None => return Ok(None),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Some((path, text)))
    }
}

/// The settings given on the command line: each argument given there whose id
/// is a setting's key, of the top level (the global `--data-dir` and
/// `--database-url`) and, with `command`, of the command run (`serve
/// --listen`). Without it, a command's own argument that happens to share a
/// setting's name (`restore --storage-option`) is not taken for one.
pub fn flags_from(
    matches: &clap::ArgMatches,
    command: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let known = settings()?;
    let mut flags: Vec<(String, String)> = Vec::new();
    let levels = [
        Some(matches),
        matches.subcommand().map(|(_, sub)| sub).filter(|_| command),
    ];
    for m in levels.into_iter().flatten() {
        for id in m.ids() {
            let id = id.as_str();
            if !known.iter().any(|s| s.key == id)
                || m.value_source(id) != Some(clap::parser::ValueSource::CommandLine)
            {
                continue;
            }
            let Ok(Some(mut raw)) = m.try_get_raw(id) else {
                continue;
            };
            if let Some(value) = raw.next() {
                let value = value
                    .to_str()
                    .with_context(|| format!("--{} is not UTF-8", id.replace('_', "-")))?;
                flags.retain(|(key, _)| key != id);
                flags.push((id.to_string(), value.to_string()));
            }
        }
    }
    Ok(flags)
}

/// The merged layers.
fn figment(
    file: Option<(&Path, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> anyhow::Result<Figment> {
    let known = settings()?;
    let defaults = known
        .iter()
        .map(|s| (s.key.clone(), s.default.clone()))
        .collect();
    let mut figment = Figment::new().merge(Layer::new(Origin::Default, &known, defaults)?);
    if let Some((path, text)) = file {
        let table: toml::Table = toml::from_str(text)
            .with_context(|| format!("invalid configuration in {}", path.display()))?;
        let values = table
            .into_iter()
            .map(|(key, value)| Ok((key, Value::serialize(value).map_err(Box::new)?)))
            .collect::<Result<Vec<_>, Box<figment::Error>>>()
            .with_context(|| format!("invalid configuration in {}", path.display()))?;
        figment = figment.merge(Layer::new(Origin::File(path), &known, values)?);
    }
    let from_env = known
        .iter()
        .filter_map(|s| {
            let text = env(&s.env_var()?)?;
            let text = text.trim();
            (!text.is_empty()).then(|| (s.key.clone(), Value::from(text.to_string())))
        })
        .collect();
    figment = figment.merge(Layer::new(Origin::Env, &known, from_env)?);
    let from_flags = flags
        .iter()
        .map(|(key, value)| (key.clone(), Value::from(value.clone())))
        .collect();
    Ok(figment.merge(Layer::new(Origin::Flag, &known, from_flags)?))
}

/// A refused value, named as it was given and where.
fn explain(error: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let name = match (&e.metadata, &e.profile) {
                (Some(md), Some(profile)) if !e.path.is_empty() => md.interpolate(profile, &e.path),
                _ => key_of(&e.path),
            };
            let place = match e.metadata.as_ref() {
                Some(Metadata {
                    source: Some(Source::File(path)),
                    ..
                }) => path.display().to_string(),
                Some(md) => md.name.to_string(),
                None => "settings".to_string(),
            };
            format!("{name} ({place}): {}", describe(&e.kind))
        })
        .collect();
    anyhow::anyhow!(lines.join("\n"))
}

/// The error in words, without the type names of the code.
fn describe(kind: &Kind) -> String {
    const WHOLE: &[&str] = &["u8", "u16", "u32", "u64", "u128", "usize"];
    let got = |actual: &Actual| match actual {
        Actual::Str(text) => format!("{text:?}"),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        other => other.to_string(),
    };
    match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected)
            if WHOLE.contains(&expected.as_str()) =>
        {
            format!("must be a non-negative whole number, got {}", got(actual))
        }
        Kind::InvalidType(actual, expected) if expected == "a boolean" => {
            format!("must be true or false, got {}", got(actual))
        }
        other => other.to_string(),
    }
}

/// The settings from these layers, checked.
fn resolve(
    file: Option<(&Path, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> anyhow::Result<Settings> {
    let settings: Settings = figment(file, env, flags)?
        .extract_lossy()
        .map_err(explain)?;
    check_download_mode(&settings.server)?;
    settings.server.edge.tls_files().map_err(|err| {
        anyhow::anyhow!("{err} (UPDRAFT_TLS_CERT and UPDRAFT_TLS_KEY go together)")
    })?;
    if settings.database_url.is_none() && settings.database_read_url.is_some() {
        bail!("UPDRAFT_DATABASE_READ_URL needs UPDRAFT_DATABASE_URL (a replica of which primary?)");
    }
    Ok(settings)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The settings `updraft serve` runs with.
pub fn load(sources: &Sources) -> anyhow::Result<Settings> {
    let file = sources.file()?;
    resolve(
        file.as_ref()
            .map(|(path, text)| (path.as_path(), text.as_str())),
        &process_env,
        &sources.flags,
    )
}

/// What the offline commands (`updraft apikey …`, `updraft migrate`) take
/// from the settings when neither a flag nor the environment says: the data
/// directory and the database, so that they open the database `updraft
/// serve` uses.
pub fn client_defaults(
    global: &mut updraft_cli::GlobalOpts,
    flags: &[(String, String)],
) -> anyhow::Result<()> {
    let sources = Sources {
        config: None,
        flags: flags.to_vec(),
    };
    let file = sources.file()?;
    let figment = figment(
        file.as_ref()
            .map(|(path, text)| (path.as_path(), text.as_str())),
        &process_env,
        flags,
    )?;
    global.data_dir = figment
        .extract_inner_lossy("server.data_dir")
        .map_err(explain)?;
    global.database_url = figment
        .extract_inner_lossy("database_url")
        .map_err(explain)?;
    Ok(())
}

/// The download mode against the storage and signing settings.
fn check_download_mode(server: &ServerConfig) -> anyhow::Result<()> {
    use updraft_server::state::DownloadMode;
    match server.download_mode {
        DownloadMode::Stream => {}
        DownloadMode::Redirect | DownloadMode::Cdn if server.storage_url.is_none() => bail!(
            "download mode {} needs object storage: set UPDRAFT_STORAGE_URL=s3://bucket/prefix",
            server.download_mode.as_str()
        ),
        DownloadMode::Redirect => {}
        DownloadMode::Cdn => {
            if server.cdn_base_url.is_none() {
                bail!(
                    "download mode cdn needs UPDRAFT_CDN_BASE_URL (the CDN in front of the bucket)"
                );
            }
            if server.signed_url_ttl_secs.is_some() {
                bail!("signed download URLs (UPDRAFT_SIGNED_URL_TTL_SECS) do not apply to download mode cdn: devices fetch from the CDN");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use updraft_server::settings::check_public_url;
    use updraft_server::webhook_secrets::SecretKey;

    /// The settings from a file's text, an environment and flags.
    fn layered(
        file: &str,
        env: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> anyhow::Result<Settings> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let flags: Vec<(String, String)> = flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(
            Some((Path::new("/etc/updraft.toml"), file)),
            &|name: &str| env.get(name).cloned(),
            &flags,
        )
    }

    fn from_file(file: &str) -> anyhow::Result<Settings> {
        layered(file, &[], &[])
    }

    fn from_env(env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        layered("", env, &[])
    }

    #[test]
    fn webhook_secret_keys_must_be_32_bytes() {
        let hex_key = "ab".repeat(32);
        let file = format!("webhook_secret_key = \"{hex_key}\"");
        let from_file = from_file(&file).unwrap().server.webhook_secret_key;
        assert_eq!(from_file, Some(SecretKey::from_bytes([0xab; 32])));
        let from_env = layered(
            &file,
            &[(
                "UPDRAFT_WEBHOOK_SECRET_KEY",
                "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            )],
            &[],
        )
        .unwrap()
        .server
        .webhook_secret_key;
        assert_eq!(from_env, Some(SecretKey::from_bytes([1; 32])));
        assert_eq!(
            super::tests::from_file("webhook_secret_key = \" \"")
                .unwrap()
                .server
                .webhook_secret_key,
            None
        );
        let err = from_env_only("UPDRAFT_WEBHOOK_SECRET_KEY", "tooshort");
        assert!(
            err.contains("UPDRAFT_WEBHOOK_SECRET_KEY") && err.contains("32 bytes"),
            "{err}"
        );
        assert!(!err.contains("tooshort"), "{err}");
    }

    /// The message of the refusal of one environment variable.
    fn from_env_only(name: &str, value: &str) -> String {
        match from_env(&[(name, value)]) {
            Ok(_) => panic!("{name}={value:?} was accepted"),
            Err(err) => format!("{err:#}"),
        }
    }

    #[test]
    fn public_url_must_be_absolute() {
        assert_eq!(
            check_public_url("https://u.example.com/").unwrap(),
            "https://u.example.com"
        );
        assert!(check_public_url("u.example.com").is_err());
    }

    #[test]
    fn database_passwords_are_redacted_in_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/updraft"),
            "postgres://app:***@db:5432/updraft"
        );
        assert_eq!(redact_url("postgres://db/updraft"), "postgres://db/updraft");
        let err = check_database_url("X", "mysql://u:pw@h/d").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let err = from_file("database_url = \"mysql://u:pw@h/d\"").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("database_url") && !text.contains("pw"),
            "{text}"
        );
    }

    #[test]
    fn object_store_download_modes_need_object_storage() {
        let err = from_file("download_mode = \"redirect\"").unwrap_err();
        assert!(err.to_string().contains("UPDRAFT_STORAGE_URL"), "{err}");
        let settings = from_file(
            "download_mode = \"cdn\"\nstorage_url = \"s3://b/p\"\ncdn_base_url = \"https://cdn.example.com/\"\n[storage_options]\nendpoint = \"http://127.0.0.1:9000\"",
        )
        .unwrap();
        let mut server = settings.server;
        check_download_mode(&server).unwrap();
        server.signed_url_ttl_secs = Some(60);
        assert!(check_download_mode(&server).is_err());
        assert_eq!(
            server.cdn_base_url.as_deref(),
            Some("https://cdn.example.com")
        );
        assert_eq!(server.storage_url.as_deref(), Some("s3://b/p"));
        assert_eq!(
            server.storage_options,
            vec![("endpoint".to_string(), "http://127.0.0.1:9000".to_string())]
        );
        let err = from_file("download_mode = \"fast\"").unwrap_err();
        assert!(err.to_string().contains("stream, redirect or cdn"), "{err}");
        assert!(from_file("storage_url = \"/var/bundles\"").is_err());
    }

    #[test]
    fn connection_settings_come_from_the_file() {
        let server = from_file(
            "max_connections = 300\nlisten_backlog = 4096\nheader_read_timeout_secs = 3\nidle_timeout_secs = 20\nmin_transfer_rate = 100\ntransfer_window_secs = 30\nmax_uri_length = 2048\nmax_header_bytes = 4096",
        )
        .unwrap()
        .server;
        let limits = &server.connections;
        assert_eq!(limits.max_connections, Some(300));
        assert_eq!(limits.listen_backlog, 4096);
        assert_eq!(
            limits.header_read_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(20));
        assert_eq!(limits.min_transfer_rate, 100);
        assert_eq!(limits.transfer_window, std::time::Duration::from_secs(30));
        assert_eq!(
            (limits.max_uri_length, limits.max_header_bytes),
            (2048, 4096)
        );
        let server = from_file("max_connections = 0").unwrap().server;
        assert_eq!(server.connections.max_connections, None);
    }

    #[test]
    fn edge_settings_come_from_every_layer() {
        let file = "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\ntls_reload_interval_secs = 0\nhttp_redirect_listen = \"0.0.0.0:80\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\"]\nlog_format = \"json\"\nmetrics_listen = \"127.0.0.1:9464\"\nmetrics_per_app = true\nmetrics_max_apps = 7";
        let s = from_file(file).unwrap();
        assert_eq!(s.log_format, updraft_server::logging::LogFormat::Json);
        let edge = &s.server.edge;
        assert_eq!(edge.tls_cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(edge.tls_key.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(edge.tls_reload_interval_secs, 1);
        assert_eq!(
            edge.http_redirect_listen,
            Some("0.0.0.0:80".parse().unwrap())
        );
        assert_eq!(edge.trusted_proxies.len(), 2);
        assert_eq!(edge.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(edge.metrics_per_app);
        assert_eq!(edge.metrics_max_apps, 7);
        // The environment and flags win, as for every setting.
        let s = layered(
            file,
            &[
                ("UPDRAFT_TLS_CERT", "/env/c.pem"),
                ("UPDRAFT_TRUSTED_PROXIES", "none"),
                ("UPDRAFT_LOG_FORMAT", "text"),
                ("UPDRAFT_METRICS_PER_APP", "false"),
            ],
            &[
                ("tls_key", "/flag/k.pem"),
                ("metrics_listen", "127.0.0.1:1"),
            ],
        )
        .unwrap();
        let edge = &s.server.edge;
        assert_eq!(edge.tls_cert.as_deref(), Some(Path::new("/env/c.pem")));
        assert_eq!(edge.tls_key.as_deref(), Some(Path::new("/flag/k.pem")));
        assert!(edge.trusted_proxies.is_empty());
        assert!(!edge.metrics_per_app);
        assert_eq!(edge.metrics_listen, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(s.log_format, updraft_server::logging::LogFormat::Text);
        let proxies = from_env(&[("UPDRAFT_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).unwrap();
        assert_eq!(proxies.server.edge.trusted_proxies.len(), 2);
        // By default only a proxy on this host is believed.
        let defaults = from_file("").unwrap();
        assert_eq!(
            defaults.server.edge.trusted_proxies,
            updraft_server::proxy::default_trusted()
        );
        assert_eq!(defaults.server.edge.tls_files(), Ok(None));
        // Refusals name the setting as given.
        let err = format!("{:#}", from_file("tls_cert = \"/c.pem\"").unwrap_err());
        assert!(
            err.contains("tls_key") && err.contains("UPDRAFT_TLS_KEY"),
            "{err}"
        );
        let err = from_env_only("UPDRAFT_TRUSTED_PROXIES", "10.0.0.0/40");
        assert!(err.contains("UPDRAFT_TRUSTED_PROXIES"), "{err}");
        let err = from_env_only("UPDRAFT_LOG_FORMAT", "xml");
        assert!(err.contains("UPDRAFT_LOG_FORMAT"), "{err}");
        let err = from_env_only("UPDRAFT_METRICS_LISTEN", "nowhere");
        assert!(
            err.contains("UPDRAFT_METRICS_LISTEN") && err.contains("host:port"),
            "{err}"
        );
    }

    #[test]
    fn file_keys_are_checked() {
        let err = from_file("listen = \"127.0.0.1:1\"\nbogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"));
        let ok = from_file("listen = \"127.0.0.1:9\"\ndata_dir = \"/tmp/x\"\nzip_max_entries = 10")
            .unwrap();
        assert_eq!(ok.server.zip_limits.max_entries, 10);
        let disk = from_file("min_free_disk_mb = 5\nstartup_quick_check = false").unwrap();
        assert_eq!(disk.server.min_free_disk_mb, 5);
        assert!(!disk.startup_quick_check);
        let quick_check = |text| from_env(&[("UPDRAFT_STARTUP_QUICK_CHECK", text)]);
        assert!(quick_check("off").is_ok_and(|s| !s.startup_quick_check));
        assert!(quick_check("maybe").is_err());
        assert_eq!(ok.server.listen, "127.0.0.1:9".parse().unwrap());
        // A group is not a table of its own: its fields are top-level keys.
        let err = from_file("[zip_limits]\nmax_entries = 10").unwrap_err();
        assert!(err.to_string().contains("zip_limits"), "{err}");
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let file = "listen = \"127.0.0.1:1\"\ndata_dir = \"/from/file\"\nstats_queue_capacity = 7\npublic_url = \"https://file.example.com\"";
        let s = layered(file, &[], &[]).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(s.server.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.server.stats_queue_capacity, 7);
        let env = [
            ("UPDRAFT_LISTEN", " 127.0.0.1:2 "),
            ("UPDRAFT_DATA_DIR", "/from/env"),
            ("UPDRAFT_STATS_QUEUE_CAPACITY", "8"),
            // Empty = unset: the file's value stays.
            ("UPDRAFT_PUBLIC_URL", " "),
            // Not settings of `serve`: ignored, as before.
            ("UPDRAFT_APIKEY", "upd_x"),
            ("UPDRAFT_SERVER", "http://elsewhere"),
        ];
        let s = layered(file, &env, &[]).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(s.server.data_dir, PathBuf::from("/from/env"));
        assert_eq!(s.server.stats_queue_capacity, 8);
        assert_eq!(
            s.server.public_url.as_deref(),
            Some("https://file.example.com")
        );
        let flags = [("listen", "127.0.0.1:3"), ("data_dir", "/from/flag")];
        let s = layered(file, &env, &flags).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:3".parse().unwrap());
        assert_eq!(s.server.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.server.stats_queue_capacity, 8);
        // Nothing set: the defaults of the type.
        let s = layered("", &[], &[]).unwrap();
        let defaults = ServerConfig::default();
        assert_eq!(s.server.listen, defaults.listen);
        assert_eq!(s.server.data_dir, defaults.data_dir);
        assert_eq!(s.server.zip_limits, defaults.zip_limits);
        assert_eq!(s.server.connections, defaults.connections);
        assert_eq!(s.server.limits, defaults.limits);
        assert_eq!(s.log, "info,tower_http=warn,sqlx=warn");
        assert!(s.startup_quick_check && s.database().is_none());
    }

    #[test]
    fn out_of_range_values_are_brought_in_range_and_zero_turns_off() {
        let s = from_env(&[
            ("UPDRAFT_STATS_QUEUE_CAPACITY", "0"),
            ("UPDRAFT_LISTEN_BACKLOG", "1"),
            ("UPDRAFT_PRESIGNED_URL_TTL_SECS", "999999999"),
            ("UPDRAFT_HEADER_READ_TIMEOUT_SECS", "0"),
            ("UPDRAFT_MAX_URI_LENGTH", "10"),
            ("UPDRAFT_ROLLOUT_CONTROL_INTERVAL_MS", "1"),
            ("UPDRAFT_WEBHOOK_TIMEOUT_MS", "5"),
            ("UPDRAFT_SIGNED_URL_TTL_SECS", "0"),
            ("UPDRAFT_APP_STORAGE_QUOTA_BYTES", "0"),
            ("UPDRAFT_MAX_CONNECTIONS", "0"),
            ("UPDRAFT_DEVICE_RATE_LIMIT_BURST", "0"),
        ])
        .unwrap()
        .server;
        assert_eq!(s.stats_queue_capacity, 1);
        assert_eq!(s.connections.listen_backlog, 16);
        assert_eq!(s.presigned_url_ttl_secs, 7 * 24 * 3600);
        assert_eq!(
            s.connections.header_read_timeout,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(s.connections.max_uri_length, 256);
        assert_eq!(s.rollout_control_interval_ms, 10);
        assert_eq!(s.webhook_timeout_ms, 100);
        assert_eq!(s.signed_url_ttl_secs, None);
        assert_eq!(s.limits.app_storage_quota_bytes, None);
        assert_eq!(s.connections.max_connections, None);
        assert_eq!(s.limits.device_rate.burst, 0);
        let s = from_env(&[
            ("UPDRAFT_SIGNED_URL_TTL_SECS", "600"),
            (
                "UPDRAFT_CORS_ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("UPDRAFT_AUTH_FAILURE_LIMIT_PER_MINUTE", "5"),
        ])
        .unwrap()
        .server;
        assert_eq!(s.signed_url_ttl_secs, Some(600));
        assert_eq!(
            s.cors_allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(s.limits.auth_failure_rate.per_minute, 5);
    }

    #[test]
    fn a_refused_value_is_named_as_given_and_where() {
        let err = from_env_only("UPDRAFT_ZIP_MAX_ENTRIES", "lots");
        assert!(
            err.contains("UPDRAFT_ZIP_MAX_ENTRIES (environment)"),
            "{err}"
        );
        assert!(
            err.contains("non-negative whole number") && err.contains("\"lots\""),
            "{err}"
        );
        let err = format!("{:#}", from_file("zip_max_entries = -1").unwrap_err());
        assert!(err.contains("zip_max_entries (/etc/updraft.toml)"), "{err}");
        let err = format!(
            "{:#}",
            layered("", &[], &[("public_url", "example.com")]).unwrap_err()
        );
        assert!(err.contains("--public-url (command line)"), "{err}");
        assert!(err.contains("absolute http(s) URL"), "{err}");
        let err = from_env_only("UPDRAFT_LISTEN", "nowhere");
        assert!(
            err.contains("UPDRAFT_LISTEN") && err.contains("host:port"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            from_file("[storage_options]\nendpoint = 3").unwrap_err()
        );
        assert!(err.contains("storage_options.endpoint"), "{err}");
        let err = from_env_only("UPDRAFT_DATABASE_READ_URL", "postgres://replica/db");
        assert!(err.contains("needs UPDRAFT_DATABASE_URL"), "{err}");
    }

    /// The names every setting had before there was one settings type: the
    /// keys of `updraft.toml` and the environment variables read.
    #[test]
    fn every_earlier_name_is_still_a_setting() {
        const KEYS: &[&str] = &[
            "listen",
            "data_dir",
            "public_url",
            "device_body_limit",
            "api_body_limit",
            "stats_queue_capacity",
            "registry_flush_interval_ms",
            "release_reload_interval_secs",
            "cors_allowed_origins",
            "log",
            "event_retention_days",
            "retention_interval_secs",
            "max_upload_size",
            "upload_expiry_secs",
            "signed_url_ttl_secs",
            "gc_interval_secs",
            "rollout_control_interval_ms",
            "webhook_retry_base_ms",
            "webhook_max_attempts",
            "webhook_timeout_ms",
            "webhook_secret_key",
            "zip_max_entries",
            "zip_max_entry_size",
            "zip_max_total_size",
            "zip_max_compression_ratio",
            "database_url",
            "database_read_url",
            "storage_url",
            "storage_options",
            "download_mode",
            "cdn_base_url",
            "presigned_url_ttl_secs",
            "max_connections",
            "listen_backlog",
            "header_read_timeout_secs",
            "idle_timeout_secs",
            "min_transfer_rate",
            "transfer_window_secs",
            "max_uri_length",
            "max_header_bytes",
            "min_free_disk_mb",
            "write_check_interval_ms",
            "startup_quick_check",
            "device_rate_limit_burst",
            "device_rate_limit_per_minute",
            "app_rate_limit_burst",
            "app_rate_limit_per_minute",
            "rate_limit_max_keys",
            "auth_failure_limit_burst",
            "auth_failure_limit_per_minute",
            "rollup_max_distinct_per_day",
            "app_storage_quota_bytes",
        ];
        const ENV: &[&str] = &[
            "UPDRAFT_APP_RATE_LIMIT_BURST",
            "UPDRAFT_APP_RATE_LIMIT_PER_MINUTE",
            "UPDRAFT_APP_STORAGE_QUOTA_BYTES",
            "UPDRAFT_AUTH_FAILURE_LIMIT_BURST",
            "UPDRAFT_AUTH_FAILURE_LIMIT_PER_MINUTE",
            "UPDRAFT_CDN_BASE_URL",
            "UPDRAFT_DATABASE_READ_URL",
            "UPDRAFT_DATABASE_URL",
            "UPDRAFT_DATA_DIR",
            "UPDRAFT_DEVICE_RATE_LIMIT_BURST",
            "UPDRAFT_DEVICE_RATE_LIMIT_PER_MINUTE",
            "UPDRAFT_DOWNLOAD_MODE",
            "UPDRAFT_EVENT_RETENTION_DAYS",
            "UPDRAFT_GC_INTERVAL_SECS",
            "UPDRAFT_HEADER_READ_TIMEOUT_SECS",
            "UPDRAFT_IDLE_TIMEOUT_SECS",
            "UPDRAFT_LISTEN",
            "UPDRAFT_LISTEN_BACKLOG",
            "UPDRAFT_MAX_CONNECTIONS",
            "UPDRAFT_MAX_HEADER_BYTES",
            "UPDRAFT_MAX_UPLOAD_SIZE",
            "UPDRAFT_MAX_URI_LENGTH",
            "UPDRAFT_MIN_FREE_DISK_MB",
            "UPDRAFT_MIN_TRANSFER_RATE",
            "UPDRAFT_PRESIGNED_URL_TTL_SECS",
            "UPDRAFT_PUBLIC_URL",
            "UPDRAFT_RATE_LIMIT_MAX_KEYS",
            "UPDRAFT_RETENTION_INTERVAL_SECS",
            "UPDRAFT_ROLLOUT_CONTROL_INTERVAL_MS",
            "UPDRAFT_ROLLUP_MAX_DISTINCT_PER_DAY",
            "UPDRAFT_SIGNED_URL_TTL_SECS",
            "UPDRAFT_STARTUP_QUICK_CHECK",
            "UPDRAFT_STATS_QUEUE_CAPACITY",
            "UPDRAFT_STORAGE_URL",
            "UPDRAFT_TRANSFER_WINDOW_SECS",
            "UPDRAFT_UPLOAD_EXPIRY_SECS",
            "UPDRAFT_WEBHOOK_MAX_ATTEMPTS",
            "UPDRAFT_WEBHOOK_RETRY_BASE_MS",
            "UPDRAFT_WEBHOOK_SECRET_KEY",
            "UPDRAFT_WEBHOOK_TIMEOUT_MS",
            "UPDRAFT_WRITE_CHECK_INTERVAL_MS",
            "UPDRAFT_ZIP_MAX_COMPRESSION_RATIO",
            "UPDRAFT_ZIP_MAX_ENTRIES",
            "UPDRAFT_ZIP_MAX_ENTRY_SIZE",
            "UPDRAFT_ZIP_MAX_TOTAL_SIZE",
        ];
        let known = settings().unwrap();
        for key in KEYS {
            assert!(known.iter().any(|s| s.key == *key), "{key} is gone");
        }
        for name in ENV {
            assert!(
                known.iter().any(|s| s.env_var().as_deref() == Some(*name)),
                "{name} is gone"
            );
        }
        let flags = flags_of_serve();
        for (key, flag) in [
            ("listen", "--listen"),
            ("public_url", "--public-url"),
            ("data_dir", "--data-dir"),
            ("database_url", "--database-url"),
            ("tls_cert", "--tls-cert"),
            ("tls_key", "--tls-key"),
            ("http_redirect_listen", "--http-redirect-listen"),
            ("metrics_listen", "--metrics-listen"),
        ] {
            assert_eq!(flags.get(key).map(String::as_str), Some(flag), "{key}");
        }
    }

    /// The flags of `updraft serve` that are settings (argument id = key),
    /// checked against the environment variables clap reads for them.
    fn flags_of_serve() -> HashMap<String, String> {
        use clap::CommandFactory;
        let known = settings().unwrap();
        let mut command = crate::Cli::command();
        command.build();
        let serve = command
            .find_subcommand("serve")
            .expect("a serve subcommand");
        let mut flags = HashMap::new();
        for arg in serve.get_arguments() {
            let Some(setting) = known.iter().find(|s| s.key == arg.get_id().as_str()) else {
                continue;
            };
            let long = arg.get_long().expect("a setting's flag is long");
            if let Some(env) = arg.get_env() {
                assert_eq!(
                    Some(env.to_string_lossy().into_owned()),
                    setting.env_var(),
                    "clap's env of --{long}"
                );
            }
            flags.insert(setting.key.clone(), format!("--{long}"));
        }
        flags
    }

    #[test]
    fn flags_given_on_the_command_line_are_settings() {
        use clap::CommandFactory;
        let matches = crate::Cli::command().get_matches_from([
            "updraft",
            "--data-dir",
            "/d",
            "serve",
            "--listen",
            "127.0.0.1:9",
            "--config",
            "/etc/u.toml",
        ]);
        let mut flags = flags_from(&matches, true).unwrap();
        flags.sort();
        assert_eq!(
            flags,
            [
                ("data_dir".to_string(), "/d".to_string()),
                ("listen".to_string(), "127.0.0.1:9".to_string()),
            ]
        );
        let matches = crate::Cli::command().get_matches_from(["updraft", "serve"]);
        assert_eq!(flags_from(&matches, true).unwrap(), []);
        // Only the global ones when the command's own arguments are not settings.
        let matches = crate::Cli::command().get_matches_from([
            "updraft",
            "serve",
            "--listen",
            "127.0.0.1:9",
            "--data-dir",
            "/d",
        ]);
        assert_eq!(
            flags_from(&matches, false).unwrap(),
            [("data_dir".to_string(), "/d".to_string())]
        );
    }

    /// The first `code span` of a table cell.
    fn code(cell: &str) -> Option<&str> {
        let start = cell.find('`')? + 1;
        let len = cell[start..].find('`')?;
        Some(&cell[start..start + len])
    }

    /// A default as the README writes it: the value, strings bare.
    fn shown(value: &Value) -> Option<String> {
        match value {
            Value::Empty(..) => None,
            Value::String(_, text) => Some(text.clone()),
            Value::Dict(_, dict) if dict.is_empty() => Some("{}".to_string()),
            other => Some(toml::Value::try_from(other).unwrap().to_string()),
        }
    }

    /// The README's configuration table: one row per setting, each name in
    /// each of its forms, and the default where one is set.
    #[test]
    fn the_readme_table_lists_every_setting() {
        let readme = include_str!("../../../README.md");
        let header = "| `updraft.toml` | environment | flag | default |";
        let table: Vec<&str> = readme
            .lines()
            .skip_while(|line| !line.starts_with(header))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .collect();
        assert!(!table.is_empty(), "no table headed {header:?} in README.md");
        let known = settings().unwrap();
        let flags = flags_of_serve();
        let mut problems = Vec::new();
        let mut listed = Vec::new();
        for row in &table {
            let cells: Vec<&str> = row
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let [key, env, flag, default] = cells[..] else {
                problems.push(format!("not 4 cells: {row}"));
                continue;
            };
            let Some(key) = code(key).map(|k| k.trim_matches(['[', ']'])) else {
                problems.push(format!("no key: {row}"));
                continue;
            };
            listed.push(key.to_string());
            let Some(setting) = known.iter().find(|s| s.key == key) else {
                problems.push(format!("`{key}` is in the table but is no setting"));
                continue;
            };
            if code(env).map(str::to_string) != setting.env_var() {
                problems.push(format!(
                    "`{key}`: environment {env:?}, expected {:?}",
                    setting.env_var()
                ));
            }
            if code(flag) != flags.get(key).map(String::as_str) {
                problems.push(format!(
                    "`{key}`: flag {flag:?}, expected {:?}",
                    flags.get(key)
                ));
            }
            match shown(&setting.default) {
                Some(value) if !default.starts_with(&format!("`{value}`")) => problems.push(
                    format!("`{key}`: default {default:?} does not start with `{value}`"),
                ),
                None if default.starts_with('`') => problems.push(format!(
                    "`{key}` is unset by default, the table says {default:?}"
                )),
                _ => {}
            }
        }
        for setting in &known {
            if !listed.contains(&setting.key) {
                problems.push(format!("`{}` is missing from the table", setting.key));
            }
        }
        listed.sort();
        for pair in listed.windows(2).filter(|pair| pair[0] == pair[1]) {
            problems.push(format!("`{}` is listed twice", pair[0]));
        }
        assert!(
            problems.is_empty(),
            "README.md's configuration table:\n{}",
            problems.join("\n")
        );
    }

    fn shown_default(value: &Value) -> String {
        shown(value).unwrap_or_else(|| "unset".to_string())
    }

    /// `updraft.example.toml`'s commented-out example lines made active
    /// (`# key = value` for a setting's key, and every such line in the
    /// `[storage_options]` table).
    fn uncommented(example: &str) -> String {
        let known = settings().unwrap();
        let mut in_table = false;
        let mut out = String::new();
        for line in example.lines() {
            in_table |= line.starts_with("[storage_options]");
            let active = line.strip_prefix("# ").filter(|rest| {
                let key = rest.split(" = ").next().unwrap_or("");
                rest.contains(" = ") && (in_table || known.iter().any(|s| s.key == key))
            });
            out.push_str(active.unwrap_or(line));
            out.push('\n');
        }
        out
    }

    /// The example file parses with the settings type as it is and gives the
    /// defaults; with its commented-out examples made active it still parses
    /// (each setting once), and then it names every setting.
    #[test]
    fn the_example_file_shows_every_setting_and_the_defaults() {
        let example = include_str!("../../../updraft.example.toml");
        let path = Path::new("updraft.example.toml");
        let as_is = resolve(Some((path, example)), &|_| None, &[])
            .unwrap_or_else(|err| panic!("updraft.example.toml as it is: {err:#}"));
        let mut problems = Vec::new();
        let known = settings().unwrap();
        for (shown, default) in settings_of(&as_is).unwrap().iter().zip(&known) {
            if shown.default != default.default {
                problems.push(format!(
                    "`{}` = {:?}, but its default is {:?}",
                    default.key,
                    shown_default(&shown.default),
                    shown_default(&default.default)
                ));
            }
        }
        let full = uncommented(example);
        let table: toml::Table = toml::from_str(&full)
            .unwrap_or_else(|err| panic!("the example with every line active: {err}"));
        if let Err(err) = figment(Some((path, &full)), &|_| None, &[])
            .unwrap()
            .extract_lossy::<Settings>()
        {
            problems.push(format!("with every line active: {:#}", explain(err)));
        }
        for setting in &known {
            if !table.contains_key(&setting.key) {
                problems.push(format!("`{}` is missing", setting.key));
            }
        }
        if !matches!(table.get("storage_options"), Some(toml::Value::Table(t)) if !t.is_empty()) {
            problems.push("[storage_options] shows no example".to_string());
        }
        assert!(
            problems.is_empty(),
            "updraft.example.toml:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn settings_are_flat_keys_of_scalars_lists_or_tables() {
        let known = settings().unwrap();
        for setting in &known {
            assert_eq!(key_of(&setting.path), setting.key);
            // A non-empty table default would be a group missing from KEY_GROUPS.
            if let Value::Dict(_, dict) = &setting.default {
                assert!(dict.is_empty(), "{} looks like a group", setting.key);
            }
        }
    }
}
