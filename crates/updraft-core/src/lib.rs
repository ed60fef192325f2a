//! Updraft's domain, free of I/O: the release model, device request parsing
//! and normalisation, the update decision, and response shaping.

pub mod model;
pub mod error;
pub mod request;
