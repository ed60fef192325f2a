//! Installing and supervising the server processes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `scripts/test-services.sh` (idempotent, takes a lock), panicking with
/// its output when it fails.
pub fn install_services() {
    let script = crate::workspace_root().join("scripts/test-services.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        output.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Where the installed test tools live.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("UPDRAFT_TEST_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/test-tools"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Whether this process runs as root (PostgreSQL refuses to).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}

/// Quotes a string for `sh`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Starts `command` (a shell command line) under a watchdog that stops it with
/// `stop_signal` once this test process is gone, then runs `cleanup`. Output
/// goes to `log`. As root with `as_user`, the whole thing runs as that user.
pub fn spawn_supervised(
    command: &str,
    stop_signal: &str,
    cleanup: &str,
    log: &Path,
    as_user: Option<&str>,
) {
    let script = format!(
        "{command} >{log} 2>&1 &\n\
         server=$!\n\
         while [ -d /proc/{parent} ] && kill -0 $server 2>/dev/null; do sleep 1; done\n\
         kill -{stop_signal} $server 2>/dev/null\n\
         wait $server\n\
         {cleanup}\n",
        log = shell_quote(&log.display().to_string()),
        parent = std::process::id(),
    );
    let mut cmd = match as_user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--", "sh", "-c", &script]);
            cmd
        }
        None => {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &script]);
            cmd
        }
    };
    let mut watchdog = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {command}: {err}"));
    // Reaped when it ends (after this process is gone, in practice): no zombie.
    std::thread::spawn(move || watchdog.wait());
}

/// Waits until `ready` says yes, panicking with the server's log after `limit`.
pub fn wait_until(what: &str, log: &Path, limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > limit {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start within {limit:?}; its log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether something accepts TCP connections on the loopback port.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}
