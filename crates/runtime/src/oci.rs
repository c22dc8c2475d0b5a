//! The OCI runtime specification's documents, as small serde types of our own: `config.json`
//! (the part of the spec nodelet fills in), `process.json` for `exec`, and the `state` and
//! `list` outputs.
//!
//! Why not the `oci-spec` crate: its builders take every field left unset from `Default`
//! implementations that are a template (hostname `youki`, a default mount list, capabilities
//! with ambient ones, an `RLIMIT_NOFILE`), which is exactly what our generation must never
//! inherit. With these types nothing has a default value: every field in `config.json` is one
//! [`crate::spec`] chose, and absent fields are simply absent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The runtime-spec version our documents follow (what runc 1.1 and crun 1.8 implement).
pub const OCI_VERSION: &str = "1.0.2";

/// `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub oci_version: String,
    pub root: Root,
    pub mounts: Vec<Mount>,
    pub process: Process,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub linux: Linux,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    /// Relative to the bundle directory.
    pub path: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub destination: PathBuf,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: PathBuf,
    pub options: Vec<String>,
}

/// A process: the container's init in `config.json`, or an `exec`'s `process.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// Capability sets, as `CAP_*` names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub inheritable: Vec<String>,
    pub permitted: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE` and the like.
    #[serde(rename = "type")]
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

impl Rlimit {
    /// `RLIMIT_NOFILE` (open files). 1024/1024 is what containerd sets and, unlike larger
    /// defaults, needs no `CAP_SYS_RESOURCE` on hosts whose hard limit is lower.
    pub fn nofile(soft: u64, hard: u64) -> Rlimit {
        Rlimit {
            kind: "RLIMIT_NOFILE".into(),
            soft,
            hard,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// `pid`, `network`, `ipc`, `uts`, `mount`, `cgroup`, `user`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Join this namespace instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub devices: Vec<DeviceRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
}

/// A device cgroup rule; `allow: false, access: "rwm"` alone denies everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub access: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Bytes.
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    /// Microseconds per `period`; absent = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
}

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
