//! Everything generated from the clap definitions: shell completions
//! (`updraft completions bash|zsh|fish`), man pages (`updraft man`, and the
//! files under docs/man/), and the command reference of docs/cli.md. The
//! tests below keep docs/man/ and docs/cli.md equal to what the definitions
//! produce (`UPDATE_CLI_DOCS=1` rewrites them).

use clap::{Args, Command, CommandFactory};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `updraft --version`: the package version and the git revision it was built from.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("UPDRAFT_GIT_REV"),
    ")"
);

#[derive(Args, Clone, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Clone, Debug)]
pub struct ManArgs {
    /// Write one page per command (updraft.1, updraft-bundle-upload.1, …) into
    /// this directory instead of printing updraft(1) on stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The whole command line, as the docs show it: the package version without
/// the git revision (the generated files must not change with every commit)
/// and without the values of the environment this runs in.
pub fn documented_command() -> Command {
    hide_env_values(crate::Cli::command().version(env!("CARGO_PKG_VERSION")))
}

fn hide_env_values(cmd: Command) -> Command {
    cmd.mut_args(|arg| arg.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

/// `updraft completions SHELL`: the completion script on stdout.
pub fn completions(args: &CompletionsArgs) -> std::io::Result<()> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "updraft", &mut out);
    write_stdout(&out)
}

/// `updraft man [--dir DIR]`.
pub fn man(args: &ManArgs) -> std::io::Result<()> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            write_man_pages(dir)
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(documented_command()).render(&mut out)?;
            write_stdout(&out)
        }
    }
}

/// One man page per command, named `updraft-<sub>-<sub>.1`.
pub fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    clap_mangen::generate_to(documented_command(), dir)
}

/// A closed stdout (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
/// Every command's path (`["bundle", "upload"]`), depth first, in the order
/// `--help` lists them; `help` left out.
pub fn command_paths(cmd: &Command) -> Vec<Vec<String>> {
    fn walk(cmd: &Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" || sub.is_hide_set() {
                continue;
            }
            path.push(sub.get_name().to_string());
            out.push(path.clone());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(cmd, &mut Vec::new(), &mut out);
    out
}

/// The marker after which docs/cli.md is generated.
#[cfg(test)]
pub const REFERENCE_MARKER: &str = "<!-- Generated from the clap definitions below this line: \
`UPDATE_CLI_DOCS=1 cargo test -p updraft --bin updraft cli_docs` rewrites it. -->";

/// The generated part of docs/cli.md: every command's `--help`.
#[cfg(test)]
pub fn reference_markdown() -> String {
    let mut root = documented_command();
    root.build();
    let mut text = String::new();
    text.push_str(REFERENCE_MARKER);
    text.push_str("\n\n## Command reference\n");
    let mut sections = vec![(Vec::new(), root.clone())];
    for path in command_paths(&root) {
        let mut cmd = root.clone();
        for name in &path {
            match cmd.find_subcommand(name) {
                Some(sub) => cmd = sub.clone(),
                None => break,
            }
        }
        sections.push((path, cmd));
    }
    for (path, mut cmd) in sections {
        let title = std::iter::once("updraft".to_string())
            .chain(path)
            .collect::<Vec<_>>()
            .join(" ");
        let help = cmd.render_long_help().to_string();
        let help: Vec<&str> = help.lines().map(str::trim_end).collect();
        text.push_str(&format!(
            "\n### `{title}`\n\n```text\n{}\n```\n",
            help.join("\n").trim_end()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    }

    fn rewrite() -> bool {
        std::env::var_os("UPDATE_CLI_DOCS").is_some_and(|v| !v.is_empty())
    }

    /// docs/cli.md: the human part by hand, then every command's `--help`.
    #[test]
    fn cli_docs_match_the_help_of_every_command() {
        let path = docs_dir().join("cli.md");
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let human = current
            .split_once(REFERENCE_MARKER)
            .map_or(current.as_str(), |(human, _)| human);
        let expected = format!("{}{}", human, reference_markdown());
        if rewrite() {
            std::fs::write(&path, &expected).unwrap();
            return;
        }
        assert!(
            current.contains(REFERENCE_MARKER),
            "docs/cli.md lacks its generated part: run UPDATE_CLI_DOCS=1 cargo test -p updraft --bin updraft cli_docs"
        );
        assert!(
            current == expected,
            "docs/cli.md differs from the commands' --help: run \
             UPDATE_CLI_DOCS=1 cargo test -p updraft --bin updraft cli_docs"
        );
    }

    /// docs/man/: one page per command, as `updraft man --dir` writes them.
    #[test]
    fn cli_docs_man_pages_are_current() {
        let generated = tempfile::tempdir().unwrap();
        write_man_pages(generated.path()).unwrap();
        let dir = docs_dir().join("man");
        if rewrite() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            write_man_pages(&dir).unwrap();
            return;
        }
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        let expected = names(generated.path());
        assert!(
            expected.contains(&"updraft-bundle-upload.1".to_string()),
            "{expected:?}"
        );
        assert_eq!(
            names(&dir),
            expected,
            "docs/man/ is not what `updraft man --dir` writes: run UPDATE_CLI_DOCS=1 cargo test -p updraft --bin updraft cli_docs"
        );
        for name in &expected {
            let want = std::fs::read(generated.path().join(name)).unwrap();
            let have = std::fs::read(dir.join(name)).unwrap();
            assert!(
                want == have,
                "docs/man/{name} is stale: run UPDATE_CLI_DOCS=1 cargo test -p updraft --bin updraft cli_docs"
            );
        }
    }

    /// Every command of `--help` has a row in the README's CLI table (by name).
    #[test]
    fn cli_docs_readme_table_names_every_command() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let rows: Vec<&str> = readme
            .lines()
            .filter(|line| line.starts_with("| `updraft "))
            .collect();
        assert!(!rows.is_empty(), "the README's CLI table is gone");
        let root = documented_command();
        let missing: Vec<String> = command_paths(&root)
            .into_iter()
            // A group (`bundle`) is named through its commands.
            .filter(|path| {
                let mut cmd = &root;
                for name in path {
                    if let Some(sub) = cmd.find_subcommand(name) {
                        cmd = sub;
                    }
                }
                !cmd.has_subcommands()
            })
            .map(|path| path.join(" "))
            .filter(|name| {
                !rows.iter().any(|row| {
                    row.contains(&format!("`updraft {name}"))
                        || row.contains(&format!("`{name} "))
                        || row.contains(&format!("`{name}`"))
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "commands without a row in the README's CLI table: {missing:?}"
        );
    }

    #[test]
    fn version_names_the_git_revision() {
        assert!(LONG_VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(LONG_VERSION.contains("(git "), "{LONG_VERSION}");
        let rev = env!("UPDRAFT_GIT_REV");
        assert!(
            !rev.is_empty() && !rev.contains(char::is_whitespace),
            "{rev}"
        );
    }
}
