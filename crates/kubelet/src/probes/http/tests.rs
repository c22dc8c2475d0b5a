//! Against real local HTTP servers (std `TcpListener` threads).

use std::io::{Read, Write};
use std::net::TcpListener;

use nodelet_api::k8s::api::core::v1::{ContainerPort, HTTPHeader};
use nodelet_api::k8s::apimachinery::pkg::util::intstr::IntOrString;
use nodelet_testbed::http_servers::{Requests, serve_http, serve_https};

use super::*;

/// Serves every connection with `respond(request head)`; returns the port and the requests.
fn serve(respond: impl Fn(&str) -> Vec<u8> + Send + 'static) -> (u16, Requests) {
    serve_http("127.0.0.1:0", respond)
}

fn response(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn action(port: IntOrString, path: &str) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.into()),
        port,
        ..HTTPGetAction::default()
    }
}

fn probe_port(port: u16, path: &str) -> Outcome {
    run(
        &action(IntOrString::Int(i32::from(port)), path),
        &Container::default(),
        &["127.0.0.1".into()],
        Duration::from_secs(2),
    )
}

fn path_of(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

#[test]
fn success_sends_the_probe_headers() {
    let (port, requests) = serve(|_| response("200 OK", "", "healthy"));
    assert_eq!(
        probe_port(port, "/healthz?x=1"),
        Outcome::Success("healthy".into())
    );
    let head = requests.lock().expect("lock")[0].clone();
    assert!(head.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    let agent = crate::hooks::user_agent("probe");
    assert!(agent.starts_with("kube-probe/1."), "{agent}");
    assert!(
        head.contains(&format!("\r\nUser-Agent: {agent}\r\n")),
        "{head}"
    );
    assert!(head.contains("\r\nAccept: */*\r\n"), "{head}");
}

#[test]
fn status_codes() {
    let (port, _) = serve(|head| {
        let code = path_of(head).trim_start_matches('/');
        response(&format!("{code} X"), "", "secret body")
    });
    for (code, want) in [
        ("200", Outcome::Success("secret body".into())),
        ("204", Outcome::Success("secret body".into())),
        (
            "399",
            Outcome::Warning("Probe terminated redirects, Response body: secret body".into()),
        ),
        (
            "400",
            Outcome::Failure("HTTP probe failed with statuscode: 400".into()),
        ),
        (
            "500",
            Outcome::Failure("HTTP probe failed with statuscode: 500".into()),
        ),
    ] {
        assert_eq!(probe_port(port, &format!("/{code}")), want, "status {code}");
    }
}

#[test]
fn redirects_to_the_same_host_are_followed() {
    let (port, requests) = serve(|head| match path_of(head) {
        "/old" => response("301 Moved", "Location: /new\r\n", ""),
        "/new" => response("302 Found", "Location: http://127.0.0.1:1/never\r\n", ""),
        _ => response("500 X", "", ""),
    });
    // The second redirect goes to the same host name on another port: followed, and refused.
    assert_eq!(
        probe_port(port, "/old"),
        Outcome::Failure(
            "Get \"http://127.0.0.1:1/never\": dial tcp 127.0.0.1:1: connect: connection refused"
                .into()
        )
    );
    let paths: Vec<String> = requests
        .lock()
        .expect("lock")
        .iter()
        .map(|h| path_of(h).to_owned())
        .collect();
    assert_eq!(paths, ["/old", "/new"]);
}

#[test]
fn a_redirect_to_another_host_passes_with_a_warning() {
    let (port, requests) = serve(move |_| {
        response(
            "302 Found",
            "Location: http://localhost/elsewhere\r\n",
            "moved",
        )
    });
    assert_eq!(
        probe_port(port, "/"),
        Outcome::Warning("Probe terminated redirects, Response body: moved".into())
    );
    assert_eq!(requests.lock().expect("lock").len(), 1);
}

#[test]
fn redirect_loops_stop_after_ten() {
    let (port, requests) = serve(|head| {
        let n: u32 = path_of(head).trim_start_matches('/').parse().unwrap_or(0);
        response("307 Again", &format!("Location: /{}\r\n", n + 1), "")
    });
    assert_eq!(
        probe_port(port, "/0"),
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/11\": stopped after 10 redirects"
        ))
    );
    assert_eq!(requests.lock().expect("lock").len(), 11);
}

#[test]
fn header_overrides_and_named_ports() {
    let (port, requests) = serve(|_| response("200 OK", "", ""));
    let container = Container {
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(port),
            ..ContainerPort::default()
        }]),
        ..Container::default()
    };
    let mut action = action(IntOrString::String("http".into()), "ready");
    action.http_headers = Some(vec![
        HTTPHeader {
            name: "user-agent".into(),
            value: "mine/1".into(),
        },
        HTTPHeader {
            name: "Host".into(),
            value: "example.test".into(),
        },
        HTTPHeader {
            name: "x-probe".into(),
            value: "yes".into(),
        },
    ]);
    let outcome = run(
        &action,
        &container,
        &["127.0.0.1".into()],
        Duration::from_secs(2),
    );
    assert_eq!(outcome, Outcome::Success(String::new()));
    let head = requests.lock().expect("lock")[0].clone();
    assert!(head.starts_with("GET /ready HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nHost: example.test\r\n"), "{head}");
    assert!(head.contains("\r\nUser-Agent: mine/1\r\n"), "{head}");
    assert!(!head.contains("kube-probe"), "{head}");
    assert!(head.contains("\r\nX-Probe: yes\r\n"), "{head}");
}

#[test]
fn the_body_is_read_up_to_the_limit() {
    let (port, _) = serve(|head| {
        let body = "b".repeat(5 * MAX_OUTPUT);
        if path_of(head) == "/chunked" {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            out.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
            out
        } else {
            response("200 OK", "", &body)
        }
    });
    assert_eq!(
        probe_port(port, "/big"),
        Outcome::Success("b".repeat(MAX_OUTPUT))
    );
    assert_eq!(
        probe_port(port, "/chunked"),
        Outcome::Success("hello world".into())
    );
}

#[test]
fn transport_failures() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    assert_eq!(
        probe_port(closed, "/healthz"),
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{closed}/healthz\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
        ))
    );

    // Accepts and never answers: the timeout fails the probe.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let target = http_target(
        &action(IntOrString::Int(i32::from(port)), "/"),
        &Container::default(),
        &["127.0.0.1".into()],
        "probe",
    )
    .expect("target");
    assert_eq!(
        probe(&target, Duration::from_millis(200)),
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    drop(silent);

    assert_eq!(
        run(
            &action(IntOrString::Int(80), "/"),
            &Container::default(),
            &[],
            Duration::from_secs(1)
        ),
        Outcome::Error("failed to find networking container: the pod has no IP address".into())
    );
}

#[test]
fn locations_resolve_against_the_request() {
    let base = Url {
        scheme: "http".into(),
        host: "10.0.0.5".into(),
        port: 8080,
        path: "/a/b?q=1".into(),
    };
    let show = |loc: &str| base.join(loc).map(|u| u.to_string());
    assert_eq!(show("/x").as_deref(), Some("http://10.0.0.5:8080/x"));
    assert_eq!(show("c").as_deref(), Some("http://10.0.0.5:8080/a/c"));
    assert_eq!(show("//h:9/p").as_deref(), Some("http://h:9/p"));
    assert_eq!(show("https://h/p#f").as_deref(), Some("https://h:443/p"));
    assert_eq!(show("http://[::1]:81").as_deref(), Some("http://[::1]:81/"));
    assert_eq!(show("ftp://h/"), None);
}

/// An HTTPS server with a fresh self-signed certificate for `localhost` (so never valid for
/// the `127.0.0.1` the probe dials): serves every connection with `respond(request head)`.
fn serve_tls(respond: impl Fn(&str) -> Vec<u8> + Send + 'static) -> (u16, Requests) {
    serve_https("127.0.0.1:0", respond)
}

fn https_action(port: u16, path: &str) -> HTTPGetAction {
    HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..action(IntOrString::Int(i32::from(port)), path)
    }
}

fn probe_action(action: &HTTPGetAction) -> Outcome {
    run(
        action,
        &Container::default(),
        &["127.0.0.1".into()],
        Duration::from_secs(2),
    )
}

#[test]
fn https_skips_certificate_verification() {
    let (port, requests) = serve_tls(|_| response("200 OK", "", "secure"));
    assert_eq!(
        probe_action(&https_action(port, "/healthz")),
        Outcome::Success("secure".into())
    );
    let head = requests.lock().expect("lock")[0].clone();
    assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");

    let (port, _) = serve_tls(|_| response("503 Service Unavailable", "", "down"));
    assert_eq!(
        probe_action(&https_action(port, "/")),
        Outcome::Failure("HTTP probe failed with statuscode: 503".into())
    );
}

#[test]
fn redirects_may_change_scheme_on_the_same_host() {
    let (tls_port, tls_requests) = serve_tls(|_| response("200 OK", "", "over tls"));
    let location = format!("Location: https://127.0.0.1:{tls_port}/ok\r\n");
    let (port, _) = serve(move |_| response("302 Found", &location, ""));
    assert_eq!(probe_port(port, "/"), Outcome::Success("over tls".into()));
    assert_eq!(path_of(&tls_requests.lock().expect("lock")[0]), "/ok");

    // to another host over TLS: not followed, a warning
    let (port, _) = serve(|_| {
        response(
            "301 Moved Permanently",
            "Location: https://example.invalid/\r\n",
            "moved",
        )
    });
    assert_eq!(
        probe_port(port, "/"),
        Outcome::Warning("Probe terminated redirects, Response body: moved".into())
    );
}

#[test]
fn https_against_plain_http_and_unknown_schemes_fail() {
    // A plain server answers a ClientHello (no blank line in it) with 400 at once.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut hello = [0u8; 1024];
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(&response("400 Bad Request", "", ""));
        }
    });
    assert_eq!(
        probe_action(&https_action(port, "/")),
        Outcome::Failure(format!(
            "Get \"https://127.0.0.1:{port}/\": http: server gave HTTP response to HTTPS client"
        ))
    );
    let ftp = HTTPGetAction {
        scheme: Some("FTP".into()),
        ..action(IntOrString::Int(21), "/")
    };
    assert_eq!(
        probe_action(&ftp),
        Outcome::Failure("Get \"ftp://127.0.0.1:21/\": unsupported protocol scheme \"ftp\"".into())
    );
}
