//! `nodelet pause`, the first process of a pod's shared PID namespace, as a sandbox starts
//! it: PID 1 there, reaping the orphans of its namespace, killed on removal. Privileged: run
//! as root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nodelet_runtime::pause::{PauseLauncher, SUBCOMMAND};
use nodelet_runtime::sandbox::{Sandbox, SandboxConfig};

fn status_field(pid: u64, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

/// The children of `pid` (zombies included).
fn children(pid: u64) -> Vec<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn the_pause_process_is_pid_1_and_reaps_orphans() {
    let tmp = tempfile::Builder::new()
        .prefix("nodelet-pause-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("sandbox");
    let config = SandboxConfig {
        id: format!("pause-{}", std::process::id()),
        hostname: "pod-p".into(),
        host_network: true,
        share_process_namespace: true,
        pause: Some(PauseLauncher {
            program: PathBuf::from(env!("CARGO_BIN_EXE_nodelet")),
            args: vec!["nodelet".into(), SUBCOMMAND.into()],
        }),
        ..Default::default()
    };
    let sandbox = Sandbox::create(&dir, &config, None).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sandbox.json")).unwrap()).unwrap();
    let pause = state["pause"]["pid"].as_u64().unwrap();
    let nspid = status_field(pause, "NSpid:").unwrap();
    assert!(nspid.ends_with("\t1"), "PID 1 in its namespace: {nspid}");
    // A shell in the namespace leaves a background child behind: it becomes the pause
    // process's, which must collect it when it ends.
    let status = std::process::Command::new("nsenter")
        .arg(format!("--pid={}", dir.join("ns/pid").display()))
        .args(["--", "sh", "-c", "sleep 1 & exit 0"])
        .status()
        .unwrap();
    assert!(status.success());
    let adopted = children(pause);
    assert_eq!(adopted.len(), 1, "the orphan is the pause process's child");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !children(pause).is_empty() {
        let state = status_field(adopted[0], "State:");
        assert!(
            Instant::now() < deadline,
            "{} not reaped: {state:?}",
            adopted[0]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sandbox.namespaces().pid != nodelet_runtime::spec::NamespaceMode::Private);

    Sandbox::remove(&dir).unwrap();
    Sandbox::remove(&dir).unwrap();
    assert!(
        !Path::new(&format!("/proc/{pause}")).exists(),
        "killed and reaped"
    );
    assert!(!dir.exists());
}
