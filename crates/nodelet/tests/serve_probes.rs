//! Container probes inside `nodelet serve`, through the real kubectl: readiness decides READY
//! and the Ready condition; a failing liveness probe restarts the container, with `Unhealthy`
//! and `Killing` in `kubectl describe pod`.

mod serve_support;

use std::net::TcpListener;

use nodelet_testbed::{Bed, BedInfo};
use serve_support::Server;

/// A port nobody listens on now (containers share the node's network: no pod network yet).
fn free_port() -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").expect("free port");
    listener.local_addr().unwrap().port()
}

#[test]
fn an_http_readiness_probe_makes_the_pod_ready_once_its_server_answers() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let port = free_port();
    // busybox has no httpd here: nc answers each connection with a fixed response.
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command:
    - sh
    - -c
    - |
      sleep 8
      exec nc -ll -p {port} -e sh -c 'read l; printf "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"'
    readinessProbe:
      httpGet:
        path: /healthz
        port: {port}
      periodSeconds: 1
"#
    ));
    server.wait_for_jsonpath(30, "web", "{.status.phase}", |out| out == "Running");
    let out = server.kubectl(&["get", "pod", "web"]);
    assert!(out.contains("0/1") && out.contains("Running"), "{out}");
    assert_eq!(
        server.pod_jsonpath("web", "{.status.conditions[?(@.type==\"Ready\")].status}"),
        "False"
    );
    assert_eq!(server.wait_ready("web", 60), "pod/web condition met\n");
    let out = server.kubectl(&["get", "pod", "web"]);
    assert!(out.contains("1/1") && out.contains("Running"), "{out}");
    let ready = server.pod_jsonpath(
        "web",
        "{.status.conditions[?(@.type==\"ContainersReady\")].status} {.status.containerStatuses[0].ready} {.status.containerStatuses[0].started}",
    );
    assert_eq!(ready, "True true true");
    let describe = server.kubectl(&["describe", "pod", "web"]);
    assert!(
        describe.contains("Readiness probe failed: Get \"http://"),
        "{describe}"
    );
    server.kubectl(&["delete", "pod", "web"]);
}

#[test]
fn a_failing_liveness_probe_restarts_the_container_with_events() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: sick
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 1000"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 1
"#
    ));
    // The first restart is immediate, the second after a 10 s back-off.
    server.wait_for_jsonpath(
        60,
        "sick",
        "{.status.containerStatuses[0].restartCount}",
        |out| out.parse::<u32>().is_ok_and(|n| n >= 2),
    );
    let describe = server.wait_for(10, &["describe", "pod", "sick"], |out| {
        out.contains("Killing")
    });
    for text in [
        "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory",
        "Container main failed liveness probe, will be restarted",
    ] {
        assert!(describe.contains(text), "{text}: {describe}");
    }
    server.kubectl(&["delete", "pod", "sick"]);
}

#[test]
fn a_restarted_nodelet_probes_the_containers_it_adopts() {
    let bed = Bed::shared().unwrap();
    let mut server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    // Ready while /tmp/ready exists; the container removes it later on its own, so only
    // probes running after the restart can see the pod become unready.
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: adopted
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "touch /tmp/ready; sleep 12; rm /tmp/ready; exec sleep 1000"]
    readinessProbe:
      exec:
        command: ["test", "-f", "/tmp/ready"]
      periodSeconds: 1
"#
    ));
    assert_eq!(
        server.wait_ready("adopted", 60),
        "pod/adopted condition met\n"
    );
    server.kill();
    let server = server.restart(Some(&bed));
    let ready = "{.status.phase} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}";
    // Right after the restart the container is unready until its first probe run (as
    // upstream); the file's removal is only seen by probes of the adopted container.
    server.wait_for(60, &["describe", "pod", "adopted"], |out| {
        out.contains("Readiness probe failed")
    });
    server.wait_for_jsonpath(30, "adopted", ready, |out| out == "Running 0 false");
    server.kubectl(&["delete", "pod", "adopted"]);
}

/// A failed liveness probe's kill (PreStop that would take 10 min, grace 15 min) runs beside
/// the pod's worker: meanwhile the other container's readiness still reaches the status, and
/// `kubectl delete --grace-period=1` joins the stop in progress (PreStop is not run a second
/// time) and the pod is gone within the wait loop, not after the PreStop.
#[test]
fn a_liveness_kill_in_progress_does_not_hold_up_the_pod() {
    let bed = Bed::shared().unwrap();
    let server = Server::start(Some(&bed));
    let image = BedInfo::reference(&bed.plain, "tiny");
    let shared = server.dir().join("probe-kill");
    std::fs::create_dir_all(&shared).unwrap();
    server.create_from_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: slow-kill
spec:
  terminationGracePeriodSeconds: 900
  volumes:
  - name: shared
    hostPath: {{path: {shared}, type: Directory}}
  containers:
  - name: sick
    image: {image}
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 1000"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 1
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo ran >> /shared/pre-stop; sleep 600"]
  - name: other
    image: {image}
    command: ["sh", "-c", "while [ ! -f /shared/pre-stop ]; do sleep 1; done; touch /tmp/ready; exec sleep 1000"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    readinessProbe:
      exec:
        command: ["test", "-f", "/tmp/ready"]
      periodSeconds: 1
"#,
        shared = shared.display()
    ));
    server.wait_for(60, &["describe", "pod", "slow-kill"], |out| {
        out.contains("Container sick failed liveness probe, will be restarted")
    });
    // `other` becomes ready only once sick's PreStop runs, so while it does.
    let statuses = "{.status.containerStatuses[?(@.name==\"other\")].ready} {.status.containerStatuses[?(@.name==\"sick\")].restartCount} {.status.containerStatuses[?(@.name==\"sick\")].state.running.startedAt}";
    let out = server.wait_for_jsonpath(60, "slow-kill", statuses, |out| out.starts_with("true "));
    let fields: Vec<&str> = out.split(' ').collect();
    assert_eq!(fields[1], "0", "sick is still being stopped: {out}");
    assert!(!fields[2].is_empty(), "sick is still running: {out}");

    server.kubectl(&[
        "delete",
        "pod",
        "slow-kill",
        "--grace-period=1",
        "--wait=false",
    ]);
    server.wait_for(60, &["get", "pods", "-o", "name"], |out| {
        out.trim().is_empty()
    });
    let runs = std::fs::read_to_string(shared.join("pre-stop")).unwrap();
    assert_eq!(runs, "ran\n", "PreStop ran once");
}
