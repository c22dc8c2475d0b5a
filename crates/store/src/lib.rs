//! # nodelet-store
//!
//! Durable storage of API objects behind one [`Storage`] trait: a single increasing revision
//! (the resourceVersion), compare-and-swap writes and watches that resume from a revision.
//! Backends: embedded SQLite ([`SqliteStorage`], the default) and, later, etcd; each passes the
//! same [`conformance`] suite.
//!
//! ## The model
//!
//! A store maps string keys (`/registry/pods/<namespace>/<name>`) to opaque byte values. It has
//! one global **revision**, an `i64` that is `0` in an empty store and grows by one with every
//! successful write (create, update or delete), whatever the key. Each stored [`KeyValue`]
//! carries the revision of the write that created it (`create_revision`) and of its last write
//! (`mod_revision`, what Kubernetes calls the object's `resourceVersion`). This is the etcd v3
//! model, so an etcd backend maps each operation onto one etcd request: `create` and the
//! conditional `update`/`delete` are transactions comparing `mod_revision`, `list` is a range
//! request (optionally at a revision), `watch` is a watch with `prev_kv` from a start revision,
//! `compact` is compaction.
//!
//! ## What every backend guarantees
//!
//! - **Durability:** a write whose future resolved `Ok` survives a crash of the process and of
//!   the machine (for SQLite: WAL with `synchronous=FULL`, see [`SqliteStorage`]).
//! - **Linearizable writes:** writes are applied one at a time in revision order; a failed write
//!   ([`StoreError::AlreadyExists`], [`StoreError::NotFound`], [`StoreError::Conflict`]) changes
//!   nothing and consumes no revision. `update` and `delete` with `Some(expected_mod_revision)`
//!   are compare-and-swap: they succeed only if the key's `mod_revision` is still `expected`.
//! - **Read your writes:** a read that starts after a write resolved sees that write.
//! - **Consistent snapshots:** `get` and `list` read one snapshot and report its revision; a
//!   `list` can read at an older revision (for paging with continue tokens) back to the
//!   compacted revision.
//! - **Complete, ordered watches:** a [`Watch`] from revision `r` yields every change under its
//!   prefix with a revision greater than `r`, exactly once, in revision order, then live changes.
//!   A watcher that falls behind is never silently skipped ahead: it either catches up or ends
//!   with [`StoreError::Compacted`].
//! - **Compaction:** [`Storage::compact`] forgets history at or before a revision; reading or
//!   watching from before it fails with [`StoreError::Compacted`] (the API server's
//!   `410 Gone`, "too old resource version"). Current values are never compacted. Nothing
//!   compacts by itself: run [`compact_periodically`] (or call `compact`) or history grows
//!   without bound.
//!
//! **May not:** know Kubernetes semantics beyond keys, revisions and opaque values: validation,
//! admission, JSON, namespaces, label selectors and no-op update detection belong to
//! `nodelet-apiserver`. Values are never logged: [`KeyValue`]'s `Debug` shows only their length
//! (Secrets are stored here).

mod error;
mod keys;
mod sqlite;
mod watch;

pub mod conformance;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use bytes::Bytes;
pub use error::StoreError;
pub use sqlite::{SqliteOptions, SqliteStorage};
pub use watch::{Watch, WatchSource};

/// A boxed, sendable future: what [`Storage`] methods return, so that `dyn Storage` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One stored key and the value of its latest write.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/pods/default/web`.
    pub key: String,
    /// The opaque value.
    pub value: Bytes,
    /// The revision of the write that created this key (since it last did not exist).
    pub create_revision: i64,
    /// The revision of the last write to this key: the object's resourceVersion.
    pub mod_revision: i64,
}

impl fmt::Debug for KeyValue {
    /// Shows the value's length only: values may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// What [`Storage::get`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResponse {
    /// The key's value, or `None` if it does not exist.
    pub kv: Option<KeyValue>,
    /// The store's revision at the snapshot the read saw.
    pub revision: i64,
}

/// What a successful [`Storage::delete`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteResponse {
    /// The key's last value before the delete (its `mod_revision` is that of its last write).
    pub prev: KeyValue,
    /// The revision of the delete.
    pub revision: i64,
}

/// Options of [`Storage::list`]; the default lists everything under the prefix at the current
/// revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Start strictly after this key (the last key of the previous page: a continue token).
    /// Keys at or before it are skipped even if they sort before the prefix's end.
    pub start_after: Option<String>,
    /// Return at most this many items; `None` or `Some(0)` means no limit (as Kubernetes and
    /// etcd treat `limit=0`).
    pub limit: Option<usize>,
    /// Read at this revision instead of the current one (so every page of a paged list sees
    /// the same snapshot). It must be at least the compacted revision
    /// ([`StoreError::Compacted`]) and at most the current one ([`StoreError::FutureRevision`]).
    pub revision: Option<i64>,
}

/// What [`Storage::list`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResponse {
    /// The items, ordered by key (byte-wise, as Rust orders `str`).
    pub items: Vec<KeyValue>,
    /// The revision of the snapshot that was read (pass it as [`ListOptions::revision`] for
    /// the next page).
    pub revision: i64,
    /// Whether more items follow the last one returned (only ever true with a limit).
    pub more: bool,
}

/// One change, as a [`Watch`] yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A create (`prev` is `None`) or an update (`prev` is the value it replaced).
    Put {
        /// The new value; `kv.mod_revision` is the event's revision.
        kv: KeyValue,
        /// The value before this write, if the key existed.
        prev: Option<KeyValue>,
    },
    /// A delete.
    Delete {
        /// The value the key had when it was deleted (its `mod_revision` is that of its last
        /// write, not the delete).
        prev: KeyValue,
        /// The revision of the delete: the resourceVersion of the DELETED watch event.
        revision: i64,
    },
}

impl WatchEvent {
    /// The revision of the write this event reports.
    pub fn revision(&self) -> i64 {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv, .. } => &kv.key,
            WatchEvent::Delete { prev, .. } => &prev.key,
        }
    }
}

/// Durable storage of keys, opaque values and revisions. See the [crate docs](crate) for the
/// guarantees every implementation keeps; [`conformance`] checks them.
///
/// Methods return boxed futures so that `Arc<dyn Storage>` works. They are cancel-safe in the
/// sense that dropping a write's future never tears a write: the write is then either applied
/// whole or not at all (the caller just doesn't learn which; re-read to find out).
pub trait Storage: Send + Sync + fmt::Debug {
    /// Reads one key. Never fails for a missing key (`kv` is `None`).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<GetResponse>>;

    /// Creates `key`, returning the revision of the write (the new `create_revision` and
    /// `mod_revision`). Fails with [`StoreError::AlreadyExists`] if the key exists.
    fn create<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<i64>>;

    /// Replaces the value of an existing `key`, returning the revision of the write (its new
    /// `mod_revision`; `create_revision` stays). With `Some(expected_mod_revision)` it succeeds
    /// only if the key's `mod_revision` is that ([`StoreError::Conflict`] otherwise). Fails with
    /// [`StoreError::NotFound`] if the key does not exist.
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expected_mod_revision: Option<i64>,
    ) -> BoxFuture<'a, Result<i64>>;

    /// Deletes an existing `key`, returning its last value and the revision of the delete.
    /// Preconditions and errors as for [`update`](Storage::update).
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected_mod_revision: Option<i64>,
    ) -> BoxFuture<'a, Result<DeleteResponse>>;

    /// Lists the keys that start with `prefix` (byte-wise; `""` lists everything) in key order,
    /// from one snapshot. Note that `/registry/pods/default` also matches
    /// `/registry/pods/default2/x`: end a directory prefix with `/`.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        options: ListOptions,
    ) -> BoxFuture<'a, Result<ListResponse>>;

    /// Watches the keys that start with `prefix` for changes with a revision greater than
    /// `from_revision` (`0`: from the first write; the current revision: only future changes; a
    /// future revision is allowed and waits). Fails with [`StoreError::Compacted`] if
    /// `from_revision` is older than the compacted revision.
    fn watch<'a>(&'a self, prefix: &'a str, from_revision: i64) -> BoxFuture<'a, Result<Watch>>;

    /// Forgets the history at and before `revision`, returning the compacted revision
    /// afterwards. Compacting at or before the already compacted revision does nothing; past the
    /// current revision fails with [`StoreError::FutureRevision`].
    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<i64>>;

    /// The store's current revision (`0` when nothing was ever written).
    fn current_revision(&self) -> BoxFuture<'_, Result<i64>>;

    /// The compacted revision: the oldest `from_revision` a watch and the oldest revision a list
    /// may ask for (`0` when never compacted).
    fn compacted_revision(&self) -> BoxFuture<'_, Result<i64>>;
}

/// Compacts `store` every `interval` to the revision it had one interval earlier (what
/// kube-apiserver does with etcd), so history stays bounded while a watcher or a paged list
/// that is less than one interval behind can always resume.
///
/// Runs until the store reports [`StoreError::Closed`], which it returns; other errors are
/// retried at the next tick. Spawn it, and abort the task at shutdown (it holds the store).
pub async fn compact_periodically<S: Storage + ?Sized>(
    store: &S,
    interval: Duration,
) -> StoreError {
    let mut previous: Option<i64> = None;
    loop {
        tokio::time::sleep(interval).await;
        let now = match store.current_revision().await {
            Ok(now) => now,
            Err(StoreError::Closed) => return StoreError::Closed,
            Err(_) => continue,
        };
        if let Some(previous) = previous
            && let Err(StoreError::Closed) = store.compact(previous).await
        {
            return StoreError::Closed;
        }
        previous = Some(now);
    }
}
