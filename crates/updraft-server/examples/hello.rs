//! The benchmark's baseline: a bare "hello world" on the same HTTP stack as
//! Updraft (tokio multi-thread runtime, axum with the workspace's features,
//! `axum::serve`), so `bench/run.sh` can quote Updraft's throughput as a ratio
//! to it. The ratio stays meaningful when the machine changes; absolute
//! numbers do not.
//!
//!   cargo run --release -p updraft-server --example hello -- 127.0.0.1:8090
//!
//! `POST /updates` reads the whole body (as Updraft must) and answers a small
//! fixed JSON, as does `GET /`. Prints `hello listening on http://ADDR` once
//! bound, like `updraft serve` does.

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::process::ExitCode;

const ANSWER: &str = r#"{"error":"no_new_version_available","message":"No new version available","kind":"up_to_date"}"#;

fn fixed_answer() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], ANSWER)
}

/// The `Bytes` extractor receives the whole body, as a real handler must; it
/// is not parsed.
async fn update_check(_body: Bytes) -> impl IntoResponse {
    fixed_answer()
}

async fn root() -> impl IntoResponse {
    fixed_answer()
}

fn main() -> ExitCode {
    let addr: SocketAddr = match std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
    {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("usage: hello [ADDR:PORT] ({err})");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("hello listening on http://{}", listener.local_addr()?);
        let app = Router::new()
            .route("/updates", post(update_check))
            .route("/", get(root));
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
