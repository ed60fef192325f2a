//! Built-in HTTPS: the plugin's requests over HTTP/1.1 and HTTP/2, the
//! certificate replaced under a looping client (SIGHUP and file polling),
//! and the HTTP → HTTPS redirect listener.

use crate::harness::{device_body, with, Server, APP};
use crate::storage::{create_app, publish, put_blob, sha};
use reqwest::Method;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name the certificates are for; the clients resolve it to the server.
const HOST: &str = "updates.test";

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for `HOST`: (certificate PEM, key PEM, certificate DER).
    fn leaf(&self) -> (String, String, Vec<u8>) {
        let params = rcgen::CertificateParams::new(vec![HOST.to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// Writes a file whole (write + rename), as certificate tools do.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    fn write(dir: &Path, leaf: &(String, String, Vec<u8>)) -> Pair {
        let pair = Pair {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        pair.replace(leaf);
        pair
    }

    fn replace(&self, leaf: &(String, String, Vec<u8>)) {
        replace_file(&self.key, &leaf.1);
        replace_file(&self.cert, &leaf.0);
    }
}

fn addr_of(url: &str) -> SocketAddr {
    url.strip_prefix("https://")
        .unwrap_or_else(|| panic!("not an https URL: {url}"))
        .parse()
        .unwrap()
}

/// A client trusting `roots` only, reaching `HOST` at `addr`; HTTP/1.1
/// only, or HTTP/2 by ALPN; `fresh` = a new connection (handshake) per
/// request. No session resumption: every handshake shows the certificate
/// the server holds now.
fn client(roots: &[String], addr: SocketAddr, http2: bool, fresh: bool) -> reqwest::Client {
    use tokio_rustls::rustls;
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(root.as_bytes()).unwrap();
        store.add(der).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    tls.resumption = rustls::client::Resumption::disabled();
    tls.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(tls)
        .resolve(HOST, addr)
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if !http2 {
        builder = builder.http1_only();
    }
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

/// The DER of the certificate the server presented.
fn served_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

async fn start(pair: &Pair, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("UPDRAFT_TLS_CERT", pair.cert.to_str().unwrap()),
        ("UPDRAFT_TLS_KEY", pair.key.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env).await
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A stored zip bundle 1.0.1 on a public channel: (its SHA-256, its bytes).
pub(crate) async fn stored_bundle(s: &Server) -> (String, Vec<u8>) {
    create_app(s).await;
    let zip = zip_of(&[
        ("index.html", b"<!doctype html><script src=app.js></script>"),
        ("app.js", b"console.log('served')"),
    ]);
    let digest = put_blob(s, &zip).await;
    assert_eq!(digest, sha(&zip));
    let (st, b) = publish(
        s,
        json!({"version": "1.0.1", "zip_sha256": digest, "checksum": digest}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s
        .api(
            Method::POST,
            &format!("/api/v1/apps/{APP}/channels"),
            Some(&json!({"name": "production", "public": true, "bundle": "1.0.1"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    (digest, zip)
}

fn hangup(s: &Server) {
    let pid = s.child.as_ref().expect("running").id().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_plugins_requests_succeed_over_https_on_http1_and_http2() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let pair = Pair::write(tmp.path(), &ca.leaf());
    let mut s = start(&pair, &[("UPDRAFT_HTTP_REDIRECT_LISTEN", "127.0.0.1:0")]).await;
    let addr = addr_of(&s.url);
    s.url = format!("https://{HOST}:{}", addr.port());
    s.http = client(&[ca.pem()], addr, false, false);
    let (digest, zip) = stored_bundle(&s).await;

    for http2 in [false, true] {
        let http = client(&[ca.pem()], addr, http2, false);
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        let resp = http
            .post(format!("{}/updates", s.url))
            .json(&device_body())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), expected);
        let (st, answer) = Server::read(resp).await;
        assert_eq!(st, 200, "{answer}");
        assert_eq!(answer["version"], "1.0.1", "{answer}");
        // Served over TLS: the download link is https, to the name the device used.
        let url = answer["url"].as_str().unwrap().to_string();
        assert_eq!(url, format!("{}/dl/{APP}/1.0.1/{digest}.zip", s.url));

        let resp = http.get(&url).send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (200, expected));
        assert_eq!(resp.bytes().await.unwrap().to_vec(), zip);

        let event = with(
            device_body(),
            json!({"action": "download_complete", "version_name": "1.0.1", "old_version_name": "", "timestamp": 1767225600000i64}),
        );
        let resp = http
            .post(format!("{}/stats", s.url))
            .json(&json!([event]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), expected);
        let (st, b) = Server::read(resp).await;
        assert_eq!(st, 200, "{b}");

        let resp = http
            .put(format!("{}/channel_self", s.url))
            .json(&device_body())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), expected);
        let (st, b) = Server::read(resp).await;
        assert_eq!(
            (st, b["channel"].as_str()),
            (200, Some("production")),
            "{b}"
        );
    }

    // The redirect listener: 308 (method kept) to the same path on https.
    let redirect = s
        .output
        .stdout_lines()
        .iter()
        .find_map(|line| {
            line.strip_prefix("updraft redirecting http://")
                .and_then(|rest| rest.strip_suffix(" to https"))
                .map(str::to_string)
        })
        .expect("the redirect listener's address on stdout");
    let plain = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = plain
        .post(format!("http://{redirect}/updates?x=1"))
        .header("host", format!("{HOST}:8080"))
        .json(&device_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 308);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("https://{HOST}:{}/updates?x=1", addr.port())
    );
    // Without a Host there is nowhere to send it: 400 missing_host.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(redirect.as_str()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(b"GET /updates HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(answer.contains(r#""error":"missing_host""#), "{answer}");
    // Plain HTTP on the TLS port gets no answer.
    let plain_on_tls = plain
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain_on_tls.is_err() || !plain_on_tls.unwrap().status().is_success());
}

/// Loops update checks until told to stop; counts successes and failures.
fn spawn_loop(
    http: reqwest::Client,
    url: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match http.post(&url).json(&device_body()).send().await {
                Ok(resp) if resp.status().as_u16() == 200 => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(resp) => failed
                    .lock()
                    .unwrap()
                    .push(format!("status {}", resp.status())),
                Err(err) => failed.lock().unwrap().push(format!("{err:?}")),
            }
        }
    })
}

/// Waits until a new connection is served `der`.
async fn wait_for_cert(http: &reqwest::Client, url: &str, der: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let resp = http.get(url).send().await.unwrap();
        if served_cert(&resp) == der {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_failed_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (Ca::new("CA one"), Ca::new("CA two"));
    let first = one.leaf();
    let pair = Pair::write(tmp.path(), &first);
    // Polling far apart: the swap below is SIGHUP's doing.
    let s = start(
        &pair,
        &[
            ("UPDRAFT_TLS_RELOAD_INTERVAL_SECS", "3600"),
            // One device loops here: its rate limit would answer 429.
            ("UPDRAFT_DEVICE_RATE_LIMIT_BURST", "0"),
        ],
    )
    .await;
    let addr = addr_of(&s.url);
    let roots = [one.pem(), two.pem()];
    let base = format!("https://{HOST}:{}", addr.port());
    let setup = client(&roots, addr, false, false);
    for (path, body) in [
        ("/api/v1/apps", json!({"app_id": APP})),
        (
            &format!("/api/v1/apps/{APP}/bundles") as &str,
            json!({"version": "1.0.1", "external_url": "https://cdn.example.com/a.zip", "checksum": crate::harness::CHECKSUM}),
        ),
        (
            &format!("/api/v1/apps/{APP}/channels"),
            json!({"name": "production", "public": true, "bundle": "1.0.1"}),
        ),
    ] {
        let resp = setup
            .post(format!("{base}{path}"))
            .bearer_auth(&s.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
    let probe = client(&roots, addr, false, true);
    let health = format!("{base}/healthz");
    let resp = probe.get(&health).send().await.unwrap();
    assert_eq!(served_cert(&resp), first.2);

    // Two loops through the swap: one opening a connection per request
    // (every handshake around the swap), one on a kept-alive HTTP/2 connection.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let updates = format!("{base}/updates");
    let loops = [
        spawn_loop(
            client(&roots, addr, false, true),
            updates.clone(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        ),
        spawn_loop(
            client(&roots, addr, true, false),
            updates.clone(),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = two.leaf();
    pair.replace(&second);
    hangup(&s);
    wait_for_cert(&probe, &health, &second.2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A broken pair (a key of another certificate) is refused; the served one stays.
    let third = two.leaf();
    replace_file(&pair.key, &third.1);
    hangup(&s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = probe.get(&health).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(served_cert(&resp), second.2);
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed requests during the swap, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let ok = ok.load(Ordering::Relaxed);
    eprintln!("certificate swap: {ok} update checks answered during the swap, none failed");
    assert!(ok > 10, "the loops hardly ran");
}

#[tokio::test]
async fn certificate_files_changed_on_disk_are_picked_up_without_a_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let first = ca.leaf();
    let pair = Pair::write(tmp.path(), &first);
    let s = start(&pair, &[("UPDRAFT_TLS_RELOAD_INTERVAL_SECS", "1")]).await;
    let addr = addr_of(&s.url);
    let probe = client(&[ca.pem()], addr, false, true);
    let health = format!("https://{HOST}:{}/healthz", addr.port());
    let resp = probe.get(&health).send().await.unwrap();
    assert_eq!(served_cert(&resp), first.2);
    let second = ca.leaf();
    pair.replace(&second);
    wait_for_cert(&probe, &health, &second.2, Duration::from_secs(15)).await;
}
