//! Outcomes, then real calls against a health server written here on hyper's HTTP/2 server.

use nodelet_testbed::h2_server::{Answer, Seen, serve_h2};

use super::*;

#[test]
fn outcome_texts() {
    let second = Duration::from_secs(1);
    let failure = |call| match outcome(call, "10.0.0.5:9000", second) {
        Outcome::Failure(text) => text,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        outcome(Call::Answered(SERVING), "a", second),
        Outcome::Success("service healthy".into())
    );
    assert_eq!(
        failure(Call::Answered(2)),
        r#"service unhealthy (responded with "NOT_SERVING")"#
    );
    assert_eq!(
        failure(Call::ConnectTimeout),
        r#"timeout: failed to connect service "10.0.0.5:9000" within 1s: context deadline exceeded"#
    );
    assert_eq!(
        failure(Call::RpcTimeout),
        "timeout: health rpc did not complete within 1s"
    );
    let rpc = |code, message: &str| {
        Call::Failed(RpcError {
            code,
            message: message.into(),
        })
    };
    assert_eq!(
        failure(rpc(
            code::UNIMPLEMENTED,
            "unknown service grpc.health.v1.Health"
        )),
        "error: this server does not implement the grpc health protocol \
         (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
    );
    assert_eq!(
        failure(rpc(code::DEADLINE_EXCEEDED, "whatever")),
        "timeout: health rpc did not complete within 1s"
    );
    assert_eq!(
        failure(rpc(5, "unknown service")),
        "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
    );
}

#[test]
fn run_needs_a_pod_ip_and_a_port() {
    let action = |port| GRPCAction {
        port,
        service: None,
    };
    let second = Duration::from_secs(1);
    assert_eq!(
        run(&action(9000), &[], second),
        Outcome::Error(HttpTargetError::NoPodIp.to_string())
    );
    assert_eq!(
        run(&action(0), &["127.0.0.1".into()], second),
        Outcome::Error("invalid port number: 0".into())
    );
}

fn grpc_answer(status: &str, message: &str, body: Vec<u8>) -> Answer {
    Answer {
        status: 200,
        headers: vec![("content-type", "application/grpc".into())],
        body,
        trailers: vec![
            ("grpc-status", status.into()),
            ("grpc-message", message.into()),
        ],
        stall: Duration::ZERO,
    }
}

fn health(status: u8) -> Answer {
    grpc_answer("0", "", vec![0, 0, 0, 0, 2, 0x08, status])
}

/// The HTTP/2 test server on the loopback interface.
fn serve(answer: impl Fn(&str, &[u8]) -> Answer + Send + Sync + 'static) -> (u16, Seen) {
    serve_h2("127.0.0.1:0", answer)
}

fn probe_local(port: u16, service: &str) -> Outcome {
    probe("127.0.0.1", port, service, Duration::from_secs(2))
}

#[test]
fn serving_passes_and_the_request_is_a_health_check() {
    let (port, seen) = serve(|_, _| health(1));
    assert_eq!(
        probe_local(port, "svc"),
        Outcome::Success("service healthy".into())
    );
    let seen = seen.lock().expect("lock");
    let (path, headers, body) = &seen[0];
    assert_eq!(path, CHECK_PATH);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["te"], "trailers");
    assert!(
        headers["user-agent"]
            .to_str()
            .expect("ascii")
            .starts_with("kube-probe/1."),
        "{headers:?}"
    );
    assert!(headers.contains_key("grpc-timeout"));
    assert_eq!(body, &encode_request("svc"));
}

#[test]
fn not_serving_and_unknown_statuses_fail() {
    let (port, _) = serve(|_, body| {
        if body == encode_request("down").as_slice() {
            health(2)
        } else {
            grpc_answer("0", "", vec![0, 0, 0, 0, 0])
        }
    });
    assert_eq!(
        probe_local(port, "down"),
        Outcome::Failure(r#"service unhealthy (responded with "NOT_SERVING")"#.into())
    );
    assert_eq!(
        probe_local(port, ""),
        Outcome::Failure(r#"service unhealthy (responded with "UNKNOWN")"#.into())
    );
}

#[test]
fn grpc_errors_keep_upstream_texts() {
    let (port, _) = serve(|_, body| {
        if body == encode_request("missing").as_slice() {
            grpc_answer("5", "unknown%20service", Vec::new())
        } else {
            // trailers-only, as servers without the health service answer
            let mut a = grpc_answer("12", "", Vec::new());
            a.headers.push(("grpc-status", "12".into()));
            a.headers.push((
                "grpc-message",
                "unknown service grpc.health.v1.Health".into(),
            ));
            a.trailers.clear();
            a
        }
    });
    assert_eq!(
        probe_local(port, "missing"),
        Outcome::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                .into()
        )
    );
    assert_eq!(
        probe_local(port, ""),
        Outcome::Failure(
            "error: this server does not implement the grpc health protocol \
             (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
                .into()
        )
    );
}

#[test]
fn a_plain_http2_answer_is_not_grpc() {
    let (port, _) = serve(|_, _| Answer {
        status: 404,
        headers: vec![("content-type", "text/plain".into())],
        body: b"not found".to_vec(),
        trailers: Vec::new(),
        stall: Duration::ZERO,
    });
    assert_eq!(
        probe_local(port, ""),
        Outcome::Failure(
            "error: this server does not implement the grpc health protocol \
             (grpc.health.v1.Health): unexpected HTTP status code received from server: \
             404 (Not Found); transport: received unexpected content-type \"text/plain\""
                .into()
        )
    );
}

#[test]
fn a_slow_answer_times_out_as_an_rpc() {
    let (port, _) = serve(|_, _| Answer {
        stall: Duration::from_secs(30),
        ..health(1)
    });
    assert_eq!(
        probe("127.0.0.1", port, "", Duration::from_secs(1)),
        Outcome::Failure("timeout: health rpc did not complete within 1s".into())
    );
}

#[test]
fn no_server_is_a_connect_timeout() {
    // a port nobody listens on: bound, then closed
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("addr")
        .port();
    assert_eq!(
        probe("127.0.0.1", port, "", Duration::from_secs(1)),
        Outcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: \
             context deadline exceeded"
        ))
    );
}

#[test]
fn an_http1_server_never_connects() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    assert_eq!(
        probe("127.0.0.1", port, "", Duration::from_secs(1)),
        Outcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: \
             context deadline exceeded"
        ))
    );
}

#[test]
fn a_silent_peer_never_connects() {
    // accepts, never answers: no server preface, so still connecting at the deadline
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    assert_eq!(
        probe("127.0.0.1", port, "", Duration::from_secs(1)),
        Outcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: \
             context deadline exceeded"
        ))
    );
    drop(listener);
}
