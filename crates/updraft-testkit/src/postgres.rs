//! A throwaway PostgreSQL cluster: `initdb` into a temp dir, `postgres` on a
//! free loopback port, one fresh database per test.

use crate::process::{
    free_port, install_services, port_open, running_as_root, shell_quote, spawn_supervised,
    wait_until,
};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

struct Cluster {
    port: u16,
    bin: PathBuf,
    user: Option<&'static str>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
/// A streaming replica of `CLUSTER` that applies every commit this late.
static REPLICA: OnceLock<u16> = OnceLock::new();

/// How far behind the primary the test replica replays.
pub const REPLICA_DELAY_MS: u64 = 400;

/// The newest installed PostgreSQL's `bin` directory.
fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("UPDRAFT_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let output = Command::new("sh")
        .args(["-c", "command -v postgres"])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?;
    PathBuf::from(path.trim()).parent().map(PathBuf::from)
}

fn start_cluster() -> Cluster {
    let bin = match find_bin_dir() {
        Some(bin) => bin,
        None => {
            install_services();
            find_bin_dir().expect("PostgreSQL is still missing after scripts/test-services.sh")
        }
    };
    let as_root = running_as_root();
    if as_root
        && Command::new("id")
            .arg("postgres")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    {
        install_services();
    }
    let user = as_root.then_some("postgres");
    let dir = server_dir("pg", user);
    let data = dir.join("data");
    let initdb = format!(
        "{} -D {} -U postgres -A trust -E UTF8 --no-sync --locale=C",
        shell_quote(&bin.join("initdb").display().to_string()),
        shell_quote(&data.display().to_string())
    );
    let output = run_as(user, &initdb);
    assert!(
        output.status.success(),
        "initdb failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Durability settings off: the cluster lives as long as the test process.
    let port = start_server(
        &bin,
        &dir,
        user,
        "PostgreSQL",
        "-c synchronous_commit=off -c full_page_writes=off",
    );
    Cluster { port, bin, user }
}

/// A new directory for one server, owned by `user` when given.
fn server_dir(kind: &str, user: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("updraft-test-{kind}-{}", crate::unique_suffix()));
    std::fs::create_dir_all(&dir).expect("cannot create a server dir");
    if let Some(user) = user {
        let status = Command::new("chown")
            .args([&format!("{user}:{user}"), &dir.display().to_string()])
            .status()
            .expect("cannot run chown");
        assert!(status.success(), "cannot hand {} to {user}", dir.display());
    }
    dir
}

/// Starts `postgres` on `dir/data` on a free port, supervised (stopped and
/// its directory removed once this process is gone), and waits until it
/// accepts connections.
fn start_server(bin: &Path, dir: &Path, user: Option<&str>, what: &str, extra: &str) -> u16 {
    let port = free_port();
    let command = format!(
        "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400 {extra}",
        shell_quote(&bin.join("postgres").display().to_string()),
        shell_quote(&dir.join("data").display().to_string()),
        shell_quote(&dir.display().to_string()),
    );
    let log = dir.join("postgres.log");
    spawn_supervised(
        &command,
        "INT",
        &format!("rm -rf {}", shell_quote(&dir.display().to_string())),
        &log,
        user,
    );
    wait_until(what, &log, Duration::from_secs(60), || {
        port_open(port)
            && Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
    });
    port
}

/// Runs `command` (a shell line) as `user` when given, else as this process.
fn run_as(user: Option<&str>, command: &str) -> std::process::Output {
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--", "sh", "-c", command]);
            cmd
        }
        None => {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", command]);
            cmd
        }
    };
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {command}: {err}"))
}

fn start_replica(cluster: &Cluster) -> u16 {
    let dir = server_dir("pgr", cluster.user);
    let data = dir.join("data");
    let backup = format!(
        "{} -h 127.0.0.1 -p {} -U postgres -D {} -R -X stream --checkpoint=fast --no-sync && \
         echo \"recovery_min_apply_delay = '{REPLICA_DELAY_MS}ms'\" >> {}",
        shell_quote(&cluster.bin.join("pg_basebackup").display().to_string()),
        cluster.port,
        shell_quote(&data.display().to_string()),
        shell_quote(&data.join("postgresql.auto.conf").display().to_string()),
    );
    let output = run_as(cluster.user, &backup);
    assert!(
        output.status.success(),
        "pg_basebackup failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    start_server(
        &cluster.bin,
        &dir,
        cluster.user,
        "the PostgreSQL replica",
        "",
    )
}

/// A new, empty database on the test PostgreSQL server and the URL of the
/// same database on a streaming replica that replays every commit
/// `REPLICA_DELAY_MS` late: `(primary_url, replica_url)`.
pub async fn postgres_database_with_replica() -> (String, String) {
    let primary = postgres_database().await;
    let replica_port = tokio::task::spawn_blocking(|| {
        let cluster = CLUSTER
            .get()
            .expect("postgres_database started the cluster");
        *REPLICA.get_or_init(|| start_replica(cluster))
    })
    .await
    .expect("starting the replica panicked");
    let name = primary.rsplit('/').next().unwrap_or_default().to_string();
    let replica = format!("postgres://postgres@127.0.0.1:{replica_port}/{name}");
    // The new database reaches the replica after the replay delay.
    for _ in 0..200 {
        if sqlx::PgConnection::connect(&replica).await.is_ok() {
            return (primary, replica);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("database {name} did not reach the replica");
}

/// The URL of a new, empty database on the test process's PostgreSQL server
/// (started, and installed if needed, on first use).
pub async fn postgres_database() -> String {
    let port = tokio::task::spawn_blocking(|| CLUSTER.get_or_init(start_cluster).port)
        .await
        .expect("starting PostgreSQL panicked");
    let name = format!("updraft_test_{}", crate::unique_suffix());
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut last_error = None;
    for _ in 0..20 {
        match create_database(&admin, &name).await {
            Ok(()) => return format!("postgres://postgres@127.0.0.1:{port}/{name}"),
            Err(err) => {
                last_error = Some(err);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("cannot create test database {name}: {last_error:?}");
}

async fn create_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await
}
