use std::fmt;

use crate::{BoxFuture, Result, WatchEvent};

/// A backend's side of a [`Watch`].
///
/// Implementations must yield every change under the watched prefix after the start revision,
/// once each, in revision order; a source that cannot (its history was compacted while it lagged
/// behind) yields one `Err` and then `None`.
pub trait WatchSource: Send + fmt::Debug {
    /// The next event; `None` when the watch has ended (the store was closed, or after an
    /// error). Must be cancel-safe: dropping the future before it resolves loses no event.
    fn next(&mut self) -> BoxFuture<'_, Option<Result<WatchEvent>>>;

    /// Progress: every change under the prefix with a revision at or below this one has been
    /// yielded. Moves past revisions of other prefixes as they are seen, so it suits bookmarks.
    fn revision(&self) -> i64;
}

/// A stream of [`WatchEvent`]s under one prefix, from [`Storage::watch`](crate::Storage::watch).
///
/// Use it in a loop (`while let Some(event) = watch.next().await`) or in `tokio::select!`
/// (`next` is cancel-safe). Dropping it ends the watch.
#[derive(Debug)]
pub struct Watch {
    source: Box<dyn WatchSource>,
}

impl Watch {
    /// Wraps a backend's source.
    pub fn new(source: impl WatchSource + 'static) -> Self {
        Watch {
            source: Box::new(source),
        }
    }

    /// The next event, in revision order. `Some(Err(_))` ends the watch (typically
    /// [`StoreError::Compacted`](crate::StoreError::Compacted): restart from a fresh list);
    /// `None` means it has ended. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        self.source.next().await
    }

    /// Every change under the prefix up to this revision has been yielded (see
    /// [`WatchSource::revision`]).
    pub fn revision(&self) -> i64 {
        self.source.revision()
    }
}
