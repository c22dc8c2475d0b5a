//! `kubectl exec` over SPDY/3.1 (kubectl < 1.30), the Kubernetes remote-command protocol
//! `v4.channel.k8s.io`: the client opens one stream per role, typed by its `streamType` header
//! (error, stdin, stdout, stderr, resize); we reply to each, start the exec once all the
//! streams the request needs are there, write the output as DATA on the matching stream,
//! the final `Status` on the error stream, FIN on each, then GOAWAY. The exec itself is
//! `streams::start_exec`, shared with the WebSocket transport.
//!
//! Flow control (3.1): we grant the client back every stdin byte we consume (stream and
//! session windows). Our own sending honours the client's windows once the client shows it
//! does flow control by sending a WINDOW_UPDATE; the Go SPDY library kubectl uses never
//! sends any (it does no flow control), and a sender that waited for one would stall after
//! 64 KiB.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nodelet_api::k8s::api::core::v1::Pod;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::spdy::{self, Codec, Frame};
use crate::streams::{self, Channel, ClientInput, ExecRequest, PodStreams, TerminalSize};

/// The remote-command protocols we speak over SPDY, in our preference.
pub const PROTOCOLS: [&str; 1] = ["v4.channel.k8s.io"];
/// How long the client has to open the streams its request needs.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long we wait for the client to hang up after our GOAWAY before closing ourselves.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A stream's role, from its `streamType` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl Role {
    fn parse(stream_type: &str) -> Option<Role> {
        Some(match stream_type {
            "error" => Role::Error,
            "stdin" => Role::Stdin,
            "stdout" => Role::Stdout,
            "stderr" => Role::Stderr,
            "resize" => Role::Resize,
            _ => return None,
        })
    }
}

/// The roles the client must open for `request`.
fn expected_roles(request: &ExecRequest) -> HashSet<Role> {
    let mut roles = HashSet::from([Role::Error]);
    for (wanted, role) in [
        (request.stdin, Role::Stdin),
        (request.stdout, Role::Stdout),
        (request.stderr && !request.tty, Role::Stderr),
        (request.tty, Role::Resize),
    ] {
        if wanted {
            roles.insert(role);
        }
    }
    roles
}

/// What the writer task is told.
#[derive(Debug)]
enum ToWriter {
    Frame(Frame),
    /// The client's WINDOW_UPDATE (stream 0: the session's window).
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE.
    InitialWindow(u32),
    /// The client reset this stream: drop what is left for it.
    Reset(u32),
    /// Everything is queued: GOAWAY (naming the last client stream we took) once it is
    /// written, then stop.
    Finish {
        last_good_stream_id: u32,
    },
}

/// One exec over an upgraded SPDY/3.1 connection.
pub async fn session<S>(io: S, streams: Arc<dyn PodStreams>, pod: Pod, request: ExecRequest)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(io);
    let (to_writer, writer_rx) = mpsc::channel::<ToWriter>(64);
    let writer = tokio::spawn(write_frames(write_half, writer_rx));
    let (roles_tx, mut roles_rx) = mpsc::channel::<(Role, u32)>(8);
    let (input_tx, input_rx) = tokio::sync::oneshot::channel::<ClientInput>();
    let reader = tokio::spawn(read_frames(
        read_half,
        to_writer.clone(),
        roles_tx,
        input_rx,
    ));

    let mut expected = expected_roles(&request);
    let mut ids: HashMap<Role, u32> = HashMap::new();
    let all_there = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        while !expected.is_empty() {
            let Some((role, id)) = roles_rx.recv().await else {
                return false;
            };
            expected.remove(&role);
            ids.insert(role, id);
        }
        true
    })
    .await;
    if all_there != Ok(true) {
        tracing::debug!(missing = ?expected, "spdy exec: the client did not open its streams");
        let last_good_stream_id = ids.values().copied().max().unwrap_or(0);
        let _ = to_writer
            .send(ToWriter::Finish {
                last_good_stream_id,
            })
            .await;
        let _ = writer.await;
        reader.abort();
        return;
    }

    let (input, mut output) = streams::start_exec(streams, pod, request);
    let _ = input_tx.send(input);
    while let Some((channel, data)) = output.recv().await {
        let role = match channel {
            Channel::Stdout => Role::Stdout,
            Channel::Stderr => Role::Stderr,
            Channel::Error => Role::Error,
        };
        let Some(&stream_id) = ids.get(&role) else {
            continue;
        };
        for chunk in data.chunks(spdy::MAX_DATA_PAYLOAD) {
            let frame = Frame::Data {
                stream_id,
                fin: false,
                data: chunk.to_vec(),
            };
            if to_writer.send(ToWriter::Frame(frame)).await.is_err() {
                break;
            }
        }
    }
    for role in [Role::Stdout, Role::Stderr, Role::Error] {
        if let Some(&stream_id) = ids.get(&role) {
            let fin = Frame::Data {
                stream_id,
                fin: true,
                data: Vec::new(),
            };
            let _ = to_writer.send(ToWriter::Frame(fin)).await;
        }
    }
    let last_good_stream_id = ids.values().copied().max().unwrap_or(0);
    let _ = to_writer
        .send(ToWriter::Finish {
            last_good_stream_id,
        })
        .await;
    drop(to_writer);
    let _ = writer.await;
    // The client hangs up once it has read everything; closing first could lose its data.
    let mut reader = reader;
    if tokio::time::timeout(CLOSE_GRACE, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
}

/// Client frames: replies to new streams, stdin, pings, windows. Ends (and tells the exec the
/// client is gone) when the connection ends, breaks, or the client sends GOAWAY.
async fn read_frames<R: AsyncRead + Unpin>(
    mut io: R,
    to_writer: mpsc::Sender<ToWriter>,
    roles: mpsc::Sender<(Role, u32)>,
    input: tokio::sync::oneshot::Receiver<ClientInput>,
) {
    // Header blocks are one zlib stream per direction: this codec only decodes.
    let mut codec = Codec::new();
    let mut known: HashMap<u32, Role> = HashMap::new();
    let mut input = Some(input);
    let mut client: Option<ClientInput> = None;
    let mut stdin_ended = false;
    // The resize stream is a sequence of JSON objects, possibly split across frames.
    let mut resizes: Vec<u8> = Vec::new();
    let send = |frame: Frame| {
        let to_writer = to_writer.clone();
        async move { to_writer.send(ToWriter::Frame(frame)).await.is_ok() }
    };
    loop {
        let frame = match codec.read_frame(&mut io).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::debug!(error = %err, "spdy exec: bad frame");
                let _ = send(Frame::GoAway {
                    last_good_stream_id: known.keys().copied().max().unwrap_or(0),
                    status: spdy::GOAWAY_PROTOCOL_ERROR,
                })
                .await;
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                let role = Frame::header(&headers, "streamtype").and_then(Role::parse);
                let reply = match role {
                    _ if stream_id % 2 == 0 || stream_id == 0 => Frame::RstStream {
                        stream_id,
                        status: spdy::RST_PROTOCOL_ERROR,
                    },
                    _ if known.contains_key(&stream_id) => Frame::RstStream {
                        stream_id,
                        status: spdy::RST_STREAM_IN_USE,
                    },
                    None => Frame::RstStream {
                        stream_id,
                        status: spdy::RST_REFUSED_STREAM,
                    },
                    Some(role) if known.values().any(|r| *r == role) => Frame::RstStream {
                        stream_id,
                        status: spdy::RST_REFUSED_STREAM,
                    },
                    Some(role) => {
                        known.insert(stream_id, role);
                        let _ = roles.send((role, stream_id)).await;
                        Frame::SynReply {
                            stream_id,
                            fin: false,
                            headers: Vec::new(),
                        }
                    }
                };
                if !send(reply).await {
                    break;
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let role = known.get(&stream_id).copied();
                if !matches!(role, Some(Role::Stdin | Role::Resize)) {
                    continue;
                }
                if client.is_none() {
                    // Stdin may only flow once the exec runs (all streams are open).
                    if let Some(rx) = input.take() {
                        client = rx.await.ok();
                    }
                }
                let len = data.len() as u32;
                if role == Some(Role::Resize) {
                    resizes.extend_from_slice(&data);
                    let mut sizes =
                        serde_json::Deserializer::from_slice(&resizes).into_iter::<TerminalSize>();
                    let mut used = 0;
                    loop {
                        match sizes.next() {
                            Some(Ok(size)) => {
                                used = sizes.byte_offset();
                                if let Some(c) = &client {
                                    c.resize(size);
                                }
                            }
                            // Not a size at all: drop what we have.
                            Some(Err(err)) if !err.is_eof() => {
                                used = resizes.len();
                                break;
                            }
                            _ => break,
                        }
                    }
                    resizes.drain(..used);
                } else if !stdin_ended
                    && !data.is_empty()
                    && let Some(tx) = client.as_mut().and_then(|c| c.stdin.as_ref())
                    && tx.send(Bytes::from(data)).await.is_err()
                {
                    stdin_ended = true;
                }
                if fin && role == Some(Role::Stdin) {
                    stdin_ended = true;
                    if let Some(c) = client.as_mut() {
                        c.stdin = None;
                    }
                } else if len > 0 {
                    // Consumed: the client may send as much again.
                    for id in [stream_id, 0] {
                        send(Frame::WindowUpdate {
                            stream_id: id,
                            delta: len,
                        })
                        .await;
                    }
                }
            }
            Frame::Ping { id } => {
                // Odd ids are the client's pings; even ones would be answers to ours.
                if id % 2 == 1 && !send(Frame::Ping { id }).await {
                    break;
                }
            }
            Frame::Settings { entries, .. } => {
                for entry in entries {
                    if entry.id == spdy::SETTINGS_INITIAL_WINDOW_SIZE {
                        let _ = to_writer.send(ToWriter::InitialWindow(entry.value)).await;
                    }
                }
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let _ = to_writer
                    .send(ToWriter::WindowUpdate { stream_id, delta })
                    .await;
            }
            Frame::RstStream { stream_id, .. } => {
                if known.get(&stream_id) == Some(&Role::Stdin)
                    && let Some(c) = client.as_mut()
                {
                    c.stdin = None;
                }
                let _ = to_writer.send(ToWriter::Reset(stream_id)).await;
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Unknown { .. } => {}
        }
    }
    if client.is_none()
        && let Some(rx) = input.take()
    {
        // The exec may be starting: it must still learn that the client left.
        client = rx.await.ok();
    }
    if let Some(client) = client {
        let _ = client.gone.send(());
    }
}

/// Send windows as 3.1 keeps them: per stream and for the session.
#[derive(Debug)]
struct Windows {
    /// Off until the client shows it does flow control (see the module's doc).
    enforced: bool,
    initial: i64,
    session: i64,
    streams: HashMap<u32, i64>,
}

impl Windows {
    /// How much of `want` bytes may go now on `stream_id`.
    fn allowance(&mut self, stream_id: u32, want: usize) -> usize {
        if !self.enforced {
            return want;
        }
        let stream = *self.streams.entry(stream_id).or_insert(self.initial);
        want.min(stream.min(self.session).max(0) as usize)
    }

    fn spend(&mut self, stream_id: u32, sent: usize) {
        let initial = self.initial;
        *self.streams.entry(stream_id).or_insert(initial) -= sent as i64;
        self.session -= sent as i64;
    }
}

/// Writes frames in order; DATA waits for window when the client keeps windows.
async fn write_frames<W: AsyncWrite + Unpin>(mut io: W, mut rx: mpsc::Receiver<ToWriter>) {
    let mut codec = Codec::new();
    let mut windows = Windows {
        enforced: false,
        initial: i64::from(spdy::DEFAULT_WINDOW),
        session: i64::from(spdy::DEFAULT_WINDOW),
        streams: HashMap::new(),
    };
    let mut queue: VecDeque<Frame> = VecDeque::new();
    let mut reset: HashSet<u32> = HashSet::new();
    let mut finishing: Option<u32> = None;
    while let Some(message) = rx.recv().await {
        match message {
            ToWriter::Frame(frame @ Frame::Data { .. }) => queue.push_back(frame),
            // Control frames are not flow controlled.
            ToWriter::Frame(frame) => {
                if write(&mut io, &mut codec, &frame).await.is_err() {
                    return;
                }
            }
            ToWriter::WindowUpdate { stream_id, delta } => {
                windows.enforced = true;
                let delta = i64::from(delta);
                if stream_id == 0 {
                    windows.session += delta;
                } else {
                    let initial = windows.initial;
                    *windows.streams.entry(stream_id).or_insert(initial) += delta;
                }
            }
            ToWriter::InitialWindow(size) => {
                // The change applies to every open stream's window too.
                let change = i64::from(size) - windows.initial;
                windows.initial = i64::from(size);
                windows.streams.values_mut().for_each(|w| *w += change);
            }
            ToWriter::Reset(stream_id) => {
                reset.insert(stream_id);
            }
            ToWriter::Finish {
                last_good_stream_id,
            } => finishing = Some(last_good_stream_id),
        }
        while let Some(Frame::Data {
            stream_id,
            fin,
            data,
        }) = queue.front_mut()
        {
            let stream_id = *stream_id;
            if reset.contains(&stream_id) {
                queue.pop_front();
                continue;
            }
            let allowed = windows.allowance(stream_id, data.len());
            if allowed == 0 && !data.is_empty() {
                break;
            }
            let rest = data.split_off(allowed);
            let frame = Frame::Data {
                stream_id,
                fin: *fin && rest.is_empty(),
                data: std::mem::take(data),
            };
            if rest.is_empty() {
                queue.pop_front();
            } else {
                *data = rest;
            }
            windows.spend(stream_id, allowed);
            if write(&mut io, &mut codec, &frame).await.is_err() {
                return;
            }
        }
        if let Some(last_good_stream_id) = finishing
            && queue.is_empty()
        {
            let goaway = Frame::GoAway {
                last_good_stream_id,
                status: spdy::GOAWAY_OK,
            };
            let _ = write(&mut io, &mut codec, &goaway).await;
            return;
        }
    }
}

async fn write<W: AsyncWrite + Unpin>(
    io: &mut W,
    codec: &mut Codec,
    frame: &Frame,
) -> Result<(), spdy::SpdyError> {
    let bytes = codec.encode(frame)?;
    io.write_all(&bytes).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;
    use tokio::io::{AsyncWriteExt as _, DuplexStream};

    use super::*;
    use crate::errors::ApiResult;
    use crate::streams::{ExecIo, LogRequest, LogStream};

    /// Echoes stdin to stdout with `extra` bytes after it, exits 3.
    #[derive(Debug)]
    struct Echo {
        extra: usize,
    }

    impl PodStreams for Echo {
        fn logs(&self, _: Pod, _: LogRequest) -> BoxFuture<'static, ApiResult<LogStream>> {
            unreachable!("exec only")
        }
        fn exec(&self, _: Pod, _: ExecRequest, io: ExecIo) -> BoxFuture<'static, ApiResult<i32>> {
            let extra = self.extra;
            Box::pin(async move {
                let stdout = io.stdout.unwrap();
                if let Some(mut stdin) = io.stdin {
                    while let Some(data) = stdin.recv().await {
                        stdout.send(data).await.unwrap();
                    }
                }
                if extra > 0 {
                    stdout.send(Bytes::from(vec![b'x'; extra])).await.unwrap();
                }
                Ok(3)
            })
        }
    }

    /// Writes the first two terminal sizes it is given to stdout, exits 0.
    #[derive(Debug)]
    struct Sizes;

    impl PodStreams for Sizes {
        fn logs(&self, _: Pod, _: LogRequest) -> BoxFuture<'static, ApiResult<LogStream>> {
            unreachable!("exec only")
        }
        fn exec(&self, _: Pod, _: ExecRequest, io: ExecIo) -> BoxFuture<'static, ApiResult<i32>> {
            Box::pin(async move {
                let mut resize = io.resize.unwrap();
                for _ in 0..2 {
                    let size = resize.recv().await.unwrap();
                    let text = format!("{}x{};", size.width, size.height);
                    io.stdout.as_ref().unwrap().send(text.into()).await.unwrap();
                }
                Ok(0)
            })
        }
    }

    struct Client {
        io: DuplexStream,
        codec: Codec,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let bytes = self.codec.encode(&frame).unwrap();
            self.io.write_all(&bytes).await.unwrap();
        }
        async fn next(&mut self) -> Option<Frame> {
            self.codec.read_frame(&mut self.io).await.unwrap()
        }
        async fn open(&mut self, stream_id: u32, stream_type: &str) {
            self.send(Frame::SynStream {
                stream_id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamType".into(), stream_type.into())],
            })
            .await;
            assert_eq!(
                self.next().await,
                Some(Frame::SynReply {
                    stream_id,
                    fin: false,
                    headers: Vec::new()
                })
            );
        }
    }

    fn start(extra: usize, stdin: bool) -> Client {
        let request = ExecRequest {
            container: "c".into(),
            command: vec!["cat".into()],
            stdin,
            stdout: true,
            ..ExecRequest::default()
        };
        start_with(Arc::new(Echo { extra }), request)
    }

    fn start_with(streams: Arc<dyn PodStreams>, request: ExecRequest) -> Client {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(session(ours, streams, Pod::default(), request));
        Client {
            io: theirs,
            codec: Codec::new(),
        }
    }

    /// Collects DATA per stream until GOAWAY; the other control frames too.
    async fn until_goaway(
        client: &mut Client,
    ) -> (HashMap<u32, Vec<u8>>, HashSet<u32>, Vec<Frame>) {
        let (mut data, mut fins, mut control) = (HashMap::new(), HashSet::new(), Vec::new());
        while let Some(frame) = client.next().await {
            match frame {
                Frame::Data {
                    stream_id,
                    fin,
                    data: d,
                } => {
                    data.entry(stream_id).or_insert_with(Vec::new).extend(d);
                    if fin {
                        fins.insert(stream_id);
                    }
                }
                Frame::GoAway { .. } => {
                    control.push(frame);
                    break;
                }
                other => control.push(other),
            }
        }
        (data, fins, control)
    }

    #[tokio::test]
    async fn streams_are_typed_replied_and_finished_with_the_status() {
        let mut client = start(0, true);
        client.open(1, "error").await;
        client.open(3, "stdin").await;
        client.open(5, "stdout").await;
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
        client
            .send(Frame::Data {
                stream_id: 3,
                fin: false,
                data: b"hello".to_vec(),
            })
            .await;
        client
            .send(Frame::Data {
                stream_id: 3,
                fin: true,
                data: Vec::new(),
            })
            .await;
        let (data, fins, control) = until_goaway(&mut client).await;
        assert_eq!(data[&5], b"hello");
        let status: serde_json::Value = serde_json::from_slice(&data[&1]).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert!(fins.contains(&1) && fins.contains(&5), "{fins:?}");
        // The stdin bytes were granted back on the stream and the session.
        assert!(control.contains(&Frame::WindowUpdate {
            stream_id: 3,
            delta: 5
        }));
        assert!(control.contains(&Frame::WindowUpdate {
            stream_id: 0,
            delta: 5
        }));
        assert_eq!(
            control.last(),
            Some(&Frame::GoAway {
                last_good_stream_id: 5,
                status: spdy::GOAWAY_OK
            })
        );
    }

    #[tokio::test]
    async fn unknown_and_duplicate_stream_types_are_refused() {
        let mut client = start(0, false);
        client
            .send(Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamtype".into(), "video".into())],
            })
            .await;
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream_id: 1,
                status: spdy::RST_REFUSED_STREAM
            })
        );
        client.open(3, "error").await;
        client
            .send(Frame::SynStream {
                stream_id: 5,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamtype".into(), "error".into())],
            })
            .await;
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream_id: 5,
                status: spdy::RST_REFUSED_STREAM
            })
        );
    }

    #[tokio::test]
    async fn a_client_that_keeps_windows_gets_no_more_than_it_granted() {
        let mut client = start(100 * 1024, false);
        // Shows it does flow control: from now on its windows bind us.
        client
            .send(Frame::WindowUpdate {
                stream_id: 0,
                delta: 0,
            })
            .await;
        client.open(1, "error").await;
        client.open(3, "stdout").await;
        let mut received = 0;
        while received < spdy::DEFAULT_WINDOW as usize {
            match client.next().await {
                Some(Frame::Data { data, .. }) => received += data.len(),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(received, spdy::DEFAULT_WINDOW as usize);
        // Nothing more until we grant more: the next frame is the PING's answer.
        client.send(Frame::Ping { id: 7 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 7 }));
        for stream_id in [0, 3] {
            client
                .send(Frame::WindowUpdate {
                    stream_id,
                    delta: 1 << 20,
                })
                .await;
        }
        let (data, fins, _) = until_goaway(&mut client).await;
        assert_eq!(received + data[&3].len(), 100 * 1024);
        assert!(fins.contains(&3));
    }

    #[tokio::test]
    async fn terminal_sizes_come_from_the_resize_stream_even_when_split() {
        let request = ExecRequest {
            container: "c".into(),
            command: vec!["sh".into()],
            stdout: true,
            stderr: true,
            tty: true,
            ..ExecRequest::default()
        };
        let mut client = start_with(Arc::new(Sizes), request);
        // With a terminal there is no stderr stream: these three are all it takes.
        client.open(1, "error").await;
        client.open(3, "stdout").await;
        client.open(5, "resize").await;
        for piece in [
            &br#"{"Width":80,"He"#[..],
            br#"ight":24}{"Width":100,"Height":30}"#,
        ] {
            client
                .send(Frame::Data {
                    stream_id: 5,
                    fin: false,
                    data: piece.to_vec(),
                })
                .await;
        }
        let (data, _, _) = until_goaway(&mut client).await;
        assert_eq!(data[&3], b"80x24;100x30;");
        let status: serde_json::Value = serde_json::from_slice(&data[&1]).unwrap();
        assert_eq!(status["status"], "Success");
    }
}
