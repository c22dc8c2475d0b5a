//! Where pods come from: `nodelet run`'s file ([`file`]) and the API server ([`api`]); the
//! manifest directory comes later.

pub mod api;
pub mod file;
