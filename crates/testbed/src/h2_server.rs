//! A plaintext HTTP/2 (h2c, prior knowledge) server for tests of HTTP/2 clients such as the
//! kubelet's gRPC probes: each request is answered by a function of its path and body, with
//! the status, headers, body and trailers it returns, optionally stalling before the body.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the server answers one request with.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(&'static str, String)>,
    /// Waits this long before each frame of the body (after the headers went out).
    pub stall: Duration,
}

/// The requests the server saw: path, headers, body.
pub type Seen = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

/// Serves on `bind` (e.g. `127.0.0.1:0`) from a thread of its own; returns the port and the
/// requests seen.
pub fn serve_h2(
    bind: &str,
    answer: impl Fn(&str, &[u8]) -> Answer + Send + Sync + 'static,
) -> (u16, Seen) {
    let listener = std::net::TcpListener::bind(bind).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let seen: Seen = Arc::default();
    let seen_by_server = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((tcp, _)) = listener.accept().await {
                let (answer, seen) = (answer.clone(), seen_by_server.clone());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (answer, seen) = (answer.clone(), seen.clone());
                    async move {
                        let path = req.uri().path().to_owned();
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let body = body.map(|b| b.to_vec()).unwrap_or_default();
                        let a = answer(&path, &body);
                        seen.lock().expect("lock").push((path, headers, body));
                        Ok::<_, Infallible>(response(a))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
    });
    (port, seen)
}

fn response(
    a: Answer,
) -> Response<StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>>> {
    let mut frames: Vec<Frame<Bytes>> = Vec::new();
    if !a.body.is_empty() {
        frames.push(Frame::data(Bytes::from(a.body)));
    }
    if !a.trailers.is_empty() {
        let mut map = HeaderMap::new();
        for (name, value) in a.trailers {
            map.insert(name, value.parse().expect("value"));
        }
        frames.push(Frame::trailers(map));
    }
    let stall = a.stall;
    let frames = futures_util::stream::iter(frames).then(move |f| async move {
        tokio::time::sleep(stall).await;
        Ok::<_, Infallible>(f)
    });
    let mut response = Response::builder().status(a.status);
    for (name, value) in a.headers {
        response = response.header(name, value);
    }
    response.body(StreamBody::new(frames)).expect("response")
}
