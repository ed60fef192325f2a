//! End-to-end tests: the real `updraft` binary on an ephemeral port, driven
//! over HTTP like a device and through its CLI like a team.

mod harness;

mod channel_self;
mod cli;
mod durability;
mod management;
mod stats;
mod updates;
