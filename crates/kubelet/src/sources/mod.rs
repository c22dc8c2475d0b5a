//! Where pods come from: `nodelet run`'s file ([`file`]); the manifest directory and the API
//! server come later.

pub mod file;
