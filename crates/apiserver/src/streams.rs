//! `pods/{name}/log` and `pods/{name}/exec`: the API side of what the kubelet serves. The API
//! server checks the request against the pod (container choice, the container's state, the
//! options), then hands it to the node through [`PodStreams`], which knows runtimes and log
//! files; this crate knows only HTTP, WebSocket and the stream protocols.
//!
//! Exec speaks the WebSocket channel protocols `v5.channel.k8s.io` (kubectl >= 1.30) and
//! `v4.channel.k8s.io`: every binary message starts with its channel (0 stdin, 1 stdout,
//! 2 stderr, 3 error: one `Status` at the end, 4 resize; v5 adds 255: `[255, n]` closes
//! channel n, which is how the client ends stdin). Older kubectl upgrade to SPDY/3.1 with
//! `v4.channel.k8s.io` instead ([`crate::spdy_session`]). Both transports run the same
//! session (`start_exec`): they only frame what it takes in and gives out.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use nodelet_api::k8s::api::core::v1::{Container, ContainerStatus, Pod};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::errors::{ApiError, ApiResult};
use crate::spdy_session;
use crate::websocket::{self, Message, Outgoing};

/// The log bytes as they come (chunked to the client).
pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// `PodLogOptions`, checked: the container is one of the pod's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<u64>,
    pub limit_bytes: Option<u64>,
}

/// `PodExecOptions`, checked: a command, a container of the pod, at least one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The client's side of an exec, for the node: stdin as it arrives (the channel closes when
/// the client ends stdin), stdout and stderr to send, and `gone`, which resolves when the
/// client went away (the process should then be killed). With `tty`, stdout carries the
/// terminal's output, there is no stderr, and `resize` the client's window sizes.
#[derive(Debug)]
pub struct ExecIo {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<mpsc::Sender<Bytes>>,
    pub stderr: Option<mpsc::Sender<Bytes>>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    pub gone: oneshot::Receiver<()>,
}

/// A terminal's size as the resize channel carries it (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// What the node serves for the API server (the kubelet's streaming endpoints). Errors are
/// `Status`es for the client (`ApiError::bad_request`, `ApiError::internal`, ...).
pub trait PodStreams: Send + Sync + fmt::Debug + 'static {
    /// The container's log as `request` asks.
    fn logs(&self, pod: Pod, request: LogRequest) -> BoxFuture<'static, ApiResult<LogStream>>;
    /// Runs the command in the container with `io`; the exit code when it ran.
    fn exec(
        &self,
        pod: Pod,
        request: ExecRequest,
        io: ExecIo,
    ) -> BoxFuture<'static, ApiResult<i32>>;
}

/// Query parameters as decoded pairs.
type Params<'a> = &'a [(String, String)];

fn param<'a>(params: Params<'a>, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn flag(params: Params<'_>, key: &str) -> ApiResult<bool> {
    match param(params, key) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value for {key}: {other}"
        ))),
    }
}

/// A positive (or, with `zero_ok`, non-negative) integer option, with upstream's texts.
fn count(params: Params<'_>, key: &str, zero_ok: bool) -> ApiResult<Option<u64>> {
    let Some(text) = param(params, key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let value: i64 = text
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {text}")))?;
    let minimum = i64::from(!zero_ok);
    if value < minimum {
        let rule = if zero_ok {
            "must be greater than or equal to 0"
        } else {
            "must be greater than 0"
        };
        return Err(ApiError::bad_request(format!(
            "{key}: Invalid value: {value}: {rule}"
        )));
    }
    Ok(Some(value as u64))
}

fn not_connected() -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        "no kubelet is connected to this API server to serve pod logs and exec",
    )
}

fn decode_pod(pod: Value) -> ApiResult<Pod> {
    serde_json::from_value(pod).map_err(ApiError::internal)
}

/// Which container a request means: the named one, or the only one, or the pod's
/// `kubectl.kubernetes.io/default-container`; upstream's messages otherwise.
pub fn choose_container(pod: &Pod, requested: Option<&str>) -> ApiResult<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let names = |list: Option<&Vec<Container>>| -> Vec<String> {
        list.map(|l| l.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    };
    let containers = names(spec.map(|s| &s.containers));
    let init = names(spec.and_then(|s| s.init_containers.as_ref()));
    let ephemeral: Vec<String> = spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .map(|l| l.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    if let Some(wanted) = requested.filter(|c| !c.is_empty()) {
        if containers
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|c| c == wanted)
        {
            return Ok(wanted.to_owned());
        }
        return Err(ApiError::bad_request(format!(
            "container {wanted} is not valid for pod {name}"
        )));
    }
    if containers.len() == 1 {
        return Ok(containers[0].clone());
    }
    if let Some(default) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
        .filter(|d| containers.contains(d))
    {
        return Ok(default.clone());
    }
    let mut message = format!(
        "a container name must be specified for pod {name}, choose one of: [{}]",
        containers.join(" ")
    );
    if !init.is_empty() {
        message.push_str(&format!(
            " or one of the init containers: [{}]",
            init.join(" ")
        ));
    }
    if !ephemeral.is_empty() {
        message.push_str(&format!(
            " or one of the ephemeral containers: [{}]",
            ephemeral.join(" ")
        ));
    }
    Err(ApiError::bad_request(message))
}

fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|s| s.name == container)
}

/// Whether the container has a log to show, as the kubelet decides (its messages).
pub fn check_log_state(pod: &Pod, container: &str, previous: bool) -> ApiResult<()> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let fail = |what: String| {
        Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod_name}\" {what}"
        )))
    };
    let Some(status) = container_status(pod, container) else {
        return fail("is not available".into());
    };
    let last_terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let state = status.state.as_ref();
    if previous {
        if last_terminated.is_none() {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
            )));
        }
        return Ok(());
    }
    if state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || last_terminated.is_some()
    {
        return Ok(());
    }
    match state.and_then(|s| s.waiting.as_ref()) {
        Some(waiting) => {
            let reason = waiting.reason.as_deref().unwrap_or("");
            let why = match reason {
                "ErrImagePull" => "image can't be pulled".to_owned(),
                "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
                other => other.to_owned(),
            };
            fail(format!("is waiting to start: {why}"))
        }
        None => fail("is waiting to start - no logs yet".into()),
    }
}

fn require_node(pod: &Pod) -> ApiResult<()> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none_or(String::is_empty)
    {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            pod.metadata.name.as_deref().unwrap_or("")
        )));
    }
    Ok(())
}

/// `GET pods/{name}/log`.
pub async fn logs(
    streams: Option<Arc<dyn PodStreams>>,
    pod: Value,
    params: Params<'_>,
) -> ApiResult<Response> {
    let pod = decode_pod(pod)?;
    let container = choose_container(&pod, param(params, "container"))?;
    let request = LogRequest {
        container,
        follow: flag(params, "follow")?,
        previous: flag(params, "previous")?,
        timestamps: flag(params, "timestamps")?,
        tail_lines: count(params, "tailLines", true)?,
        since_seconds: count(params, "sinceSeconds", false)?,
        limit_bytes: count(params, "limitBytes", false)?,
    };
    require_node(&pod)?;
    check_log_state(&pod, &request.container, request.previous)?;
    let streams = streams.ok_or_else(not_connected)?;
    let stream = streams.logs(pod, request).await?;
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// The channel protocols we speak, in our preference.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// `GET`/`POST pods/{name}/exec`: checks, then the WebSocket upgrade and the session.
pub async fn exec(
    streams: Option<Arc<dyn PodStreams>>,
    pod: Value,
    params: Params<'_>,
    mut req: Request,
) -> ApiResult<Response> {
    let pod = decode_pod(pod)?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let command: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let request = ExecRequest {
        container: choose_container(&pod, param(params, "container"))?,
        command,
        stdin: flag(params, "stdin")?,
        stdout: flag(params, "stdout")?,
        stderr: flag(params, "stderr")?,
        tty: flag(params, "tty")?,
    };
    if request.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !(request.stdin || request.stdout || request.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    require_node(&pod)?;
    if let Some(phase @ ("Succeeded" | "Failed")) =
        pod.status.as_ref().and_then(|s| s.phase.as_deref())
    {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let headers = req.headers();
    let upgrade_to = |protocol: &str| {
        headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(protocol))
    };
    if upgrade_to("SPDY/3.1") {
        return spdy_upgrade(streams, pod, request, req);
    }
    if !upgrade_to("websocket") {
        return Err(ApiError::bad_request(
            "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io) or a SPDY/3.1 upgrade (v4.channel.k8s.io)",
        ));
    }
    let key = headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
    let offered: Vec<&str> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let protocol = websocket::choose_protocol(&offered, &PROTOCOLS).ok_or_else(|| {
        ApiError::bad_request(format!(
            "none of the offered stream protocols {offered:?} is supported: use one of {PROTOCOLS:?}"
        ))
    })?;
    let accept = websocket::accept_key(key);
    let streams = streams.ok_or_else(not_connected)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let v5 = protocol == PROTOCOLS[0];
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                websocket_session(io, v5, streams, pod, request).await;
            }
            Err(err) => tracing::debug!(pod = %pod_name, error = %err, "exec upgrade"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&accept).map_err(ApiError::internal)?,
    );
    h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    Ok(resp)
}

/// The SPDY/3.1 upgrade (kubectl < 1.30): the remote-command protocol the client offers in its
/// `X-Stream-Protocol-Version` headers, then the session on the upgraded connection.
fn spdy_upgrade(
    streams: Option<Arc<dyn PodStreams>>,
    pod: Pod,
    request: ExecRequest,
    mut req: Request,
) -> ApiResult<Response> {
    let offered: Vec<&str> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let protocol = websocket::choose_protocol(&offered, &spdy_session::PROTOCOLS).ok_or_else(|| {
        ApiError::bad_request(format!(
            "none of the offered stream protocols {offered:?} is supported over SPDY: use one of {:?}",
            spdy_session::PROTOCOLS
        ))
    })?;
    let streams = streams.ok_or_else(not_connected)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                spdy_session::session(io, streams, pod, request).await;
            }
            Err(err) => tracing::debug!(pod = %pod_name, error = %err, "exec upgrade"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(protocol),
    );
    Ok(resp)
}

/// The exec's end as the error channel carries it (v4 and v5: a `Status`).
pub fn exit_status(result: &ApiResult<i32>, command: &[String]) -> Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(err) => serde_json::to_value(&*err.status).unwrap_or_default(),
    }
}

/// Where a piece of an exec's output goes, whatever the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    Stdout,
    Stderr,
    /// The final `Status` (v4 and v5).
    Error,
}

/// The client's side of a running exec, for its transport to feed.
#[derive(Debug)]
pub(crate) struct ClientInput {
    /// Stdin as it arrives (`None` without `stdin=true`); dropped when the client ends stdin.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// The client's terminal sizes (`None` without `tty=true`).
    pub resize: Option<mpsc::Sender<TerminalSize>>,
    /// Sent when the client went away (the process is then killed).
    pub gone: oneshot::Sender<()>,
}

impl ClientInput {
    /// A size from the resize channel; one the node is slow to take is dropped rather than
    /// holding up the client's input.
    pub fn resize(&self, size: TerminalSize) {
        if let Some(tx) = &self.resize {
            let _ = tx.try_send(size);
        }
    }
}

/// Starts an exec, transport-neutral: the transport feeds [`ClientInput`] and writes what
/// comes out of the receiver on the matching channel. Output comes until both streams are
/// done (the node drops its senders when the process ends), then the `Status` on
/// [`Channel::Error`]; then the receiver ends.
pub(crate) fn start_exec(
    streams: Arc<dyn PodStreams>,
    pod: Pod,
    request: ExecRequest,
) -> (ClientInput, mpsc::Receiver<(Channel, Bytes)>) {
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (stdout_tx, mut stdout_rx) = mpsc::channel::<Bytes>(16);
    let (stderr_tx, mut stderr_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<TerminalSize>(4);
    let (gone_tx, gone_rx) = oneshot::channel();
    let (output_tx, output_rx) = mpsc::channel(16);
    let input = ClientInput {
        stdin: request.stdin.then_some(stdin_tx),
        resize: request.tty.then_some(resize_tx),
        gone: gone_tx,
    };
    let exec_io = ExecIo {
        stdin: request.stdin.then_some(stdin_rx),
        stdout: request.stdout.then_some(stdout_tx),
        // A terminal has one output.
        stderr: (request.stderr && !request.tty).then_some(stderr_tx),
        resize: request.tty.then_some(resize_rx),
        gone: gone_rx,
    };
    let command = request.command.clone();
    let exec = tokio::spawn(streams.exec(pod, request, exec_io));
    tokio::spawn(async move {
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            let piece = tokio::select! {
                data = stdout_rx.recv(), if out_open => match data {
                    Some(d) => (Channel::Stdout, d),
                    None => { out_open = false; continue; }
                },
                data = stderr_rx.recv(), if err_open => match data {
                    Some(d) => (Channel::Stderr, d),
                    None => { err_open = false; continue; }
                },
            };
            if output_tx.send(piece).await.is_err() {
                break;
            }
        }
        let result = match exec.await {
            Ok(result) => result,
            Err(err) => Err(ApiError::internal(format!("exec: {err}"))),
        };
        let status = serde_json::to_vec(&exit_status(&result, &command)).unwrap_or_default();
        let _ = output_tx.send((Channel::Error, Bytes::from(status))).await;
    });
    (input, output_rx)
}

/// One exec over an upgraded WebSocket connection: client messages feed stdin, the output
/// goes out on its channels, then the Status on the error channel and a close frame.
async fn websocket_session<S>(
    io: S,
    v5: bool,
    streams: Arc<dyn PodStreams>,
    pod: Pod,
    request: ExecRequest,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (read_half, mut write_half) = tokio::io::split(io);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Outgoing>(64);
    let (input, mut output) = start_exec(streams, pod, request);
    // Client → stdin; the client's close (or a dropped connection) means it is gone.
    let pongs = frames_tx.clone();
    let reader = tokio::spawn(async move {
        let mut reader = websocket::Reader::new(read_half);
        let mut input = input;
        loop {
            let message = reader
                .next(|p| {
                    let _ = pongs.try_send(Outgoing::Pong(p));
                })
                .await;
            match message {
                Ok(Some(Message::Binary(data))) => match data.split_first() {
                    Some((&STDIN, rest)) if !rest.is_empty() => {
                        if let Some(tx) = &input.stdin
                            && tx.send(Bytes::copy_from_slice(rest)).await.is_err()
                        {
                            input.stdin = None;
                        }
                    }
                    Some((&CLOSE, [STDIN])) if v5 => input.stdin = None,
                    Some((&RESIZE, json)) => {
                        if let Ok(size) = serde_json::from_slice(json) {
                            input.resize(size);
                        }
                    }
                    // Empty stdin writes, unknown channels.
                    _ => {}
                },
                Ok(Some(Message::Text(_))) => {}
                Ok(Some(Message::Close(_)) | None) | Err(_) => break,
            }
        }
        let ClientInput { stdin, gone, .. } = input;
        drop(stdin);
        let _ = gone.send(());
    });
    let writer = tokio::spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            let close = matches!(frame, Outgoing::Close(_));
            if websocket::write(&mut write_half, &frame).await.is_err() || close {
                break;
            }
        }
        use tokio::io::AsyncWriteExt as _;
        let _ = write_half.shutdown().await;
    });
    while let Some((channel, data)) = output.recv().await {
        let channel = match channel {
            Channel::Stdout => STDOUT,
            Channel::Stderr => STDERR,
            Channel::Error => ERROR,
        };
        let mut payload = Vec::with_capacity(data.len() + 1);
        payload.push(channel);
        payload.extend_from_slice(&data);
        if frames_tx.send(Outgoing::Binary(payload)).await.is_err() {
            break;
        }
    }
    let _ = frames_tx.send(Outgoing::Close(1000)).await;
    drop(frames_tx);
    let _ = writer.await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn container_choice_and_upstream_messages() {
        let two = pod(json!({"metadata": {"name": "web"}, "spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "setup"}]}}));
        assert_eq!(
            choose_container(&two, None)
                .unwrap_err()
                .status
                .message
                .as_deref(),
            Some(
                "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [setup]"
            )
        );
        assert_eq!(choose_container(&two, Some("setup")).unwrap(), "setup");
        assert_eq!(
            choose_container(&two, Some("nope"))
                .unwrap_err()
                .status
                .message
                .as_deref(),
            Some("container nope is not valid for pod web")
        );
        let one =
            pod(json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "main"}]}}));
        assert_eq!(choose_container(&one, None).unwrap(), "main");
        let annotated = pod(json!({"metadata": {"name": "web", "annotations":
            {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
        assert_eq!(choose_container(&annotated, None).unwrap(), "b");
    }

    #[test]
    fn log_state_messages_are_the_kubelets() {
        let waiting = pod(
            json!({"metadata": {"name": "y"}, "status": {"containerStatuses": [
            {"name": "x", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
        );
        let err = check_log_state(&waiting, "x", false).unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(
            err.status.message.as_deref(),
            Some("container \"x\" in pod \"y\" is waiting to start: ContainerCreating")
        );
        assert_eq!(
            check_log_state(&waiting, "x", true)
                .unwrap_err()
                .status
                .message
                .as_deref(),
            Some("previous terminated container \"x\" in pod \"y\" not found")
        );
        let restarted = pod(
            json!({"metadata": {"name": "y"}, "status": {"containerStatuses": [
            {"name": "x", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
             "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1}}}]}}),
        );
        check_log_state(&restarted, "x", false).unwrap();
        check_log_state(&restarted, "x", true).unwrap();
        assert!(check_log_state(&restarted, "other", false).is_err());
    }

    #[test]
    fn option_checks() {
        let params = vec![("tailLines".to_owned(), "-1".to_owned())];
        assert!(count(&params, "tailLines", true).is_err());
        let params = vec![("tailLines".to_owned(), "0".to_owned())];
        assert_eq!(count(&params, "tailLines", true).unwrap(), Some(0));
        let params = vec![("limitBytes".to_owned(), "0".to_owned())];
        assert!(count(&params, "limitBytes", false).is_err());
    }

    #[test]
    fn exit_codes_become_upstream_statuses() {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(exit_status(&Ok(0), &cmd)["status"], "Success");
        let failed = exit_status(&Ok(3), &cmd);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }
}
