//! What the runtimes print: the `state` and `list` outputs. The documents nodelet writes
//! (`config.json`, an exec's `process.json`) are the `oci-spec` crate's types, filled in
//! field by field by [`crate::spec`] (never from the crate's `Default` template).
//!
//! The state keeps a type of ours because the runtimes print more than the spec's
//! `ContainerState` knows (`paused`, and whatever comes next) and omit fields it requires.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A container's status as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    /// runc and crun's frozen state (not in the OCI spec).
    Paused,
    /// Anything newer.
    #[serde(other)]
    Unknown,
}

/// The output of `<runtime> state <id>` (the fields every runtime prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub status: Status,
    /// The init process's pid on the host; 0 once stopped (runc, crun).
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One entry of `<runtime> list --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub id: String,
    pub status: Status,
    #[serde(default)]
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runc_and_crun_state() {
        let runc = r#"{"ociVersion":"1.0.2-dev","id":"t1","pid":2325,"status":"created","bundle":"/tmp/b",
            "rootfs":"/tmp/b/rootfs","created":"2026-11-25T15:47:52.650925842Z","owner":""}"#;
        let state: State = serde_json::from_str(runc).unwrap();
        assert_eq!(
            (state.id.as_str(), state.pid, state.status),
            ("t1", 2325, Status::Created)
        );
        let crun = r#"{"ociVersion":"1.0.0","id":"c1","pid":0,"status":"stopped","bundle":"/tmp/b",
            "rootfs":"rootfs","created":"2026-11-25T15:47:55.401914Z","systemd-scope":"","owner":"root"}"#;
        let state: State = serde_json::from_str(crun).unwrap();
        assert_eq!(state.status, Status::Stopped);
        let odd: State = serde_json::from_str(r#"{"id":"x","status":"hibernating"}"#).unwrap();
        assert_eq!(odd.status, Status::Unknown);
    }
}
