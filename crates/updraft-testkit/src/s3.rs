//! A throwaway S3-compatible server (moto's standalone server), one fresh
//! bucket per test.

use crate::process::{
    free_port, install_services, port_open, shell_quote, spawn_supervised, tools_dir, wait_until,
};
use std::sync::OnceLock;
use std::time::Duration;

struct MotoServer {
    endpoint: String,
}

static SERVER: OnceLock<MotoServer> = OnceLock::new();

/// Static credentials the server accepts (moto checks none).
pub const ACCESS_KEY_ID: &str = "updraft-test";
pub const SECRET_ACCESS_KEY: &str = "updraft-test-secret";
pub const REGION: &str = "us-east-1";

/// A fresh bucket on the test S3 server.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    /// The key prefix the tests use inside the bucket (no slashes at the ends).
    pub prefix: String,
    /// `s3://bucket/prefix`: what `UPDRAFT_STORAGE_URL` takes.
    pub url: String,
}

impl S3Bucket {
    /// The standard `AWS_*` environment a process needs to reach this bucket
    /// (custom endpoint, plain HTTP, path-style requests).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same settings as `object_store` option keys (`endpoint`,
    /// `access_key_id`, …), for passing explicitly instead of the environment.
    pub fn options(&self) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|(key, value)| {
                let key = key.to_ascii_lowercase();
                (key.strip_prefix("aws_").unwrap_or(&key).to_string(), value)
            })
            .collect()
    }
}

fn start_server() -> MotoServer {
    let binary = tools_dir().join("venv/bin/moto_server");
    if !binary.exists() {
        install_services();
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("updraft-test-s3-{}", crate::unique_suffix()));
    std::fs::create_dir_all(&dir).expect("cannot create the S3 server's dir");
    let log = dir.join("moto.log");
    spawn_supervised(
        &format!(
            "{} -H 127.0.0.1 -p {port}",
            shell_quote(&binary.display().to_string())
        ),
        "TERM",
        &format!("rm -rf {}", shell_quote(&dir.display().to_string())),
        &log,
        None,
    );
    wait_until("moto_server", &log, Duration::from_secs(60), || {
        port_open(port)
    });
    MotoServer {
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// A new, empty bucket on the test process's S3 server (started, and
/// installed if needed, on first use).
pub async fn s3_bucket() -> S3Bucket {
    let endpoint =
        tokio::task::spawn_blocking(|| SERVER.get_or_init(start_server).endpoint.clone())
            .await
            .expect("starting the S3 server panicked");
    let bucket = format!("updraft-test-{}", crate::unique_suffix()).replace('_', "-");
    let client = reqwest::Client::new();
    let mut last_error = String::new();
    for _ in 0..50 {
        match client.put(format!("{endpoint}/{bucket}")).send().await {
            Ok(response) if response.status().is_success() => {
                return S3Bucket {
                    url: format!("s3://{bucket}/bundles"),
                    prefix: "bundles".to_string(),
                    endpoint,
                    bucket,
                };
            }
            Ok(response) => last_error = format!("status {}", response.status()),
            Err(err) => last_error = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot create bucket {bucket} on {endpoint}: {last_error}");
}
