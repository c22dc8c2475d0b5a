//! Running lifecycle hook handlers (spec §7.2–§7.4): `exec` in the container, `httpGet`
//! against the pod, `sleep`. The texts come from [`crate::hooks`].

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::{Container, LifecycleHandler, Pod};
use nodelet_runtime::container::{Container as RuntimeContainer, Exit};

use crate::hooks::{self, HookFailure, HttpTarget};

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

/// Runs `handler`; `Err` is the detailed failure message ([`HookFailure::message`]), which
/// goes to the log, never into events. `timeout` bounds `exec` and `httpGet`;
/// `abort_sleep_on_exit` ends a `sleep` when the container ends (PostStart).
pub fn run_handler(
    handler: &LifecycleHandler,
    target: HookTarget<'_>,
    timeout: Duration,
    abort_sleep_on_exit: bool,
) -> Result<(), String> {
    let name = &target.spec.name;
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (error, output) = match target.container.exec(&command, timeout) {
            Ok(out) if out.exit_code == 0 => return Ok(()),
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
        return Ok(());
    }
    Err(HookFailure::Invalid { handler }.message(name, target.pod))
}

/// The hook's GET: only transport errors fail it (any HTTP status is success); the body is
/// read up to 10 KiB and discarded. Plain HTTP only for now.
fn http_get(target: &HttpTarget, timeout: Duration) -> Result<(), String> {
    let url = &target.url;
    let get_error = |what: String| format!("Get {}: {what}", go_quote(url));
    if target.scheme != "http" {
        return Err(get_error(format!(
            "scheme {} is not supported by nodelet's lifecycle hooks yet",
            go_quote(&target.scheme)
        )));
    }
    let host_port = crate::service_env::join_host_port(&target.host, target.port);
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| get_error(format!("dial tcp: lookup {}: {e}", target.host)))?
        .next()
        .ok_or_else(|| get_error(format!("dial tcp: lookup {}: no such host", target.host)))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| get_error(format!("dial tcp {host_port}: connect: {}", io_text(&e))))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let prefix = format!("{}://{host_port}", target.scheme);
    let path = url.strip_prefix(&prefix).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    let host = target.host_header.clone().unwrap_or(host_port);
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in &target.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| get_error(io_text(&e)))?;
    let mut response = Vec::new();
    stream
        .take(10 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| get_error(io_text(&e)))?;
    if !response.starts_with(b"HTTP/") {
        return Err(get_error("malformed HTTP response".into()));
    }
    Ok(())
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => e.to_string(),
    }
}
