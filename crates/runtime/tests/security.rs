//! Seccomp filters and mount propagation under every installed OCI runtime (runc, crun, and
//! youki when present). Privileged: run as root.

mod common;

use std::path::Path;

use common::{Harness, container_id, finish, launch, run_to_end};
use nodelet_runtime::container::Exit;
use nodelet_runtime::handlers::Handler;
use nodelet_runtime::propagation;
use nodelet_runtime::seccomp::{ProfileFile, Seccomp};
use nodelet_runtime::spec::{BindMount, MountPropagation};
use nodelet_sys::process::ExitStatus;

/// Creating a user namespace needs no capability, so only a filter stops it.
const UNSHARE_USERNS: &str = "/bin/busybox unshare -U true; echo unshare=$?";

/// The handlers that enforce seccomp; the kubelet refuses filtered containers on the others
/// (youki 0.7 as packaged here is built without it and says so in `youki features`).
fn enforcing_seccomp(harness: &Harness) -> Vec<Handler> {
    let mut enforcing = Vec::new();
    for handler in harness.installed() {
        if handler.runtime().supports_seccomp() {
            enforcing.push(handler);
        } else {
            println!("SKIPPED handler {}: built without seccomp", handler.name);
            assert_ne!(handler.name, "runc", "runc must support seccomp");
        }
    }
    enforcing
}

#[test]
fn runtime_default_blocks_new_namespaces_unconfined_does_not() {
    let harness = Harness::new(&["tiny"]);
    for handler in enforcing_seccomp(&harness) {
        let name = &handler.name;
        let script = format!("ls / >/dev/null && echo ls=ok; {UNSHARE_USERNS}");
        let confined = run_to_end(
            &harness,
            &handler,
            "seccomp-default",
            "tiny",
            &["/bin/sh", "-c", &script],
            |spec| spec.seccomp = Seccomp::RuntimeDefault,
        );
        assert_eq!(
            confined.exit,
            Exit::Status(ExitStatus::Exited(0)),
            "{name}: {}",
            confined.stderr
        );
        assert!(
            confined.stdout.contains("ls=ok"),
            "{name}: ordinary commands run: {} {}",
            confined.stdout,
            confined.stderr
        );
        assert!(
            confined.stdout.contains("unshare=1"),
            "{name}: {} {}",
            confined.stdout,
            confined.stderr
        );
        assert!(
            confined.stderr.contains("Operation not permitted"),
            "{name}: EPERM expected: {}",
            confined.stderr
        );

        let unconfined = run_to_end(
            &harness,
            &handler,
            "seccomp-unconfined",
            "tiny",
            &["/bin/sh", "-c", UNSHARE_USERNS],
            |spec| spec.seccomp = Seccomp::Unconfined,
        );
        assert!(
            unconfined.stdout.contains("unshare=0"),
            "{name}: {} {}",
            unconfined.stdout,
            unconfined.stderr
        );
    }
}

#[test]
fn a_localhost_profile_denying_mkdir() {
    let harness = Harness::new(&["tiny"]);
    let profile = ProfileFile::parse(
        br#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    for handler in enforcing_seccomp(&harness) {
        let name = &handler.name;
        let finished = run_to_end(
            &harness,
            &handler,
            "seccomp-local",
            "tiny",
            &[
                "/bin/sh",
                "-c",
                "touch /tmp/file && echo touch=ok; mkdir /tmp/dir; echo mkdir=$?",
            ],
            |spec| spec.seccomp = Seccomp::Localhost(Box::new(profile.clone())),
        );
        assert!(
            finished.stdout.contains("touch=ok") && finished.stdout.contains("mkdir=1"),
            "{name}: {} {}",
            finished.stdout,
            finished.stderr
        );
        assert!(
            finished.stderr.contains("Operation not permitted"),
            "{name}: {}",
            finished.stderr
        );
    }
}

/// A hostPath-like directory on the host's private root mount: the kubelet makes it a shared
/// mount, and a mount made under it after the container started shows up inside.
#[test]
fn host_to_container_sees_later_host_mounts() {
    let harness = Harness::new(&["tiny"]);
    // Outside the harness's directory, whose mounts must all be gone after each container.
    let host = tempfile::Builder::new()
        .prefix("nodelet-propagation-")
        .tempdir()
        .unwrap();
    let source = host.path().join("volume");
    let later = source.join("later");
    std::fs::create_dir_all(&later).unwrap();
    propagation::prepare_source(
        &source,
        MountPropagation::HostToContainer,
        &harness.tmp.path().join("pods"),
    )
    .unwrap();
    // Twice is harmless: the second time it is already shared.
    propagation::prepare_source(
        &source,
        MountPropagation::HostToContainer,
        &harness.tmp.path().join("pods"),
    )
    .unwrap();
    for handler in harness.installed() {
        let name = &handler.name;
        if name == "youki" {
            // It refuses `rootfsPropagation: rslave` (see spec.rs).
            println!("SKIPPED handler youki: no r-prefixed rootfsPropagation");
            continue;
        }
        let id = container_id(&handler, "propagation");
        let launched = launch(
            &harness,
            &handler,
            &id,
            "tiny",
            &[
                "/bin/sh",
                "-c",
                "touch /vol/started; while [ ! -e /vol/later/marker ]; do sleep 0.1; done; cat /vol/later/marker",
            ],
            |spec| {
                spec.mounts.push(BindMount {
                    source: source.clone(),
                    destination: "/vol".into(),
                    read_only: false,
                    propagation: MountPropagation::HostToContainer,
                });
            },
        );
        wait_for(&source.join("started"));
        nodelet_sys::mount::mount_shm(&later, "size=64k").unwrap();
        std::fs::write(later.join("marker"), format!("mounted for {name}\n")).unwrap();
        let finished = finish(&harness, &handler, launched);
        nodelet_sys::mount::unmount(&later, true).unwrap();
        std::fs::remove_file(source.join("started")).unwrap();
        assert_eq!(
            finished.exit,
            Exit::Status(ExitStatus::Exited(0)),
            "{name}: {}",
            finished.stderr
        );
        assert_eq!(finished.stdout, format!("mounted for {name}\n"));
    }
    nodelet_sys::mount::unmount(&source, true).unwrap();
}

fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + common::WAIT;
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
