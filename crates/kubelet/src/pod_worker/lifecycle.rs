//! Running lifecycle hook handlers (spec §7.2–§7.4): `exec` in the container, `httpGet`
//! against the pod, `sleep`. The texts come from [`crate::hooks`].

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nodelet_api::k8s::api::core::v1::{Container, LifecycleHandler, Pod};
use nodelet_runtime::container::{Container as RuntimeContainer, Exit};

use crate::events::Event;
use crate::hooks::{self, HookFailure, HttpTarget};
use crate::probes::http;
use crate::service_env::join_host_port;

/// A container's end, once known; waited on by hooks and by stops.
#[derive(Debug, Default)]
pub struct ExitSlot {
    exit: Mutex<Option<Exit>>,
    changed: Condvar,
}

impl ExitSlot {
    pub fn set(&self, exit: Exit) {
        let mut slot = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(exit);
        self.changed.notify_all();
    }

    pub fn get(&self) -> Option<Exit> {
        *self.exit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for the end; `None` if still running.
    pub fn wait(&self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(exit) = *slot {
                return Some(exit);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            slot = self
                .changed
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What a hook needs of its container.
#[derive(Debug, Clone, Copy)]
pub struct HookTarget<'a> {
    pub pod: &'a Pod,
    pub spec: &'a Container,
    pub container: &'a RuntimeContainer,
    pub exit: &'a ExitSlot,
    pub pod_ips: &'a [String],
}

/// Runs `handler`; `Ok` may carry a warning event for the pod (`LifecycleHTTPFallback`);
/// `Err` is the detailed failure message ([`HookFailure::message`]), which goes to the log,
/// never into events. `timeout` bounds `exec` and `httpGet`;
/// `abort_sleep_on_exit` ends a `sleep` when the container ends (PostStart).
pub fn run_handler(
    handler: &LifecycleHandler,
    target: HookTarget<'_>,
    timeout: Duration,
    abort_sleep_on_exit: bool,
) -> Result<Option<Event>, String> {
    let name = &target.spec.name;
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (error, output) = match target.container.exec(&command, timeout) {
            Ok(out) if out.exit_code == 0 => return Ok(None),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
                output.push_str(&stderr);
                (
                    hooks::exec_exit_error(&command, out.exit_code, &stderr),
                    output,
                )
            }
            Err(e) => (e.to_string(), String::new()),
        };
        let failure = HookFailure::Exec {
            command: &command,
            error: &error,
            output: &output,
        };
        return Err(failure.message(name, target.pod));
    }
    if let Some(action) = &handler.http_get {
        let path = action.path.as_deref().unwrap_or("");
        let result = hooks::http_target(action, target.spec, target.pod_ips, "lifecycle")
            .map_err(|e| e.to_string())
            .and_then(|t| http_get(&t, timeout));
        return result.map_err(|error| {
            HookFailure::Http {
                path,
                error: &error,
            }
            .message(name, target.pod)
        });
    }
    if let Some(sleep) = &handler.sleep {
        let seconds = sleep.seconds;
        let duration = Duration::from_secs(seconds.max(0).unsigned_abs());
        if abort_sleep_on_exit {
            if target.exit.wait(duration).is_some() {
                let failure = HookFailure::Sleep {
                    seconds,
                    error: hooks::SLEEP_INTERRUPTED,
                };
                return Err(failure.message(name, target.pod));
            }
        } else {
            std::thread::sleep(duration);
        }
        return Ok(None);
    }
    Err(HookFailure::Invalid { handler }.message(name, target.pod))
}

/// The hook's GET on the probes' client ([`crate::probes::http::fetch`]), as upstream's
/// `runHTTPHandler`: any HTTP status is success (only transport errors fail it); the body is
/// read up to 10 KiB and discarded. An HTTPS request a plain HTTP server answered is retried
/// over HTTP without `Authorization`; if that succeeds so does the hook, with the
/// `LifecycleHTTPFallback` warning, otherwise the HTTPS error stands.
fn http_get(target: &HttpTarget, timeout: Duration) -> Result<Option<Event>, String> {
    let deadline = Instant::now() + timeout;
    let error = match http::fetch(target, timeout) {
        Ok(_) => return Ok(None),
        Err(e) => e,
    };
    if target.scheme != "https" || !error.contains(http::HTTP_RESPONSE_TO_HTTPS) {
        return Err(error);
    }
    let plain = plain_http(target);
    let left = deadline.saturating_duration_since(Instant::now());
    match http::fetch(&plain, left) {
        Ok(_) => Ok(Some(hooks::http_fallback(&join_host_port(
            &target.host,
            target.port,
        )))),
        Err(_) => Err(error),
    }
}

/// `target` over plain HTTP, without credentials meant for TLS.
fn plain_http(target: &HttpTarget) -> HttpTarget {
    let rest = target.url.split_once("://").map_or("", |(_, rest)| rest);
    HttpTarget {
        url: format!("http://{rest}"),
        scheme: "http".to_owned(),
        headers: target
            .headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("authorization"))
            .cloned()
            .collect(),
        ..target.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use nodelet_testbed::http_servers::{read_head, serve_tcp};

    use super::*;

    /// A plain HTTP server answering every connection with `answer`; a TLS ClientHello gets
    /// Go's 400 as the retry-worthy reply.
    fn plain_server(answer: &'static str) -> u16 {
        let (port, _) = serve_tcp("127.0.0.1:0", move |mut tcp, _| {
            let mut first = [0u8; 1];
            if tcp.peek(&mut first).unwrap_or(0) == 0 {
                return;
            }
            if first[0] == 0x16 {
                let _ = tcp.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n");
                return;
            }
            read_head(&mut tcp);
            let _ = tcp.write_all(answer.as_bytes());
        });
        port
    }

    fn target(scheme: &str, port: u16) -> HttpTarget {
        HttpTarget {
            url: format!("{scheme}://127.0.0.1:{port}/hook"),
            scheme: scheme.into(),
            host: "127.0.0.1".into(),
            port,
            host_header: None,
            headers: vec![],
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn any_http_status_is_success() {
        for answer in [
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nbusy",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ] {
            let port = plain_server(answer);
            assert_eq!(
                http_get(&target("http", port), TIMEOUT),
                Ok(None),
                "{answer}"
            );
        }
    }

    #[test]
    fn https_answered_over_http_falls_back_with_a_warning() {
        let port = plain_server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        let warning = http_get(&target("https", port), TIMEOUT)
            .unwrap()
            .expect("a fallback warning");
        assert_eq!(warning, hooks::http_fallback(&format!("127.0.0.1:{port}")));
    }

    #[test]
    fn a_failed_fallback_keeps_the_https_error() {
        // Answers a ClientHello, then closes on the plain request: the retry fails too.
        let port = plain_server("");
        let error = http_get(&target("https", port), TIMEOUT).unwrap_err();
        assert_eq!(
            error,
            format!(
                "Get \"https://127.0.0.1:{port}/hook\": http: server gave HTTP response to HTTPS client"
            )
        );
    }

    #[test]
    fn transport_failures_fail_with_gos_text() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let error = http_get(&target("https", port), TIMEOUT).unwrap_err();
        assert_eq!(
            error,
            format!(
                "Get \"https://127.0.0.1:{port}/hook\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }

    #[test]
    fn the_http_fallback_drops_authorization() {
        let target = HttpTarget {
            url: "https://10.0.0.1:8443/hook?x=1".into(),
            scheme: "https".into(),
            host: "10.0.0.1".into(),
            port: 8443,
            host_header: Some("example.com".into()),
            headers: vec![
                ("Authorization".into(), "Bearer t".into()),
                ("X-Hook".into(), "poststart".into()),
            ],
        };
        let plain = plain_http(&target);
        assert_eq!(plain.url, "http://10.0.0.1:8443/hook?x=1");
        assert_eq!(plain.scheme, "http");
        assert_eq!(plain.host_header.as_deref(), Some("example.com"));
        assert_eq!(
            plain.headers,
            vec![("X-Hook".to_owned(), "poststart".to_owned())]
        );
    }
}
