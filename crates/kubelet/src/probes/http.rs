//! `httpGet` probes (upstream `pkg/probe/http`) on a small HTTP/1.1 client over a std
//! `TcpStream`, everything within one deadline (`timeoutSeconds`). `scheme: HTTPS` speaks TLS
//! without verifying the certificate ([`crate::insecure_tls`]), as upstream does. The client
//! ([`fetch`]) is also the one of `httpGet` lifecycle hooks, which judge its result their way.
//!
//! Status 200–399 passes. Redirects to the same host name are followed (at most 10); one to
//! another host is not, and the probe passes with a warning (`Probe terminated redirects,
//! Response body: <body>`). A status of 400 or more fails with `HTTP probe failed with
//! statuscode: <code>` (never the body, upstream keeps it out of events). Transport errors
//! fail with Go's client text (`Get "<url>": dial tcp ...: connect: connection refused`).
//! The body is read up to [`MAX_OUTPUT`]. Request: `User-Agent: kube-probe/<major>.<minor>`
//! and `Accept: */*` unless overridden by `httpHeaders`; a `Host` header sets the host.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nodelet_api::field_errors::go_quote;
use nodelet_api::k8s::api::core::v1::{Container, HTTPGetAction};

use super::{MAX_OUTPUT, Outcome};
use crate::hooks::{HttpTarget, http_target};
use crate::service_env::join_host_port;

/// Go's text for a TLS handshake answered by a plain HTTP server.
pub const HTTP_RESPONSE_TO_HTTPS: &str = "http: server gave HTTP response to HTTPS client";
/// Go's client gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;
/// Response headers larger than this are refused.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Runs one `httpGet` probe for `container` of a pod with `pod_ips`.
pub fn run(
    action: &HTTPGetAction,
    container: &Container,
    pod_ips: &[String],
    timeout: Duration,
) -> Outcome {
    match http_target(action, container, pod_ips, "probe") {
        Ok(target) => probe(&target, timeout),
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// Probes a formed request.
pub fn probe(target: &HttpTarget, timeout: Duration) -> Outcome {
    let response = match fetch(target, timeout) {
        Ok(r) => r,
        Err(e) => return Outcome::Failure(e),
    };
    let body = String::from_utf8_lossy(&response.body).into_owned();
    if !(200..400).contains(&response.status) {
        return Outcome::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            response.status
        ));
    }
    // A redirect still here was not followed (another host, or no usable `Location`).
    if response.status >= 300 {
        return terminated_redirects(&body);
    }
    Outcome::Success(body)
}

/// The GET of probes and lifecycle hooks (upstream's client with `RedirectChecker(false)`
/// and unverified TLS), everything within `timeout`: redirects to the same host name are
/// followed (at most [`MAX_REDIRECTS`]); the response that ends the chain is returned
/// whatever its status, also a redirect to another host. `Err` is Go's client text
/// (`Get "<url>": ...`).
pub fn fetch(target: &HttpTarget, timeout: Duration) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut url = Url {
        scheme: target.scheme.clone(),
        host: target.host.clone(),
        port: target.port,
        path: request_path(target),
    };
    let mut host_header = target.host_header.clone();
    for redirects in 0..=MAX_REDIRECTS {
        let response = get(&url, host_header.as_deref(), &target.headers, deadline)
            .map_err(|e| format!("Get {}: {e}", go_quote(&url.to_string())))?;
        let followed = matches!(response.status, 301 | 302 | 303 | 307 | 308);
        let Some(location) = response.location.as_deref().filter(|_| followed) else {
            return Ok(response);
        };
        let Some(next) = url.join(location) else {
            return Err(format!(
                "Get {}: failed to parse Location header {}",
                go_quote(&url.to_string()),
                go_quote(location)
            ));
        };
        if next.host != target.host {
            return Ok(response);
        }
        if redirects == MAX_REDIRECTS {
            return Err(format!(
                "Get {}: stopped after {MAX_REDIRECTS} redirects",
                go_quote(&next.to_string())
            ));
        }
        // Go keeps a custom Host only through relative redirects.
        if is_absolute(location) {
            host_header = None;
        }
        url = next;
    }
    unreachable!("the loop returns by the last redirect")
}

fn terminated_redirects(body: &str) -> Outcome {
    Outcome::Warning(format!("Probe terminated redirects, Response body: {body}"))
}

fn request_path(target: &HttpTarget) -> String {
    let prefix = format!(
        "{}://{}",
        target.scheme,
        join_host_port(&target.host, target.port)
    );
    match target.url.strip_prefix(&prefix) {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
        None => "/".to_owned(),
    }
}

fn is_absolute(location: &str) -> bool {
    location.contains("://") || location.starts_with("//")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    scheme: String,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host_port = join_host_port(&self.host, self.port);
        write!(f, "{}://{host_port}{}", self.scheme, self.path)
    }
}

impl Url {
    /// Resolves a `Location` against this URL (absolute, scheme-relative, absolute-path or
    /// relative-path references; fragments dropped).
    fn join(&self, location: &str) -> Option<Url> {
        let location = location.split('#').next().unwrap_or("").trim();
        if let Some((scheme, rest)) = location.split_once("://") {
            return Url::authority_and_path(&scheme.to_ascii_lowercase(), rest);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::authority_and_path(&self.scheme, rest);
        }
        let path = if location.starts_with('/') {
            location.to_owned()
        } else if location.is_empty() {
            self.path.clone()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..=base.rfind('/').unwrap_or(0)];
            format!("{dir}{location}")
        };
        Some(Url {
            path,
            ..self.clone()
        })
    }

    fn authority_and_path(scheme: &str, rest: &str) -> Option<Url> {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, tail) = v6.split_once(']')?;
            (host, tail.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => default_port,
        };
        if host.is_empty() {
            return None;
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Some(Url {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            path,
        })
    }
}

/// A response: its status and its body up to [`MAX_OUTPUT`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    location: Option<String>,
    pub body: Vec<u8>,
}

/// One GET over a fresh connection (`Connection: close`, as the probe transport disables
/// keep-alives). Errors are Go's texts after `Get "<url>": `.
fn get(
    url: &Url,
    host_header: Option<&str>,
    headers: &[(String, String)],
    deadline: Instant,
) -> Result<Response, String> {
    const TIMEOUT: &str =
        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
    let tls = match url.scheme.as_str() {
        "http" => None,
        "https" => Some(crate::insecure_tls::server_name(&url.host)?),
        other => return Err(format!("unsupported protocol scheme {}", go_quote(other))),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(TIMEOUT.into());
    }
    let stream = super::tcp::dial(&url.host, url.port, left).map_err(|e| {
        if e.ends_with("i/o timeout") {
            TIMEOUT.to_owned()
        } else {
            e
        }
    })?;
    let stream = match tls {
        None => Stream::Plain(stream),
        Some(name) => {
            let client = rustls::ClientConnection::new(crate::insecure_tls::client_config(), name)
                .map_err(|e| tls_error_text(&e))?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(client, stream)))
        }
    };
    let mut conn = Conn {
        stream,
        deadline,
        buf: Vec::new(),
    };
    let host = host_header
        .map(str::to_owned)
        .unwrap_or_else(|| join_host_port(&url.host, url.port));
    let mut request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", url.path);
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let io_error = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            TIMEOUT.to_owned()
        } else {
            io_error_text(&e)
        }
    };
    conn.write(request.as_bytes()).map_err(io_error)?;
    let head_end = loop {
        if let Some(i) = find(&conn.buf, b"\r\n\r\n") {
            break i;
        }
        if conn.buf.len() > MAX_HEADER_BYTES {
            return Err("net/http: response headers too large".into());
        }
        if conn.fill().map_err(io_error)? == 0 {
            return Err(if conn.buf.is_empty() {
                "EOF"
            } else {
                "unexpected EOF"
            }
            .into());
        }
    };
    let head = String::from_utf8_lossy(&conn.buf[..head_end]).into_owned();
    let mut rest = conn.buf.split_off(head_end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = parse_status(status_line).ok_or_else(|| {
        format!(
            "net/http: malformed HTTP response {}",
            go_quote(status_line)
        )
    })?;
    let mut location = None;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "location" => location = Some(value.to_owned()),
            "content-length" => content_length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    // The body matters only up to MAX_OUTPUT; reading stops there.
    let body_error = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
                .to_owned()
        } else {
            io_error_text(&e)
        }
    };
    conn.buf = std::mem::take(&mut rest);
    let body = if chunked {
        while conn.buf.len() < 2 * MAX_OUTPUT + 1024 && find(&conn.buf, b"0\r\n\r\n").is_none() {
            if conn.fill().map_err(body_error)? == 0 {
                break;
            }
        }
        let mut body = dechunk(&conn.buf);
        body.truncate(MAX_OUTPUT);
        body
    } else {
        let want = content_length.unwrap_or(usize::MAX).min(MAX_OUTPUT);
        while conn.buf.len() < want {
            if conn.fill().map_err(body_error)? == 0 {
                break;
            }
        }
        conn.buf.truncate(want);
        std::mem::take(&mut conn.buf)
    };
    Ok(Response {
        status,
        location,
        body,
    })
}

fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then_some(())?;
    code.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes as much of a chunked body as is there.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        raw = &raw[line_end + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(raw.len());
        body.extend_from_slice(&raw[..take]);
        raw = &raw[take..];
        raw = raw.strip_prefix(b"\r\n").unwrap_or(raw);
    }
    body
}

/// An I/O error's text, TLS errors as Go's client words the common ones.
fn io_error_text(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_error_text(tls),
        None => e.to_string(),
    }
}

fn tls_error_text(e: &rustls::Error) -> String {
    match e {
        // A plain HTTP server answers the ClientHello with an HTTP response.
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            HTTP_RESPONSE_TO_HTTPS.to_owned()
        }
        rustls::Error::AlertReceived(alert) => format!("remote error: tls: {alert:?}"),
        other => format!("tls: {other}"),
    }
}

/// The connection under the HTTP exchange: plain, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// Timeouts go on the socket (a TLS read or write may do both, during the handshake).
    fn set_timeouts(&self, left: Duration) -> io::Result<()> {
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        };
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.write_all(bytes),
            Stream::Tls(tls) => {
                tls.write_all(bytes)?;
                tls.flush()
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        };
        match read {
            // A server closing without close_notify ends the body, as it does for Go.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

/// A connection whose every read and write ends by the deadline.
struct Conn {
    stream: Stream,
    deadline: Instant,
    buf: Vec<u8>,
}

impl Conn {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.set_timeouts(self.left()?)?;
        self.stream.write_all(bytes)
    }

    fn fill(&mut self) -> io::Result<usize> {
        self.stream.set_timeouts(self.left()?)?;
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
