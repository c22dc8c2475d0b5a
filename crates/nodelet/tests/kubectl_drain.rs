//! Node maintenance through the real kubectl against `nodelet serve`: `kubectl drain` cordons
//! the node (a patch of `spec.unschedulable`), finds its pods with the `spec.nodeName` field
//! selector and evicts them (POST pods/eviction, a policy/v1 Eviction in protobuf from
//! kubectl ≥ 1.32; 1.20 finds no `policy` group and deletes them, its DeleteOptions as
//! protobuf too); the scheduler then leaves the cordoned node alone unless a pod tolerates
//! `node.kubernetes.io/unschedulable`, and `kubectl uncordon` lets the waiting pod in. Once per
//! kubectl client, with running containers from the test bed.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::{KUBECTL_1_20, Kubectl, Server, hostname};

/// A pod that stops at once on SIGTERM (sh as pid 1 needs the trap).
fn pod(name: &str, image: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  terminationGracePeriodSeconds: 5
{extra_spec}  containers:
  - name: main
    image: {image}
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 0.2; done\"]
"
    )
}

fn wait_ready(k: &Kubectl, name: &str) {
    assert_eq!(
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=60s"
        ]),
        format!("pod/{name} condition met\n")
    );
}

fn node_name_of(k: &Kubectl, pod: &str) -> String {
    k.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

fn drain_cordon_uncordon(bin: &str) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let k = server.client(bin);
    let node = hostname();
    server.wait_for_node();
    let image = BedInfo::reference(&bed.plain, "tiny");

    let web = server.write("web.yaml", &pod("web", &image, ""));
    k.ok(&["create", "-f", &web]);
    wait_ready(&k, "web");

    // What the seed-style maintenance walkthrough runs.
    let ran = k.run(&[
        "drain",
        &node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=60s",
    ]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let out: Vec<&str> = ran.stdout.lines().collect();
    let (removed, drained) = if bin == KUBECTL_1_20 {
        // 1.20 deletes (no policy group in discovery) and, a client bug, reports the node as
        // "deleted" at the end.
        ("pod/web deleted", format!("node/{node} deleted"))
    } else {
        ("pod/web evicted", format!("node/{node} drained"))
    };
    assert_eq!(
        out.first(),
        Some(&format!("node/{node} cordoned").as_str()),
        "{ran:?}"
    );
    assert!(out.contains(&removed), "{ran:?}");
    assert_eq!(out.last(), Some(&drained.as_str()), "{ran:?}");
    assert!(
        ran.stderr.contains("default/web"),
        "the unmanaged pod is named in the warning: {ran:?}"
    );

    // The pod is gone (drain waited for it) and the node shows it is cordoned.
    assert_eq!(k.ok(&["get", "pods", "-o", "name"]), "");
    assert_eq!(
        k.ok(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"]),
        "true"
    );
    let row = k.ok(&["get", "node", &node, "--no-headers"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[..2],
        [node.as_str(), "Ready,SchedulingDisabled"],
        "{row}"
    );

    // A new pod waits, with the upstream reason.
    let late = server.write("late.yaml", &pod("late", &image, ""));
    k.ok(&["create", "-f", &late]);
    let want = "0/1 nodes are available: 1 node(s) were unschedulable. \
                preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    let describe = k.wait_for(20, &["describe", "pod", "late"], |out| out.contains(want));
    assert!(
        describe
            .lines()
            .any(|l| l.contains("Warning") && l.contains("FailedScheduling") && l.contains(want)),
        "{describe}"
    );
    assert_eq!(node_name_of(&k, "late"), "");

    // A pod that tolerates the cordon's taint is placed all the same.
    let tolerant = server.write(
        "tolerant.yaml",
        &pod(
            "tolerant",
            &image,
            "  tolerations:\n  - key: node.kubernetes.io/unschedulable\n    operator: Exists\n    effect: NoSchedule\n",
        ),
    );
    k.ok(&["create", "-f", &tolerant]);
    wait_ready(&k, "tolerant");
    assert_eq!(node_name_of(&k, "tolerant"), node);
    assert_eq!(node_name_of(&k, "late"), "");

    // Uncordon: the waiting pod is scheduled and runs.
    assert_eq!(
        k.ok(&["uncordon", &node]),
        format!("node/{node} uncordoned\n")
    );
    wait_ready(&k, "late");
    assert_eq!(node_name_of(&k, "late"), node);
    let row = k.ok(&["get", "node", &node, "--no-headers"]);
    assert_eq!(row.split_whitespace().nth(1), Some("Ready"), "{row}");

    // Drain by selector: only the chosen pod goes; the node is cordoned again.
    let ran = k.run(&[
        "drain",
        &node,
        "--pod-selector",
        "app=tolerant",
        "--force",
        "--timeout=60s",
    ]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(k.ok(&["get", "pods", "-o", "name"]), "pod/late\n");
    k.ok(&["uncordon", &node]);

    if bin == KUBECTL_1_20 {
        return;
    }
    // An evicted pod that takes its grace period says why it is going while it stops: sh as
    // pid 1 ignores SIGTERM, so drain gives up waiting first.
    let slow = server.write(
        "slow.yaml",
        &pod("slow", &image, "")
            .replace("trap 'exit 0' TERM; ", "")
            .replace(
                "terminationGracePeriodSeconds: 5",
                "terminationGracePeriodSeconds: 8",
            ),
    );
    k.ok(&["create", "-f", &slow]);
    wait_ready(&k, "slow");
    let ran = k.run(&[
        "drain",
        &node,
        "--pod-selector",
        "app=slow",
        "--force",
        "--timeout=2s",
    ]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stdout.contains("evicting pod default/slow"), "{ran:?}");
    assert_eq!(
        k.ok(&[
            "get",
            "pod",
            "slow",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="DisruptionTarget")]['status','reason','message']}"#,
        ]),
        "True EvictionByEvictionAPI Eviction API: evicting"
    );
    assert!(
        !k.ok(&[
            "get",
            "pod",
            "slow",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}"
        ])
        .is_empty()
    );
    // (The kubelet does not yet shorten a running grace period: this waits out the 8 s.)
    k.ok(&["delete", "pod", "slow", "--grace-period=1", "--timeout=60s"]);
    k.ok(&["uncordon", &node]);
}

per_kubectl! {
    drain_cordon_uncordon;
}

/// `kubectl get events` of the node's events: `type|reason|name|message` per line.
const NODE_EVENTS: &[&str] = &[
    "get",
    "events",
    "--field-selector",
    "involvedObject.kind=Node",
    "-o",
    "jsonpath={range .items[*]}{.type}|{.reason}|{.involvedObject.name}|{.message}{\"\\n\"}{end}",
];

/// kubelet_node_status.go `recordNodeSchedulableEvent`: cordoning the node is recorded on it as
/// `NodeNotSchedulable`, uncordoning as `NodeSchedulable`, in upstream's words.
#[test]
fn cordon_and_uncordon_are_recorded_as_node_events() {
    let server = Server::start(None);
    let k = server.client(serve_support::KUBECTL);
    let node = hostname();
    server.wait_for_node();
    let event =
        |reason: &str| format!("Normal|{reason}|{node}|Node {node} status is now: {reason}");
    let has = |out: &str, line: &str| out.lines().any(|l| l == line);
    assert_eq!(k.ok(&["cordon", &node]), format!("node/{node} cordoned\n"));
    let out = k.wait_for(60, NODE_EVENTS, |out| {
        has(out, &event("NodeNotSchedulable"))
    });
    assert!(!has(&out, &event("NodeSchedulable")), "{out}");
    assert_eq!(
        k.ok(&["uncordon", &node]),
        format!("node/{node} uncordoned\n")
    );
    k.wait_for(60, NODE_EVENTS, |out| has(out, &event("NodeSchedulable")));
    // `kubectl describe node` finds them by the node reference's uid (its name).
    let described = k.ok(&["describe", "node", &node]);
    assert!(
        described.contains(&format!("Node {node} status is now: NodeNotSchedulable")),
        "{described}"
    );
    // A second round counts on the same Events (upstream's EventCorrelator).
    k.ok(&["cordon", &node]);
    let counts = &[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Node",
        "-o",
        "jsonpath={range .items[*]}{.reason}={.count}{\"\\n\"}{end}",
    ];
    k.wait_for(60, counts, |out| {
        out.lines().any(|l| l == "NodeNotSchedulable=2")
    });
    k.ok(&["uncordon", &node]);
    let out = k.wait_for(60, counts, |out| {
        out.lines().any(|l| l == "NodeSchedulable=2")
    });
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["NodeNotSchedulable=2", "NodeSchedulable=2"],
        "{out}"
    );
}
