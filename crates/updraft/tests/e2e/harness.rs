//! Drives the real `updraft` binary: a server on an ephemeral port with its
//! own data directory, the CLI, and HTTP like a device.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const APP: &str = "com.example.app";
pub const DEVICE: &str = "6e2c0c9a-3f5b-4c8e-9a43-1f0f4b2d7c11";
pub const CHECKSUM: &str = "9f2c5e1d7a3b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_updraft")
}

/// Runs the CLI; returns (exit code, stdout, stderr).
pub fn cli(
    data_dir: &Path,
    server: Option<&str>,
    apikey: Option<&str>,
    args: &[&str],
) -> (i32, String, String) {
    cli_in(data_dir, server, apikey, args, None)
}

pub fn cli_in(
    data_dir: &Path,
    server: Option<&str>,
    apikey: Option<&str>,
    args: &[&str],
    cwd: Option<&Path>,
) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("UPDRAFT_DATA_DIR", data_dir)
        .env_remove("UPDRAFT_SERVER")
        .env_remove("UPDRAFT_APIKEY")
        // Piped output is whole unless COLUMNS is exported: never the caller's.
        .env_remove("COLUMNS")
        // No `updraft login` file of the machine's user: one that does not exist.
        .env("XDG_CONFIG_HOME", data_dir.with_extension("no-login"));
    if let Some(server) = server {
        cmd.env("UPDRAFT_SERVER", server);
    }
    if let Some(key) = apikey {
        cmd.env("UPDRAFT_APIKEY", key);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("run updraft");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates an API key offline and returns it.
pub fn create_key(data_dir: &Path, name: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec!["apikey", "create", "--name", name, "--role", role, "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(data_dir, None, None, &args);
    assert_eq!(code, 0, "apikey create failed: {out} {err}");
    let v: Value = serde_json::from_str(out.trim()).expect("apikey create --json prints JSON");
    v["key"].as_str().expect("key").to_string()
}

pub struct Server {
    pub child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
    pub key: String,
    /// Every line the server wrote to stdout, and to stderr when started
    /// with [`Server::start_capturing`] (else stderr is the test's).
    pub output: Output,
}

#[derive(Clone, Default)]
pub struct Output {
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Output {
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Server {
    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// A fresh server with its own data directory and an admin key.
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let key = create_key(&data_dir, "admin", "admin", &[]);
        let mut server = Self::spawn(&data_dir, env);
        server._tmp = Some(tmp);
        server.key = key;
        server
    }

    /// `start_with`, the server's stderr collected in `output` (`RUST_LOG`
    /// is left to `env`, else the server's default filter applies).
    pub async fn start_capturing(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let key = create_key(&data_dir, "admin", "admin", &[]);
        let mut server = Self::spawn_inner(&data_dir, env, &[], true);
        server._tmp = Some(tmp);
        server.key = key;
        server
    }

    /// `start_with`, the binary run under `wrapper` (e.g. `prlimit …`).
    pub async fn start_wrapped(wrapper: &[&str], env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let key = create_key(&data_dir, "admin", "admin", &[]);
        let mut server = Self::spawn_wrapped(&data_dir, env, wrapper);
        server._tmp = Some(tmp);
        server.key = key;
        server
    }

    /// Starts the binary on an existing data directory (restart after a kill).
    pub fn spawn(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::spawn_wrapped(data_dir, env, &[])
    }

    fn spawn_wrapped(data_dir: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        Self::spawn_inner(data_dir, env, wrapper, false)
    }

    fn spawn_inner(
        data_dir: &Path,
        env: &[(&str, &str)],
        wrapper: &[&str],
        capture_stderr: bool,
    ) -> Server {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        cmd.arg("serve")
            .env("UPDRAFT_DATA_DIR", data_dir)
            .env("UPDRAFT_LISTEN", "127.0.0.1:0")
            .env_remove("UPDRAFT_PUBLIC_URL")
            .stdout(Stdio::piped());
        if capture_stderr {
            cmd.env_remove("RUST_LOG").stderr(Stdio::piped());
        } else {
            cmd.env("RUST_LOG", "warn").stderr(Stdio::inherit());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn updraft serve");
        let stdout = child.stdout.take().expect("stdout");
        let output = Output::default();
        if let Some(stderr) = child.stderr.take() {
            let lines = std::sync::Arc::clone(&output.stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = std::sync::Arc::clone(&output.stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("updraft listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server printed its address");
        Server {
            child: Some(child),
            url,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
            key: String::new(),
            output,
        }
    }

    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts on the same data directory.
    pub fn restart(&mut self) {
        let key = std::mem::take(&mut self.key);
        let tmp = self._tmp.take();
        let mut next = Server::spawn(&self.data_dir, &[]);
        next.key = key;
        next._tmp = tmp;
        self.sigkill();
        *self = next;
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        cli(&self.data_dir, Some(&self.url), Some(&self.key), args)
    }

    /// Runs the CLI and insists it succeeds.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(
            code, 0,
            "updraft {args:?} failed: stdout={out} stderr={err}"
        );
        out
    }

    /// POSTs JSON; returns (status, body as JSON or Null).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{}", self.url, path))
            .json(body)
            .send()
            .await
            .expect("request");
        Self::read(resp).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{}", self.url, path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        Self::read(resp).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(body) = body {
            req = req.json(body);
        }
        Self::read(req.send().await.expect("request")).await
    }

    /// Management API call with this server's admin key.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.api_as(&self.key.clone(), method, path, body).await
    }

    pub async fn api_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(key);
        if let Some(body) = body {
            req = req.json(body);
        }
        Self::read(req.send().await.expect("request")).await
    }

    pub async fn read(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// App + external bundle + public channel pointing at it, through the API.
    pub async fn seed(&self, version: &str) {
        let (s, b) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/apps",
                Some(&json!({"app_id": APP})),
            )
            .await;
        assert!(s == 201 || s == 409, "{s} {b}");
        self.bundle(version).await;
        let (s, b) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/apps/{APP}/channels"),
                Some(&json!({"name": "production", "public": true, "bundle": version})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    /// PATCHes the `production` channel of the test app.
    pub async fn patch_production(&self, settings: Value) -> (u16, Value) {
        self.api(
            reqwest::Method::PATCH,
            &format!("/api/v1/apps/{APP}/channels/production"),
            Some(&settings),
        )
        .await
    }

    pub async fn bundle(&self, version: &str) {
        let (s, b) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/apps/{APP}/bundles"),
                Some(&json!({
                    "version": version,
                    "external_url": format!("https://cdn.example.com/{APP}/{version}.zip"),
                    "checksum": CHECKSUM,
                })),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The info object an 8.x Android plugin sends.
pub fn device_body() -> Value {
    json!({
        "platform": "android",
        "device_id": DEVICE,
        "app_id": APP,
        "custom_id": "",
        "version_build": "1.0.0",
        "version_code": "10",
        "version_os": "14",
        "version_name": "1.0.0",
        "plugin_version": "8.51.14",
        "is_emulator": false,
        "is_prod": true,
        "install_source": "google_play",
        "defaultChannel": ""
    })
}

pub fn with(mut body: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object").clone() {
        if v.is_null() {
            body.as_object_mut().expect("object").remove(&k);
        } else {
            body[k] = v;
        }
    }
    body
}

/// The checklist every `/updates` success must pass (plugin-wire-protocol §10).
pub fn assert_plugin_success(body: &Value) {
    let obj = body.as_object().expect("success is an object");
    for forbidden in ["error", "kind", "message"] {
        assert!(
            !obj.contains_key(forbidden),
            "success carries {forbidden}: {body}"
        );
    }
    assert!(body["version"].is_string(), "{body}");
    let url = body["url"].as_str().expect("url is a string");
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "url not absolute: {url}"
    );
    if let Some(checksum) = body.get("checksum").and_then(|c| c.as_str()) {
        assert_eq!(checksum, checksum.to_lowercase(), "checksum not lowercase");
    }
    if let Some(manifest) = body.get("manifest") {
        assert!(
            !manifest.as_array().expect("array").is_empty(),
            "manifest: [] sent"
        );
    }
}

/// Every refusal: an error code, a message and a plugin-known kind.
pub fn assert_refusal(body: &Value, code: &str, kind: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["kind"], kind, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
