//! Where pods come from: `nodelet run`'s file ([`file`]), the API server ([`api`]) and the static
//! manifest directory ([`static_dir`]).

pub mod api;
pub mod file;
pub mod static_dir;
