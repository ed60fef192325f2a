//! The management API's wire types (`/api/v1`), shared by the server, which
//! answers with them and derives its OpenAPI document from them, and the CLI,
//! which sends and reads them.
//!
//! Compatibility rules: requests leave out what is not given (`None` is not
//! sent), and the server refuses unknown request fields; responses are read
//! tolerantly (unknown fields are ignored, unknown error codes become
//! [`ErrorCode::Other`]), so an older CLI keeps working with a newer server.
//!
//! The `From` conversions from `updraft_core`'s model are what the server
//! answers with; they are plain data, no I/O.

pub mod analytics;
pub mod audit;
pub mod compat;
pub mod error;
pub mod management;
pub mod uploads;
pub mod webhooks;

pub use analytics::*;
pub use audit::*;
pub use compat::*;
pub use error::{ErrorCode, ErrorView};
pub use management::*;
pub use uploads::*;
pub use webhooks::*;
