//! Where the app id comes from when the command line omits it: the Capacitor
//! project in the working directory, as the Capgo CLI does.

use crate::error::{CliError, LocalCode};
use serde_json::Value;
use std::path::Path;

pub const CAPACITOR_CONFIG_FILE: &str = "capacitor.config.json";

/// The explicit app id, else the one of `capacitor.config.json` in `work_dir`.
pub fn resolve_app_id(explicit: Option<&str>, work_dir: &Path) -> Result<String, CliError> {
    if let Some(app_id) = explicit {
        return Ok(app_id.to_string());
    }
    let config_path = work_dir.join(CAPACITOR_CONFIG_FILE);
    let text = match std::fs::read_to_string(&config_path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return app_id_from_script_config(work_dir).unwrap_or_else(|| {
                Err(missing_app_id(format!(
                    "no APP_ID given and no {CAPACITOR_CONFIG_FILE} in {}",
                    work_dir.display()
                )))
            })
        }
        Err(error) => {
            return Err(missing_app_id(format!(
                "no APP_ID given and {} cannot be read: {error}",
                config_path.display()
            )))
        }
    };
    let config: Value = serde_json::from_str(&text).map_err(|error| {
        missing_app_id(format!(
            "no APP_ID given and {} is not valid JSON: {error}",
            config_path.display()
        ))
    })?;
    app_id_from_config(&config).ok_or_else(|| {
        missing_app_id(format!(
            "no APP_ID given and {} has no \"appId\"",
            config_path.display()
        ))
    })
}

/// `plugins.CapacitorUpdater.appId` (the updater's own override) wins over the top-level `appId`.
pub fn app_id_from_config(config: &Value) -> Option<String> {
    let non_empty = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
    };
    non_empty(config.pointer("/plugins/CapacitorUpdater/appId"))
        .or_else(|| non_empty(config.get("appId")))
}

/// The `appId` of `capacitor.config.ts` (or `.js`) when there is one, read
/// as [`crate::project::string_property`] does (the file is not run).
fn app_id_from_script_config(work_dir: &Path) -> Option<Result<String, CliError>> {
    let file = ["capacitor.config.ts", "capacitor.config.js"]
        .iter()
        .map(|name| work_dir.join(name))
        .find(|path| path.is_file())?;
    let read = std::fs::read_to_string(&file)
        .map_err(|error| error.to_string())
        .and_then(|text| crate::project::string_property(&text, "appId"));
    Some(
        read.map_err(|why| {
            missing_app_id(format!("no APP_ID given and {}: {why}", file.display()))
        }),
    )
}

fn missing_app_id(reason: String) -> CliError {
    CliError::new(
        LocalCode::MissingAppId,
        format!(
            "{reason}; pass the app id as an argument or run the command in your Capacitor project"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliCode;
    use serde_json::json;

    fn dir_with_config(content: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CAPACITOR_CONFIG_FILE), content).unwrap();
        dir
    }

    #[test]
    fn explicit_app_id_wins_without_reading_the_config() {
        let dir = dir_with_config("not json");
        assert_eq!(
            resolve_app_id(Some("com.given.app"), dir.path()).unwrap(),
            "com.given.app"
        );
    }

    #[test]
    fn reads_top_level_app_id() {
        let dir = dir_with_config(r#"{"appId": "com.example.app", "appName": "Example"}"#);
        assert_eq!(resolve_app_id(None, dir.path()).unwrap(), "com.example.app");
    }

    #[test]
    fn updater_plugin_app_id_takes_precedence() {
        let dir = dir_with_config(
            r#"{"appId": "com.example.app", "plugins": {"CapacitorUpdater": {"appId": "com.example.updater"}}}"#,
        );
        assert_eq!(
            resolve_app_id(None, dir.path()).unwrap(),
            "com.example.updater"
        );
    }

    #[test]
    fn empty_plugin_app_id_falls_back_to_top_level() {
        let config =
            json!({"appId": "com.top.level", "plugins": {"CapacitorUpdater": {"appId": " "}}});
        assert_eq!(
            app_id_from_config(&config).as_deref(),
            Some("com.top.level")
        );
    }

    #[test]
    fn reads_the_app_id_of_a_typescript_config_without_running_it() {
        let dir = tempfile::tempdir().unwrap();
        let ts = dir.path().join("capacitor.config.ts");
        std::fs::write(
            &ts,
            "const config = { appId: 'com.ts.app', webDir: 'www' };",
        )
        .unwrap();
        assert_eq!(resolve_app_id(None, dir.path()).unwrap(), "com.ts.app");
        std::fs::write(&ts, "const config = { appId: process.env.APP_ID };").unwrap();
        let error = resolve_app_id(None, dir.path()).unwrap_err();
        assert_eq!(error.code, CliCode::Local(LocalCode::MissingAppId));
        assert!(
            error.message.contains("not a plain string literal"),
            "{}",
            error.message
        );
    }

    #[test]
    fn no_config_file_is_missing_app_id() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve_app_id(None, dir.path()).unwrap_err();
        assert_eq!(error.code, CliCode::Local(LocalCode::MissingAppId));
        assert!(
            error.message.contains("no capacitor.config.json"),
            "{}",
            error.message
        );
    }

    #[test]
    fn config_without_app_id_is_missing_app_id() {
        let dir = dir_with_config(r#"{"appName": "Example", "appId": 42}"#);
        let error = resolve_app_id(None, dir.path()).unwrap_err();
        assert_eq!(error.code, CliCode::Local(LocalCode::MissingAppId));
        assert!(
            error.message.contains("has no \"appId\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn malformed_config_is_missing_app_id_naming_the_problem() {
        let dir = dir_with_config("{ appId: 'com.example.app' }");
        let error = resolve_app_id(None, dir.path()).unwrap_err();
        assert_eq!(error.code, CliCode::Local(LocalCode::MissingAppId));
        assert!(
            error.message.contains("is not valid JSON"),
            "{}",
            error.message
        );
    }
}
