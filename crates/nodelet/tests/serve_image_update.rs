//! A running pod's container image can change (`kubectl set image`), as upstream's kubelet
//! handles it: the container is killed (`Killing` "Container <c> definition changed, will be
//! restarted", its PreStop first) and started again with the new image, even under
//! `restartPolicy: Never`, counting a restart. Any other change to the pod's spec is refused
//! with the API server's `Forbidden` message.

mod serve_support;

use nodelet_testbed::{Bed, BedInfo};
use serde_json::Value;
use serve_support::{KUBECTL, Server};

fn pod_json(server: &Server, name: &str) -> Value {
    serde_json::from_str(&server.kubectl(&["get", "pod", name, "-o", "json"])).unwrap()
}

#[test]
fn set_image_restarts_the_container_with_the_new_image() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let old_image = BedInfo::reference(&bed.plain, "tiny");
    let new_image = BedInfo::reference(&bed.plain, "medium");
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: swap
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes:
  - name: data
    emptyDir: {{}}
  containers:
  - name: main
    image: {old_image}
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 1; done']
    volumeMounts:
    - {{name: data, mountPath: /data}}
    lifecycle:
      preStop:
        exec:
          command: [sh, -c, 'echo ran > /data/pre-stop']
"#
    ));
    server.wait_for_jsonpath(
        60,
        "swap",
        "{.status.containerStatuses[0].state.running.startedAt}",
        |out| !out.is_empty(),
    );
    let before = pod_json(&server, "swap");
    let old_id = before["status"]["containerStatuses"][0]["containerID"].clone();

    assert_eq!(
        server.kubectl(&["set", "image", "pod/swap", &format!("main={new_image}")]),
        "pod/swap image updated\n"
    );
    server.wait_for_jsonpath(
        90,
        "swap",
        "{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].state.running.startedAt}",
        |out| out.starts_with("1/") && out.len() > 2,
    );
    let after = pod_json(&server, "swap");
    let status = &after["status"]["containerStatuses"][0];
    assert_eq!(after["status"]["phase"], "Running", "{after:#}");
    assert_eq!(status["image"], new_image.as_str(), "{after:#}");
    let digest = &bed.images["medium"].digest;
    assert_eq!(
        status["imageID"],
        format!("{}/medium@{digest}", bed.plain.host),
        "{after:#}"
    );
    assert_ne!(status["containerID"], old_id, "{after:#}");
    assert_eq!(status["ready"], true, "{after:#}");
    assert!(
        status["lastState"]["terminated"]["finishedAt"].is_string(),
        "{after:#}"
    );

    // PreStop ran in the old container before it stopped (the emptyDir outlives it).
    assert_eq!(
        server.kubectl(&["exec", "swap", "--", "cat", "/data/pre-stop"]),
        "ran\n"
    );
    let events = server.pod_events("swap");
    for (reason, message) in [
        (
            "Killing",
            "Container main definition changed, will be restarted".to_owned(),
        ),
        ("Pulling", format!("Pulling image \"{new_image}\"")),
    ] {
        assert!(
            events
                .iter()
                .any(|(t, r, m)| t == "Normal" && r == reason && *m == message),
            "{reason} {message}: {events:#?}"
        );
    }
    assert!(
        events.iter().any(|(t, r, m)| t == "Normal"
            && r == "Pulled"
            && m.starts_with(&format!("Successfully pulled image \"{new_image}\""))),
        "{events:#?}"
    );
    // Both starts, as one event counted twice (the recorder aggregates repeats).
    let selector = "involvedObject.name=swap,reason=Started";
    let counts = server.kubectl(&[
        "get",
        "events",
        "--field-selector",
        selector,
        "-o",
        "jsonpath={.items[*].count}",
    ]);
    let started: u64 = counts
        .split_whitespace()
        .map(|c| c.parse::<u64>().unwrap())
        .sum();
    assert_eq!(started, 2, "{counts}: {events:#?}");

    // Nothing else of the spec may change.
    let err = server.client(KUBECTL).fails(&[
        "patch",
        "pod",
        "swap",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/containers/0/command","value":["sleep","1"]}]"#,
    ]);
    assert!(
        err.contains(
            "The Pod \"swap\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
        ),
        "{err}"
    );
    server.kubectl(&["delete", "pod", "swap", "--wait=true"]);
}

/// The usual fix of a pod stuck in `ImagePullBackOff`: `kubectl set image` to one that
/// exists. The container starts with it at once (no back-off: that was the old image's), as
/// its first run.
#[test]
fn set_image_fixes_a_pod_in_image_pull_back_off() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let missing = format!("{}/tiny:missing", bed.plain.host);
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.create_from_yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: fix\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {missing}\n    command: [sleep, '3600']\n"
    ));
    let waiting = "{.status.containerStatuses[0].state.waiting.reason}";
    server.wait_for_jsonpath(60, "fix", waiting, |out| out == "ImagePullBackOff");
    server.kubectl(&["set", "image", "pod/fix", &format!("main={image}")]);
    server.wait_for_jsonpath(
        60,
        "fix",
        "{.status.containerStatuses[0].state.running.startedAt}",
        |out| !out.is_empty(),
    );
    let pod = pod_json(&server, "fix");
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["image"], image.as_str(), "{pod:#}");
    assert_eq!(status["restartCount"], 0, "{pod:#}");
    assert_eq!(pod["status"]["phase"], "Running", "{pod:#}");
    // Nothing was running, so nothing was killed.
    let events = server.pod_events("fix");
    assert!(
        !events.iter().any(|(_, r, _)| r == "Killing"),
        "{events:#?}"
    );
    server.kubectl(&["delete", "pod", "fix", "--wait=true"]);
}

/// A change the kubelet missed while it was down: the container's directory says which image
/// it started from (`image.json`); here it names another image than the pod does, as after a
/// `kubectl set image` nodelet never saw. The restarted kubelet adopts the container, sees the
/// difference and restarts it with the pod's image.
#[test]
fn an_adopted_container_running_another_image_is_restarted() {
    let bed = Bed::shared().unwrap();
    let mut server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.create_from_yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: adopt\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [sleep, '3600']\n"
    ));
    let running = "{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].state.running.startedAt}";
    server.wait_for_jsonpath(60, "adopt", running, |out| {
        out.starts_with("0/") && out.len() > 2
    });
    let before = pod_json(&server, "adopt");
    let uid = before["metadata"]["uid"].as_str().unwrap().to_owned();
    let image_id = before["status"]["containerStatuses"][0]["imageID"].clone();

    server.kill();
    let record = server
        .root_dir()
        .join("pods")
        .join(&uid)
        .join("containers")
        .join(format!("main_0_{uid}"))
        .join("image.json");
    let mut started: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(started["image"], image.as_str(), "{started}");
    started["image"] = Value::from(BedInfo::reference(&bed.plain, "medium"));
    std::fs::write(&record, started.to_string()).unwrap();

    let server = server.restart(Some(&bed));
    server.wait_for_jsonpath(60, "adopt", running, |out| {
        out.starts_with("1/") && out.len() > 2
    });
    let after = pod_json(&server, "adopt");
    assert_eq!(
        after["status"]["containerStatuses"][0]["imageID"], image_id,
        "{after:#}"
    );
    let events = server.pod_events("adopt");
    assert!(
        events.iter().any(|(_, r, m)| r == "Killing"
            && m == "Container main definition changed, will be restarted"),
        "{events:#?}"
    );
    server.kubectl(&["delete", "pod", "adopt", "--wait=true"]);
}
