//! Watches: live batches from the writer's broadcast channel, with catch-up from the `history`
//! table whenever the watcher is behind (it started at an older revision, lagged past the
//! channel's capacity, or saw a gap). No task runs per watch: all work happens in `next`.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::read::{HistoryPage, history, read};
use super::{Batch, Shared};
use crate::{BoxFuture, Result, WatchEvent, WatchSource};

/// Revisions read from history per catch-up step (bounds the memory a catch-up holds).
const WINDOW: i64 = 1000;

pub(super) struct SqliteWatch {
    shared: Arc<Shared>,
    prefix: String,
    rx: broadcast::Receiver<Batch>,
    /// Every revision up to this one has been examined (its events are yielded or buffered).
    last: i64,
    buffer: VecDeque<WatchEvent>,
    /// Whether history has been read up to a revision the live channel continues from.
    caught_up: bool,
    ended: bool,
}

impl std::fmt::Debug for SqliteWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWatch")
            .field("prefix", &self.prefix)
            .field("last", &self.last)
            .field("buffered", &self.buffer.len())
            .field("caught_up", &self.caught_up)
            .field("ended", &self.ended)
            .finish()
    }
}

impl SqliteWatch {
    /// Starts a watch. `rx` must have subscribed before this call, so that every write
    /// committed after the first history read below is in `rx`.
    pub async fn start(
        shared: Arc<Shared>,
        rx: broadcast::Receiver<Batch>,
        prefix: String,
        from_revision: i64,
    ) -> Result<Self> {
        let mut watch = SqliteWatch {
            shared,
            prefix,
            rx,
            last: from_revision,
            buffer: VecDeque::new(),
            caught_up: false,
            ended: false,
        };
        // The first window now, so that a compacted start fails here rather than in `next`.
        let page = watch.read_history().await?;
        watch.take_page(page);
        Ok(watch)
    }

    async fn read_history(&self) -> Result<HistoryPage> {
        let prefix = self.prefix.clone();
        let after = self.last;
        read(&self.shared, move |tx| history(tx, &prefix, after, WINDOW)).await
    }

    fn take_page(&mut self, page: HistoryPage) {
        self.last = page.scanned_to;
        self.buffer.extend(page.events);
        self.caught_up = page.scanned_to >= page.current;
    }

    async fn next_event(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            if !self.caught_up {
                // Cancel-safe: state changes only after the read completes.
                match self.read_history().await {
                    Ok(page) => self.take_page(page),
                    Err(err) => {
                        self.ended = true;
                        return Some(Err(err));
                    }
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(batch) => {
                    let Some(first) = batch.first() else { continue };
                    if first.revision() > self.last + 1 {
                        // A batch is missing (should not happen without a lag notice): refill
                        // from history rather than skip it.
                        self.caught_up = false;
                        continue;
                    }
                    for event in batch.iter() {
                        if event.revision() > self.last {
                            self.last = event.revision();
                            if event.key().starts_with(&self.prefix) {
                                self.buffer.push_back(event.clone());
                            }
                        }
                    }
                }
                // Batches were dropped for this receiver; history has them.
                Err(RecvError::Lagged(_)) => self.caught_up = false,
                // The store was closed: end after what is buffered.
                Err(RecvError::Closed) => self.ended = true,
            }
        }
    }
}

impl WatchSource for SqliteWatch {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<WatchEvent>>> {
        Box::pin(self.next_event())
    }

    fn revision(&self) -> i64 {
        match self.buffer.front() {
            Some(event) => event.revision() - 1,
            None => self.last,
        }
    }
}
