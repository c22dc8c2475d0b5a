//! What the kubelet inside `nodelet serve` reports while a pod cannot start or is still
//! starting, through the real kubectl: image pull back-off (reasons, waiting messages and
//! events as upstream words them), an image name it cannot parse, and a container whose
//! PostStart hook has not finished.

mod serve_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nodelet_testbed::{Bed, BedInfo};
use serde_json::Value;
use serve_support::Server;

fn json(server: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&server.kubectl(args)).unwrap()
}

fn has_event(
    events: &[(String, String, String)],
    type_: &str,
    reason: &str,
    message: &str,
) -> bool {
    events
        .iter()
        .any(|(t, r, m)| t == type_ && r == reason && m == message)
}

/// images.go / runtime.go "should not be able to pull image from invalid registry": the pull
/// fails, then backs off — `ErrImagePull` then `ImagePullBackOff` with upstream's waiting
/// message and events, the pod `Pending` whatever its restart policy.
#[test]
fn a_failing_pull_backs_off_with_upstreams_reasons_and_events() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = format!("{}/tiny:missing", bed.plain.host);
    server.create_from_yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: image-pull-test\nspec:\n  restartPolicy: Never\n  containers:\n  - name: image-pull-test\n    image: {image}\n"
    ));
    let waiting = "{.status.containerStatuses[0].state.waiting.reason}";
    server.wait_for_jsonpath(60, "image-pull-test", waiting, |out| {
        out == "ImagePullBackOff"
    });
    let pod = json(&server, &["get", "pod", "image-pull-test", "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Pending", "{pod:#}");
    let message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with(&format!(
            "Back-off pulling image \"{image}\": ErrImagePull: "
        )),
        "{pod:#}"
    );
    let events = wait_for_events(&server, "image-pull-test", |events| {
        has_event(events, "Warning", "Failed", "Error: ImagePullBackOff")
    });
    for (type_, reason, text) in [
        ("Normal", "Pulling", format!("Pulling image \"{image}\"")),
        ("Warning", "Failed", "Error: ErrImagePull".to_owned()),
        (
            "Normal",
            "BackOff",
            format!("Back-off pulling image \"{image}\""),
        ),
        ("Warning", "Failed", "Error: ImagePullBackOff".to_owned()),
    ] {
        assert!(
            has_event(&events, type_, reason, &text),
            "{type_} {reason} {text}: {events:#?}"
        );
    }
    assert!(
        events.iter().any(|(t, r, m)| t == "Warning"
            && r == "Failed"
            && m.starts_with(&format!("Failed to pull image \"{image}\": "))),
        "{events:#?}"
    );
    let row = server.kubectl(&["get", "pod", "image-pull-test", "--no-headers"]);
    assert!(
        row.contains("0/1") && row.contains("ImagePullBackOff"),
        "{row}"
    );
    server.kubectl(&["delete", "pod", "image-pull-test"]);
}

/// An image the kubelet cannot parse: `InspectFailed`, and the container waits with
/// `InvalidImageName` and upstream's message; nothing is pulled.
#[test]
fn an_unparsable_image_waits_with_invalid_image_name() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    server.create_from_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad-image\nspec:\n  containers:\n  - name: main\n    image: ACTOKEY\n",
    );
    let waiting = "{.status.containerStatuses[0].state.waiting.reason}";
    server.wait_for_jsonpath(60, "bad-image", waiting, |out| out == "InvalidImageName");
    let pod = json(&server, &["get", "pod", "bad-image", "-o", "json"]);
    let parse_error = "Failed to apply default image tag \"ACTOKEY\": couldn't parse image name \"ACTOKEY\": invalid reference format: repository name (library/ACTOKEY) must be lowercase";
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"], parse_error,
        "{pod:#}"
    );
    assert_eq!(pod["status"]["phase"], "Pending", "{pod:#}");
    let events = wait_for_events(&server, "bad-image", |events| {
        has_event(events, "Warning", "Failed", "Error: InvalidImageName")
    });
    assert!(
        has_event(&events, "Warning", "InspectFailed", parse_error),
        "{events:#?}"
    );
    assert!(
        has_event(&events, "Warning", "Failed", "Error: InvalidImageName"),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|(_, r, _)| r == "Pulling"),
        "{events:#?}"
    );
    server.kubectl(&["delete", "pod", "bad-image"]);
}

fn wait_for_file(path: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A container is not reported Running until its PostStart hook returns (the hook holds
/// here until the test lets it go).
#[test]
fn a_container_is_not_running_until_its_post_start_hook_completes() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let shared = server.dir().join("hook");
    std::fs::create_dir_all(&shared).unwrap();
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: held
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - name: shared
    hostPath: {{path: {shared}, type: Directory}}
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    lifecycle:
      postStart:
        exec:
          command: ["sh", "-c", "touch /shared/hook-running; while [ ! -f /shared/go ]; do sleep 0.1; done"]
"#,
        shared = shared.display()
    ));
    wait_for_file(&shared.join("hook-running"), 60);
    let pod = json(&server, &["get", "pod", "held", "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Pending", "{pod:#}");
    let main = &pod["status"]["containerStatuses"][0];
    assert!(main["state"]["running"].is_null(), "{pod:#}");
    assert_eq!(
        main["state"]["waiting"]["reason"], "ContainerCreating",
        "{pod:#}"
    );
    assert_ne!(main["started"], true, "{pod:#}");

    std::fs::write(shared.join("go"), "").unwrap();
    assert_eq!(server.wait_ready("held", 60), "pod/held condition met\n");
    let pod = json(&server, &["get", "pod", "held", "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Running", "{pod:#}");
    assert!(
        pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].is_string(),
        "{pod:#}"
    );
    server.kubectl(&["delete", "pod", "held"]);
}

/// runtime.go "blackbox test when starting a container that exits should run with the
/// expected status": the first run exits 1, the second 0, later ones keep running; restart
/// count, phase, readiness and state per restart policy.
#[test]
fn restart_policies_give_upstreams_counts_phases_and_states() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let script = "echo run >> /restart-count/count; n=$(wc -l < /restart-count/count); if [ $n -eq 1 ]; then exit 1; fi; if [ $n -eq 2 ]; then exit 0; fi; trap 'exit 0' TERM; while true; do sleep 1; done";
    let cases = [
        ("terminate-cmd-rpa", "Always", 2, "Running", true, "running"),
        (
            "terminate-cmd-rpof",
            "OnFailure",
            1,
            "Succeeded",
            false,
            "terminated",
        ),
        (
            "terminate-cmd-rpn",
            "Never",
            0,
            "Failed",
            false,
            "terminated",
        ),
    ];
    for (name, policy, ..) in cases {
        let file = server.write(
            &format!("{name}.yaml"),
            &format!(
                r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 2
  volumes:
  - name: restart-count
    emptyDir: {{medium: Memory}}
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "{script}"]
    volumeMounts:
    - {{name: restart-count, mountPath: /restart-count}}
"#
            ),
        );
        server.kubectl(&["create", "-f", &file]);
    }
    for (name, _, restarts, phase, ready, state) in cases {
        let summary = "{.status.containerStatuses[0].restartCount} {.status.phase} {.status.containerStatuses[0].ready}";
        let want = format!("{restarts} {phase} {ready}");
        server.wait_for_jsonpath(60, name, summary, |out| out == want);
        let pod = json(&server, &["get", "pod", name, "-o", "json"]);
        assert!(
            pod["status"]["containerStatuses"][0]["state"][state].is_object(),
            "{name}: {pod:#}"
        );
    }
    for (name, ..) in cases {
        server.kubectl(&["delete", "pod", name]);
    }
}

/// Containers the runtime still lists in this server's runc state directory.
fn runc_containers(server: &Server) -> String {
    let root = server.dir().join("runtimes/runc");
    if !root.exists() {
        return String::new();
    }
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A pod of grace 60 s whose container ignores SIGTERM and whose PreStop would take 60 s,
/// deleted with `delete_args`: the node must stop it well within 20 s, PreStop started.
fn deleted_with_a_shorter_grace(delete_args: &[&str], expected: &str) {
    deleted_again_with_a_shorter_grace(false, delete_args, expected);
}

/// [`deleted_with_a_shorter_grace`], after a first deletion with the pod's own 60 s when
/// `terminating_first` (its PreStop already running when the second deletion comes).
fn deleted_again_with_a_shorter_grace(
    terminating_first: bool,
    delete_args: &[&str],
    expected: &str,
) {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let shared = server.dir().join("shorter");
    std::fs::create_dir_all(&shared).unwrap();
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: shorter
spec:
  terminationGracePeriodSeconds: 60
  volumes:
  - name: shared
    hostPath: {{path: {shared}, type: Directory}}
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "touch /shared/pre-stop-ran; sleep 60"]
"#,
        shared = shared.display()
    ));
    server.wait_ready("shorter", 60);
    assert!(!runc_containers(&server).is_empty());
    if terminating_first {
        server.kubectl(&["delete", "pod", "shorter", "--wait=false"]);
        wait_for_file(&shared.join("pre-stop-ran"), 30);
    }
    let mut args = vec!["delete", "pod", "shorter"];
    args.extend_from_slice(delete_args);
    let out = server.kubectl(&args);
    assert!(out.contains(expected), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runc_containers(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running: {}",
            runc_containers(&server)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(shared.join("pre-stop-ran").exists(), "PreStop still runs");
    // The kubelet deletes the object once its containers are gone.
    server.wait_for(20, &["get", "pods", "-o", "name"], |out| {
        out.trim().is_empty()
    });
}

/// `kubectl delete --grace-period=0 --force`: the object goes at once, and the node still
/// stops the container gracefully but with the minimum grace (PreStop gets 1 s, the stop
/// signal 2 s: about 3 s), not the pod's 60 s.
#[test]
fn a_force_deleted_pod_is_stopped_with_the_minimum_grace() {
    deleted_with_a_shorter_grace(
        &["--grace-period=0", "--force"],
        "pod \"shorter\" force deleted",
    );
}

/// lifecycle_hook.go "reduce GracePeriodSeconds during runtime": a deletion's grace period
/// replaces the pod's (PreStop gets 3 s, the stop signal 2 s: about 5 s).
#[test]
fn a_deletion_grace_period_replaces_the_pods() {
    deleted_with_a_shorter_grace(&["--grace-period=3"], "pod \"shorter\" deleted");
}

/// pod_workers.go: a pod already terminating with its 60 s grace and deleted again with a
/// shorter one is killed by the new deadline, not after the first one.
#[test]
fn a_second_shorter_deletion_shortens_a_terminating_pod() {
    deleted_again_with_a_shorter_grace(
        true,
        &["--grace-period=1", "--wait=false"],
        "pod \"shorter\" deleted",
    );
}

/// The same, when the second deletion is forced: the object goes at once and the node kills
/// the terminating containers with the minimum grace.
#[test]
fn a_forced_deletion_shortens_a_terminating_pod() {
    deleted_again_with_a_shorter_grace(
        true,
        &["--grace-period=0", "--force"],
        "pod \"shorter\" force deleted",
    );
}

/// The pod's events once `done` holds for them.
fn wait_for_events(
    server: &Server,
    pod: &str,
    done: impl Fn(&[(String, String, String)]) -> bool,
) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = server.pod_events(pod);
        if done(&events) {
            return events;
        }
        assert!(Instant::now() < deadline, "{events:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
