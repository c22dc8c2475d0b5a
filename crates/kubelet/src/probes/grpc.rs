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

use super::Outcome;
use crate::hooks::HttpTargetError;
use crate::service_env::join_host_port;

/// The health service's one unary method.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: i32 = 1;
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

/// gRPC status codes the probe treats specially.
pub mod code {
    pub const UNKNOWN: u32 = 2;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
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

/// Go's `time.Duration` text for whole seconds and more (`1s`, `1m30s`, `1h0m0s`).
pub fn go_duration(d: Duration) -> String {
    let millis = d.subsec_millis();
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let seconds = if millis == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{millis:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) if total == 0 && millis > 0 => format!("{millis}ms"),
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// `HealthCheckResponse.ServingStatus` names; an unknown value prints as its number (Go).
pub fn serving_status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// grpc-go's `codes.Code` names.
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// The gRPC code of a non-gRPC HTTP answer (gRPC's HTTP-to-gRPC status mapping).
pub fn code_of_http_status(status: u16) -> u32 {
    match status {
        400 => code::INTERNAL,
        401 => 16,
        403 => 7,
        404 => code::UNIMPLEMENTED,
        429 | 502..=504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The request body: one uncompressed message, `HealthCheckRequest { service = 1 }` (an empty
/// service is the field's default, so it is left out).
pub fn encode_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        push_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0); // not compressed
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The `status` of the one `HealthCheckResponse` in a response body (0 when absent, the
/// protobuf default); `Err` is why the body is unusable.
pub fn decode_response(body: &[u8]) -> Result<i32, String> {
    let Some((header, rest)) = body.split_first_chunk::<5>() else {
        return Err(if body.is_empty() {
            "cardinality violation: received no response message from non-streaming RPC".into()
        } else {
            "grpc: received an incomplete message".into()
        });
    };
    if header[0] != 0 {
        return Err("grpc: compressed message received, but no compression was requested".into());
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let message = rest
        .get(..len)
        .ok_or("grpc: received an incomplete message")?;
    if rest.len() > len {
        return Err(
            "cardinality violation: expected <EOF> for non-streaming RPCs, but received another message"
                .into(),
        );
    }
    let unmarshal = |what: &str| format!("grpc: failed to unmarshal the received message: {what}");
    let mut status = 0;
    let mut input = message;
    while !input.is_empty() {
        let key = read_varint(&mut input).ok_or_else(|| unmarshal("bad field key"))?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                let value = read_varint(&mut input).ok_or_else(|| unmarshal("bad varint"))?;
                if field == 1 {
                    // int32 enums travel sign-extended to 64 bits
                    status = value as i64 as i32;
                }
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                input = input.get(width..).ok_or_else(|| unmarshal("truncated"))?;
            }
            2 => {
                let len = read_varint(&mut input).ok_or_else(|| unmarshal("bad length"))?;
                let len = usize::try_from(len).map_err(|_| unmarshal("bad length"))?;
                input = input.get(len..).ok_or_else(|| unmarshal("truncated"))?;
            }
            _ => return Err(unmarshal("unsupported wire type")),
        }
    }
    Ok(status)
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

/// `grpc-message` is percent-encoded (RFC 3986 style, invalid escapes kept as they are).
pub fn decode_grpc_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
