//! Several nodes on one PostgreSQL database and one S3-compatible bucket (both
//! real, throwaway servers): a change made through one node is served by the
//! others within 2 s, a bundle uploaded through one is downloaded from
//! another, stats sent to every node all arrive, and the background work runs
//! on exactly one node and moves when that node is killed.

use crate::harness::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What every node of the cluster gets in its environment.
struct Shared {
    env: Vec<(String, String)>,
}

impl Shared {
    async fn new() -> Shared {
        let database = updraft_testkit::postgres_database().await;
        let bucket = updraft_testkit::s3_bucket().await;
        let mut env = bucket.env();
        env.push(("UPDRAFT_DATABASE_URL".into(), database));
        env.push(("UPDRAFT_STORAGE_URL".into(), bucket.url.clone()));
        // Fast background passes, so a takeover shows within the test.
        env.push(("UPDRAFT_ROLLOUT_CONTROL_INTERVAL_MS".into(), "200".into()));
        Shared { env }
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// A node with its own (local staging) data directory.
    fn node(&self, dir: &Path, key: &str) -> Server {
        let mut node = Server::spawn(dir, &self.pairs());
        node.key = key.to_string();
        node
    }

    /// `updraft apikey create` against the shared database.
    fn admin_key(&self, dir: &Path) -> String {
        let out = Command::new(bin())
            .args([
                "apikey", "create", "--name", "ci", "--role", "admin", "--json",
            ])
            .env("UPDRAFT_DATA_DIR", dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run updraft apikey create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v["key"].as_str().expect("key").to_string()
    }
}

async fn metric(node: &Server, name: &str) -> Option<f64> {
    let text = node
        .http
        .get(format!("{}/metrics", node.url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

async fn is_leader(node: &Server) -> bool {
    metric(node, "updraft_cluster_leader").await == Some(1.0)
}

/// Polls until `check` holds; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A device still on the bundle built into the app: offered whatever the channel serves.
fn builtin_device() -> Value {
    with(
        device_body(),
        json!({"version_name": "builtin", "version_build": "1.0.0"}),
    )
}

async fn offered_version(node: &Server) -> Option<String> {
    let (status, body) = node.post("/updates", &builtin_device()).await;
    assert_eq!(status, 200, "{body}");
    body["version"].as_str().map(str::to_string)
}

fn project_with(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("dist")).expect("mkdir");
    std::fs::write(dir.path().join("dist/index.html"), text).expect("write");
    std::fs::write(
        dir.path().join("capacitor.config.json"),
        json!({"appId": APP, "webDir": "dist"}).to_string(),
    )
    .expect("write");
    dir
}

fn upload(node: &Server, version: &str, text: &str) {
    let project = project_with(text);
    let (code, out, err) = cli_in(
        &node.data_dir,
        Some(&node.url),
        Some(&node.key),
        &["bundle", "upload", "--path", "dist", "--bundle", version],
        Some(project.path()),
    );
    assert_eq!(code, 0, "upload {version}: {out} {err}");
}

#[tokio::test]
async fn nodes_share_releases_bundles_stats_and_one_leader() {
    let shared = Shared::new().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let key = shared.admin_key(&dirs.path().join("cli"));
    let a = shared.node(&dirs.path().join("a"), &key);
    let mut b = shared.node(&dirs.path().join("b"), &key);

    // Exactly one of the two runs the background work.
    within(Duration::from_secs(10), "a leader is elected", || async {
        is_leader(&a).await || is_leader(&b).await
    })
    .await;
    assert!(
        is_leader(&a).await != is_leader(&b).await,
        "exactly one leader"
    );
    for node in [&a, &b] {
        let (status, ready) = node.request(reqwest::Method::GET, "/readyz", None).await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["leader"], json!(is_leader(node).await), "{ready}");
    }

    // Set up through A; B serves it.
    a.cli_ok(&["app", "add", APP]);
    upload(&a, "1.0.1", "<p>one</p>");
    upload(&a, "1.1.0", "<p>two</p>");
    let (s, body) = a
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "production", "public": true, "bundle": "1.0.1"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    within(
        Duration::from_secs(2),
        "B serves A's new channel",
        || async { offered_version(&b).await.as_deref() == Some("1.0.1") },
    )
    .await;

    // A bundle uploaded through A downloads from B, byte for byte.
    let (_, answer) = b.post("/updates", &builtin_device()).await;
    let url = answer["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url: {answer}"))
        .to_string();
    assert!(url.starts_with(&b.url), "B streams it: {url}");
    let zip = b.http.get(&url).send().await.expect("download");
    assert_eq!(zip.status(), 200);
    let bytes = zip.bytes().await.expect("bytes");
    let checksum = answer["checksum"].as_str().expect("checksum");
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), checksum);

    // A release change on either node reaches the other within 2 s, repeatedly.
    for (round, version) in ["1.1.0", "1.0.1", "1.1.0"].iter().enumerate() {
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (s, body) = writer.patch_production(json!({"bundle": version})).await;
        assert_eq!(s, 200, "{body}");
        let took = within(
            Duration::from_secs(2),
            "the other node serves it",
            || async { offered_version(reader).await.as_deref() == Some(*version) },
        )
        .await;
        eprintln!("round {round}: {version} served by the other node after {took:?}");
    }

    // Stats sent to both nodes at once all arrive.
    let per_node = 150;
    let mut sends = Vec::new();
    for (n, node) in [&a, &b].into_iter().enumerate() {
        for i in 0..per_node {
            let body = with(
                device_body(),
                json!({
                    "device_id": format!("00000000-0000-4000-8000-{:012}", n * 1000 + i),
                    "action": "get",
                }),
            );
            sends.push(async move { node.post("/stats", &body).await });
        }
    }
    for (status, body) in futures_util::future::join_all(sends).await {
        assert_eq!(status, 200, "{body}");
    }
    within(Duration::from_secs(10), "every event is stored", || async {
        let (s, report) = a
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/apps/{APP}/stats"),
                None,
            )
            .await;
        s == 200 && report["totals"]["events"] == json!(2 * per_node)
    })
    .await;

    // Kill the leader: the other node takes the background work over and does it.
    let (survivor, victim) = if is_leader(&a).await {
        (&mut b, a)
    } else {
        let victim = std::mem::replace(&mut b, a);
        (&mut b, victim)
    };
    let mut victim = victim;
    victim.sigkill();
    let took = within(Duration::from_secs(10), "the survivor takes over", || {
        is_leader(survivor)
    })
    .await;
    eprintln!("takeover after {took:?}");
    // A schedule made now runs on the new leader, the only node left.
    survivor.cli_ok(&[
        "schedule",
        "add",
        "production",
        APP,
        "--bundle",
        "1.0.1",
        "--at",
        "+1s",
    ]);
    within(Duration::from_secs(10), "the schedule runs", || async {
        offered_version(survivor).await.as_deref() == Some("1.0.1")
    })
    .await;
}

/// The offline key commands open the database `updraft serve` would: with
/// only an updraft.toml naming PostgreSQL, the key lands there (not in a
/// new local SQLite file).
#[tokio::test]
async fn apikey_create_follows_the_database_of_updraft_toml() {
    let database = updraft_testkit::postgres_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("updraft.toml"),
        format!("database_url = \"{database}\"\n"),
    )
    .expect("write updraft.toml");
    let out = Command::new(bin())
        .args([
            "apikey", "create", "--name", "ci", "--role", "admin", "--json",
        ])
        .current_dir(dir.path())
        .env_remove("UPDRAFT_DATABASE_URL")
        .env_remove("UPDRAFT_DATA_DIR")
        .output()
        .expect("run updraft apikey create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let secret = v["key"].as_str().expect("key");
    let store = updraft_store::PgStore::connect(&database, None)
        .await
        .expect("connect");
    use updraft_store::ApiKeyStore;
    let found = store.find_api_key(secret).await.expect("lookup");
    assert_eq!(found.map(|k| k.name), Some("ci".to_string()));
    assert!(
        !dir.path().join("updraft-data").exists(),
        "no local database was created"
    );
    store.close().await;
}

#[tokio::test]
async fn a_stored_public_channel_follows_the_move_on_every_node() {
    use crate::channel_self::both_endpoints;
    let shared = Shared::new().await;
    let dirs = tempfile::tempdir().expect("tempdir");
    let key = shared.admin_key(&dirs.path().join("cli"));
    let a = shared.node(&dirs.path().join("a"), &key);
    let b = shared.node(&dirs.path().join("b"), &key);
    a.cli_ok(&["app", "add", APP]);
    upload(&a, "1.0.1", "<p>one</p>");
    upload(&a, "1.1.0", "<p>two</p>");
    a.cli_ok(&["channel", "add", "production", APP, "--default"]);
    a.cli_ok(&["channel", "set", "production", APP, "--bundle", "1.0.1"]);
    let stored = with(device_body(), json!({"defaultChannel": "production"}));
    within(Duration::from_secs(2), "B serves production", || async {
        both_endpoints(&b, &stored).await == (json!("1.0.1"), json!("production"))
    })
    .await;
    // Through A, stable becomes the public channel; B answers the device that
    // stored "production" from stable on both endpoints.
    a.cli_ok(&["channel", "add", "stable", APP, "--default"]);
    a.cli_ok(&["channel", "set", "stable", APP, "--bundle", "1.1.0"]);
    within(
        Duration::from_secs(2),
        "B follows the public channel",
        || async { both_endpoints(&b, &stored).await == (json!("1.1.0"), json!("stable")) },
    )
    .await;
    assert_eq!(
        both_endpoints(&a, &stored).await,
        (json!("1.1.0"), json!("stable"))
    );
}
