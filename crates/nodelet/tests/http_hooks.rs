//! `httpGet` lifecycle hooks with `scheme: HTTPS` through `nodelet run`: the real binary and
//! runc, host-network pods whose hooks reach servers this test runs on the node.

mod run_support;

use std::io::Write;
use std::net::TcpListener;

use nodelet_testbed::Bed;
use nodelet_testbed::http_servers::{Requests, read_head, serve_https, serve_tcp};
use run_support::{Node, image, pod};

const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";

/// An HTTPS server with a self-signed certificate no client could verify.
fn https_server() -> (u16, Requests) {
    serve_https("0.0.0.0:0", |_| ANSWER.to_vec())
}

/// A plain HTTP server (what a hook with the wrong scheme meets).
fn http_server() -> (u16, Requests) {
    serve_tcp("0.0.0.0:0", |mut tcp, requests| {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).unwrap_or(0) == 0 {
            return;
        }
        // A TLS handshake record is no request; answered as Go's server answers it.
        if first[0] == 0x16 {
            let _ = tcp.write_all(
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
            );
            return;
        }
        let head = read_head(&mut tcp);
        requests.lock().unwrap().push(head);
        let _ = tcp.write_all(ANSWER);
    })
}

/// A pod whose container runs `command` (a YAML list) after its PostStart hook against `port`.
fn hooked_pod(bed: &nodelet_testbed::BedInfo, name: &str, port: u16, command: &str) -> String {
    pod(
        name,
        &format!(
            r#"  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  containers:
  - name: main
    image: {}
    command: {command}
    lifecycle:
      postStart:
        httpGet:
          scheme: HTTPS
          host: 127.0.0.1
          port: {port}
          path: /hook?from=poststart
          httpHeaders:
          - name: x-hook
            value: poststart
"#,
            image(bed, "tiny")
        ),
    )
}

const ECHO: &str = r#"["sh", "-c", "echo main ran"]"#;
/// Runs until stopped, then fails.
const SERVE: &str = r#"["sh", "-c", "trap 'exit 1' TERM; sleep 1000 & wait"]"#;

#[test]
fn https_post_start_hooks_skip_verification_fall_back_to_http_and_fail_with_upstreams_text() {
    let bed = Bed::shared().unwrap();
    let node = Node::new(&bed);

    // A self-signed server: the hook succeeds, with its path and headers.
    let (port, requests) = https_server();
    let done = node.run(&hooked_pod(&bed, "https-hook", port, ECHO));
    assert_eq!(done.code, Some(0), "{}", done.all());
    assert!(
        !done.stderr.contains("FailedPostStartHook"),
        "{}",
        done.all()
    );
    let heads = requests.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    for line in [
        "GET /hook?from=poststart HTTP/1.1\r\n",
        &format!("Host: 127.0.0.1:{port}\r\n"),
        "X-Hook: poststart\r\n",
        "User-Agent: kube-lifecycle/",
    ] {
        assert!(heads[0].contains(line), "{line:?} in {:?}", heads[0]);
    }
    node.assert_clean();

    // A plain HTTP server: retried over HTTP, which succeeds, with a warning on the pod.
    let (port, requests) = http_server();
    let done = node.run(&hooked_pod(&bed, "http-hook", port, ECHO));
    assert_eq!(done.code, Some(0), "{}", done.all());
    let warning = format!(
        "Warning  LifecycleHTTPFallback  request to HTTPS lifecycle hook 127.0.0.1:{port} got HTTP response, retry with HTTP succeeded"
    );
    assert!(done.stderr.contains(&warning), "{}", done.all());
    assert!(
        !done.stderr.contains("FailedPostStartHook"),
        "{}",
        done.all()
    );
    let heads = requests.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with("GET /hook?from=poststart HTTP/1.1\r\n"),
        "{heads:?}"
    );
    node.assert_clean();

    // Nobody listening: FailedPostStartHook, the detailed text in the log, the container is
    // killed and the pod fails.
    let port = {
        let listener = TcpListener::bind("0.0.0.0:0").expect("free port");
        listener.local_addr().unwrap().port()
    };
    let done = node.run(&hooked_pod(&bed, "no-server", port, SERVE));
    assert_ne!(done.code, Some(0), "{}", done.all());
    assert!(
        done.stderr.contains("pod default/no-server Failed"),
        "{}",
        done.all()
    );
    let detail = r#"HTTP lifecycle hook (/hook?from=poststart) for Container "main" in Pod "no-server_default("#;
    let error = format!(
        r#")" failed - error: Get "https://127.0.0.1:{port}/hook?from=poststart": dial tcp 127.0.0.1:{port}: connect: connection refused"#
    );
    for text in [
        "Warning  FailedPostStartHook  PostStartHook failed",
        "Normal  Killing  FailedPostStartHook",
        detail,
        &error,
    ] {
        assert!(done.stderr.contains(text), "{text}: {}", done.all());
    }
    assert!(
        !done.stderr.contains("LifecycleHTTPFallback"),
        "{}",
        done.all()
    );
    node.assert_clean();
}
