//! The analytics answers: the shared wire types of `updraft_api::analytics`.

pub use updraft_api::analytics::*;
