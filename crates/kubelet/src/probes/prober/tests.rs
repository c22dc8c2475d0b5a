//! The threads against real local sockets and an exec closure.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

use nodelet_api::k8s::api::core::v1::{ExecAction, HTTPGetAction};
use nodelet_api::k8s::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::probes::exec::ExecResult;

/// Generous: only guards against a hung test, asserts no timing.
const PATIENCE: Duration = Duration::from_secs(20);

fn http_server(status: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head);
            let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

fn probe(failure_threshold: i32) -> Probe {
    Probe {
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn exec_probe(failure_threshold: i32, argv: &str) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![argv.into()]),
        }),
        ..probe(failure_threshold)
    }
}

fn target(container: Container, exec: impl ExecInContainer + 'static) -> ProbeTarget {
    ProbeTarget {
        container,
        container_id: "c-1".into(),
        started_at: Instant::now(),
        pod_ips: vec!["127.0.0.1".into()],
        exec: Arc::new(exec),
    }
}

fn no_exec(_: &[String], _: Duration) -> ExecResult {
    ExecResult::Failed("no exec in this test".into())
}

fn channel() -> (Report, mpsc::Receiver<ProbeEvent>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let report: Report = Arc::new(move |e| {
        let _ = tx.lock().expect("lock").send(e);
    });
    (report, rx)
}

#[test]
fn failing_http_liveness_reports_unhealthy_then_kill() {
    let port = http_server(500);
    let container = Container {
        name: "web".into(),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::Int(i32::from(port)),
                ..HTTPGetAction::default()
            }),
            ..probe(2)
        }),
        ..Container::default()
    };
    let (report, rx) = channel();
    let prober = Prober::start(target(container, no_exec), report);
    let first = rx.recv_timeout(PATIENCE).expect("first run");
    assert_eq!(first.kind, ProbeKind::Liveness);
    assert_eq!(first.result, ProbeResult::Success);
    assert!(!first.kill);
    assert_eq!(
        first.event.as_ref().map(|e| (e.reason, e.message.as_str())),
        Some((
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 500"
        ))
    );
    let second = rx.recv_timeout(PATIENCE).expect("second run");
    assert_eq!((second.result, second.kill), (ProbeResult::Failure, true));
    assert_eq!(second.container_id, "c-1");
    assert_eq!(second.kill_reason(), Some(KillReason::LivenessProbe));
    assert_eq!(
        second.killing(true).map(|e| e.message),
        Some("Container web failed liveness probe, will be restarted".into())
    );
    assert_eq!(
        prober.result(ProbeKind::Liveness),
        Some(ProbeResult::Failure)
    );
    prober.stop();
}

#[test]
fn startup_gates_readiness_and_tcp_readiness_turns_ready() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    // The startup command fails once, then passes.
    let exec = move |_: &[String], _: Duration| ExecResult::Exited {
        code: i32::from(counted.fetch_add(1, Ordering::SeqCst) == 0),
        stdout: Vec::new(),
        stderr: b"not yet".to_vec(),
    };
    let container = Container {
        name: "app".into(),
        startup_probe: Some(exec_probe(5, "check")),
        readiness_probe: Some(Probe {
            tcp_socket: Some(nodelet_api::k8s::api::core::v1::TCPSocketAction {
                host: None,
                port: IntOrString::Int(i32::from(port)),
            }),
            ..probe(3)
        }),
        ..Container::default()
    };
    let (report, rx) = channel();
    let prober = Prober::start(target(container, exec), report);
    assert!(!prober.started());
    assert!(!prober.ready());

    let first = rx.recv_timeout(PATIENCE).expect("startup failure");
    assert_eq!(first.kind, ProbeKind::Startup);
    assert_eq!(first.result, ProbeResult::Unknown);
    assert_eq!(
        first.event.map(|e| e.message),
        Some("Startup probe failed: not yet".into())
    );
    // The two threads report independently: either may come first.
    let mut next: Vec<(ProbeKind, ProbeResult, Option<Event>)> = (0..2)
        .map(|_| {
            rx.recv_timeout(PATIENCE)
                .expect("startup and readiness success")
        })
        .map(|e| (e.kind, e.result, e.event))
        .collect();
    next.sort_by_key(|(kind, _, _)| *kind == ProbeKind::Readiness);
    assert_eq!(
        next,
        [
            (ProbeKind::Startup, ProbeResult::Success, None),
            (ProbeKind::Readiness, ProbeResult::Success, None),
        ]
    );
    assert!(prober.started());
    assert!(prober.ready());
    drop(listener);
    prober.stop();
}

#[test]
fn pod_termination_quiets_startup_and_liveness() {
    let exec = |_: &[String], _: Duration| ExecResult::Exited {
        code: 1,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let container = Container {
        name: "web".into(),
        startup_probe: Some(exec_probe(100, "check")),
        liveness_probe: Some(exec_probe(1, "check")),
        ..Container::default()
    };
    let (report, rx) = channel();
    let prober = Prober::start(target(container, exec), report);
    let first = rx.recv_timeout(PATIENCE).expect("first failure");
    assert!(!first.kill);
    prober.pod_terminating();
    loop {
        let next = rx.recv_timeout(PATIENCE).expect("quieted");
        assert!(!next.kill);
        if next.event.is_none() {
            assert_eq!(
                (next.kind, next.result),
                (ProbeKind::Startup, ProbeResult::Success)
            );
            break;
        }
    }
    assert_eq!(next_kind_check(&prober), Some(ProbeResult::Success));
    prober.stop();
}

fn next_kind_check(prober: &Prober) -> Option<ProbeResult> {
    // Liveness never ran (gated by startup) and was quieted, not failed.
    assert_eq!(
        prober.result(ProbeKind::Liveness),
        Some(ProbeResult::Success)
    );
    prober.result(ProbeKind::Startup)
}

#[test]
fn containers_without_probes_are_started_and_ready() {
    let (report, _rx) = channel();
    let prober = Prober::start(target(Container::default(), no_exec), report);
    assert!(prober.started());
    assert!(prober.ready());
    assert_eq!(prober.result(ProbeKind::Liveness), None);
    prober.stop();
}

#[test]
fn handlerless_probes_error() {
    let t = target(Container::default(), no_exec);
    assert!(matches!(
        run_once(&Probe::default(), &t, Duration::from_secs(1)),
        Outcome::Error(_)
    ));
}

#[test]
fn grpc_probes_run_against_the_pod_ip() {
    let t = target(Container::default(), no_exec);
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("addr")
        .port();
    let probe = Probe {
        grpc: Some(nodelet_api::k8s::api::core::v1::GRPCAction {
            port: i32::from(closed),
            service: None,
        }),
        ..Probe::default()
    };
    assert_eq!(
        run_once(&probe, &t, Duration::from_secs(1)),
        Outcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s: context deadline exceeded"
        ))
    );
}
