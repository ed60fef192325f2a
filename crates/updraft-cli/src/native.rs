//! Which Capacitor plugins with native code a bundle is built against, read
//! from the project's `package.json` and `node_modules` the way the Capgo CLI
//! reads them, so that the server can refuse a bundle the installed app
//! cannot run.
//!
//! Rules (as `@capgo/cli`):
//! - every entry of `dependencies` and `devDependencies` of each given
//!   `package.json` (later files and `devDependencies` win on duplicates);
//! - each is looked up as `<node_modules>/<name>` in the given folders, else in
//!   the `node_modules` of the work directory and of each of its ancestors;
//!   the first that exists is used and its `package.json` `version` is the
//!   installed version (the requested range when it has none);
//! - a package has native code when a file anywhere under its folder is named
//!   like `Name.java`, `.swift`, `.kt` or `.scala` (symbolic links are not
//!   followed);
//! - when the project has no `package.json`, no `node_modules` or a dependency
//!   is not installed, the packages are unknown (the Capgo CLI stops there;
//!   Updraft uploads and warns, since an unknown list is never held against
//!   a bundle but a wrong one would be).

use crate::error::{CliError, LocalCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use updraft_core::model::NativePackage;

/// Where to look; empty lists mean the defaults.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// `package.json` files (default: `<work_dir>/package.json`).
    pub package_json: Vec<PathBuf>,
    /// `node_modules` folders (default: `node_modules` of the work dir and its ancestors).
    pub node_modules: Vec<PathBuf>,
}

impl ScanOptions {
    /// From the comma-separated `--package-json` / `--node-modules` values, relative to `work_dir`.
    pub fn from_flags(
        package_json: Option<&str>,
        node_modules: Option<&str>,
        work_dir: &Path,
    ) -> ScanOptions {
        let split = |text: Option<&str>| -> Vec<PathBuf> {
            text.map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| work_dir.join(p))
                    .collect()
            })
            .unwrap_or_default()
        };
        ScanOptions {
            package_json: split(package_json),
            node_modules: split(node_modules),
        }
    }
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The project's native packages, sorted by name (possibly none).
    Packages(Vec<NativePackage>),
    /// The packages cannot be known; why, as a phrase.
    Unknown(String),
}

impl Scan {
    pub fn packages(&self) -> Option<&[NativePackage]> {
        match self {
            Scan::Packages(packages) => Some(packages),
            Scan::Unknown(_) => None,
        }
    }
}

/// File names that mark native code, as the Capgo CLI's `/([A-Za-z0-9]+)\.(java|swift|kt|scala)$/`.
fn is_native_source(file_name: &str) -> bool {
    let Some((stem, extension)) = file_name.rsplit_once('.') else {
        return false;
    };
    matches!(extension, "java" | "swift" | "kt" | "scala")
        && stem
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn has_native_code(dir: &Path) -> Result<bool, CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CliError::new(
            LocalCode::InvalidDependencies,
            format!("cannot read {}: {e}", dir.display()),
        )
    })?;
    for entry in entries {
        let entry = entry?;
        // `file_type` does not follow symbolic links: a linked folder is not descended into.
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if has_native_code(&entry.path())? {
                return Ok(true);
            }
        } else if is_native_source(&entry.file_name().to_string_lossy()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn read_json(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            LocalCode::InvalidPackageJson,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::new(
            LocalCode::InvalidPackageJson,
            format!("{} is not valid JSON: {e}", path.display()),
        )
    })
}

/// name → requested range, from `dependencies` then `devDependencies` of every file.
fn requested_ranges(files: &[PathBuf]) -> Result<BTreeMap<String, String>, CliError> {
    let mut ranges = BTreeMap::new();
    for file in files {
        let json = read_json(file)?;
        for section in ["dependencies", "devDependencies"] {
            let Some(deps) = json.get(section).and_then(Value::as_object) else {
                continue;
            };
            for (name, range) in deps {
                let range = range.as_str().ok_or_else(|| {
                    CliError::new(
                        LocalCode::InvalidPackageJson,
                        format!(
                            "{}: {section}.{name} must be a version string",
                            file.display()
                        ),
                    )
                })?;
                ranges.insert(name.clone(), range.to_string());
            }
        }
    }
    Ok(ranges)
}

fn default_node_modules(work_dir: &Path) -> Vec<PathBuf> {
    work_dir
        .ancestors()
        .map(|dir| dir.join("node_modules"))
        .collect()
}

/// Scans the project. A missing default `package.json` is not an error
/// (`Scan::NoPackageJson`); a named one that is missing, a dependency that
/// is not installed or unreadable files are.
pub fn scan(options: &ScanOptions, work_dir: &Path) -> Result<Scan, CliError> {
    let package_json = if options.package_json.is_empty() {
        let default = work_dir.join("package.json");
        if !default.is_file() {
            return Ok(Scan::Unknown(format!("no {} found", default.display())));
        }
        vec![default]
    } else {
        for file in &options.package_json {
            if !file.is_file() {
                return Err(CliError::new(
                    LocalCode::InvalidPackageJson,
                    format!("--package-json {} does not exist", file.display()),
                ));
            }
        }
        options.package_json.clone()
    };
    let ranges = requested_ranges(&package_json)?;
    let folders = if options.node_modules.is_empty() {
        default_node_modules(work_dir)
    } else {
        options.node_modules.clone()
    };
    if !ranges.is_empty() && !folders.iter().any(|f| f.is_dir()) {
        return Ok(Scan::Unknown(format!(
            "no node_modules folder at {}",
            folders
                .first()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        )));
    }
    let mut packages = Vec::new();
    let mut missing = Vec::new();
    for (name, requested) in &ranges {
        let Some(dir) = folders
            .iter()
            .map(|folder| folder.join(name))
            .find(|dir| dir.exists())
        else {
            missing.push(name.clone());
            continue;
        };
        if !dir.is_dir() {
            continue;
        }
        if !has_native_code(&dir)? {
            continue;
        }
        let installed = read_json(&dir.join("package.json"))
            .ok()
            .and_then(|json| {
                json.get("version")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| requested.clone());
        packages.push(NativePackage {
            name: name.clone(),
            version: installed,
            requested_version: Some(requested.clone()),
        });
    }
    if !missing.is_empty() {
        return Ok(Scan::Unknown(format!(
            "not installed in node_modules: {}",
            missing.join(", ")
        )));
    }
    Ok(Scan::Packages(packages))
}

/// The warning printed when the packages cannot be known.
pub fn unknown_warning(why: &str) -> String {
    format!(
        "warning: {why}: the bundle's native packages are unknown, so the server cannot check it \
         against the installed app (run npm install; for monorepos and workspaces give \
         --package-json and --node-modules; --ignore-metadata-check silences this)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliCode;
    use serde_json::json;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A package under `node_modules` with the given version and files.
    fn install(root: &Path, name: &str, version: &str, files: &[&str]) {
        let dir = root.join("node_modules").join(name);
        write(
            &dir.join("package.json"),
            &json!({"name": name, "version": version}).to_string(),
        );
        for file in files {
            write(&dir.join(file), "// source");
        }
    }

    fn names(scan: &Scan) -> Vec<(String, String, Option<String>)> {
        scan.packages()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.version.clone(),
                    p.requested_version.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn keeps_only_packages_with_native_sources() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        write(
            &root.join("package.json"),
            &json!({
                "dependencies": {
                    "@capacitor/camera": "^6.0.0",
                    "lodash": "^4.17.0",
                    "@capgo/capacitor-updater": "8.51.14"
                },
                "devDependencies": {"kotlin-only": "~1.0.0"}
            })
            .to_string(),
        );
        install(
            root,
            "@capacitor/camera",
            "6.0.2",
            &[
                "android/src/main/java/com/capacitorjs/CameraPlugin.java",
                "ios/Plugin/Camera.swift",
            ],
        );
        install(root, "lodash", "4.17.21", &["lodash.js", "README.md"]);
        install(
            root,
            "@capgo/capacitor-updater",
            "8.51.14",
            &["ios/Sources/CapacitorUpdater.swift"],
        );
        install(root, "kotlin-only", "1.0.3", &["android/src/Plugin.kt"]);
        let scan = scan(&ScanOptions::default(), root).unwrap();
        assert_eq!(
            names(&scan),
            vec![
                (
                    "@capacitor/camera".into(),
                    "6.0.2".into(),
                    Some("^6.0.0".into())
                ),
                (
                    "@capgo/capacitor-updater".into(),
                    "8.51.14".into(),
                    Some("8.51.14".into())
                ),
                ("kotlin-only".into(), "1.0.3".into(), Some("~1.0.0".into())),
            ]
        );
    }

    #[test]
    fn no_package_json_means_unknown() {
        let project = tempfile::tempdir().unwrap();
        let scan = scan(&ScanOptions::default(), project.path()).unwrap();
        assert_eq!(
            scan,
            Scan::Unknown(format!(
                "no {} found",
                project.path().join("package.json").display()
            ))
        );
        assert_eq!(scan.packages(), None);
    }

    #[test]
    fn a_missing_dependency_makes_the_packages_unknown() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        write(
            &root.join("package.json"),
            &json!({"dependencies": {"@capacitor/camera": "^6.0.0", "@capacitor/app": "6.0.0"}})
                .to_string(),
        );
        install(root, "@capacitor/camera", "6.0.2", &["ios/Camera.swift"]);
        assert_eq!(
            scan(&ScanOptions::default(), root).unwrap(),
            Scan::Unknown("not installed in node_modules: @capacitor/app".into())
        );
    }

    #[test]
    fn no_node_modules_makes_the_packages_unknown_but_no_dependencies_is_fine() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        write(
            &root.join("package.json"),
            &json!({"dependencies": {"@capacitor/camera": "^6.0.0"}}).to_string(),
        );
        let Scan::Unknown(why) = scan(&ScanOptions::default(), root).unwrap() else {
            panic!("known without node_modules");
        };
        assert!(why.starts_with("no node_modules folder at "), "{why}");
        write(
            &root.join("package.json"),
            &json!({"name": "app"}).to_string(),
        );
        assert_eq!(
            scan(&ScanOptions::default(), root).unwrap(),
            Scan::Packages(Vec::new())
        );
    }

    #[test]
    fn named_files_and_folders_are_used_and_later_files_win() {
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        write(
            &root.join("apps/mobile/package.json"),
            &json!({"dependencies": {"@capacitor/camera": "^5.0.0"}}).to_string(),
        );
        write(
            &root.join("apps/other/package.json"),
            &json!({"dependencies": {"@capacitor/camera": "^6.0.0"}}).to_string(),
        );
        // Installed in a shared folder that is not an ancestor's node_modules.
        let shared = root.join("shared");
        install(&shared, "@capacitor/camera", "6.1.0", &["android/src/A.kt"]);
        let options = ScanOptions::from_flags(
            Some("apps/mobile/package.json, apps/other/package.json"),
            Some("shared/node_modules"),
            root,
        );
        assert_eq!(
            names(&scan(&options, root).unwrap()),
            vec![(
                "@capacitor/camera".into(),
                "6.1.0".into(),
                Some("^6.0.0".into())
            )]
        );
        let missing = ScanOptions::from_flags(Some("nope/package.json"), None, root);
        assert_eq!(
            scan(&missing, root).unwrap_err().code,
            CliCode::Local(LocalCode::InvalidPackageJson)
        );
    }

    #[test]
    fn packages_are_found_in_an_ancestors_node_modules() {
        let workspace = tempfile::tempdir().unwrap();
        let app = workspace.path().join("packages/app");
        write(
            &app.join("package.json"),
            &json!({"dependencies": {"@capacitor/app": "6.0.0"}}).to_string(),
        );
        install(
            workspace.path(),
            "@capacitor/app",
            "6.0.0",
            &["ios/App.swift"],
        );
        assert_eq!(
            names(&scan(&ScanOptions::default(), &app).unwrap()),
            vec![(
                "@capacitor/app".into(),
                "6.0.0".into(),
                Some("6.0.0".into())
            )]
        );
    }

    #[test]
    fn native_source_names_follow_the_capgo_pattern() {
        for yes in ["Plugin.java", "A.swift", "x1.kt", "Main.scala"] {
            assert!(is_native_source(yes), "{yes}");
        }
        for no in [
            "plugin.js",
            "Plugin.java.map",
            ".swift",
            "podspec",
            "Plugin.m",
            "a-.kt",
        ] {
            assert!(!is_native_source(no), "{no}");
        }
    }

    #[test]
    fn non_string_dependency_is_refused() {
        let project = tempfile::tempdir().unwrap();
        write(
            &project.path().join("package.json"),
            &json!({"dependencies": {"x": 1}}).to_string(),
        );
        assert_eq!(
            scan(&ScanOptions::default(), project.path())
                .unwrap_err()
                .code,
            CliCode::Local(LocalCode::InvalidPackageJson)
        );
    }
}
