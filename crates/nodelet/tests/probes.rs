//! Container probes through `nodelet run`: the real binary and runc, probes run in and against
//! the container (which shares the node's network namespace: no pod network yet).

mod run_support;

use std::net::TcpListener;

use nodelet_testbed::{Bed, BedInfo};
use run_support::{LIMIT, Node, Running, image, pod};

/// Pod fields for a pod that runs once and whose container stops within a second.
const RUN_ONCE: &str = "  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n";
/// A command that runs until stopped, then says so and succeeds.
const UNTIL_TERM: &str = r#"["sh", "-c", "trap 'echo got TERM; exit 0' TERM; sleep 1000 & wait"]"#;

/// A pod `name` whose one container `main` (the tiny image) runs `command` (a YAML list):
/// `spec` holds the pod's fields before `containers` and `probes` the container's fields after
/// `command`, both as indented YAML lines.
fn probed_pod(bed: &BedInfo, name: &str, spec: &str, command: &str, probes: &str) -> String {
    pod(
        name,
        &format!(
            "{spec}  containers:\n  - name: main\n    image: {}\n    command: {command}\n{probes}",
            image(bed, "tiny")
        ),
    )
}

/// Asserts that `output` holds each of `texts`, the first of each in this order; the panic
/// shows `all` (the whole output).
fn assert_in_order(output: &str, texts: &[&str], all: &str) {
    let places: Vec<usize> = texts
        .iter()
        .map(|text| output.find(text).expect(all))
        .collect();
    assert!(places.is_sorted(), "{all}");
}

/// The event of a kill for a failed `probe` (`liveness`, `startup`).
fn killing(probe: &str) -> String {
    format!("Normal  Killing  Container main failed {probe} probe\n")
}

/// A port nobody listens on now (the container shares the node's network).
fn free_port() -> u16 {
    let listener = TcpListener::bind("0.0.0.0:0").expect("free port");
    listener.local_addr().unwrap().port()
}

/// Waits until the container has printed `line` `times` times.
fn wait_for_count(running: &mut Running, line: &str, times: usize) {
    while running.stdout().matches(line).count() < times {
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!("nodelet ended ({status}) before {line:?} x{times}");
        }
        assert!(running.started.elapsed() < LIMIT, "no {line:?} x{times}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_failing_exec_liveness_probe_kills_and_restarts_the_container() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = probed_pod(
        &bed,
        "live",
        "  restartPolicy: Always\n  terminationGracePeriodSeconds: 1\n",
        r#"["sh", "-c", "echo run; touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 1000"]"#,
        r#"    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 1
      terminationGracePeriodSeconds: 1
"#,
    );
    let mut running = node.start(&yaml);
    wait_for_count(&mut running, "[main] run\n", 2);
    running.signal("INT");
    let done = running.finish();
    let all = done.all();
    let unhealthy = done
        .stderr
        .find("Warning  Unhealthy  Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory")
        .expect(&all);
    let killing = done
        .stderr
        .find("Normal  Killing  Container main failed liveness probe, will be restarted")
        .expect(&all);
    let restarted = done
        .stderr
        .match_indices("Normal  Started  Started container main")
        .nth(1)
        .expect(&all)
        .0;
    assert!(unhealthy < killing && killing < restarted, "{all}");
    node.assert_clean();
}

#[test]
fn the_startup_probe_holds_liveness_until_it_succeeds() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    // Liveness would kill the container at once before /tmp/started exists; it only runs
    // once the startup probe has seen the file.
    let yaml = probed_pod(
        &bed,
        "slow-start",
        "  restartPolicy: Never\n",
        r#"["sh", "-c", "sleep 3; touch /tmp/started; sleep 3; echo done"]"#,
        r#"    startupProbe:
      exec:
        command: ["test", "-f", "/tmp/started"]
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec:
        command: ["test", "-f", "/tmp/started"]
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let done = node.run(&yaml);
    let all = done.all();
    assert_eq!(done.code, Some(0), "{all}");
    assert!(done.stdout.contains("[main] done\n"), "{all}");
    assert!(
        done.stderr
            .contains("Warning  Unhealthy  Startup probe failed: "),
        "{all}"
    );
    assert!(!done.stderr.contains("Liveness probe failed"), "{all}");
    assert!(!done.stderr.contains("Killing"), "{all}");
    node.assert_clean();
}

#[test]
fn a_tcp_liveness_probe_runs_pre_stop_and_stops_the_container_when_its_server_stops() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let port = free_port();
    let yaml = probed_pod(
        &bed,
        "tcp-live",
        RUN_ONCE,
        &format!(
            r#"["sh", "-c", "trap 'echo got TERM; exit 0' TERM; nc -ll -p {port} -e true & sleep 4; kill $!; echo server stopped; sleep 1000 & wait"]"#
        ),
        &format!(
            r#"    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo prestop ran > /proc/1/fd/1"]
    livenessProbe:
      tcpSocket:
        port: {port}
      periodSeconds: 1
      failureThreshold: 2
"#
        ),
    );
    let done = node.run(&yaml);
    let all = done.all();
    // The kill runs PreStop, then the stop signal, which the container's trap takes.
    assert_eq!(done.code, Some(0), "{all}");
    let stdout = [
        "[main] server stopped\n",
        "[main] prestop ran\n",
        "[main] got TERM\n",
    ];
    assert_in_order(&done.stdout, &stdout, &all);
    let refused = "Warning  Unhealthy  Liveness probe failed: dial tcp ";
    assert_in_order(&done.stderr, &[refused, &killing("liveness")], &all);
    assert!(done.stderr.contains("connect: connection refused"), "{all}");
    node.assert_clean();
}

#[test]
fn a_startup_probe_that_never_succeeds_kills_the_container() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let yaml = probed_pod(
        &bed,
        "never-starts",
        RUN_ONCE,
        r#"["sleep", "1000"]"#,
        r#"    startupProbe:
      exec:
        command: ["sh", "-c", "echo not yet; exit 1"]
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    let done = node.run(&yaml);
    let all = done.all();
    assert_ne!(done.code, Some(0), "{all}");
    let unhealthy = "Warning  Unhealthy  Startup probe failed: not yet\n";
    assert_in_order(&done.stderr, &[unhealthy, &killing("startup")], &all);
    assert_eq!(
        done.stderr.matches("Started container main").count(),
        1,
        "{all}"
    );
    node.assert_clean();
}

#[test]
fn a_grpc_liveness_probe_without_a_server_fails_with_upstreams_text_and_kills() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let port = free_port();
    let yaml = probed_pod(
        &bed,
        "grpc-live",
        RUN_ONCE,
        UNTIL_TERM,
        &format!(
            r#"    livenessProbe:
      grpc:
        port: {port}
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    let done = node.run(&yaml);
    let all = done.all();
    let unhealthy =
        "Warning  Unhealthy  Liveness probe failed: timeout: failed to connect service ";
    assert!(
        done.stderr
            .contains(&format!(":{port}\" within 1s: context deadline exceeded")),
        "{all}"
    );
    assert_in_order(&done.stderr, &[unhealthy, &killing("liveness")], &all);
    node.assert_clean();
}

/// An HTTPS server on the node (a self-signed certificate no client could verify), for a
/// host-network pod: `/warn` redirects to another host, anything else answers 500.
fn https_server() -> u16 {
    let (port, _) = nodelet_testbed::http_servers::serve_https("0.0.0.0:0", |head| {
        let answer = if head.starts_with("GET /warn ") {
            "HTTP/1.1 302 Found\r\nLocation: https://example.invalid/\r\nContent-Length: 9\r\n\r\nelsewhere"
        } else {
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nbusy"
        };
        answer.as_bytes().to_vec()
    });
    port
}

#[test]
fn https_probes_skip_verification_warn_on_foreign_redirects_and_fail_on_500() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let port = https_server();
    let yaml = probed_pod(
        &bed,
        "https-probes",
        &format!("{RUN_ONCE}  hostNetwork: true\n"),
        UNTIL_TERM,
        &format!(
            r#"    readinessProbe:
      httpGet:
        scheme: HTTPS
        port: {port}
        path: /warn
      periodSeconds: 1
    livenessProbe:
      httpGet:
        scheme: HTTPS
        port: {port}
        path: /healthz
      initialDelaySeconds: 2
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    let done = node.run(&yaml);
    let all = done.all();
    assert!(
        done.stderr.contains(
            "Warning  ProbeWarning  Readiness probe warning: Probe terminated redirects, Response body: elsewhere"
        ),
        "{all}"
    );
    let unhealthy =
        "Warning  Unhealthy  Liveness probe failed: HTTP probe failed with statuscode: 500";
    assert_in_order(&done.stderr, &[unhealthy, &killing("liveness")], &all);
    node.assert_clean();
}

/// A gRPC health server on the node (plaintext HTTP/2): `SERVING` for the first `serving`
/// checks, `NOT_SERVING` after; returns its port and the number of checks so far.
fn grpc_health_server(serving: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use nodelet_testbed::h2_server::{Answer, serve_h2};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let checks = Arc::new(AtomicUsize::new(0));
    let counted = checks.clone();
    let (port, _) = serve_h2("0.0.0.0:0", move |path, request| {
        assert_eq!(path, "/grpc.health.v1.Health/Check");
        let n = counted.fetch_add(1, Ordering::SeqCst);
        // HealthCheckRequest{service: "app"}, else SERVICE_UNKNOWN
        let status = match request {
            r if r != b"\0\0\0\0\x05\x0a\x03app" => 3,
            _ if n < serving => 1,
            _ => 2,
        };
        Answer {
            status: 200,
            headers: vec![("content-type", "application/grpc".into())],
            body: vec![0, 0, 0, 0, 2, 0x08, status],
            trailers: vec![("grpc-status", "0".into())],
            stall: std::time::Duration::ZERO,
        }
    });
    (port, checks)
}

#[test]
fn a_grpc_liveness_probe_passes_while_serving_and_kills_on_not_serving() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);
    let (port, checks) = grpc_health_server(3);
    let yaml = probed_pod(
        &bed,
        "grpc-health",
        &format!("{RUN_ONCE}  hostNetwork: true\n"),
        UNTIL_TERM,
        &format!(
            r#"    livenessProbe:
      grpc:
        port: {port}
        service: app
      periodSeconds: 1
      failureThreshold: 1
"#
        ),
    );
    let done = node.run(&yaml);
    let all = done.all();
    let unhealthy = r#"Warning  Unhealthy  Liveness probe failed: service unhealthy (responded with "NOT_SERVING")"#;
    assert_in_order(&done.stderr, &[unhealthy, &killing("liveness")], &all);
    assert_eq!(done.stderr.matches("Unhealthy").count(), 1, "{all}");
    assert!(
        checks.load(std::sync::atomic::Ordering::SeqCst) >= 4,
        "{all}"
    );
    node.assert_clean();
}
