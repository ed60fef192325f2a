//! Living under a service manager: systemd readiness (`Type=notify`) and the
//! container health check (`updraft healthcheck`). Both ask the running
//! server's own `GET /readyz` over loopback, so "ready" means what a load
//! balancer would see.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `updraft healthcheck`: exit 0 when the local server's `/readyz` answers 200.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// Configuration file whose `listen` is probed (default: ./updraft.toml when it exists)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The server's listen address (env UPDRAFT_LISTEN; default 127.0.0.1:8080);
    /// 0.0.0.0 and [::] are probed on loopback
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Probe this URL instead of http(s)://<listen>/readyz (its certificate is checked)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up after this many seconds (`/readyz` answers within 1.5 s even
    /// when the database does not)
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub timeout_secs: u64,
}

/// The address a local client reaches a listener bound to `listen` on: the
/// loopback of the same family when it is bound to every interface.
pub fn loopback_for(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `http(s)://{addr}/readyz`, with the brackets an IPv6 address needs.
pub fn readyz_url(listen: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}/readyz", loopback_for(listen))
}

/// What one `GET /readyz` got.
#[derive(Debug)]
pub struct Readiness {
    pub status: u16,
    pub body: String,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == 200
    }

    /// One line for `STATUS=` and the health check's output: the status, and
    /// the error code and message of a 503.
    pub fn summary(&self) -> String {
        let parsed: Option<serde_json::Value> = serde_json::from_str(&self.body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if self.is_ready() {
            return "ready".to_string();
        }
        match (field("error"), field("message")) {
            (Some(code), Some(message)) => {
                format!("not ready ({}): {code}: {message}", self.status)
            }
            _ => format!("not ready ({}): {}", self.status, self.body.trim()),
        }
    }
}

/// `verify_tls = false` for the probe of this host's own listener by
/// address, which a certificate for the public name does not cover (the
/// probe sends nothing secret and only reads the status); a URL given with
/// `--url` is checked as usual.
fn client(timeout: Duration, verify_tls: bool) -> anyhow::Result<reqwest::Client> {
    // No proxy: HTTP(S)_PROXY in a service's environment must not send a
    // loopback probe elsewhere.
    Ok(reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(!verify_tls)
        .timeout(timeout)
        .build()?)
}

async fn probe(http: &reqwest::Client, url: &str) -> Result<Readiness, reqwest::Error> {
    let response = http.get(url).send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(Readiness { status, body })
}

/// `updraft healthcheck`: prints the answer, exit code 0 when ready.
pub async fn healthcheck(url: &str, timeout: Duration, verify_tls: bool) -> anyhow::Result<bool> {
    let http = client(timeout, verify_tls)?;
    match probe(&http, url).await {
        Ok(readiness) if readiness.is_ready() => {
            println!("{url}: {}", readiness.body.trim());
            Ok(true)
        }
        Ok(readiness) => {
            eprintln!("{url}: {}", readiness.summary());
            Ok(false)
        }
        Err(err) => {
            eprintln!("cannot reach {url}: {err}");
            Ok(false)
        }
    }
}

/// Whether a service manager asked for readiness notifications.
fn notify_requested() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(error = %err, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// With `NOTIFY_SOCKET` set (systemd `Type=notify`): sends `READY=1` once
/// this server's own `/readyz` answers over `addr`, with `STATUS=` saying
/// what it answered. A 503 (disk below `min_free_disk_mb`, say) is a state
/// the running server reports and recovers from, not a failed start: the
/// service is up and answering update checks, and `/readyz` keeps telling
/// load balancers. Without `NOTIFY_SOCKET`: nothing, no probe.
pub fn spawn_ready_notification(
    addr: SocketAddr,
    tls: bool,
) -> Option<tokio::task::JoinHandle<()>> {
    if !notify_requested() {
        return None;
    }
    let url = readyz_url(addr, tls);
    Some(tokio::spawn(async move {
        let http = match client(Duration::from_secs(3), false) {
            Ok(http) => http,
            Err(err) => {
                tracing::warn!(error = %err, "cannot build the readiness probe; notifying READY=1 now");
                notify(&[sd_notify::NotifyState::Ready]);
                return;
            }
        };
        loop {
            match probe(&http, &url).await {
                Ok(readiness) => {
                    let status = format!("serving on {addr}; /readyz: {}", readiness.summary());
                    tracing::info!(%status, "notifying the service manager: READY=1");
                    notify(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status(&status),
                    ]);
                    return;
                }
                Err(err) => {
                    tracing::debug!(error = %err, %url, "readiness probe: no answer yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

/// `STOPPING=1` when the shutdown begins (in-flight requests and buffered
/// writes are still finishing), so `systemctl status` says so.
pub fn notify_stopping() {
    if notify_requested() {
        notify(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping: finishing requests, flushing writes"),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let url = |s: &str| readyz_url(s.parse().unwrap(), false);
        assert_eq!(
            readyz_url("0.0.0.0:8443".parse().unwrap(), true),
            "https://127.0.0.1:8443/readyz"
        );
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/readyz");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/readyz");
        assert_eq!(url("10.1.2.3:9000"), "http://10.1.2.3:9000/readyz");
        assert_eq!(url("[fd00::5]:80"), "http://[fd00::5]:80/readyz");
    }

    #[test]
    fn summaries_name_the_reason() {
        let ok = Readiness {
            status: 200,
            body: r#"{"status":"ok","leader":true}"#.into(),
        };
        assert_eq!(ok.summary(), "ready");
        let low = Readiness {
            status: 503,
            body: r#"{"status":"unavailable","error":"low_disk_space","message":"almost full"}"#
                .into(),
        };
        assert_eq!(
            low.summary(),
            "not ready (503): low_disk_space: almost full"
        );
        let odd = Readiness {
            status: 502,
            body: "bad gateway\n".into(),
        };
        assert_eq!(odd.summary(), "not ready (502): bad gateway");
    }
}
