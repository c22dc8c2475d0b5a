//! The SQLite backend.

mod read;
mod schema;
mod watch;
mod writer;

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};

use self::read::{Readers, read};
use self::watch::SqliteWatch;
use self::writer::{Command, WriteOp, WriteOutcome, Writer};
use crate::keys::{check_key, check_revision};
use crate::{
    BoxFuture, DeleteResponse, GetResponse, ListOptions, ListResponse, Result, Storage, StoreError,
    Watch, WatchEvent,
};

/// The events of one committed transaction, in revision order.
type Batch = Arc<[WatchEvent]>;

/// Maps engine errors to [`StoreError::Backend`] with what was being done.
trait Ctx<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|err| StoreError::backend(context, err))
    }
}

/// State shared by the handle, the writer thread, reads and watches.
#[derive(Debug)]
struct Shared {
    readers: Readers,
    /// The last committed revision (stored after the commit, before callers are answered).
    revision: AtomicI64,
    compacted: AtomicI64,
}

/// Tuning of [`SqliteStorage`]; the defaults suit a single node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The most writes committed together in one transaction (one fsync).
    pub max_batch: usize,
    /// How many committed transactions the live watch channel holds for a slow watcher before
    /// that watcher falls back to reading history.
    pub watch_buffer: usize,
    /// Idle read connections kept open.
    pub max_idle_readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 512,
            watch_buffer: 1024,
            max_idle_readers: 4,
        }
    }
}

/// The SQLite [`Storage`] backend: one database file (plus its `-wal` and `-shm` files and a
/// `.lock` file beside it), all created mode 0600.
///
/// - **Writes** go to one writer thread that owns the writing connection. It commits every
///   write queued while the previous commit was syncing in one transaction (group commit), and
///   answers only after the commit.
/// - **Durability:** WAL mode with `synchronous=FULL`: every commit fsyncs the WAL before it
///   is acknowledged, so an acknowledged write survives a crash or power loss (`NORMAL` would
///   only sync at checkpoints and could lose the last acknowledged writes on power loss). Group
///   commit keeps the cost at one fsync per batch, not per write.
/// - **Reads** run on a few pooled read connections via `spawn_blocking`; WAL lets them read a
///   consistent snapshot while the writer commits. A `list` can read at any revision back to
///   the compacted one.
/// - **Watches** follow the writer's broadcast of committed batches and read the history table
///   when they start behind or lag (see [`Watch`]).
/// - One process at a time: the `.lock` file is flock'ed while the store is open
///   ([`StoreError::Locked`] otherwise).
///
/// Needs a Tokio runtime for its async methods; opening does not. Clones share one store;
/// dropping the last clone waits for the writer to finish its current batch and closes the
/// database (watches then end).
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    commands: Option<mpsc::Sender<Command>>,
    events: broadcast::Sender<Batch>,
    writer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the command channel stops the writer after its current batch.
        self.commands.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.inner.path)
            .field(
                "revision",
                &self.inner.shared.revision.load(Ordering::SeqCst),
            )
            .field(
                "compacted",
                &self.inner.shared.compacted.load(Ordering::SeqCst),
            )
            .finish()
    }
}

fn io_error(context: &str, path: &Path, err: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{context} {}: {err}", path.display()))
}

/// `path` with `suffix` appended to its file name (`store.db` → `store.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl SqliteStorage {
    /// Opens the database at `path` (for example `<data-dir>/store.db`), creating it and its
    /// directory (mode 0700) if missing, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
            && !dir.exists()
        {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|err| io_error("create directory", dir, err))?;
        }
        let lock_path = sibling(&path, ".lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|err| io_error("open lock file", &lock_path, err))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
            Err(fs::TryLockError::Error(err)) => {
                return Err(io_error("lock", &lock_path, err));
            }
        }
        // Create the database file ourselves so it is 0600 from the start; SQLite gives the
        // -wal and -shm files the database file's mode. Tighten files of an older store too.
        // (Never keep a descriptor of the database open: closing it would drop SQLite's locks.)
        if !path.exists() {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|err| io_error("create database", &path, err))?;
        }
        for file in [
            lock_path.clone(),
            path.clone(),
            sibling(&path, "-wal"),
            sibling(&path, "-shm"),
        ] {
            match fs::set_permissions(&file, Permissions::from_mode(0o600)) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error("chmod", &file, err)),
            }
        }

        let opened = schema::open_writer(&path)?;
        let shared = Arc::new(Shared {
            readers: Readers::new(path.clone(), options.max_idle_readers.max(1)),
            revision: AtomicI64::new(opened.revision),
            compacted: AtomicI64::new(opened.compacted),
        });
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        let (commands, commands_rx) = mpsc::channel();
        let writer = Writer {
            conn: opened.conn,
            commands: commands_rx,
            events: events.clone(),
            shared: Arc::clone(&shared),
            revision: opened.revision,
            compacted: opened.compacted,
            max_batch: options.max_batch.max(1),
            lock,
        };
        let writer = std::thread::Builder::new()
            .name("nodelet-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|err| io_error("start writer thread for", &path, err))?;
        Ok(SqliteStorage {
            inner: Arc::new(Inner {
                path,
                commands: Some(commands),
                events,
                writer: Some(writer),
                shared,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(Command::Write(op, reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn put(&self, op: WriteOp) -> Result<i64> {
        match self.write(op).await? {
            WriteOutcome::Put(revision) => Ok(revision),
            WriteOutcome::Deleted(_) => Err(StoreError::Backend(
                "writer answered a put with a delete".into(),
            )),
        }
    }
}

impl Storage for SqliteStorage {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<GetResponse>> {
        Box::pin(async move {
            check_key(key)?;
            let key = key.to_owned();
            read(&self.inner.shared, move |tx| read::get(tx, &key)).await
        })
    }

    fn create<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            check_key(key)?;
            self.put(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await
        })
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expected_mod_revision: Option<i64>,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            check_key(key)?;
            self.put(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected: expected_mod_revision,
            })
            .await
        })
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected_mod_revision: Option<i64>,
    ) -> BoxFuture<'a, Result<DeleteResponse>> {
        Box::pin(async move {
            check_key(key)?;
            let op = WriteOp::Delete {
                key: key.to_owned(),
                expected: expected_mod_revision,
            };
            match self.write(op).await? {
                WriteOutcome::Deleted(response) => Ok(response),
                WriteOutcome::Put(_) => Err(StoreError::Backend(
                    "writer answered a delete with a put".into(),
                )),
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        options: ListOptions,
    ) -> BoxFuture<'a, Result<ListResponse>> {
        Box::pin(async move {
            if let Some(revision) = options.revision {
                check_revision("list revision", revision)?;
            }
            let prefix = prefix.to_owned();
            read(&self.inner.shared, move |tx| {
                read::list(tx, &prefix, &options)
            })
            .await
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, from_revision: i64) -> BoxFuture<'a, Result<Watch>> {
        Box::pin(async move {
            check_revision("watch revision", from_revision)?;
            // Subscribe before reading history: nothing committed in between is missed.
            let rx = self.inner.events.subscribe();
            let source = SqliteWatch::start(
                Arc::clone(&self.inner.shared),
                rx,
                prefix.to_owned(),
                from_revision,
            )
            .await?;
            Ok(Watch::new(source))
        })
    }

    fn compact(&self, revision: i64) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            check_revision("compact revision", revision)?;
            let (reply, answer) = oneshot::channel();
            self.inner
                .commands
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(Command::Compact(revision, reply))
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move { Ok(self.inner.shared.revision.load(Ordering::SeqCst)) })
    }

    fn compacted_revision(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move { Ok(self.inner.shared.compacted.load(Ordering::SeqCst)) })
    }
}
