//! Reads: a small pool of read connections used from `spawn_blocking`; each read runs in one
//! read transaction, so it sees one WAL snapshot.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params_from_iter};

use super::schema::{open_reader, read_meta};
use super::{Ctx, Shared};
use crate::keys::prefix_end;
use crate::{GetResponse, KeyValue, ListOptions, ListResponse, Result, StoreError, WatchEvent};

#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Readers {
    pub fn new(path: PathBuf, max_idle: usize) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    fn take(&self) -> Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn put_back(&self, conn: Connection) {
        // A connection left inside a transaction (a failed read) is closed, not reused.
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// Runs `read` in one read transaction on a pooled connection, off the async threads.
pub(super) async fn read<T, F>(shared: &Arc<Shared>, read: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
{
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let mut conn = shared.readers.take()?;
        let result = conn
            .transaction()
            .ctx("begin read")
            .and_then(|tx| read(&tx));
        shared.readers.put_back(conn);
        result
    })
    .await
    .map_err(|err| StoreError::backend("read task", err))?
}

/// A key range: `lower` (inclusive, or exclusive for a continue token) up to `upper`
/// (exclusive; none for the empty prefix). Renders as SQL over a `key` column.
struct Range {
    lower: Vec<u8>,
    lower_exclusive: bool,
    upper: Option<Vec<u8>>,
}

impl Range {
    fn prefix(prefix: &str) -> Self {
        Range {
            lower: prefix.as_bytes().to_vec(),
            lower_exclusive: false,
            upper: prefix_end(prefix.as_bytes()),
        }
    }

    fn after(mut self, start_after: Option<&str>) -> Self {
        if let Some(after) = start_after
            && after.as_bytes() >= &self.lower[..]
        {
            self.lower = after.as_bytes().to_vec();
            self.lower_exclusive = true;
        }
        self
    }

    /// Appends its bounds to `params` and returns the condition naming them.
    fn sql(&self, params: &mut Vec<Value>) -> String {
        params.push(Value::Blob(self.lower.clone()));
        let op = if self.lower_exclusive { ">" } else { ">=" };
        let mut cond = format!("key {op} ?{}", params.len());
        if let Some(upper) = &self.upper {
            params.push(Value::Blob(upper.clone()));
            cond.push_str(&format!(" AND key < ?{}", params.len()));
        }
        cond
    }
}

fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(err))
    })
}

/// Reads `key, value, create_revision, mod_revision`.
fn kv_row(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get(0)?)?,
        value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

pub(super) fn get(tx: &Transaction<'_>, key: &str) -> Result<GetResponse> {
    let (revision, _) = read_meta(tx)?;
    let kv = tx
        .prepare_cached(
            "SELECT key, value, create_revision, mod_revision FROM objects WHERE key = ?1",
        )
        .and_then(|mut stmt| stmt.query_row([key.as_bytes()], kv_row).optional())
        .ctx("get")?;
    Ok(GetResponse { kv, revision })
}

pub(super) fn list(
    tx: &Transaction<'_>,
    prefix: &str,
    options: &ListOptions,
) -> Result<ListResponse> {
    let (current, compacted) = read_meta(tx)?;
    let at = options.revision.unwrap_or(current);
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            oldest: compacted,
        });
    }
    let limit = options.limit.filter(|&limit| limit > 0);
    let range = Range::prefix(prefix).after(options.start_after.as_deref());
    let mut params = Vec::new();
    let cond = range.sql(&mut params);
    let sql = if at == current {
        format!(
            "SELECT key, value, create_revision, mod_revision FROM objects \
             WHERE {cond} ORDER BY key LIMIT ?{}",
            params.len() + 1
        )
    } else {
        // The value at `at` of a key written since is the previous value of its first write
        // after `at` (none if that write created it); other keys have not changed since.
        params.push(Value::Integer(at));
        let at_param = params.len();
        format!(
            "WITH changed (key, revision) AS ( \
                 SELECT key, MIN(revision) FROM history \
                 WHERE revision > ?{at_param} AND {cond} GROUP BY key) \
             SELECT key, value, create_revision, mod_revision FROM objects \
                 WHERE {cond} AND key NOT IN (SELECT key FROM changed) \
             UNION ALL \
             SELECT h.key, h.prev_value, h.create_revision, h.prev_mod_revision \
                 FROM changed JOIN history AS h ON h.revision = changed.revision \
                 WHERE h.prev_mod_revision IS NOT NULL \
             ORDER BY 1 LIMIT ?{}",
            params.len() + 1
        )
    };
    // One extra row tells whether there are more.
    let sql_limit = limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1);
    params.push(Value::Integer(sql_limit));
    let mut items = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(params), kv_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("list")?;
    let more = limit.is_some_and(|limit| items.len() > limit);
    if let Some(limit) = limit {
        items.truncate(limit);
    }
    Ok(ListResponse {
        items,
        revision: at,
        more,
    })
}

/// One window of history for a watch.
#[derive(Debug)]
pub(super) struct HistoryPage {
    /// The events under the prefix, in revision order.
    pub events: Vec<WatchEvent>,
    /// Every revision up to this one was examined.
    pub scanned_to: i64,
    /// The store's revision at the snapshot.
    pub current: i64,
}

/// The events under `prefix` in `(after, after + window]`, from one snapshot.
pub(super) fn history(
    tx: &Transaction<'_>,
    prefix: &str,
    after: i64,
    window: i64,
) -> Result<HistoryPage> {
    let (current, compacted) = read_meta(tx)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            oldest: compacted,
        });
    }
    let scanned_to = after.saturating_add(window).min(current).max(after);
    if scanned_to == after {
        return Ok(HistoryPage {
            events: Vec::new(),
            scanned_to,
            current,
        });
    }
    let mut params = vec![Value::Integer(after), Value::Integer(scanned_to)];
    let cond = Range::prefix(prefix).sql(&mut params);
    let sql = format!(
        "SELECT revision, key, value, create_revision, prev_value, prev_mod_revision \
         FROM history WHERE revision > ?1 AND revision <= ?2 AND {cond} ORDER BY revision"
    );
    let events = tx
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(params), event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("read history")?;
    Ok(HistoryPage {
        events,
        scanned_to,
        current,
    })
}

fn event_row(row: &Row<'_>) -> rusqlite::Result<WatchEvent> {
    let revision: i64 = row.get(0)?;
    let key = key_string(row.get(1)?)?;
    let value: Option<Vec<u8>> = row.get(2)?;
    let create_revision: i64 = row.get(3)?;
    let prev_value: Option<Vec<u8>> = row.get(4)?;
    let prev_mod_revision: Option<i64> = row.get(5)?;
    let prev = match (prev_value, prev_mod_revision) {
        (Some(value), Some(mod_revision)) => Some(KeyValue {
            key: key.clone(),
            value: Bytes::from(value),
            create_revision,
            mod_revision,
        }),
        _ => None,
    };
    Ok(match (value, prev) {
        (Some(value), prev) => WatchEvent::Put {
            kv: KeyValue {
                key,
                value: Bytes::from(value),
                create_revision,
                mod_revision: revision,
            },
            prev,
        },
        (None, Some(prev)) => WatchEvent::Delete { prev, revision },
        (None, None) => {
            return Err(rusqlite::Error::InvalidColumnType(
                4,
                "prev_value".into(),
                rusqlite::types::Type::Null,
            ));
        }
    })
}
