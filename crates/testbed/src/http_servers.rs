//! Tiny HTTP and HTTPS servers for tests of clients (probes, hooks): one thread accepting
//! connections one at a time, each answered once and closed, and the request heads kept.
//!
//! The HTTPS server presents a fresh self-signed certificate for `localhost`, which no client
//! could verify (and which is never valid for the IP address a client dials): what the
//! kubelet's probes and hooks must accept without verification.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The request heads a server saw, in the order it saw them.
pub type Requests = Arc<Mutex<Vec<String>>>;

/// Reads a request head: up to and with the blank line that ends it, or what came before
/// the stream ended.
pub fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Accepts connections on `bind` (e.g. `127.0.0.1:0`) and gives each to `handle` with the
/// requests seen so far; returns the port and the requests. Stops at the first failed accept.
pub fn serve_tcp(
    bind: &str,
    handle: impl Fn(TcpStream, &Requests) + Send + 'static,
) -> (u16, Requests) {
    let listener = TcpListener::bind(bind).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let requests = Requests::default();
    let seen = requests.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            handle(tcp, &seen);
        }
    });
    (port, requests)
}

/// A plain HTTP server on `bind`: records each request head and writes `respond(head)`.
pub fn serve_http(
    bind: &str,
    respond: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> (u16, Requests) {
    serve_tcp(bind, move |mut tcp, requests| {
        let head = read_head(&mut tcp);
        requests.lock().expect("lock").push(head.clone());
        let _ = tcp.write_all(&respond(&head));
    })
}

/// An HTTPS server on `bind` with a fresh self-signed certificate for `localhost`: records
/// each request head, writes `respond(head)` and closes the TLS session.
pub fn serve_https(
    bind: &str,
    respond: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> (u16, Requests) {
    let config = self_signed_server_config();
    serve_tcp(bind, move |tcp, requests| {
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let head = read_head(&mut tls);
        requests.lock().expect("lock").push(head.clone());
        let _ = tls.write_all(&respond(&head));
        tls.conn.send_close_notify();
        let _ = tls.flush();
    })
}

/// A rustls server configuration presenting a fresh self-signed certificate for `localhost`.
pub fn self_signed_server_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    Arc::new(config)
}
