//! The scheduler inside `nodelet serve`, seen through the real kubectl: a pod created with
//! `kubectl create -f` gets the node's name within seconds and a `Scheduled` event in
//! `kubectl describe`; pods that fit nowhere stay Pending with the upstream `FailedScheduling`
//! message.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A running `nodelet serve`, stopped (by its PID) when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().unwrap().port()
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_nodelet"))
            // The kubelet's state (images, pods) stays in the test's directory.
            .arg("--root-dir")
            .arg(dir.path().join("state"))
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("server"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nodelet serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("export KUBECONFIG=") => break,
                Some(Ok(_)) => {}
                _ => panic!("nodelet serve ended before printing the kubeconfig"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Server { child, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("server/kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Polls `check` on kubectl's output of `args` for up to 10 s; returns the last output.
    fn wait_for(&self, args: &[&str], check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.kubectl(args);
            if check(&out) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never matched:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

fn pod(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
{extra_spec}  containers:
  - name: main
    image: busybox:1.36
    command: [\"sleep\", \"3600\"]
"
    )
}

#[test]
fn kubectl_sees_pods_scheduled_or_not() {
    if !Path::new(KUBECTL).exists() {
        eprintln!("skipped: {KUBECTL} is not installed");
        return;
    }
    let server = Server::start();
    let node = hostname();
    server.wait_for(
        &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
        |out| out == node,
    );

    let file = server.write("pod.yaml", &pod("sched", ""));
    assert_eq!(
        server.kubectl(&["create", "-f", &file]),
        "pod/sched created\n"
    );
    server.wait_for(
        &["get", "pod", "sched", "-o", "jsonpath={.spec.nodeName}"],
        |out| out == node,
    );
    let scheduled = format!("Successfully assigned default/sched to {node}");
    let describe = server.wait_for(&["describe", "pod", "sched"], |out| {
        out.contains(&scheduled)
    });
    let line = describe.lines().find(|l| l.contains(&scheduled)).unwrap();
    assert!(
        line.contains("Normal") && line.contains("Scheduled") && line.contains("default-scheduler"),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Node:") && l.contains(&node)),
        "{describe}"
    );
    let events = server.kubectl(&["get", "events"]);
    assert!(
        events
            .lines()
            .any(|l| l.contains("Scheduled") && l.contains("pod/sched") && l.contains(&scheduled)),
        "{events}"
    );

    // A nodeSelector nothing matches: Pending, with the scheduler's reason.
    let file = server.write(
        "selector.yaml",
        &pod("picky", "  nodeSelector:\n    disktype: ssd\n"),
    );
    server.kubectl(&["create", "-f", &file]);
    let want = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
                preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    let describe = server.wait_for(&["describe", "pod", "picky"], |out| out.contains(want));
    assert!(
        describe
            .lines()
            .any(|l| l.contains("Warning") && l.contains("FailedScheduling") && l.contains(want)),
        "{describe}"
    );
    assert!(
        describe
            .lines()
            .any(|l| l.trim_start().starts_with("PodScheduled") && l.contains("False")),
        "{describe}"
    );
    let row = server.kubectl(&["get", "pod", "picky", "--no-headers"]);
    assert!(row.contains("Pending"), "{row}");
    assert_eq!(
        server.kubectl(&["get", "pod", "picky", "-o", "jsonpath={.spec.nodeName}"]),
        ""
    );

    // More cpu than the node has.
    let file = server.write(
        "big.yaml",
        &pod("hungry", "").replace(
            "    command:",
            "    resources:\n      requests:\n        cpu: \"1000\"\n    command:",
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    let want = "0/1 nodes are available: 1 Insufficient cpu. \
                preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
    let events = server.wait_for(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=hungry",
        ],
        |out| out.contains(want),
    );
    assert!(
        events.lines().any(|l| l.contains("Warning")
            && l.contains("FailedScheduling")
            && l.contains("pod/hungry")),
        "{events}"
    );
}
