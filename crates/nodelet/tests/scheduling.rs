//! The scheduler inside `nodelet serve`, seen through the real kubectl: a pod created with
//! `kubectl create -f` gets the node's name within seconds and a `Scheduled` event in
//! `kubectl describe`; pods that fit nowhere stay Pending with the upstream `FailedScheduling`
//! message.

mod serve_support;

use std::path::Path;

use serve_support::{KUBECTL, Server};

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
    let server = Server::start(None);
    let node = hostname();
    server.wait_for(
        10,
        &["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"],
        |out| out == node,
    );

    let file = server.write("pod.yaml", &pod("sched", ""));
    assert_eq!(
        server.kubectl(&["create", "-f", &file]),
        "pod/sched created\n"
    );
    server.wait_for(
        10,
        &["get", "pod", "sched", "-o", "jsonpath={.spec.nodeName}"],
        |out| out == node,
    );
    let scheduled = format!("Successfully assigned default/sched to {node}");
    let describe = server.wait_for(10, &["describe", "pod", "sched"], |out| {
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
    let describe = server.wait_for(10, &["describe", "pod", "picky"], |out| out.contains(want));
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
        10,
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
