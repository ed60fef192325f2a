//! What the management API sends and receives: the shared wire types of
//! `updraft_api`, re-exported where the handlers have always found them.

pub use updraft_api::management::*;
pub use updraft_api::ErrorView;
