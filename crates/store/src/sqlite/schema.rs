//! Opening connections and the schema.
//!
//! Three tables:
//! - `objects`: the current value of every existing key, keyed by key (a BLOB, so that it
//!   sorts byte-wise and prefix ranges are plain `>=`/`<` comparisons).
//! - `history`: one row per write, keyed by its revision: the new value (NULL for a delete) and
//!   the value it replaced. Watches catch up from it and lists read older revisions through it
//!   (the value of a key at revision `r` is the `prev_value` of its first write after `r`, or its
//!   current value if it has none). Compaction deletes its old rows.
//! - `meta`: the current and the compacted revision.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::Ctx;
use crate::{Result, StoreError};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE objects (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE history (
    revision INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB,
    create_revision INTEGER NOT NULL,
    prev_value BLOB,
    prev_mod_revision INTEGER
);
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the writer learns when it opens the database.
#[derive(Debug)]
pub(super) struct Opened {
    pub conn: Connection,
    pub revision: i64,
    pub compacted: i64,
}

/// Opens (creating if needed) the database for writing: WAL, `synchronous=FULL`, the schema.
pub(super) fn open_writer(path: &Path) -> Result<Opened> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).ctx("open database")?;
    conn.busy_timeout(BUSY_TIMEOUT).ctx("set busy timeout")?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .ctx("enable WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "database refused WAL mode (journal_mode is {mode})"
        )));
    }
    // In WAL mode, FULL syncs the WAL at every commit, so a commit survives power loss;
    // NORMAL would sync only at checkpoints and could lose acknowledged writes.
    conn.pragma_update(None, "synchronous", "FULL")
        .ctx("set synchronous=FULL")?;
    // Truncate the WAL back to this size after checkpoints (it keeps its peak size otherwise).
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)
        .ctx("set journal_size_limit")?;
    conn.set_prepared_statement_cache_capacity(32);

    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .ctx("begin")?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .ctx("read schema version")?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA).ctx("create schema")?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .ctx("set schema version")?;
        }
        SCHEMA_VERSION => {}
        other => {
            return Err(StoreError::Backend(format!(
                "database schema version {other} is not supported (this build knows {SCHEMA_VERSION})"
            )));
        }
    }
    let (revision, compacted) = read_meta(&tx)?;
    let newest: Option<i64> = tx
        .query_row("SELECT MAX(revision) FROM history", [], |row| row.get(0))
        .optional()
        .ctx("read newest history revision")?
        .flatten();
    if newest.is_some_and(|newest| newest > revision) || compacted > revision {
        return Err(StoreError::Backend(format!(
            "database is inconsistent: revision {revision}, compacted {compacted}, newest history {newest:?}"
        )));
    }
    tx.commit().ctx("commit schema")?;
    Ok(Opened {
        conn,
        revision,
        compacted,
    })
}

/// Opens a connection for reads only (the writer has created the database already).
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx("open reader")?;
    conn.busy_timeout(BUSY_TIMEOUT).ctx("set busy timeout")?;
    conn.pragma_update(None, "query_only", true)
        .ctx("set query_only")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// `(revision, compacted)` as of the connection's current snapshot.
pub(super) fn read_meta(conn: &Connection) -> Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT (SELECT value FROM meta WHERE name = 'revision'), \
                (SELECT value FROM meta WHERE name = 'compacted')",
    )
    .and_then(|mut stmt| stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
    .ctx("read revisions")
}
