//! A loopback HTTP/1.1 proxy in front of a plain-HTTP registry (the bed's registry **A**) that
//! misbehaves on request: it resets or truncates bodies, corrupts bytes, answers 429, 500 or
//! 401, stalls, or ignores `Range`. Tests point a client at [`FaultProxy::host`] (configured
//! insecure), add [`Rule`]s, and read back what the client asked for with
//! [`FaultProxy::requests`].
//!
//! Each client connection carries one request (the proxy answers `Connection: close`). The
//! request goes upstream as HTTP/1.0, so the registry answers with a plain body delimited by
//! the end of the connection; the proxy buffers it (test blobs are small) and sends it on with
//! its own `Content-Length`, then applies the fault, if any.
//!
//! The proxy also plays a token server at `/token`: a [`Fault::Unauthorized`] answer carries a
//! `Bearer` challenge whose realm is that endpoint, which hands out `fault-proxy-token-<n>`.
//! `Authorization` headers are never forwarded upstream.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;

/// The `service` of the proxy's bearer challenges.
pub const PROXY_SERVICE: &str = "nodelet-fault-proxy";
const MAX_HEAD_BYTES: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reset waits after the last byte so the client has read it before the RST.
const RESET_GRACE: Duration = Duration::from_millis(200);

/// What goes wrong with one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Headers (with the full `Content-Length`) and the first `n` body bytes, then a TCP reset.
    ResetAfter(u64),
    /// Headers (with the full `Content-Length`) and the first `n` body bytes, then a clean close:
    /// the body ends early.
    TruncateAfter(u64),
    /// The whole body with one byte in the middle flipped: right length, wrong digest.
    Corrupt,
    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    TooManyRequests { retry_after_secs: u64 },
    /// `500 Internal Server Error`.
    ServerError,
    /// `401 Unauthorized` with a `Bearer` challenge naming this proxy's `/token`, as a registry
    /// answers an expired or revoked token.
    Unauthorized,
    /// Headers, then nothing for this long (a slow or dead peer); then the connection closes.
    Stall(Duration),
    /// The request goes upstream without its `Range` header, so the answer is `200` with the
    /// whole body.
    IgnoreRange,
}

/// When a fault applies: to the `first`-th request (1-based, counted from when the rule was
/// added) whose path contains `path_contains`, and the `times - 1` matching requests after it
/// (`None`: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path_contains: String,
    pub first: usize,
    pub times: Option<usize>,
    pub fault: Fault,
}

impl Rule {
    /// The first matching request, once.
    pub fn new(path_contains: impl Into<String>, fault: Fault) -> Rule {
        Rule {
            path_contains: path_contains.into(),
            first: 1,
            times: Some(1),
            fault,
        }
    }

    /// Starts at the `n`-th matching request (1-based).
    pub fn nth(mut self, n: usize) -> Rule {
        self.first = n.max(1);
        self
    }

    /// Applies to `k` matching requests in a row.
    pub fn times(mut self, k: usize) -> Rule {
        self.times = Some(k);
        self
    }

    /// Applies to every matching request from the first one on.
    pub fn always(mut self) -> Rule {
        self.times = None;
        self
    }

    fn applies_to(&self, occurrence: usize) -> bool {
        occurrence >= self.first && self.times.is_none_or(|k| occurrence < self.first + k)
    }
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target as sent, query included, e.g. `/v2/tiny/blobs/sha256:...`.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any (only the proxy's own fake tokens are expected).
    pub authorization: Option<String>,
    /// The fault applied to the answer.
    pub fault: Option<Fault>,
    /// The status the client was sent (0 while the answer is still being decided).
    pub status: u16,
}

/// The running proxy; stops accepting when dropped (connections in a stall end on their own).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    upstream: String,
    stop: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Each rule with the number of matching requests seen so far.
    rules: Vec<(Rule, usize)>,
    requests: Vec<RecordedRequest>,
    tokens_issued: usize,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (`host:port` of a plain-HTTP
    /// registry, e.g. `BedInfo::plain.host`).
    pub fn start(upstream: &str) -> Result<FaultProxy, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            upstream: upstream.to_string(),
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        let accept_shared = shared.clone();
        let accept_loop = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = accept_shared.clone();
                    let _ = std::thread::Builder::new()
                        .name("fault-proxy-conn".into())
                        .spawn(move || shared.serve(stream));
                }
            })?;
        Ok(FaultProxy {
            addr,
            shared,
            accept_loop: Some(accept_loop),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`: the registry name clients use.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The realm of the proxy's bearer challenges.
    pub fn token_realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Adds a rule; earlier rules win when several apply to one request.
    pub fn inject(&self, rule: Rule) {
        self.shared.lock().rules.push((rule, 0));
    }

    /// Removes every rule (the requests recorded so far stay).
    pub fn clear_rules(&self) {
        self.shared.lock().rules.clear();
    }

    /// Every request so far (token requests included), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The requests whose path contains `needle`.
    pub fn requests_to(&self, needle: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path.contains(needle))
            .cloned()
            .collect()
    }

    /// How many tokens the `/token` endpoint handed out.
    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept_loop.take() {
            let _ = handle.join();
        }
    }
}

/// A request as read from the client.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The registry's answer, buffered.
struct Upstream {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serve(&self, mut client: TcpStream) {
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = client.set_read_timeout(Some(IO_TIMEOUT));
        let _ = client.set_write_timeout(Some(IO_TIMEOUT));
        let request = match read_request(&mut client) {
            Ok(request) => request,
            Err(_) => return,
        };
        let path = request.target.split('?').next().unwrap_or("").to_string();
        if path == "/token" {
            self.answer_token(&mut client, &request);
            return;
        }
        let (index, fault) = self.record(&request, &path);
        let result = match &fault {
            Some(Fault::TooManyRequests { retry_after_secs }) => {
                let retry_after = retry_after_secs.to_string();
                self.answer_error(
                    &mut client,
                    index,
                    (429, "Too Many Requests"),
                    &[("Retry-After", retry_after.as_str())],
                    "TOOMANYREQUESTS",
                    "injected: too many requests",
                )
            }
            Some(Fault::ServerError) => self.answer_error(
                &mut client,
                index,
                (500, "Internal Server Error"),
                &[],
                "UNKNOWN",
                "injected: internal server error",
            ),
            Some(Fault::Unauthorized) => {
                let challenge = format!(
                    "Bearer realm=\"http://{}/token\",service=\"{PROXY_SERVICE}\"",
                    self.addr
                );
                self.answer_error(
                    &mut client,
                    index,
                    (401, "Unauthorized"),
                    &[("WWW-Authenticate", challenge.as_str())],
                    "UNAUTHORIZED",
                    "injected: authentication required",
                )
            }
            _ => self.relay(&mut client, &request, index, fault.as_ref()),
        };
        if result.is_err() {
            let _ = client.shutdown(Shutdown::Both);
        }
    }

    /// Counts the request against every rule, picks the first fault that applies, and records
    /// the request. Returns its index in the record.
    fn record(&self, request: &Request, path: &str) -> (usize, Option<Fault>) {
        let mut state = self.lock();
        let mut fault = None;
        for (rule, seen) in state.rules.iter_mut() {
            if path.contains(&rule.path_contains) {
                *seen += 1;
                if fault.is_none() && rule.applies_to(*seen) {
                    fault = Some(rule.fault.clone());
                }
            }
        }
        state.requests.push(RecordedRequest {
            method: request.method.clone(),
            path: request.target.clone(),
            range: request.header("range").map(String::from),
            authorization: request.header("authorization").map(String::from),
            fault: fault.clone(),
            status: 0,
        });
        (state.requests.len() - 1, fault)
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(request) = self.lock().requests.get_mut(index) {
            request.status = status;
        }
    }

    fn answer_token(&self, client: &mut TcpStream, request: &Request) {
        let token = {
            let mut state = self.lock();
            state.tokens_issued += 1;
            let token = format!("fault-proxy-token-{}", state.tokens_issued);
            state.requests.push(RecordedRequest {
                method: request.method.clone(),
                path: request.target.clone(),
                range: None,
                authorization: request.header("authorization").map(String::from),
                fault: None,
                status: 200,
            });
            token
        };
        let body = format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#);
        let _ = write_response(
            client,
            (200, "OK"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
    }

    fn answer_error(
        &self,
        client: &mut TcpStream,
        index: usize,
        status: (u16, &str),
        headers: &[(&str, &str)],
        code: &str,
        message: &str,
    ) -> io::Result<()> {
        self.set_status(index, status.0);
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#);
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        write_response(client, status, &all, body.as_bytes())
    }

    /// Forwards the request and sends the answer on, damaged as `fault` says.
    fn relay(
        &self,
        client: &mut TcpStream,
        request: &Request,
        index: usize,
        fault: Option<&Fault>,
    ) -> io::Result<()> {
        let strip_range = fault == Some(&Fault::IgnoreRange);
        let upstream = match forward(&self.upstream, request, strip_range) {
            Ok(upstream) => upstream,
            Err(err) => {
                return self.answer_error(
                    client,
                    index,
                    (502, "Bad Gateway"),
                    &[],
                    "UNKNOWN",
                    &format!("fault proxy: upstream {}: {err}", self.upstream),
                );
            }
        };
        self.set_status(index, upstream.status);
        let head_only = request.method.eq_ignore_ascii_case("HEAD");
        let declared_length = if head_only {
            upstream
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "0".into())
        } else {
            upstream.body.len().to_string()
        };
        let mut head = format!("HTTP/1.1 {} {}\r\n", upstream.status, upstream.reason);
        for (name, value) in &upstream.headers {
            if !is_hop_by_hop(name) && !name.eq_ignore_ascii_case("content-length") {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str(&format!(
            "Content-Length: {declared_length}\r\nConnection: close\r\n\r\n"
        ));
        client.write_all(head.as_bytes())?;
        let mut body = upstream.body;
        if head_only {
            body.clear();
        }
        match fault {
            Some(Fault::ResetAfter(n)) => {
                let n = (*n as usize).min(body.len());
                client.write_all(&body[..n])?;
                client.flush()?;
                std::thread::sleep(RESET_GRACE);
                // SO_LINGER 0: close() sends RST instead of FIN.
                rustix::net::sockopt::set_socket_linger(&*client, Some(Duration::ZERO))?;
                Ok(())
            }
            Some(Fault::TruncateAfter(n)) => {
                let n = (*n as usize).min(body.len());
                client.write_all(&body[..n])?;
                client.flush()?;
                client.shutdown(Shutdown::Write)?;
                Ok(())
            }
            Some(Fault::Corrupt) => {
                if !body.is_empty() {
                    let middle = body.len() / 2;
                    body[middle] ^= 0xff;
                }
                client.write_all(&body)?;
                client.flush()
            }
            Some(Fault::Stall(duration)) => {
                client.flush()?;
                let deadline = Instant::now() + *duration;
                while Instant::now() < deadline && !self.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(())
            }
            _ => {
                client.write_all(&body)?;
                client.flush()
            }
        }
    }
}

/// Reads one request: head up to the blank line, then a `Content-Length` body if any.
fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find_blank_line(&buffer) {
            break end;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(io::Error::other("request head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("").to_string();
    if method.is_empty() || !target.starts_with('/') {
        return Err(io::Error::other("bad request line"));
    }
    let headers = parse_headers(lines);
    let mut request = Request {
        method,
        target,
        headers,
        body: buffer[head_end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
    request.body.truncate(length);
    Ok(request)
}

/// Sends the request upstream as HTTP/1.0 and reads the whole answer.
fn forward(upstream: &str, request: &Request, strip_range: bool) -> io::Result<Upstream> {
    let mut stream = TcpStream::connect(upstream)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{} {} HTTP/1.0\r\nHost: {upstream}\r\n",
        request.method, request.target
    );
    for (name, value) in &request.headers {
        let skip = name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("authorization")
            || is_hop_by_hop(name)
            || (strip_range && name.eq_ignore_ascii_case("range"));
        if !skip {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    stream.flush()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head_end = find_blank_line(&answer)
        .ok_or_else(|| io::Error::other("upstream answer has no complete head"))?;
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other(format!("bad upstream status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or("").to_string();
    Ok(Upstream {
        status,
        reason,
        headers: parse_headers(lines),
        body: answer[head_end + 4..].to_vec(),
    })
}

fn write_response(
    stream: &mut TcpStream,
    (status, reason): (u16, &str),
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_from_the_nth_match_for_k_times() {
        let once = Rule::new("/blobs/", Fault::ServerError);
        assert!(once.applies_to(1) && !once.applies_to(2));
        let second_twice = Rule::new("/blobs/", Fault::ServerError).nth(2).times(2);
        assert!(!second_twice.applies_to(1));
        assert!(second_twice.applies_to(2) && second_twice.applies_to(3));
        assert!(!second_twice.applies_to(4));
        let always = Rule::new("x", Fault::Corrupt).nth(3).always();
        assert!(!always.applies_to(2) && always.applies_to(3) && always.applies_to(1000));
    }
}
