use std::path::PathBuf;

/// Everything a [`Storage`](crate::Storage) operation can fail with.
///
/// Messages name keys and revisions, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create` of a key that exists (the API server's 409 AlreadyExists).
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update` or `delete` of a key that does not exist (404 NotFound).
    #[error("key {key:?} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A compare-and-swap whose expected `mod_revision` is stale (409 Conflict).
    #[error("key {key:?} has mod revision {actual}, not the expected {expected}")]
    Conflict {
        /// The key.
        key: String,
        /// The `mod_revision` the caller expected.
        expected: i64,
        /// The key's actual `mod_revision`.
        actual: i64,
    },
    /// A read or watch from a revision whose history was compacted away (410 Gone,
    /// "too old resource version").
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The compacted revision: the oldest one that may be asked for.
        oldest: i64,
    },
    /// A read at, or compaction of, a revision the store has not reached.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },
    /// An argument no backend accepts (an empty key, a negative revision).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Another process (or another open handle in this one) holds the store.
    #[error("store {} is in use by another process", path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The store was shut down while the operation was pending; a write reported this way may
    /// or may not have been applied.
    #[error("store is closed")]
    Closed,
    /// The backend failed (I/O, corruption, the database engine). A write that fails this way
    /// was rolled back; only if the failure was an I/O error while syncing its commit is its
    /// outcome unknown (as with any database: re-read after a restart).
    #[error("storage backend: {0}")]
    Backend(String),
}

impl StoreError {
    pub(crate) fn backend(context: &str, err: impl std::fmt::Display) -> Self {
        StoreError::Backend(format!("{context}: {err}"))
    }
}
