//! The kubelet inside `nodelet serve`, seen through the real kubectl: a pod created with
//! `kubectl create -f` is scheduled, pulled from the test bed's registry and run; its status
//! and events come back through the API, and `kubectl delete pod` terminates it.

mod serve_support;

use std::time::{Duration, Instant};

use nodelet_testbed::{Bed, BedInfo};
use serve_support::Server;

fn pod(name: &str, image: &str, command: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: main\n    image: {image}\n    command: {command}\n"
    )
}

#[test]
fn pods_run_to_completion_and_are_deleted() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");

    let file = server.write(
        "done.yaml",
        &pod("done", &image, r#"["sh", "-c", "echo SUCCESS"]"#),
    );
    assert_eq!(
        server.kubectl(&["create", "-f", &file]),
        "pod/done created\n"
    );
    server.wait_for(
        20,
        &["get", "pod", "done", "-o", "jsonpath={.status.phase}"],
        |out| out == "Succeeded",
    );
    let status = server.kubectl(&["get", "pod", "done", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0,
        "{status:#}"
    );
    assert!(status["status"]["podIP"].is_string(), "{status:#}");
    server.wait_for(10, &["get", "events"], |out| {
        out.contains("Pulled") && out.contains("Created") && out.contains("Started")
    });
    server.wait_for(10, &["get", "pods"], |out| out.contains("Completed"));

    let file = server.write("long.yaml", &pod("long", &image, r#"["sleep", "1000"]"#));
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(
        20,
        &["get", "pod", "long", "-o", "jsonpath={.status.phase}"],
        |out| out == "Running",
    );
    let started = Instant::now();
    assert_eq!(
        server.kubectl(&["delete", "pod", "long"]),
        "pod \"long\" deleted\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "delete took {:?}",
        started.elapsed()
    );
    server.wait_for(5, &["get", "pods", "-o", "name"], |out| {
        !out.contains("pod/long")
    });

    // A pod whose image cannot be pulled does not hold up its deletion.
    let file = server.write(
        "missing.yaml",
        &pod(
            "missing",
            &format!("{}/nosuch:v1", bed.plain.host),
            r#"["true"]"#,
        ),
    );
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(20, &["get", "events"], |out| out.contains("Failed"));
    let started = Instant::now();
    server.kubectl(&["delete", "pod", "missing"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "delete took {:?}",
        started.elapsed()
    );
}
