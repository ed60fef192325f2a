//! `updraft login`/`logout`/`whoami`, and the `apikey` commands going to the
//! server (or, explicitly, to its database), run from a directory that is
//! not the server's, as a team member's laptop would.

use crate::harness::{bin, Server, APP};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user elsewhere: an empty working directory and their own config folder.
struct Elsewhere {
    _root: tempfile::TempDir,
    cwd: PathBuf,
    config: PathBuf,
}

impl Elsewhere {
    fn new() -> Elsewhere {
        let root = tempfile::tempdir().unwrap();
        let cwd = root.path().join("project");
        let config = root.path().join("config");
        std::fs::create_dir_all(&cwd).unwrap();
        Elsewhere {
            _root: root,
            cwd,
            config,
        }
    }

    fn login_file(&self) -> PathBuf {
        self.config.join("updraft").join("login.toml")
    }

    /// Runs the CLI with no UPDRAFT_* variables but `env`, `stdin` piped in.
    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(&self.cwd)
            .env("XDG_CONFIG_HOME", &self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("UPDRAFT_") {
                cmd.env_remove(name);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run updraft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let (code, out, err) = self.run(args, env, "");
        assert_eq!(code, 0, "updraft {args:?}: {out} {err}");
        out
    }

    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(self.ok(&all, env).trim()).unwrap()
    }

    fn no_data_dir_here(&self) {
        assert!(
            !self.cwd.join("updraft-data").exists(),
            "an ./updraft-data was created in {}",
            self.cwd.display()
        );
    }
}

async fn status_with(s: &Server, key: &str) -> u16 {
    s.api_as(key, Method::GET, "/api/v1/apps", None).await.0
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn login_then_key_commands_from_another_directory_go_to_the_server() {
    let s = Server::start().await;
    let me = Elsewhere::new();

    // Not logged in: no key to call with, and nothing made on the way.
    let (code, _, err) = me.run(&["whoami", "--server", &s.url], &[], "");
    assert_eq!(code, 3);
    assert!(err.contains("[missing_apikey]"), "{err}");

    // A key the server refuses is not stored.
    let (code, _, err) = me.run(
        &["login", "--server", &s.url, "--apikey-stdin"],
        &[],
        "upd_not_a_real_key\n",
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("[unauthorized]") && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!me.login_file().exists());

    // Logging in stores the server and key, owner-only.
    let (code, out, err) = me.run(
        &["login", "--server", &s.url, "--apikey-stdin"],
        &[],
        &format!("{}\n", s.key),
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("as API key \"admin\""), "{out}");
    let stored = std::fs::read_to_string(me.login_file()).unwrap();
    assert!(
        stored.contains(&s.url) && stored.contains(&s.key),
        "{stored}"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&me.login_file()), 0o600);
        assert_eq!(mode(me.login_file().parent().unwrap()), 0o700);
    }

    let who = me.json(&["whoami"], &[]);
    assert_eq!(who["apikey"]["name"], "admin");
    assert_eq!(who["apikey"]["role"], "admin");
    assert_eq!(who["apikey"]["app_id"], Value::Null);
    assert_eq!(who["apikey"]["expires_at"], Value::Null);
    let text = me.ok(&["whoami"], &[]);
    assert!(
        text.contains("admin") && text.contains("apps     all") && text.contains("never"),
        "{text}"
    );

    // A key created here, with neither flags nor a data directory, is the server's.
    let created = me.json(
        &[
            "apikey",
            "create",
            "--name",
            "laptop",
            "--role",
            "publisher",
        ],
        &[],
    );
    let laptop = created["key"].as_str().unwrap().to_string();
    assert_eq!(status_with(&s, &laptop).await, 200);
    me.no_data_dir_here();
    let listed = me.json(&["apikey", "list"], &[]);
    let names: Vec<&str> = listed["apikeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "laptop"]);
    let table = me.ok(&["apikey", "list"], &[]);
    assert!(
        table.contains("laptop") && table.contains("active"),
        "{table}"
    );

    // The server's audit log names the key that made it.
    let (_, audit) = s
        .api(Method::GET, "/api/v1/audit?action=apikey.create", None)
        .await;
    let actors: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.iter().any(|a| a.contains("admin")), "{audit}");

    // Flags and the environment win over the file.
    let (code, _, err) = me.run(&["whoami"], &[("UPDRAFT_APIKEY", "upd_wrong")], "");
    assert_eq!(code, 3);
    assert!(err.contains("[unauthorized]"), "{err}");
    let who = me.json(&["whoami", "--apikey", &laptop], &[]);
    assert_eq!(who["apikey"]["name"], "laptop");
    // The file's key is never sent to another server.
    let (code, _, err) = me.run(&["whoami", "--server", "http://127.0.0.1:9"], &[], "");
    assert_eq!(code, 3);
    assert!(err.contains("[missing_apikey]"), "{err}");

    // Revoked through the server: the key stops working there.
    let out = me.ok(&["apikey", "revoke", "laptop"], &[]);
    assert!(
        out.contains("Revoked API key") && out.contains("laptop"),
        "{out}"
    );
    assert_eq!(status_with(&s, &laptop).await, 401);

    // A key without the admin role is told what is needed.
    let viewer = me.json(
        &["apikey", "create", "--name", "viewer", "--role", "viewer"],
        &[],
    )["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, err) = me.run(&["apikey", "list", "--apikey", &viewer], &[], "");
    assert_eq!(code, 3);
    assert!(
        err.contains("[forbidden]") && err.contains("admin key"),
        "{err}"
    );

    // Logging out removes the file and says so; then no key is sent.
    let out = me.ok(&["logout"], &[]);
    assert!(
        out.contains("Removed the login for") && out.contains(&s.url),
        "{out}"
    );
    assert!(!me.login_file().exists());
    let (code, _, err) = me.run(&["whoami", "--server", &s.url], &[], "");
    assert_eq!(code, 3);
    assert!(err.contains("[missing_apikey]"), "{err}");
    let out = me.ok(&["logout"], &[]);
    assert!(out.contains("Not logged in"), "{out}");
    let (code, _, err) = me.run(&["apikey", "list", "--server", &s.url], &[], "");
    assert_eq!(code, 3);
    assert!(
        err.contains("[missing_apikey]") && err.contains("updraft login"),
        "{err}"
    );
    me.no_data_dir_here();
}

#[tokio::test]
async fn a_key_for_an_unknown_app_is_refused_on_both_paths() {
    let s = Server::start().await;
    let me = Elsewhere::new();
    let remote = [
        ("UPDRAFT_SERVER", s.url.as_str()),
        ("UPDRAFT_APIKEY", s.key.as_str()),
    ];
    let data_dir = s.data_dir.to_str().unwrap();
    fn create<'a>(path: &[&'a str], name: &'a str) -> Vec<&'a str> {
        let mut args = vec!["apikey", "create", "--name", name, "--app", APP];
        args.extend_from_slice(path);
        args
    }

    let (code, out, err) = me.run(&create(&[], "remote"), &remote, "");
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("[app_not_found]") && err.contains(APP),
        "{err}"
    );
    let (code, out, err) = me.run(&create(&["--data-dir", data_dir], "offline"), &[], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("[app_not_found]") && err.contains("updraft app add"),
        "{err}"
    );
    let (_, keys) = s.api(Method::GET, "/api/v1/apikeys", None).await;
    assert_eq!(keys["apikeys"].as_array().unwrap().len(), 1, "{keys}");

    // Once the app exists, both make the key.
    let (st, _) = s
        .api(Method::POST, "/api/v1/apps", Some(&json!({"app_id": APP})))
        .await;
    assert_eq!(st, 201);
    let mut json_args = create(&[], "remote");
    json_args.push("--json");
    let remote_key = me.ok(&json_args, &remote);
    let mut json_args = create(&["--data-dir", data_dir], "offline");
    json_args.push("--json");
    let offline_key = me.ok(&json_args, &[]);
    for created in [remote_key, offline_key] {
        let created: Value = serde_json::from_str(created.trim()).unwrap();
        assert_eq!(created["app_id"], APP);
        let key = created["key"].as_str().unwrap();
        let (st, _) = s
            .api_as(key, Method::GET, &format!("/api/v1/apps/{APP}"), None)
            .await;
        assert_eq!(st, 200);
    }
}

#[tokio::test]
async fn offline_key_commands_bootstrap_but_never_make_a_data_directory_unasked() {
    let me = Elsewhere::new();

    // No server configured, no data here: refused, nothing made.
    let (code, _, err) = me.run(&["apikey", "create", "--name", "first"], &[], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("[server_not_configured]") && err.contains("--data-dir"),
        "{err}"
    );
    me.no_data_dir_here();
    // A configured server that does not answer, no data here: its error, nothing made.
    let down = [
        ("UPDRAFT_SERVER", "http://127.0.0.1:9"),
        ("UPDRAFT_APIKEY", "upd_x"),
    ];
    let (code, _, err) = me.run(&["apikey", "list"], &down, "");
    assert_eq!(code, 4);
    assert!(err.contains("[connection_failed]"), "{err}");
    me.no_data_dir_here();

    // Named explicitly, a new data directory is made, and said so: the first key.
    let data_dir = me.cwd.join("updraft-data");
    let data = data_dir.to_str().unwrap();
    let (code, first, err) = me.run(
        &["apikey", "create", "--name", "first", "--data-dir", data],
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("created a new, empty Updraft database"),
        "{err}"
    );
    let first = first.trim().to_string();
    assert!(first.starts_with("upd_"), "{first}");

    // With the data there and no server configured, key commands use it, and say so.
    let listed = me.run(&["apikey", "list", "--json"], &[], "");
    assert_eq!(listed.0, 0, "{}", listed.2);
    assert!(listed.2.contains("no server configured"), "{}", listed.2);
    assert!(listed.1.contains("\"first\""), "{}", listed.1);
    // A configured server that does not answer: the data here, said so.
    let (code, out, err) = me.run(&["apikey", "list"], &down, "");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("no Updraft server answers at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(out.contains("first"), "{out}");

    // A server started on that directory takes the bootstrapped key.
    let s = Server::spawn(&data_dir, &[]);
    assert_eq!(status_with(&s, &first).await, 200);
    // And once it answers, key commands here go to it, not to its files.
    let up = [
        ("UPDRAFT_SERVER", s.url.as_str()),
        ("UPDRAFT_APIKEY", first.as_str()),
    ];
    let (code, out, err) = me.run(&["apikey", "create", "--name", "second"], &up, "");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("directly"), "{err}");
    assert_eq!(status_with(&s, out.trim()).await, 200);
    let (_, audit) = s
        .api_as(
            &first,
            Method::GET,
            "/api/v1/audit?action=apikey.create",
            None,
        )
        .await;
    let actors: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.contains(&"cli:offline"), "{audit}");
    assert!(actors.iter().any(|a| a.contains("first")), "{audit}");
}

/// On a terminal, `login` asks for the key and does not echo it. The
/// terminal is util-linux's `script` (in Debian's essential `bsdutils`).
#[cfg(unix)]
#[tokio::test]
async fn login_asks_for_the_key_on_a_terminal_without_echoing_it() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let s = Server::start().await;
    let me = Elsewhere::new();
    let command = format!("{} login --server {}", bin(), s.url);
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .current_dir(&me.cwd)
        .env("XDG_CONFIG_HOME", &me.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("UPDRAFT_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` runs the CLI on a terminal");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("API key for") {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.extend(rx.recv_timeout(left).expect("login asks for the key"));
    }
    // The prompt is written just before echo is turned off.
    std::thread::sleep(Duration::from_millis(500));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{}\n", s.key).as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("login did not finish: {}", String::from_utf8_lossy(&seen));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    let shown = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{shown}");
    assert!(shown.contains("Logged in to"), "{shown}");
    assert!(!shown.contains(&s.key), "the key was echoed: {shown}");
    let stored = std::fs::read_to_string(me.login_file()).unwrap();
    assert!(stored.contains(&s.key), "{stored}");
}

/// An offline command that finds an empty PostgreSQL database says it made
/// Updraft's tables there; on the next run it says nothing.
#[tokio::test]
async fn an_empty_postgres_database_is_not_filled_silently() {
    let database = updraft_testkit::postgres_database().await;
    let me = Elsewhere::new();
    let args = [
        "apikey",
        "create",
        "--name",
        "first",
        "--database-url",
        database.as_str(),
    ];
    let (code, key, err) = me.run(&args, &[], "");
    assert_eq!(code, 0, "{err}");
    assert!(key.trim().starts_with("upd_"), "{key}");
    assert!(
        err.contains("PostgreSQL database was empty: created Updraft's tables"),
        "{err}"
    );
    let (code, out, err) = me.run(
        &["apikey", "list", "--database-url", database.as_str()],
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("first"), "{out}");
    assert!(!err.contains("was empty"), "{err}");
    me.no_data_dir_here();
}
