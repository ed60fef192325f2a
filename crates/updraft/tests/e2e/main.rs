//! End-to-end tests: the real `updraft` binary on an ephemeral port, driven
//! over HTTP like a device and through its CLI like a team.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is its failure report

mod harness;

mod abuse;
mod accounts;

mod analytics;
mod audit;
mod backup;
mod bundles;
mod channel_self;
mod cli;
mod cli_defaults;
mod cli_output;
mod cluster;
mod connections;
mod disk_full;
mod durability;
mod edge;
mod explain;
mod guards;
mod interop;
mod login;
mod management;
mod metrics;
mod migrate;
mod notify;
mod release_cli;
mod rollouts;
mod startup;
mod stats;
mod storage;
mod tls;
mod updates;
mod validation;
mod webhooks;
