//! The conformance suite and SQLite-specific behaviour of `SqliteStorage`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nodelet_store::conformance::{Factory, block_on};
use nodelet_store::{Bytes, SqliteOptions, SqliteStorage, Storage, StoreError, WatchEvent};
use tempfile::TempDir;

struct Sqlite;

fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("store.db")
}

/// A store whose watch channels hold one batch, so a watcher falls behind at once.
fn with_one_batch_watch_buffer(dir: &TempDir) -> SqliteStorage {
    let options = SqliteOptions {
        watch_buffer: 1,
        ..SqliteOptions::default()
    };
    SqliteStorage::open_with(db(dir), options).expect("open")
}

impl Factory for Sqlite {
    type Store = SqliteStorage;
    type Location = TempDir;

    async fn create(&self) -> (SqliteStorage, TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStorage::open(db(&dir)).expect("open");
        (store, dir)
    }

    async fn reopen(&self, dir: &TempDir) -> SqliteStorage {
        SqliteStorage::open(db(dir)).expect("reopen")
    }
}

nodelet_store::conformance_tests!(Sqlite);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_are_private() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("server");
        let path = data.join("store.db");
        let store = SqliteStorage::open(&path).expect("open");
        store
            .create("/a", Bytes::from_static(b"x"))
            .await
            .expect("create");
        assert_eq!(mode(&data), 0o700, "created data dir");
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        drop(store);
        // An existing store with loose modes is tightened on open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let _store = SqliteStorage::open(&path).expect("reopen");
        assert_eq!(mode(&path), 0o600);
    });
}

#[test]
fn one_open_handle_at_a_time() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = db(&dir);
        let store = SqliteStorage::open(&path).expect("open");
        let clone = store.clone();
        match SqliteStorage::open(&path) {
            Err(StoreError::Locked { path: locked }) => assert_eq!(locked, path),
            other => panic!("second open: expected Locked, got {other:?}"),
        }
        drop(store);
        // A clone keeps it open.
        assert!(matches!(
            SqliteStorage::open(&path),
            Err(StoreError::Locked { .. })
        ));
        drop(clone);
        SqliteStorage::open(&path).expect("open after the last handle is dropped");
    });
}

/// A watcher whose channel holds only one batch still sees everything, through history.
#[test]
fn lagging_watcher_catches_up_from_history() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = with_one_batch_watch_buffer(&dir);
        let mut watch = store.watch("/k/", 0).await.expect("watch");
        const N: i64 = 2500;
        for i in 0..N {
            let key = format!("/k/{}", i % 7);
            if i < 7 {
                store
                    .create(&key, Bytes::from_static(b"v"))
                    .await
                    .expect("create");
            } else {
                store
                    .update(&key, Bytes::from(i.to_string()), None)
                    .await
                    .expect("update");
            }
            if i % 500 == 0 {
                // Read a little in between so the watcher is sometimes live, sometimes behind.
                let event = watch.next().await.expect("event").expect("ok");
                assert_eq!(event.revision(), i / 500 + 1);
            }
        }
        let mut expected = N / 500 + 1;
        while expected <= N {
            let event = watch.next().await.expect("event").expect("ok");
            assert_eq!(event.revision(), expected);
            expected += 1;
        }
    });
}

/// A watcher that falls behind a compaction ends with `Compacted` instead of skipping events.
#[test]
fn lagging_watcher_behind_compaction_fails() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = with_one_batch_watch_buffer(&dir);
        let mut watch = store.watch("", 0).await.expect("watch");
        for i in 0..3000 {
            store
                .create(&format!("/k/{i}"), Bytes::from_static(b"v"))
                .await
                .expect("create");
        }
        // The watcher lagged (its channel holds one batch) and must read history from 0.
        store.compact(2000).await.expect("compact");
        let mut received = 0;
        let err = loop {
            match watch.next().await {
                Some(Ok(event)) => {
                    received += 1;
                    assert_eq!(event.revision(), received);
                }
                Some(Err(err)) => break err,
                None => panic!("watch ended without an error after {received} events"),
            }
        };
        assert!(
            matches!(err, StoreError::Compacted { oldest: 2000, .. }),
            "{err:?}"
        );
        assert!(received < 2000);
        assert!(
            watch.next().await.is_none(),
            "the watch ends after the error"
        );
    });
}

/// Dropping the store ends its watches (after what they had buffered).
#[test]
fn watch_ends_when_store_closes() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStorage::open(db(&dir)).expect("open");
        let mut watch = store.watch("", 0).await.expect("watch");
        store
            .create("/a", Bytes::from_static(b"x"))
            .await
            .expect("create");
        drop(store);
        let event = watch.next().await.expect("buffered event").expect("ok");
        assert!(matches!(event, WatchEvent::Put { .. }));
        let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch ends");
        assert!(end.is_none());
    });
}

/// Usable as `Arc<dyn Storage>`.
#[test]
fn object_safe() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: std::sync::Arc<dyn Storage> =
            std::sync::Arc::new(SqliteStorage::open(db(&dir)).expect("open"));
        assert_eq!(store.create("/a", Bytes::new()).await.expect("create"), 1);
        assert_eq!(store.current_revision().await.expect("revision"), 1);
    });
}

/// Values never appear in `Debug` output (Secrets are values).
#[test]
fn debug_hides_values() {
    let kv = nodelet_store::KeyValue {
        key: "/registry/secrets/default/s".into(),
        value: Bytes::from_static(b"hunter2"),
        create_revision: 1,
        mod_revision: 2,
    };
    let shown = format!("{kv:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<7 bytes>"), "{shown}");
}

/// The periodic compactor keeps one interval of history.
#[test]
fn periodic_compaction() {
    block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(SqliteStorage::open(db(&dir)).expect("open"));
        let compactor = {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                nodelet_store::compact_periodically(&*store, Duration::from_millis(50)).await
            })
        };
        let mut last = 0;
        for i in 0..40 {
            last = store
                .create(&format!("/k/{i}"), Bytes::from_static(b"v"))
                .await
                .expect("create");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let compacted = store.compacted_revision().await.expect("compacted");
        assert!(compacted > 0, "nothing was compacted");
        assert!(compacted <= last);
        compactor.abort();
        // History after the compacted revision is still there.
        let mut watch = store.watch("/k/", compacted).await.expect("watch");
        if compacted < last {
            let event = watch.next().await.expect("event").expect("ok");
            assert_eq!(event.revision(), compacted + 1);
        }
    });
}
