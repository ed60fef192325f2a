//! Updraft's domain, free of I/O: the release model, device request parsing
//! and normalisation, the update decision, and response shaping.

pub mod account;
pub mod analytics;
pub mod channel_self;
pub mod compat;
pub mod control;
pub mod decision;
pub mod error;
pub mod guards;
pub mod model;
pub mod policy;
pub mod request;
pub mod rollout;
pub mod stats;
pub mod validate;
pub mod version;
