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

/// `started.json` of the container's first run: the pid of its first process.
fn container_init_pid(server: &Server, uid: &str) -> u32 {
    let path = server
        .root_dir()
        .join("pods")
        .join(uid)
        .join("containers")
        .join(format!("main_0_{uid}"))
        .join("started.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let started: serde_json::Value = serde_json::from_str(&text).unwrap();
    u32::try_from(started["init_pid"].as_u64().unwrap()).unwrap()
}

fn wait_until(secs: u64, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not after {secs} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_restarted_nodelet_adopts_its_running_containers() {
    let bed = Bed::shared().unwrap();
    let mut server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let file = server.write(
        "survivor.yaml",
        &pod(
            "survivor",
            &image,
            r#"["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]"#,
        )
        .replace("restartPolicy: Never", "restartPolicy: Always"),
    );
    server.kubectl(&["create", "-f", &file]);
    server.wait_for(
        20,
        &["get", "pod", "survivor", "-o", "jsonpath={.status.phase}"],
        |out| out == "Running",
    );
    let uid = server.kubectl(&["get", "pod", "survivor", "-o", "jsonpath={.metadata.uid}"]);
    let init_pid = container_init_pid(&server, &uid);
    let log = server
        .log_dir()
        .join(format!("default_survivor_{uid}"))
        .join("main/0.log");
    let log_size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    wait_until(10, "the log grows", || log_size() > 0);

    server.kill();
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    assert!(alive(init_pid), "the container died with nodelet");
    let size_at_kill = log_size();
    wait_until(10, "the log grows without nodelet", || {
        log_size() > size_at_kill
    });

    let server = server.restart(Some(&bed));
    // The restarted kubelet lists its pods each second; let it post its first status.
    std::thread::sleep(Duration::from_secs(3));
    server.wait_for(
        20,
        &[
            "get",
            "pod",
            "survivor",
            "-o",
            "jsonpath={.status.phase} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.running}",
        ],
        |out| out.starts_with("Running 0 {"),
    );
    assert!(alive(init_pid), "the adopted container is gone");
    assert_eq!(container_init_pid(&server, &uid), init_pid);
    let containers = server.root_dir().join("pods").join(&uid).join("containers");
    let dirs: Vec<String> = std::fs::read_dir(&containers)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        dirs,
        vec![format!("main_0_{uid}")],
        "a second container ran"
    );
    let size_after_restart = log_size();
    wait_until(10, "the log grows after the restart", || {
        log_size() > size_after_restart
    });
    let events = server.kubectl(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    assert_eq!(
        events
            .split_whitespace()
            .filter(|r| *r == "Started")
            .count(),
        1,
        "{events}"
    );

    // The adopted container is the worker's to stop.
    server.kubectl(&["delete", "pod", "survivor"]);
    wait_until(20, "the adopted container stops", || !alive(init_pid));
    server.wait_for(10, &["get", "pods", "-o", "name"], |out| {
        !out.contains("pod/survivor")
    });
    wait_until(10, "the pod's directories go", || {
        !server.root_dir().join("pods").join(&uid).exists() && !log.exists()
    });
}
