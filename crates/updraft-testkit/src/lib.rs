//! Throwaway servers for tests: a real PostgreSQL cluster and a real
//! S3-compatible server (moto), each started once per test process on a free
//! loopback port and stopped when the process ends.
//!
//! Missing programs are installed by `scripts/test-services.sh` (Debian's
//! `postgresql`, `moto[server]` from PyPI into `target/test-tools/venv`), so
//! the README's `cargo test --workspace` needs nothing set up by hand.
//!
//! Each server runs under a small `sh` watchdog that polls for the test
//! process and shuts the server down (removing its files) once it is gone:
//! Rust runs no destructors for statics, and a test binary can be killed.

// Test support: a failure to start a test service is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres;
mod process;
pub mod s3;
pub mod tmpfs;

pub use postgres::{postgres_database, postgres_database_with_replica, REPLICA_DELAY_MS};
pub use s3::{s3_bucket, S3Bucket};
pub use tmpfs::Tmpfs;

/// The workspace root (where `scripts/` and `target/` are).
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// A fresh lowercase name part, unique enough for databases and buckets.
fn unique_suffix() -> String {
    format!("{}_{:08x}", std::process::id(), rand::random::<u32>())
}
