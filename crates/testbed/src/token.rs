//! A token server as Docker Hub runs one beside its registry: the client answers the registry's
//! `Bearer realm=...,service=...,scope=...` challenge with `GET realm?service=..&scope=..`
//! (HTTP basic credentials, or none), and gets a JWT granting the actions its user may have.
//! Users may pull or pull and push; anonymous callers get a token that grants nothing, so the
//! registry refuses them. Every request is appended to a log file tests can read.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::Error;

/// Lifetime of an issued token.
const TOKEN_SECONDS: u64 = 300;
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// A user of the token server and what it may do on every repository.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub name: String,
    pub password: String,
    /// e.g. `["pull"]` or `["pull", "push"]`.
    pub actions: Vec<String>,
}

/// What the server signs tokens for and with.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    /// The registry's service name (the JWT audience).
    pub service: String,
    pub users: Vec<TokenUser>,
    pub signer_cert_der: Vec<u8>,
    pub signer_pkcs8: Vec<u8>,
    /// One line per request: `user=<name|-> scope=<asked> granted=<json>` or `rejected ...`.
    pub log: PathBuf,
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_loop: Option<JoinHandle<()>>,
}

impl TokenServer {
    pub fn start(policy: TokenPolicy, tls: rustls::ServerConfig) -> Result<TokenServer, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &policy.signer_pkcs8)
                .map_err(|e| Error::setup(format!("token-signing key: {e}")))?;
        let shared = Arc::new(Shared {
            policy,
            signer,
            tls: Arc::new(tls),
        });
        let stop_flag = stop.clone();
        let accept_loop = std::thread::Builder::new()
            .name("token-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop_flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    let _ = std::thread::Builder::new()
                        .name("token-request".into())
                        .spawn(move || shared.serve(stream));
                }
            })?;
        Ok(TokenServer {
            addr,
            stop,
            accept_loop: Some(accept_loop),
        })
    }

    /// `https://127.0.0.1:<port>/token`, the realm registries send clients to.
    pub fn realm(&self) -> String {
        format!("https://{}/token", self.addr)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept_loop.take() {
            let _ = handle.join();
        }
    }
}

struct Shared {
    policy: TokenPolicy,
    signer: EcdsaKeyPair,
    tls: Arc<rustls::ServerConfig>,
}

/// What a request asked for, parsed from its query and headers.
#[derive(Debug, Default)]
struct TokenRequest {
    path: String,
    service: Option<String>,
    scopes: Vec<String>,
    basic: Option<(String, String)>,
}

impl Shared {
    fn serve(&self, tcp: TcpStream) {
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(conn) = rustls::ServerConnection::new(self.tls.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let (status, body) = match read_request(&mut tls) {
            Ok(request) => self.answer(&request),
            Err(message) => (
                400,
                json!({"errors": [{"code": "INVALID_REQUEST", "message": message}]}),
            ),
        };
        let body = body.to_string();
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if status == 401 {
            response.push_str("WWW-Authenticate: Basic realm=\"nodelet testbed token server\"\r\n");
        }
        response.push_str("\r\n");
        response.push_str(&body);
        let _ = tls.write_all(response.as_bytes());
        let _ = tls.flush();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }

    fn answer(&self, request: &TokenRequest) -> (u16, serde_json::Value) {
        if request.path != "/token" {
            return (
                404,
                json!({"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]}),
            );
        }
        if request.service.as_deref() != Some(self.policy.service.as_str()) {
            let message = format!(
                "unknown service {:?}",
                request.service.as_deref().unwrap_or("")
            );
            return (
                400,
                json!({"errors": [{"code": "INVALID_REQUEST", "message": message}]}),
            );
        }
        let user = match &request.basic {
            None => None,
            Some((name, password)) => match self
                .policy
                .users
                .iter()
                .find(|u| &u.name == name && &u.password == password)
            {
                Some(user) => Some(user),
                None => {
                    self.log(&format!(
                        "rejected user={name} scope={}",
                        request.scopes.join(" ")
                    ));
                    return (401, json!({"details": "incorrect username or password"}));
                }
            },
        };
        let access: Vec<_> = request
            .scopes
            .iter()
            .filter_map(|scope| granted(scope, user))
            .collect();
        self.log(&format!(
            "user={} scope={} granted={}",
            user.map_or("-", |u| u.name.as_str()),
            request.scopes.join(" "),
            serde_json::Value::Array(access.clone())
        ));
        match self.sign(user.map_or("", |u| u.name.as_str()), access) {
            Ok(token) => (
                200,
                json!({"token": token, "access_token": token, "expires_in": TOKEN_SECONDS, "issued_at": rfc3339(now_seconds())}),
            ),
            Err(message) => (
                400,
                json!({"errors": [{"code": "UNKNOWN", "message": message}]}),
            ),
        }
    }

    fn sign(&self, subject: &str, access: Vec<serde_json::Value>) -> Result<String, String> {
        let now = now_seconds();
        let mut jti = [0u8; 16];
        SystemRandom::new().fill(&mut jti).map_err(|_| "random")?;
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.policy.signer_cert_der)]});
        let claims = json!({
            "iss": self.policy.issuer,
            "sub": subject,
            "aud": self.policy.service,
            "exp": now + TOKEN_SECONDS,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signer
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| "signing failed")?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    fn log(&self, line: &str) {
        if let Ok(mut file) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.policy.log)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// The access entry a user gets for `repository:<name>:<actions>`: the asked actions it may do.
fn granted(scope: &str, user: Option<&TokenUser>) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, asked) = rest.rsplit_once(':')?;
    if kind != "repository" || name.is_empty() {
        return None;
    }
    let allowed = user.map_or(&[][..], |u| u.actions.as_slice());
    let actions: Vec<&str> = asked
        .split(',')
        .filter(|a| allowed.iter().any(|x| x == a))
        .collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

fn read_request(stream: &mut impl std::io::Read) -> Result<TokenRequest, String> {
    let mut reader = BufReader::new(std::io::Read::take(stream, MAX_REQUEST_BYTES as u64));
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut words = line.split_whitespace();
    let (Some("GET"), Some(target)) = (words.next(), words.next()) else {
        return Err(format!("expected a GET request, got {:?}", line.trim_end()));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = TokenRequest {
        path: path.to_string(),
        ..TokenRequest::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "service" => request.service = Some(value),
            // Clients send several scopes either as repeated parameters or space-separated.
            "scope" => request
                .scopes
                .extend(value.split(' ').filter(|s| !s.is_empty()).map(String::from)),
            _ => {}
        }
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 || line.trim().is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("authorization") {
            let value = value.trim();
            let encoded = value
                .strip_prefix("Basic ")
                .ok_or("only Basic authorization is accepted")?;
            let decoded = STANDARD
                .decode(encoded.trim())
                .map_err(|_| "bad base64 in Authorization")?;
            let decoded = String::from_utf8(decoded).map_err(|_| "Authorization is not UTF-8")?;
            let (user, password) = decoded.split_once(':').ok_or("Authorization lacks ':'")?;
            request.basic = Some((user.to_string(), password.to_string()));
        }
    }
    Ok(request)
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a UNIX time (civil-from-days, proleptic Gregorian).
fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let secs = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(actions: &[&str]) -> TokenUser {
        TokenUser {
            name: "u".into(),
            password: "p".into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn grants_only_the_actions_the_user_may_do() {
        let puller = user(&["pull"]);
        assert_eq!(
            granted("repository:tiny:pull,push", Some(&puller)).unwrap(),
            json!({"type": "repository", "name": "tiny", "actions": ["pull"]})
        );
        assert_eq!(
            granted("repository:tiny:pull", None).unwrap(),
            json!({"type": "repository", "name": "tiny", "actions": []})
        );
        assert!(granted("registry:catalog:*", Some(&puller)).is_none());
    }

    #[test]
    fn decodes_percent_escapes_in_scopes() {
        assert_eq!(
            percent_decode("repository%3Ateam%2Fapp%3Apull"),
            "repository:team/app:pull"
        );
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }

    #[test]
    fn formats_unix_times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
