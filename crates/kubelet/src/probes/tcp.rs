//! `tcpSocket` probes (upstream `pkg/probe/tcp`): a TCP connect within the timeout passes,
//! and the connection is closed at once. Host: `tcpSocket.host`, else the pod IP; port: a
//! number or a container port's name.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use nodelet_api::k8s::api::core::v1::{Container, TCPSocketAction};

use super::Outcome;
use crate::hooks::{HttpTargetError, resolve_port};
use crate::service_env::join_host_port;

/// Runs one `tcpSocket` probe for `container` of a pod with `pod_ips`.
pub fn run(
    action: &TCPSocketAction,
    container: &Container,
    pod_ips: &[String],
    timeout: Duration,
) -> Outcome {
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h.to_owned(),
        None => match pod_ips.first() {
            Some(ip) => ip.clone(),
            None => return Outcome::Error(HttpTargetError::NoPodIp.to_string()),
        },
    };
    let port = match resolve_port(&action.port, container) {
        Ok(p) => p,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    match dial(&host, port, timeout) {
        Ok(stream) => {
            drop(stream);
            Outcome::Success(String::new())
        }
        Err(error) => Outcome::Failure(error),
    }
}

/// Go's `net.Dial("tcp", host:port)` with a timeout; errors worded as Go words them
/// (`dial tcp 10.0.0.5:80: connect: connection refused`, `... i/o timeout`).
pub fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let host_port = join_host_port(host, port);
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
        .collect();
    let mut last = format!("dial tcp: lookup {host}: no such host");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1))) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("dial tcp {host_port}: {}", connect_error_text(&e)),
        }
    }
    Err(last)
}

fn connect_error_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "i/o timeout".into(),
        ErrorKind::HostUnreachable => "connect: no route to host".into(),
        ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        _ => format!("connect: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodelet_api::k8s::api::core::v1::ContainerPort;
    use nodelet_api::k8s::apimachinery::pkg::util::intstr::IntOrString;
    use std::net::TcpListener;

    fn container_with_port(name: &str, port: u16) -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some(name.into()),
                container_port: i32::from(port),
                ..ContainerPort::default()
            }]),
            ..Container::default()
        }
    }

    #[test]
    fn connects_to_a_listening_port_by_number_and_name() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let container = container_with_port("probe", port);
        let pod_ips = ["127.0.0.1".to_owned()];
        for port in [
            IntOrString::Int(i32::from(port)),
            IntOrString::String("probe".into()),
        ] {
            let action = TCPSocketAction { host: None, port };
            assert_eq!(
                run(&action, &container, &pod_ips, Duration::from_secs(1)),
                Outcome::Success(String::new())
            );
        }
    }

    #[test]
    fn refused_connection_fails_with_the_dial_error() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let action = TCPSocketAction {
            host: Some("127.0.0.1".into()),
            port: IntOrString::Int(i32::from(port)),
        };
        assert_eq!(
            run(&action, &Container::default(), &[], Duration::from_secs(1)),
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn bad_targets_are_errors() {
        let action = TCPSocketAction {
            host: None,
            port: IntOrString::Int(80),
        };
        assert_eq!(
            run(&action, &Container::default(), &[], Duration::from_secs(1)),
            Outcome::Error("failed to find networking container: the pod has no IP address".into())
        );
        let action = TCPSocketAction {
            host: None,
            port: IntOrString::String("nope".into()),
        };
        assert_eq!(
            run(
                &action,
                &Container::default(),
                &["127.0.0.1".into()],
                Duration::from_secs(1)
            ),
            Outcome::Error("strconv.Atoi: parsing \"nope\": invalid syntax".into())
        );
    }
}
