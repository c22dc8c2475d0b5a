//! Watches: newline-delimited `{"type","object"}` JSON on a streaming (chunked) response.
//!
//! - `resourceVersion` unset or `"0"`: every current object first (ADDED), then changes.
//!   `N`: only changes after `N`. `sendInitialEvents=true`: the current objects first, then a
//!   BOOKMARK annotated `k8s.io/initial-events-end` (the streaming-list protocol).
//! - Selectors filter as upstream does: an object that stops matching is DELETED for this
//!   watcher, one that starts matching is ADDED.
//! - From a compacted revision the stream carries one ERROR event with a 410 Expired Status
//!   (`too old resource version: X (Y)`) and ends; the client relists.
//! - `allowWatchBookmarks=true`: a BOOKMARK with the watch's progress every bookmark interval.
//! - `timeoutSeconds` ends the stream; otherwise it stays open, silent while idle, until the
//!   client goes away (kubectl 1.20 exits `-w` when the stream ends).

use std::time::Duration;

use bytes::Bytes;
use nodelet_store::{ListOptions, StoreError, WatchEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::errors::{ApiError, ApiResult};
use crate::resources::generic::{Resources, parse_rv, storage_type, to_client};
use crate::resources::{ResourceType, meta};
use crate::selectors::Selection;
use crate::table::{self, IncludeObject};

/// What a watch request asked for.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    /// `resourceVersion` as sent.
    pub resource_version: String,
    /// Selectors.
    pub selection: Selection,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `Some` when the client asked for Table objects.
    pub table: Option<IncludeObject>,
}

/// The stream of one watch: lines of JSON.
pub type Lines = mpsc::Receiver<Bytes>;

fn decode(bytes: &[u8], revision: i64) -> Option<Value> {
    let mut obj: Value = serde_json::from_slice(bytes).ok()?;
    meta::set_meta(&mut obj, "resourceVersion", revision.to_string());
    Some(obj)
}

struct Encoder {
    rt: &'static ResourceType,
    table: Option<IncludeObject>,
    sent_columns: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, stored: Value) -> Bytes {
        let obj = to_client(self.rt, stored);
        let object = match self.table {
            None => obj,
            Some(include) => {
                let mut t = table::table(self.rt, std::slice::from_ref(&obj), None, None, include);
                if self.sent_columns {
                    t["columnDefinitions"] = json!([]);
                }
                self.sent_columns = true;
                t
            }
        };
        encode(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, revision: i64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata});
        encode(&json!({"type": "BOOKMARK", "object": object}))
    }
}

fn encode(v: &Value) -> Bytes {
    let mut line = serde_json::to_vec(v).expect("JSON values serialize");
    line.push(b'\n');
    Bytes::from(line)
}

fn error_line(err: &ApiError) -> Bytes {
    encode(&json!({"type": "ERROR", "object": &*err.status}))
}

/// Starts a watch of `rt` in `ns` (`None`: all namespaces, or cluster-scoped). Errors in the
/// request itself (a bad resourceVersion) come back as `Err`; everything later is in-stream.
pub async fn start(
    res: &Resources,
    rt: &'static ResourceType,
    ns: Option<String>,
    params: WatchParams,
    bookmark_interval: Duration,
) -> ApiResult<Lines> {
    let requested = parse_rv(&params.resource_version)?;
    let srt = storage_type(rt);
    let prefix = srt.prefix(ns.as_deref());
    let store = res.store().clone();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut enc = Encoder {
        rt,
        table: params.table,
        sent_columns: false,
    };
    let initial = matches!(
        (requested, params.send_initial_events),
        (_, Some(true)) | (None | Some(0), None)
    );
    let mut initial_lines = Vec::new();
    let from = if initial {
        let list = store
            .list(&prefix, ListOptions::default())
            .await
            .map_err(ApiError::from_store)?;
        for kv in list.items {
            if let Some(obj) = decode(&kv.value, kv.mod_revision)
                && params.selection.matches(&obj)
            {
                initial_lines.push(enc.line("ADDED", obj));
            }
        }
        if params.send_initial_events == Some(true) {
            initial_lines.push(enc.bookmark(list.revision, true));
        }
        list.revision
    } else {
        requested.unwrap_or(0)
    };
    let watch = store.watch(&prefix, from).await;
    tokio::spawn(async move {
        for line in initial_lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let mut watch = match watch {
            Ok(w) => w,
            Err(StoreError::Compacted { requested, oldest }) => {
                let _ = tx
                    .send(error_line(&ApiError::too_old(requested, oldest)))
                    .await;
                return;
            }
            Err(other) => {
                let _ = tx.send(error_line(&ApiError::from_store(other))).await;
                return;
            }
        };
        let deadline = params.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut bookmark = tokio::time::interval_at(
            tokio::time::Instant::now() + bookmark_interval,
            bookmark_interval,
        );
        loop {
            let line = tokio::select! {
                _ = tx.closed() => return,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
                _ = bookmark.tick(), if params.bookmarks => {
                    Some((enc.bookmark(watch.revision(), false), false))
                }
                event = watch.next() => match event {
                    None => return,
                    Some(Err(StoreError::Compacted { requested, oldest })) => {
                        Some((error_line(&ApiError::too_old(requested, oldest)), true))
                    }
                    Some(Err(other)) => Some((error_line(&ApiError::from_store(other)), true)),
                    Some(Ok(event)) => translate(&mut enc, &params.selection, event).map(|l| (l, false)),
                },
            };
            if let Some((line, last)) = line
                && (tx.send(line).await.is_err() || last)
            {
                return;
            }
        }
    });
    Ok(rx)
}

/// One store event as this watcher sees it.
fn translate(enc: &mut Encoder, sel: &Selection, event: WatchEvent) -> Option<Bytes> {
    match event {
        WatchEvent::Put { kv, prev } => {
            let new = decode(&kv.value, kv.mod_revision)?;
            let new_match = sel.matches(&new);
            let old_match = prev
                .as_ref()
                .and_then(|p| decode(&p.value, p.mod_revision))
                .map(|old| sel.matches(&old));
            match (old_match, new_match) {
                (None, true) | (Some(false), true) => Some(enc.line("ADDED", new)),
                (Some(true), true) => Some(enc.line("MODIFIED", new)),
                (Some(true), false) => Some(enc.line("DELETED", new)),
                _ => None,
            }
        }
        WatchEvent::Delete { prev, revision } => {
            let old = decode(&prev.value, revision)?;
            sel.matches(&old).then(|| enc.line("DELETED", old))
        }
    }
}
