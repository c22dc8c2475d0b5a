//! `grpc` probes (upstream `pkg/probe/grpc`): one `grpc.health.v1.Health/Check` call to the pod
//! IP on `grpc.port`, over plaintext HTTP/2 (prior knowledge), within `timeoutSeconds`. Only a
//! `SERVING` answer passes (`service healthy`).
//!
//! No gRPC library: the request is one length-prefixed protobuf message (`service`, field 1)
//! sent with hyper's HTTP/2 client, and the answer is the `grpc-status` trailer (or header, for
//! a trailers-only answer) plus the `HealthCheckResponse` (`status`, field 1).
//!
//! Like grpc-go's blocking dial, a connection counts as made once the server's HTTP/2 preface
//! (a SETTINGS frame) arrives; one that cannot be made (refused, or a peer that does not speak
//! HTTP/2) is retried until the deadline: `timeout: failed to connect service "<addr>" within
//! <timeout>: context deadline exceeded`. A deadline passing after that is the call's:
//! `timeout: health rpc did not complete within <timeout>`.
//! Failed calls give upstream's texts: `error: this server does not implement the grpc health
//! protocol (grpc.health.v1.Health): <message>`, `timeout: health rpc did not complete within
//! <timeout>`, `error: health rpc probe failed: rpc error: code = <Code> desc = <message>`,
//! and `service unhealthy (responded with "NOT_SERVING")`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::GRPCAction;
use tokio::time::Instant;

pub mod wire;

use super::Outcome;
use crate::hooks::HttpTargetError;
use crate::service_env::join_host_port;
use wire::{
    SERVING, code, code_name, code_of_http_status, decode_grpc_message, decode_response,
    encode_request, go_duration, serving_status_name,
};

/// The health service's one unary method.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// A response message larger than this is refused (a health answer is a few bytes).
const MAX_MESSAGE: usize = 64 * 1024;
/// Pause between connection attempts (grpc-go backs off longer; the outcome is the same).
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Runs one `grpc` probe against the pod's first IP.
pub fn run(action: &GRPCAction, pod_ips: &[String], timeout: Duration) -> Outcome {
    let Some(host) = pod_ips.first() else {
        return Outcome::Error(HttpTargetError::NoPodIp.to_string());
    };
    let Some(port) = u16::try_from(action.port).ok().filter(|&p| p > 0) else {
        return Outcome::Error(HttpTargetError::InvalidPort(action.port.into()).to_string());
    };
    probe(host, port, action.service.as_deref().unwrap_or(""), timeout)
}

/// Checks `service` at `host:port`.
pub fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::Error(format!("cannot start the gRPC client: {e}")),
    };
    let addr = join_host_port(host, port);
    let call = runtime.block_on(check(host, port, &addr, service, timeout));
    outcome(call, &addr, timeout)
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// No connection by the deadline.
    ConnectTimeout,
    /// The call's own deadline passed.
    RpcTimeout,
    /// The server answered with a status other than OK, or the answer was unusable.
    Failed(RpcError),
    /// `HealthCheckResponse.status`.
    Answered(i32),
}

/// A gRPC status (`rpc error: code = <Code> desc = <message>`, grpc-go's `%v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: u32,
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rpc error: code = {} desc = {}",
            code_name(self.code),
            self.message
        )
    }
}

/// The probe result and output upstream gives for a call.
pub fn outcome(call: Call, addr: &str, timeout: Duration) -> Outcome {
    let timeout = go_duration(timeout);
    match call {
        Call::ConnectTimeout => Outcome::Failure(format!(
            "timeout: failed to connect service {} within {timeout}: context deadline exceeded",
            go_quote(addr)
        )),
        Call::RpcTimeout => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {timeout}"
        )),
        Call::Failed(e) if e.code == code::UNIMPLEMENTED => Outcome::Failure(format!(
            "error: this server does not implement the grpc health protocol \
             (grpc.health.v1.Health): {}",
            e.message
        )),
        Call::Failed(e) if e.code == code::DEADLINE_EXCEEDED => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {timeout}"
        )),
        Call::Failed(e) => Outcome::Failure(format!("error: health rpc probe failed: {e}")),
        Call::Answered(SERVING) => Outcome::Success("service healthy".into()),
        Call::Answered(status) => Outcome::Failure(format!(
            "service unhealthy (responded with {})",
            go_quote(&serving_status_name(status))
        )),
    }
}

/// `grpc-timeout` for what is left (milliseconds, at most 8 digits).
fn grpc_timeout(left: Duration) -> String {
    format!("{}m", left.as_millis().clamp(1, 99_999_999))
}

async fn check(host: &str, port: u16, addr: &str, service: &str, timeout: Duration) -> Call {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, connect(host, port)).await {
            Err(_elapsed) => return Call::ConnectTimeout,
            Ok(None) => {}
            Ok(Some(connection)) => {
                let call = tokio::time::timeout_at(
                    deadline,
                    call(connection.sender, addr, service, deadline),
                );
                let call = call.await;
                connection.driver.abort();
                let connected = connection.preface.load(Ordering::Relaxed);
                match call {
                    Err(_elapsed) if connected => return Call::RpcTimeout,
                    Err(_elapsed) => return Call::ConnectTimeout,
                    Ok(Ok(call)) => return call,
                    Ok(Err(e)) if connected => {
                        return Call::Failed(RpcError {
                            code: code::UNAVAILABLE,
                            message: format!("error reading from server: {e}"),
                        });
                    }
                    Ok(Err(_not_connected)) => {}
                }
            }
        }
        if tokio::time::timeout_at(deadline, tokio::time::sleep(RECONNECT_PAUSE))
            .await
            .is_err()
        {
            return Call::ConnectTimeout;
        }
    }
}

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An HTTP/2 connection: the request sender, the task driving it, and whether the server's
/// preface (its first SETTINGS frame) arrived, which is when grpc-go counts it as made.
struct Connection {
    sender: Sender,
    driver: tokio::task::JoinHandle<()>,
    preface: Arc<AtomicBool>,
}

async fn connect(host: &str, port: u16) -> Option<Connection> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    let preface = Arc::new(AtomicBool::new(false));
    let watched = PrefaceWatch {
        inner: tcp,
        head: Vec::new(),
        seen: preface.clone(),
    };
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(watched))
        .await
        .ok()?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(Connection {
        sender,
        driver,
        preface,
    })
}

/// The call; `Err` when the connection failed before response headers came.
async fn call(
    mut sender: Sender,
    addr: &str,
    service: &str,
    deadline: Instant,
) -> Result<Call, hyper::Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    let request = hyper::Request::post(format!("http://{addr}{CHECK_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", crate::hooks::user_agent("probe"))
        .header("grpc-timeout", grpc_timeout(left))
        .body(Full::new(Bytes::from(encode_request(service))));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return Ok(Call::Failed(RpcError {
                code: code::INTERNAL,
                message: e.to_string(),
            }));
        }
    };
    let response = sender.send_request(request).await?;
    Ok(read_answer(response).await)
}

/// HTTP/2's frame header is 9 bytes; byte 3 is the frame type, 4 is SETTINGS.
const FRAME_HEADER: usize = 9;
const SETTINGS_FRAME: u8 = 4;

/// A TCP stream that notes whether the first frame the server sent is a SETTINGS frame (the
/// server's connection preface); a peer that is not an HTTP/2 server never sends one.
#[derive(Debug)]
struct PrefaceWatch {
    inner: tokio::net::TcpStream,
    head: Vec<u8>,
    seen: Arc<AtomicBool>,
}

impl tokio::io::AsyncRead for PrefaceWatch {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.head.len() < FRAME_HEADER {
            let new = &buf.filled()[before..];
            let want = (FRAME_HEADER - this.head.len()).min(new.len());
            this.head.extend_from_slice(&new[..want]);
            if this.head.len() == FRAME_HEADER && this.head[3] == SETTINGS_FRAME {
                this.seen.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl tokio::io::AsyncWrite for PrefaceWatch {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn read_answer(response: hyper::Response<hyper::body::Incoming>) -> Call {
    let (head, mut body) = response.into_parts();
    let header_text = |name: &str| head.headers.get(name).map(|v| v.as_bytes().to_vec());
    let is_grpc = header_text("content-type").is_some_and(|ct| ct.starts_with(b"application/grpc"));
    let http_status = head.status.as_u16();
    if http_status != 200 || !is_grpc {
        // Not a gRPC answer (grpc-go's http2 client checks the same).
        let mut problems = Vec::new();
        if http_status != 200 {
            problems.push(format!(
                "unexpected HTTP status code received from server: {http_status} ({})",
                head.status.canonical_reason().unwrap_or("")
            ));
        }
        if !is_grpc {
            let ct = header_text("content-type").unwrap_or_default();
            problems.push(format!(
                "transport: received unexpected content-type {}",
                go_quote(&String::from_utf8_lossy(&ct))
            ));
        }
        let code = if http_status == 200 {
            code::UNKNOWN
        } else {
            code_of_http_status(http_status)
        };
        return Call::Failed(RpcError {
            code,
            message: problems.join("; "),
        });
    }
    let mut status = header_text("grpc-status");
    let mut message = header_text("grpc-message");
    let mut data = Vec::new();
    // A trailers-only answer has its status in the headers and no body worth reading.
    if status.is_none() {
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    return Call::Failed(RpcError {
                        code: code::UNAVAILABLE,
                        message: format!("error reading from server: {e}"),
                    });
                }
            };
            match frame.into_data() {
                Ok(chunk) => {
                    if data.len() + chunk.len() > MAX_MESSAGE {
                        return Call::Failed(RpcError {
                            code: 8,
                            message: format!(
                                "grpc: received message larger than max ({MAX_MESSAGE})"
                            ),
                        });
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        status = trailers.get("grpc-status").map(|v| v.as_bytes().to_vec());
                        message = trailers.get("grpc-message").map(|v| v.as_bytes().to_vec());
                    }
                }
            }
        }
    }
    let Some(status) = status else {
        return Call::Failed(RpcError {
            code: code::INTERNAL,
            message: "server closed the stream without sending trailers".into(),
        });
    };
    let code = std::str::from_utf8(&status)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let Some(code) = code else {
        return Call::Failed(RpcError {
            code: code::INTERNAL,
            message: format!(
                "transport: malformed grpc-status: {}",
                String::from_utf8_lossy(&status)
            ),
        });
    };
    if code != 0 {
        return Call::Failed(RpcError {
            code,
            message: decode_grpc_message(&message.unwrap_or_default()),
        });
    }
    match decode_response(&data) {
        Ok(serving) => Call::Answered(serving),
        Err(e) => Call::Failed(RpcError {
            code: code::INTERNAL,
            message: e,
        }),
    }
}

#[cfg(test)]
mod tests;
