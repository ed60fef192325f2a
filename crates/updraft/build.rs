//! Puts the git revision into `updraft --version` (`UPDRAFT_GIT_REV`):
//! `git rev-parse --short HEAD` when the source is a git checkout, the
//! `UPDRAFT_GIT_REV` environment variable when set (a build from a tarball or
//! a container context without `.git`), else `unknown`. Never fails the build.
//! Re-runs only when HEAD or the branch it points to moves, so a commit
//! rebuilds this crate, not the workspace.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=UPDRAFT_GIT_REV");
    let from_env = std::env::var("UPDRAFT_GIT_REV")
        .ok()
        .filter(|rev| !rev.trim().is_empty());
    let rev = from_env
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=UPDRAFT_GIT_REV={rev}");
    // HEAD itself (a checkout), the branch file it names (a commit), and
    // packed-refs (a branch packed by git gc). `--git-path` resolves them in
    // a worktree too.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
