//! What `bundle upload` and `channel set --latest` read from the Capacitor
//! project in the working directory when a flag is left out, as the Capgo CLI
//! does: the `webDir` of `capacitor.config.(ts|js|json)` and the `version` of
//! `package.json`.
//!
//! A `.ts`/`.js` config is a program (the Capgo CLI evaluates it); this CLI
//! does not run code, so it reads `webDir` when the file gives it as a string
//! literal (`webDir: 'dist'`, the form `npx cap init` writes) and says so
//! plainly when it cannot (a variable, an expression, several different values).

use crate::error::{CliError, LocalCode};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The config files in the order the Capacitor CLI reads them.
pub const CONFIG_FILES: [&str; 3] = [
    "capacitor.config.ts",
    "capacitor.config.js",
    "capacitor.config.json",
];
pub const PACKAGE_JSON: &str = "package.json";

/// The `webDir` of the project's Capacitor config, relative to `work_dir`.
pub fn web_dir(work_dir: &Path) -> Result<PathBuf, CliError> {
    let Some(file) = CONFIG_FILES
        .iter()
        .map(|name| work_dir.join(name))
        .find(|path| path.is_file())
    else {
        return Err(missing_path(format!(
            "no --path given and no capacitor.config.ts, .js or .json in {}",
            work_dir.display()
        )));
    };
    let text = std::fs::read_to_string(&file).map_err(|error| {
        missing_path(format!(
            "no --path given and {} cannot be read: {error}",
            file.display()
        ))
    })?;
    let name = file.display();
    let web_dir = if file.extension().is_some_and(|ext| ext == "json") {
        let config: Value = serde_json::from_str(&text).map_err(|error| {
            missing_path(format!(
                "no --path given and {name} is not valid JSON: {error}"
            ))
        })?;
        match config.get("webDir") {
            Some(Value::String(dir)) => dir.clone(),
            Some(_) => {
                return Err(missing_path(format!(
                    "no --path given and the webDir of {name} is not a string"
                )))
            }
            None => {
                return Err(missing_path(format!(
                    "no --path given and {name} has no \"webDir\""
                )))
            }
        }
    } else {
        string_property(&text, "webDir")
            .map_err(|why| missing_path(format!("no --path given and {name}: {why}")))?
    };
    let web_dir = web_dir.trim();
    if web_dir.is_empty() {
        return Err(missing_path(format!(
            "no --path given and the webDir of {name} is empty"
        )));
    }
    Ok(PathBuf::from(web_dir))
}

/// The `version` of `./package.json`: the bundle version when `--bundle` is left out.
pub fn package_version(work_dir: &Path, flag: &str) -> Result<String, CliError> {
    let file = work_dir.join(PACKAGE_JSON);
    let fail = |why: String| {
        CliError::new(
            LocalCode::MissingVersion,
            format!("no {flag} given and {why}; pass {flag} VERSION"),
        )
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(format!("no {PACKAGE_JSON} in {}", work_dir.display())))
        }
        Err(error) => return Err(fail(format!("{} cannot be read: {error}", file.display()))),
    };
    let package: Value = serde_json::from_str(&text)
        .map_err(|error| fail(format!("{} is not valid JSON: {error}", file.display())))?;
    package
        .get("version")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|version| !version.is_empty())
        .map(str::to_string)
        .ok_or_else(|| fail(format!("{} has no \"version\"", file.display())))
}

fn missing_path(reason: String) -> CliError {
    CliError::new(
        LocalCode::MissingPath,
        format!("{reason}; pass --path DIR_OR_ZIP"),
    )
}

/// The value of property `name` in JavaScript/TypeScript source, when every
/// occurrence gives it as the same string literal. Comments are skipped and
/// strings are read whole, so `// webDir: 'old'` or a URL containing `//` do
/// not mislead it.
pub fn string_property(source: &str, name: &str) -> Result<String, String> {
    let tokens = tokenize(source);
    let mut values: Vec<String> = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        let is_key = match &tokens[index] {
            Token::Word(word) => word == name,
            Token::Str(text) => text == name,
            _ => false,
        };
        // `name:` is a property; `name` elsewhere (a type, a variable) is not.
        if is_key && tokens.get(index + 1) == Some(&Token::Punct(':')) {
            match tokens.get(index + 2) {
                // A type declaration (`webDir: string;`), not a value.
                Some(Token::Word(word)) if word == "string" => {}
                Some(Token::Str(value))
                    if matches!(
                        tokens.get(index + 3),
                        None | Some(Token::Punct(',' | '}' | ';'))
                    ) =>
                {
                    if !values.contains(value) {
                        values.push(value.clone());
                    }
                }
                _ => {
                    return Err(format!(
                        "{name} is not a plain string literal (it is computed when the \
                         config runs, which this CLI does not do)"
                    ))
                }
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    match values.as_slice() {
        [] => Err(format!("no {name} property found")),
        [value] => Ok(value.clone()),
        _ => Err(format!(
            "{name} is given several different values ({})",
            values.join(", ")
        )),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// An identifier or number.
    Word(String),
    /// A string literal's text (a template literal only when it has no `${`).
    Str(String),
    /// A template literal with substitutions: not a constant.
    Template,
    Punct(char),
}

fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if matches!(c, '\'' | '"' | '`') {
            let quote = c;
            let mut text = String::new();
            let mut substituted = false;
            i += 1;
            while i < chars.len() && chars[i] != quote {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                    text.push(match chars[i] {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    if quote == '`' && chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
                        substituted = true;
                    }
                    text.push(chars[i]);
                }
                i += 1;
            }
            i += 1;
            tokens.push(if substituted {
                Token::Template
            } else {
                Token::Str(text)
            });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$')) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliCode;

    const INIT_TS: &str = "import { CapacitorConfig } from '@capacitor/cli';\n\n\
        const config: CapacitorConfig = {\n  appId: 'io.ionic.starter',\n  appName: 'app',\n  \
        webDir: 'dist',\n  server: { url: 'http://10.0.0.2:8100' } // webDir: 'old'\n};\n\n\
        export default config;\n";

    #[test]
    fn reads_the_literal_of_the_config_npx_cap_init_writes() {
        assert_eq!(string_property(INIT_TS, "webDir").as_deref(), Ok("dist"));
        assert_eq!(
            string_property(
                "module.exports = {\"webDir\": \"www\", appId: \"x\"}",
                "webDir"
            )
            .as_deref(),
            Ok("www")
        );
        assert_eq!(
            string_property("const c = { webDir: `build/web` };", "webDir").as_deref(),
            Ok("build/web")
        );
    }

    #[test]
    fn comments_and_urls_do_not_count() {
        let source = "/* webDir: 'a' */ const c = { url: 'https://x//y', webDir: 'b' }";
        assert_eq!(string_property(source, "webDir").as_deref(), Ok("b"));
    }

    #[test]
    fn computed_or_conflicting_values_are_refused_with_the_reason() {
        for source in [
            "const c = { webDir: process.env.WEB_DIR ?? 'dist' }",
            "const dir = 'dist'; const c = { webDir: dir }",
            "const c = { webDir: `${base}/dist` }",
            "const c = { webDir: 'di' + 'st' }",
        ] {
            let error = string_property(source, "webDir").unwrap_err();
            assert!(
                error.contains("not a plain string literal"),
                "{source}: {error}"
            );
        }
        let error = string_property("a ? { webDir: 'a' } : { webDir: 'b' }", "webDir").unwrap_err();
        assert!(error.contains("several different values (a, b)"), "{error}");
        let typed = "type C = { webDir: string; }; const c: C = { webDir: 'out' };";
        assert_eq!(string_property(typed, "webDir").as_deref(), Ok("out"));
        let error = string_property("const c = { appId: 'x' }", "webDir").unwrap_err();
        assert_eq!(error, "no webDir property found");
    }

    #[test]
    fn web_dir_prefers_ts_then_js_then_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("capacitor.config.json"),
            r#"{"webDir": "www"}"#,
        )
        .unwrap();
        assert_eq!(web_dir(dir.path()).unwrap(), PathBuf::from("www"));
        std::fs::write(dir.path().join("capacitor.config.ts"), INIT_TS).unwrap();
        assert_eq!(web_dir(dir.path()).unwrap(), PathBuf::from("dist"));
    }

    #[test]
    fn no_config_or_no_web_dir_is_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let error = web_dir(dir.path()).unwrap_err();
        assert_eq!(error.code, CliCode::Local(LocalCode::MissingPath));
        std::fs::write(
            dir.path().join("capacitor.config.json"),
            r#"{"appId": "a"}"#,
        )
        .unwrap();
        let error = web_dir(dir.path()).unwrap_err();
        assert!(
            error.message.contains("has no \"webDir\""),
            "{}",
            error.message
        );
        assert!(
            error.message.ends_with("pass --path DIR_OR_ZIP"),
            "{}",
            error.message
        );
    }

    #[test]
    fn package_version_is_read_or_refused_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let error = package_version(dir.path(), "--bundle").unwrap_err();
        assert_eq!(error.code, CliCode::Local(LocalCode::MissingVersion));
        std::fs::write(dir.path().join("package.json"), r#"{"name": "x"}"#).unwrap();
        let error = package_version(dir.path(), "--bundle").unwrap_err();
        assert!(
            error.message.contains("has no \"version\""),
            "{}",
            error.message
        );
        std::fs::write(dir.path().join("package.json"), r#"{"version": " 1.4.0 "}"#).unwrap();
        assert_eq!(package_version(dir.path(), "--bundle").unwrap(), "1.4.0");
    }
}
