//! The writer thread: the only owner of the writing connection.
//!
//! It takes every command queued since its last commit (up to `max_batch`), applies them in
//! order inside one transaction, commits once (one WAL fsync for the whole group), and only then
//! publishes the batch's events to watchers and answers the callers. A failed commit rolls the
//! whole group back and fails every write in it, so no caller is told "ok" for a write that is
//! not durable, and no revision is handed out twice.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::{broadcast, oneshot};

use super::{Batch, Shared};
use crate::{DeleteResponse, KeyValue, Result, StoreError, WatchEvent};

pub(super) enum Command {
    Write(WriteOp, oneshot::Sender<Result<WriteOutcome>>),
    Compact(i64, oneshot::Sender<Result<i64>>),
}

pub(super) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Option<i64>,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
}

pub(super) enum WriteOutcome {
    Put(i64),
    Deleted(DeleteResponse),
}

type Reply = oneshot::Sender<Result<WriteOutcome>>;

pub(super) struct Writer {
    pub conn: Connection,
    pub commands: mpsc::Receiver<Command>,
    pub events: broadcast::Sender<Batch>,
    pub shared: Arc<Shared>,
    pub revision: i64,
    pub compacted: i64,
    pub max_batch: usize,
    /// Held (flock'ed) for as long as this thread runs: one writer per database.
    pub lock: File,
}

impl Writer {
    pub fn run(mut self) {
        while let Ok(first) = self.commands.recv() {
            let mut writes = Vec::new();
            let mut compactions = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next {
                match command {
                    Command::Write(op, reply) => writes.push((op, reply)),
                    Command::Compact(revision, reply) => compactions.push((revision, reply)),
                }
                next = if writes.len() + compactions.len() < self.max_batch {
                    self.commands.try_recv().ok()
                } else {
                    None
                };
            }
            if !writes.is_empty() {
                self.write_batch(writes);
            }
            for (revision, reply) in compactions {
                let _ = reply.send(self.compact(revision));
            }
        }
        // Close the database before releasing the lock that makes this the only writer.
        drop(self.conn);
        drop(self.lock);
    }

    fn write_batch(&mut self, writes: Vec<(WriteOp, Reply)>) {
        let (ops, replies): (Vec<WriteOp>, Vec<Reply>) = writes.into_iter().unzip();
        match apply_all(&mut self.conn, &ops, self.revision) {
            Ok(applied) => self.publish(applied, replies),
            Err(_) if ops.len() > 1 => {
                // Nothing was applied. Retry one write per transaction, so that one write the
                // engine rejects does not fail the others.
                for (op, reply) in ops.iter().zip(replies) {
                    match apply_all(&mut self.conn, std::slice::from_ref(op), self.revision) {
                        Ok(applied) => self.publish(applied, vec![reply]),
                        Err(err) => {
                            let _ = reply.send(Err(StoreError::backend("write", err)));
                        }
                    }
                }
            }
            Err(err) => {
                let err = StoreError::backend("write", err);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// After a commit: the new revision, then the events, then the answers.
    fn publish(&mut self, applied: Applied, replies: Vec<Reply>) {
        let Applied {
            results,
            events,
            revision,
        } = applied;
        if revision != self.revision {
            self.revision = revision;
            self.shared.revision.store(revision, Ordering::SeqCst);
            // No receivers is not an error: nobody is watching.
            let _ = self.events.send(Arc::from(events));
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    fn compact(&mut self, revision: i64) -> Result<i64> {
        if revision > self.revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        if revision <= self.compacted {
            return Ok(self.compacted);
        }
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM history WHERE revision <= ?1", [revision])?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compacted'",
                [revision],
            )?;
            tx.commit()
        };
        run(&mut self.conn).map_err(|err| StoreError::backend("compact", err))?;
        self.compacted = revision;
        self.shared.compacted.store(revision, Ordering::SeqCst);
        Ok(revision)
    }
}

/// What one committed transaction did.
struct Applied {
    /// Each op's result, in order.
    results: Vec<Result<WriteOutcome>>,
    /// The events of the successful ops, in revision order.
    events: Vec<WatchEvent>,
    /// The revision after the transaction.
    revision: i64,
}

/// Applies `ops` in one transaction starting after revision `base`; an `Err` means nothing was
/// applied.
fn apply_all(conn: &mut Connection, ops: &[WriteOp], base: i64) -> rusqlite::Result<Applied> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut revision = base;
    let mut results = Vec::with_capacity(ops.len());
    let mut events = Vec::with_capacity(ops.len());
    for op in ops {
        match apply(&tx, op, revision + 1)? {
            Ok((outcome, event)) => {
                revision += 1;
                results.push(Ok(outcome));
                events.push(event);
            }
            Err(err) => results.push(Err(err)),
        }
    }
    if revision != base {
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
            .execute([revision])?;
        tx.commit()?;
    }
    // else: nothing was written; dropping `tx` rolls back without touching the disk.
    Ok(Applied {
        results,
        events,
        revision,
    })
}

type OpResult = Result<(WriteOutcome, WatchEvent)>;

fn apply(tx: &Transaction<'_>, op: &WriteOp, revision: i64) -> rusqlite::Result<OpResult> {
    match op {
        WriteOp::Create { key, value } => {
            let (key, value) = (key.clone(), value.clone());
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO objects (key, value, create_revision, mod_revision) \
                     VALUES (?1, ?2, ?3, ?3) ON CONFLICT (key) DO NOTHING",
                )?
                .execute(params![key.as_bytes(), &value[..], revision])?;
            if inserted == 0 {
                return Ok(Err(StoreError::AlreadyExists { key }));
            }
            insert_history(tx, revision, &key, Some(&value), revision, None)?;
            let kv = KeyValue {
                key,
                value,
                create_revision: revision,
                mod_revision: revision,
            };
            Ok(Ok((
                WriteOutcome::Put(revision),
                WatchEvent::Put { kv, prev: None },
            )))
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let value = value.clone();
            let prev = match current(tx, key.clone(), *expected)? {
                Ok(prev) => prev,
                Err(err) => return Ok(Err(err)),
            };
            tx.prepare_cached("UPDATE objects SET value = ?2, mod_revision = ?3 WHERE key = ?1")?
                .execute(params![prev.key.as_bytes(), &value[..], revision])?;
            insert_history(
                tx,
                revision,
                &prev.key,
                Some(&value),
                prev.create_revision,
                Some(&prev),
            )?;
            let kv = KeyValue {
                key: prev.key.clone(),
                value,
                create_revision: prev.create_revision,
                mod_revision: revision,
            };
            Ok(Ok((
                WriteOutcome::Put(revision),
                WatchEvent::Put {
                    kv,
                    prev: Some(prev),
                },
            )))
        }
        WriteOp::Delete { key, expected } => {
            let prev = match current(tx, key.clone(), *expected)? {
                Ok(prev) => prev,
                Err(err) => return Ok(Err(err)),
            };
            tx.prepare_cached("DELETE FROM objects WHERE key = ?1")?
                .execute([prev.key.as_bytes()])?;
            insert_history(
                tx,
                revision,
                &prev.key,
                None,
                prev.create_revision,
                Some(&prev),
            )?;
            let response = DeleteResponse {
                prev: prev.clone(),
                revision,
            };
            Ok(Ok((
                WriteOutcome::Deleted(response),
                WatchEvent::Delete { prev, revision },
            )))
        }
    }
}

/// The key's current value, checked against the caller's precondition.
fn current(
    tx: &Transaction<'_>,
    key: String,
    expected: Option<i64>,
) -> rusqlite::Result<Result<KeyValue>> {
    let found = tx
        .prepare_cached("SELECT value, create_revision, mod_revision FROM objects WHERE key = ?1")?
        .query_row([key.as_bytes()], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some((value, create_revision, mod_revision)) = found else {
        return Ok(Err(StoreError::NotFound { key }));
    };
    if let Some(expected) = expected
        && expected != mod_revision
    {
        return Ok(Err(StoreError::Conflict {
            key,
            expected,
            actual: mod_revision,
        }));
    }
    Ok(Ok(KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    }))
}

fn insert_history(
    tx: &Transaction<'_>,
    revision: i64,
    key: &str,
    value: Option<&[u8]>,
    create_revision: i64,
    prev: Option<&KeyValue>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO history (revision, key, value, create_revision, prev_value, prev_mod_revision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        revision,
        key.as_bytes(),
        value,
        create_revision,
        prev.map(|p| &p.value[..]),
        prev.map(|p| p.mod_revision),
    ])?;
    Ok(())
}
