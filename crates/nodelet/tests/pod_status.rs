//! The pod status the kubelet inside `nodelet serve` writes (through `kube::Client`), seen
//! through the real kubectl: container states with exit codes and reasons, restart counts,
//! image IDs, the pod conditions (`kubectl wait --for=condition=Ready`), CrashLoopBackOff and
//! de-duplicated events.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serde_json::Value;
use serve_support::Server;

fn json(server: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&server.kubectl(args)).unwrap()
}

fn condition<'a>(pod: &'a Value, type_: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {pod:#}"))
}

#[test]
fn statuses_show_states_image_ids_and_conditions() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");

    let file = server.write(
        "done.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {image}\n    command: [\"true\"]\n"
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(
        30,
        &["get", "pod", "done", "-o", "jsonpath={.status.phase}"],
        |out| out == "Succeeded",
    );
    let pod = json(&server, &["get", "pod", "done", "-o", "json"]);
    let main = &pod["status"]["containerStatuses"][0];
    assert_eq!(main["restartCount"], 0, "{pod:#}");
    assert_eq!(
        main["state"]["terminated"]["reason"], "Completed",
        "{pod:#}"
    );
    assert_eq!(main["state"]["terminated"]["exitCode"], 0, "{pod:#}");
    assert!(
        main["state"]["terminated"]["finishedAt"].is_string(),
        "{pod:#}"
    );
    assert!(
        main["containerID"]
            .as_str()
            .is_some_and(|id| id.starts_with("runc://")),
        "{pod:#}"
    );
    let image_id = main["imageID"].as_str().unwrap_or_default();
    assert!(image_id.contains("@sha256:"), "{pod:#}");
    assert_eq!(main["ready"], false, "{pod:#}");
    assert_eq!(condition(&pod, "Ready")["status"], "False", "{pod:#}");
    assert_eq!(
        condition(&pod, "Ready")["reason"],
        "PodCompleted",
        "{pod:#}"
    );
    assert_eq!(condition(&pod, "PodScheduled")["status"], "True", "{pod:#}");
    assert_eq!(pod["status"]["qosClass"], "BestEffort", "{pod:#}");
    assert!(pod["status"]["startTime"].is_string(), "{pod:#}");

    let file = server.write(
        "long.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: long\nspec:\n  terminationGracePeriodSeconds: 2\n  initContainers:\n  - name: setup\n    image: {image}\n    command: [\"true\"]\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"1000\"]\n"
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    assert_eq!(
        server.kubectl(&["wait", "--for=condition=Ready", "pod/long", "--timeout=60s"]),
        "pod/long condition met\n"
    );
    let pod = json(&server, &["get", "pod", "long", "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Running", "{pod:#}");
    let main = &pod["status"]["containerStatuses"][0];
    assert!(main["state"]["running"]["startedAt"].is_string(), "{pod:#}");
    assert_eq!(main["ready"], true, "{pod:#}");
    assert_eq!(main["started"], true, "{pod:#}");
    let setup = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(
        setup["state"]["terminated"]["reason"], "Completed",
        "{pod:#}"
    );
    assert_eq!(setup["ready"], true, "{pod:#}");
    for type_ in ["Initialized", "ContainersReady", "Ready", "PodScheduled"] {
        assert_eq!(condition(&pod, type_)["status"], "True", "{type_}: {pod:#}");
    }
    let out = server.kubectl(&["get", "pod", "long"]);
    assert!(out.contains("1/1") && out.contains("Running"), "{out}");
    server.kubectl(&["delete", "pod", "long"]);
}

#[test]
fn crash_loop_back_off_counts_restarts_and_events() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let file = server.write(
        "crash.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"exit 3\"]\n"
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    let reason_and_restarts = &[
        "get",
        "pod",
        "crash",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason} {.status.containerStatuses[0].restartCount}",
    ];
    let backing_off =
        |out: &str| -> Option<i64> { out.strip_prefix("CrashLoopBackOff ")?.parse().ok() };
    let first = server.wait_for(30, reason_and_restarts, |out| backing_off(out).is_some());
    let first = backing_off(&first).unwrap();
    // The restart after the back-off fails again: the count grows.
    server.wait_for(40, reason_and_restarts, |out| {
        backing_off(out).is_some_and(|n| n > first)
    });
    let pod = json(&server, &["get", "pod", "crash", "-o", "json"]);
    let main = &pod["status"]["containerStatuses"][0];
    assert_eq!(main["lastState"]["terminated"]["exitCode"], 3, "{pod:#}");
    assert_eq!(
        main["lastState"]["terminated"]["reason"], "Error",
        "{pod:#}"
    );
    assert!(
        main["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("back-off ") && m.contains("container=main")),
        "{pod:#}"
    );
    let out = server.kubectl(&["get", "pod", "crash"]);
    assert!(out.contains("CrashLoopBackOff"), "{out}");

    // The same BackOff event again is the same Event object, counted.
    let events = server.wait_for(10, &["get", "events", "-o", "json"], |out| {
        let events: Value = serde_json::from_str(out).unwrap();
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["reason"] == "BackOff" && e["count"].as_i64() > Some(1))
    });
    let events: Value = serde_json::from_str(&events).unwrap();
    let back_off: Vec<&Value> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "BackOff")
        .collect();
    assert_eq!(back_off.len(), 1, "{events:#}");
    assert_eq!(back_off[0]["source"]["component"], "kubelet", "{events:#}");
    assert_eq!(
        back_off[0]["involvedObject"]["fieldPath"], "spec.containers{main}",
        "{events:#}"
    );
    // kubectl shows the count in LAST SEEN: `5s (x2 over 16s)`.
    let out = server.kubectl(&["get", "events"]);
    assert!(
        out.lines()
            .any(|l| l.contains("BackOff") && l.contains("(x")),
        "{out}"
    );
    server.kubectl(&["delete", "pod", "crash"]);
}
