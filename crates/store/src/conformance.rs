//! The conformance suite every [`Storage`] backend must pass.
//!
//! Each case is a public async function taking a [`Factory`] of fresh stores; it panics on a
//! violation. A backend's test file runs them all with one macro line:
//!
//! ```ignore
//! struct MyFactory;
//! impl nodelet_store::conformance::Factory for MyFactory { /* ... */ }
//! nodelet_store::conformance_tests!(MyFactory);
//! ```
//!
//! which expands to one `#[test]` per case (each on its own multi-threaded Tokio runtime, with a
//! time limit). The cases assume the store is used only by the test: revisions are counted
//! from a fresh store's `0`.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{DeleteResponse, KeyValue, ListOptions, Storage, StoreError, Watch, WatchEvent};

/// Makes stores for the suite.
pub trait Factory: Send + Sync {
    /// The backend under test.
    type Store: Storage + 'static;
    /// Where one store's data lives (a temporary directory, an etcd key prefix), so that
    /// [`reopen`](Factory::reopen) finds it again; dropping it may delete the data.
    type Location: Send + Sync;

    /// A new, empty store (revision 0).
    fn create(&self) -> impl Future<Output = (Self::Store, Self::Location)> + Send;

    /// Opens the store at `location` again, after every handle to it was dropped.
    fn reopen(&self, location: &Self::Location) -> impl Future<Output = Self::Store> + Send;
}

/// How long one case may run before it fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a case waits for one expected watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `case` to completion on a new multi-threaded runtime, failing after [`CASE_TIMEOUT`].
/// Used by [`conformance_tests!`](crate::conformance_tests).
pub fn block_on<F: Future>(case: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("build a Tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(CASE_TIMEOUT, case)
            .await
            .expect("conformance case timed out")
    })
}

/// Expands to one `#[test]` per conformance case, each running against a store made by the
/// given [`Factory`] expression.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases ($factory)
            empty_store,
            create_and_get,
            create_existing_fails,
            update_semantics,
            delete_semantics,
            invalid_arguments,
            revisions_increase_across_keys,
            list_order_and_prefix_isolation,
            list_paging_at_consistent_revision,
            list_at_old_revision,
            watch_from_zero,
            watch_from_middle,
            watch_live,
            watch_prefix_only,
            watch_events_carry_prev,
            watch_from_future_revision,
            watch_revision_progress,
            compaction,
            watch_sees_10k_rapid_writes,
            concurrent_writers_unique_revisions,
            concurrent_compare_and_swap,
            durable_across_reopen,
        );
    };
    (@cases ($factory:expr) $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::block_on($crate::conformance::$case(&$factory));
            }
        )*
    };
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn kv(key: &str, value: &str, create_revision: i64, mod_revision: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: bytes(value),
        create_revision,
        mod_revision,
    }
}

async fn current(store: &impl Storage) -> i64 {
    store.current_revision().await.expect("current_revision")
}

async fn next_event(watch: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

async fn next_events(watch: &mut Watch, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(watch).await);
    }
    events
}

async fn list_all(store: &impl Storage, prefix: &str) -> Vec<KeyValue> {
    store
        .list(prefix, ListOptions::default())
        .await
        .expect("list")
        .items
}

/// The writes several watch cases share: revisions 1..=4.
async fn four_writes(store: &impl Storage) -> Vec<WatchEvent> {
    let a = "/registry/pods/default/a";
    let b = "/registry/pods/default/b";
    assert_eq!(store.create(a, bytes("a1")).await.expect("create a"), 1);
    assert_eq!(
        store
            .update(a, bytes("a2"), Some(1))
            .await
            .expect("update a"),
        2
    );
    assert_eq!(store.create(b, bytes("b1")).await.expect("create b"), 3);
    let deleted = store.delete(a, None).await.expect("delete a");
    assert_eq!(deleted.revision, 4);
    vec![
        WatchEvent::Put {
            kv: kv(a, "a1", 1, 1),
            prev: None,
        },
        WatchEvent::Put {
            kv: kv(a, "a2", 1, 2),
            prev: Some(kv(a, "a1", 1, 1)),
        },
        WatchEvent::Put {
            kv: kv(b, "b1", 3, 3),
            prev: None,
        },
        WatchEvent::Delete {
            prev: kv(a, "a2", 1, 2),
            revision: 4,
        },
    ]
}

/// A fresh store is empty at revision 0.
pub async fn empty_store<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    assert_eq!(current(&store).await, 0);
    assert_eq!(store.compacted_revision().await.expect("compacted"), 0);
    let got = store.get("/registry/pods/default/a").await.expect("get");
    assert_eq!(got.kv, None);
    assert_eq!(got.revision, 0);
    let listed = store.list("", ListOptions::default()).await.expect("list");
    assert!(listed.items.is_empty());
    assert_eq!(listed.revision, 0);
    assert!(!listed.more);
}

/// `create` returns the new revision (1 for the first write); `get` returns the value with
/// both revisions and the store's revision.
pub async fn create_and_get<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let a = "/registry/pods/default/a";
    let b = "/registry/pods/default/b";
    assert_eq!(
        store.create(a, bytes("{\"a\":1}")).await.expect("create a"),
        1
    );
    assert_eq!(store.create(b, Bytes::new()).await.expect("create b"), 2);
    let got = store.get(a).await.expect("get a");
    assert_eq!(got.kv, Some(kv(a, "{\"a\":1}", 1, 1)));
    assert_eq!(got.revision, 2);
    let got = store.get(b).await.expect("get b");
    assert_eq!(got.kv, Some(kv(b, "", 2, 2)), "an empty value is a value");
    assert_eq!(current(&store).await, 2);
    // Binary values round-trip.
    let binary = Bytes::from((0..=255u8).collect::<Vec<_>>());
    let c = "/registry/secrets/default/c";
    let revision = store.create(c, binary.clone()).await.expect("create c");
    assert_eq!(
        store.get(c).await.expect("get c").kv.expect("c").value,
        binary
    );
    assert_eq!(revision, 3);
}

/// Creating an existing key fails with `AlreadyExists` and changes nothing.
pub async fn create_existing_fails<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let a = "/registry/pods/default/a";
    store.create(a, bytes("first")).await.expect("create");
    let err = store
        .create(a, bytes("second"))
        .await
        .expect_err("second create");
    assert_eq!(err, StoreError::AlreadyExists { key: a.into() });
    assert_eq!(
        current(&store).await,
        1,
        "a failed write consumes no revision"
    );
    assert_eq!(
        store.get(a).await.expect("get").kv,
        Some(kv(a, "first", 1, 1))
    );
}

/// `update`: NotFound for a missing key; unconditional with `None`; compare-and-swap on the
/// mod revision with `Some`; `create_revision` kept.
pub async fn update_semantics<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let a = "/registry/pods/default/a";
    let err = store
        .update(a, bytes("x"), None)
        .await
        .expect_err("update missing");
    assert_eq!(err, StoreError::NotFound { key: a.into() });
    let err = store
        .update(a, bytes("x"), Some(0))
        .await
        .expect_err("cas missing");
    assert_eq!(err, StoreError::NotFound { key: a.into() });
    assert_eq!(current(&store).await, 0);

    assert_eq!(store.create(a, bytes("v1")).await.expect("create"), 1);
    assert_eq!(store.update(a, bytes("v2"), None).await.expect("update"), 2);
    assert_eq!(store.get(a).await.expect("get").kv, Some(kv(a, "v2", 1, 2)));
    assert_eq!(store.update(a, bytes("v3"), Some(2)).await.expect("cas"), 3);
    let err = store
        .update(a, bytes("v4"), Some(2))
        .await
        .expect_err("stale cas");
    assert_eq!(
        err,
        StoreError::Conflict {
            key: a.into(),
            expected: 2,
            actual: 3
        }
    );
    assert_eq!(current(&store).await, 3);
    assert_eq!(store.get(a).await.expect("get").kv, Some(kv(a, "v3", 1, 3)));
}

/// `delete`: NotFound, Conflict, the previous value, and a fresh `create_revision` when the key
/// is created again.
pub async fn delete_semantics<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let a = "/registry/pods/default/a";
    let err = store.delete(a, None).await.expect_err("delete missing");
    assert_eq!(err, StoreError::NotFound { key: a.into() });
    store.create(a, bytes("v1")).await.expect("create");
    store.update(a, bytes("v2"), None).await.expect("update");
    let err = store.delete(a, Some(1)).await.expect_err("stale delete");
    assert_eq!(
        err,
        StoreError::Conflict {
            key: a.into(),
            expected: 1,
            actual: 2
        }
    );
    assert_eq!(current(&store).await, 2);
    let deleted = store.delete(a, Some(2)).await.expect("delete");
    assert_eq!(
        deleted,
        DeleteResponse {
            prev: kv(a, "v2", 1, 2),
            revision: 3
        }
    );
    let got = store.get(a).await.expect("get");
    assert_eq!(got.kv, None);
    assert_eq!(got.revision, 3);
    let err = store.delete(a, None).await.expect_err("delete again");
    assert_eq!(err, StoreError::NotFound { key: a.into() });
    assert_eq!(store.create(a, bytes("again")).await.expect("re-create"), 4);
    assert_eq!(
        store.get(a).await.expect("get").kv,
        Some(kv(a, "again", 4, 4))
    );
}

/// Empty keys and negative revisions are `InvalidArgument`.
pub async fn invalid_arguments<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let invalid = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::InvalidArgument(_)) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    invalid(store.get("").await.map(drop), "get");
    invalid(store.create("", bytes("x")).await.map(drop), "create");
    invalid(store.update("", bytes("x"), None).await.map(drop), "update");
    invalid(store.delete("", None).await.map(drop), "delete");
    invalid(store.watch("/a/", -1).await.map(drop), "watch");
    invalid(store.compact(-1).await.map(drop), "compact");
    let options = ListOptions {
        revision: Some(-1),
        ..ListOptions::default()
    };
    invalid(store.list("/a/", options).await.map(drop), "list");
    assert_eq!(current(&store).await, 0);
}

/// Every successful write, whatever its key and kind, gets a revision above all earlier ones;
/// failed writes consume none; `mod_revision` is the write's revision.
pub async fn revisions_increase_across_keys<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let mut last = 0;
    for round in 0..5 {
        for i in 0..10 {
            let key = format!("/registry/configmaps/ns{}/cm{i}", i % 3);
            let revision = if round == 0 {
                store.create(&key, bytes("v")).await.expect("create")
            } else if round == 4 && i % 2 == 0 {
                store.delete(&key, None).await.expect("delete").revision
            } else {
                store
                    .update(&key, bytes(&format!("v{round}")), None)
                    .await
                    .expect("update")
            };
            assert!(revision > last, "revision {revision} after {last}");
            last = revision;
            assert_eq!(current(&store).await, revision);
            if let Some(got) = store.get(&key).await.expect("get").kv {
                assert_eq!(got.mod_revision, revision);
            }
            // A failed write in between changes nothing.
            store
                .update("/registry/configmaps/missing", bytes("x"), None)
                .await
                .expect_err("update of a missing key");
            assert_eq!(current(&store).await, revision);
        }
    }
    assert_eq!(last, 50);
}

/// Lists are ordered by key and see only their prefix (`default/` never includes `default2/`).
pub async fn list_order_and_prefix_isolation<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let keys = [
        "/registry/pods/default2/a",
        "/registry/pods/default/zeta",
        "/registry/pods/kube-system/coredns",
        "/registry/pods/default/alpha",
        "/registry/pods/default",
        "/registry/pods/default/m-1",
        "/registry/pods/default/M",
        "/registry/pods/default/m",
        "/registry/services/specs/default/kubernetes",
        "/registry/pods/default0/x",
    ];
    for key in keys {
        store
            .create(key, bytes(&format!("value of {key}")))
            .await
            .expect("create");
    }
    let listed = store
        .list("/registry/pods/default/", ListOptions::default())
        .await
        .expect("list");
    let got: Vec<&str> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        got,
        [
            "/registry/pods/default/M",
            "/registry/pods/default/alpha",
            "/registry/pods/default/m",
            "/registry/pods/default/m-1",
            "/registry/pods/default/zeta",
        ]
    );
    assert_eq!(listed.revision, keys.len() as i64);
    assert!(!listed.more);
    for item in &listed.items {
        assert_eq!(item.value, bytes(&format!("value of {}", item.key)));
        assert_eq!(item.create_revision, item.mod_revision);
    }

    let mut all: Vec<&str> = keys.to_vec();
    all.sort_unstable();
    let everything: Vec<String> = list_all(&store, "")
        .await
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(everything, all);
    let pods: Vec<String> = list_all(&store, "/registry/pods/")
        .await
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    let want: Vec<&str> = all
        .iter()
        .copied()
        .filter(|k| k.starts_with("/registry/pods/"))
        .collect();
    assert_eq!(pods, want);
    assert!(list_all(&store, "/registry/pods/nothere/").await.is_empty());
    let two = list_all(&store, "/registry/pods/default2/").await;
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].key, "/registry/pods/default2/a");
}

/// Every page of `prefix` at `revision`, `limit` keys a page, from the first key after `after`
/// (the start when `None`), checking each page's revision and that pages with more are full.
async fn page_through(
    store: &impl Storage,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    revision: i64,
) -> Vec<KeyValue> {
    let mut items = Vec::new();
    let mut start_after = after.map(str::to_owned);
    let mut pages = 0;
    loop {
        let page = store
            .list(
                prefix,
                ListOptions {
                    start_after: start_after.clone(),
                    limit: Some(limit),
                    revision: Some(revision),
                },
            )
            .await
            .expect("list page");
        pages += 1;
        assert!(pages < 1000, "paging does not end");
        assert_eq!(page.revision, revision);
        assert!(page.items.len() <= limit);
        if page.more {
            assert_eq!(page.items.len(), limit, "a page with more is full");
        }
        start_after = page.items.last().map(|kv| kv.key.clone());
        items.extend(page.items);
        if !page.more {
            return items;
        }
    }
}

/// Paging with limit and continue (start after the last key) at the first page's revision sees
/// one snapshot, whatever is written between pages.
pub async fn list_paging_at_consistent_revision<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let prefix = "/registry/pods/default/";
    let key = |i: usize| format!("{prefix}pod-{i:03}");
    for i in (0..25).map(|i| i * 2) {
        store
            .create(&key(i), bytes(&format!("v{i}")))
            .await
            .expect("create");
    }
    store
        .create("/registry/pods/default2/pod-000", bytes("other"))
        .await
        .expect("create other");
    let snapshot = list_all(&store, prefix).await;
    assert_eq!(snapshot.len(), 25);

    let first = store
        .list(
            prefix,
            ListOptions {
                limit: Some(10),
                ..ListOptions::default()
            },
        )
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 10);
    assert!(first.more);
    assert_eq!(first.items[..], snapshot[..10]);
    let revision = first.revision;

    // Writes between pages: inserts into later pages, a delete and an update there.
    store.create(&key(21), bytes("new")).await.expect("insert");
    store.create(&key(49), bytes("new")).await.expect("append");
    store.delete(&key(30), None).await.expect("delete");
    store
        .update(&key(40), bytes("changed"), None)
        .await
        .expect("update");
    store
        .update(&key(2), bytes("changed"), None)
        .await
        .expect("update first page");

    let rest = page_through(&store, prefix, Some(&first.items[9].key), 10, revision).await;
    let mut all = first.items.clone();
    all.extend(rest);
    assert_eq!(all, snapshot, "paged list at revision {revision}");

    // Page size dividing the count: the last page is full and has no more.
    let paged = page_through(&store, prefix, None, 5, revision).await;
    assert_eq!(paged, snapshot);
    // Limit 0 means no limit.
    let unlimited = store
        .list(
            prefix,
            ListOptions {
                limit: Some(0),
                revision: Some(revision),
                ..ListOptions::default()
            },
        )
        .await
        .expect("limit 0");
    assert_eq!(unlimited.items, snapshot);
    assert!(!unlimited.more);

    // The current list reflects the writes.
    let now = list_all(&store, prefix).await;
    assert_eq!(now.len(), 26);
    assert!(now.iter().any(|kv| kv.key == key(21)));
    assert!(!now.iter().any(|kv| kv.key == key(30)));
    // Paging at the current revision works the same.
    let current_revision = current(&store).await;
    assert_eq!(
        page_through(&store, prefix, None, 7, current_revision).await,
        now
    );
    // A continue token before the prefix starts at the prefix.
    let from_before = store
        .list(
            prefix,
            ListOptions {
                start_after: Some("/registry/pods/a".into()),
                ..ListOptions::default()
            },
        )
        .await
        .expect("start before prefix");
    assert_eq!(from_before.items, now);
}

/// A list at an older revision sees the values of then: updated keys with their old value,
/// deleted keys still there, later keys absent.
pub async fn list_at_old_revision<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let p = "/registry/configmaps/default/";
    let (a, b, c) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    store.create(&a, bytes("a1")).await.expect("r1");
    store.create(&b, bytes("b1")).await.expect("r2");
    store.update(&a, bytes("a2"), None).await.expect("r3");
    store.delete(&b, None).await.expect("r4");
    store.create(&c, bytes("c1")).await.expect("r5");
    store
        .create("/registry/configmaps/other/x", bytes("x"))
        .await
        .expect("r6");
    let at = |revision: i64| {
        let store = &store;
        async move {
            store
                .list(
                    p,
                    ListOptions {
                        revision: Some(revision),
                        ..ListOptions::default()
                    },
                )
                .await
                .unwrap_or_else(|err| panic!("list at {revision}: {err}"))
        }
    };
    assert!(at(0).await.items.is_empty());
    assert_eq!(at(1).await.items, [kv(&a, "a1", 1, 1)]);
    assert_eq!(at(2).await.items, [kv(&a, "a1", 1, 1), kv(&b, "b1", 2, 2)]);
    assert_eq!(at(3).await.items, [kv(&a, "a2", 1, 3), kv(&b, "b1", 2, 2)]);
    assert_eq!(at(4).await.items, [kv(&a, "a2", 1, 3)]);
    assert_eq!(at(5).await.items, [kv(&a, "a2", 1, 3), kv(&c, "c1", 5, 5)]);
    let limited = store
        .list(
            p,
            ListOptions {
                revision: Some(3),
                limit: Some(1),
                ..ListOptions::default()
            },
        )
        .await
        .expect("limited");
    assert_eq!(limited.items, [kv(&a, "a2", 1, 3)]);
    assert!(limited.more);
    assert_eq!(limited.revision, 3);
    let err = store
        .list(
            p,
            ListOptions {
                revision: Some(7),
                ..ListOptions::default()
            },
        )
        .await
        .expect_err("future");
    assert_eq!(
        err,
        StoreError::FutureRevision {
            requested: 7,
            current: 6
        }
    );
}

/// A watch from 0 replays every write, in order, with kinds, values and previous values.
pub async fn watch_from_zero<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let expected = four_writes(&store).await;
    let mut watch = store.watch("", 0).await.expect("watch");
    assert_eq!(next_events(&mut watch, 4).await, expected);
    // Then live.
    store
        .create("/registry/pods/default/c", bytes("c1"))
        .await
        .expect("create c");
    let event = next_event(&mut watch).await;
    assert_eq!(event.revision(), 5);
    assert_eq!(event.key(), "/registry/pods/default/c");
}

/// A watch from a revision yields only later writes.
pub async fn watch_from_middle<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let expected = four_writes(&store).await;
    let mut watch = store.watch("/registry/pods/", 2).await.expect("watch");
    assert_eq!(next_events(&mut watch, 2).await, expected[2..]);
    let mut watch = store
        .watch("/registry/pods/", 4)
        .await
        .expect("watch at current");
    store
        .update("/registry/pods/default/b", bytes("b2"), Some(3))
        .await
        .expect("update");
    let event = next_event(&mut watch).await;
    assert_eq!(
        event,
        WatchEvent::Put {
            kv: kv("/registry/pods/default/b", "b2", 3, 5),
            prev: Some(kv("/registry/pods/default/b", "b1", 3, 3)),
        }
    );
}

/// A watch from the current revision yields writes made after it started, as they happen.
pub async fn watch_live<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let store = Arc::new(store);
    store
        .create("/registry/pods/default/old", bytes("old"))
        .await
        .expect("create");
    let mut watch = store
        .watch("/registry/pods/", current(&*store).await)
        .await
        .expect("watch");
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..20 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                store
                    .create(&format!("/registry/pods/default/p{i:02}"), bytes("v"))
                    .await
                    .expect("create");
            }
        })
    };
    for i in 0..20 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.revision(), 2 + i);
        assert_eq!(event.key(), format!("/registry/pods/default/p{i:02}"));
        assert!(matches!(event, WatchEvent::Put { prev: None, .. }));
    }
    writer.await.expect("writer");
}

/// A watch sees only its prefix, from history and live.
pub async fn watch_prefix_only<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let prefix = "/registry/pods/default/";
    let mut live = store.watch(prefix, 0).await.expect("watch");
    let outside = [
        "/registry/pods/default2/a",
        "/registry/pods/default",
        "/registry/pods/kube-system/a",
        "/registry/pods/defaulu/a",
        "/registry/configmaps/default/a",
    ];
    let mut mine = Vec::new();
    for (i, key) in outside.iter().enumerate() {
        store.create(key, bytes("x")).await.expect("create outside");
        let inside = format!("{prefix}p{i}");
        let revision = store
            .create(&inside, bytes("y"))
            .await
            .expect("create inside");
        store.delete(key, None).await.expect("delete outside");
        mine.push((inside, revision));
    }
    for (key, revision) in &mine {
        let event = next_event(&mut live).await;
        assert_eq!((event.key(), event.revision()), (key.as_str(), *revision));
    }
    let mut replay = store.watch(prefix, 0).await.expect("watch from 0");
    for (key, revision) in &mine {
        let event = next_event(&mut replay).await;
        assert_eq!((event.key(), event.revision()), (key.as_str(), *revision));
    }
    // Nothing else is pending: the next event is the next write under the prefix.
    store
        .create("/registry/pods/default2/b", bytes("x"))
        .await
        .expect("outside");
    let last = store
        .create(&format!("{prefix}last"), bytes("x"))
        .await
        .expect("inside");
    assert_eq!(next_event(&mut live).await.revision(), last);
    assert_eq!(next_event(&mut replay).await.revision(), last);
}

/// Put events carry the value they replaced; delete events carry the deleted value; the same
/// from history as live.
pub async fn watch_events_carry_prev<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let key = "/registry/secrets/default/s";
    let mut live = store.watch("/registry/secrets/", 0).await.expect("watch");
    store.create(key, bytes("one")).await.expect("create");
    store.update(key, bytes("two"), None).await.expect("update");
    store
        .update(key, bytes("three"), Some(2))
        .await
        .expect("update");
    store.delete(key, Some(3)).await.expect("delete");
    store.create(key, bytes("four")).await.expect("re-create");
    let expected = vec![
        WatchEvent::Put {
            kv: kv(key, "one", 1, 1),
            prev: None,
        },
        WatchEvent::Put {
            kv: kv(key, "two", 1, 2),
            prev: Some(kv(key, "one", 1, 1)),
        },
        WatchEvent::Put {
            kv: kv(key, "three", 1, 3),
            prev: Some(kv(key, "two", 1, 2)),
        },
        WatchEvent::Delete {
            prev: kv(key, "three", 1, 3),
            revision: 4,
        },
        WatchEvent::Put {
            kv: kv(key, "four", 5, 5),
            prev: None,
        },
    ];
    assert_eq!(next_events(&mut live, 5).await, expected);
    let mut replay = store
        .watch("/registry/secrets/", 0)
        .await
        .expect("watch from 0");
    assert_eq!(next_events(&mut replay, 5).await, expected);
}

/// A watch from a revision not reached yet waits for it.
pub async fn watch_from_future_revision<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    store.create("/a/0", bytes("x")).await.expect("create");
    let mut watch = store.watch("/a/", 3).await.expect("watch from the future");
    for i in 1..=3 {
        store
            .create(&format!("/a/{i}"), bytes("x"))
            .await
            .expect("create");
    }
    let event = next_event(&mut watch).await;
    assert_eq!((event.key(), event.revision()), ("/a/3", 4));
}

/// `Watch::revision` never goes backwards and covers every yielded event.
pub async fn watch_revision_progress<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let mut watch = store.watch("/a/", 0).await.expect("watch");
    assert_eq!(watch.revision(), 0);
    let mut seen = 0;
    for i in 0..10 {
        store
            .create(&format!("/b/{i}"), bytes("x"))
            .await
            .expect("other prefix");
        let revision = store
            .create(&format!("/a/{i}"), bytes("x"))
            .await
            .expect("create");
        let event = next_event(&mut watch).await;
        assert_eq!(event.revision(), revision);
        let progress = watch.revision();
        assert!(
            progress >= revision,
            "progress {progress} < yielded {revision}"
        );
        assert!(
            progress >= seen,
            "progress went back from {seen} to {progress}"
        );
        assert!(progress <= current(&store).await);
        seen = progress;
    }
}

/// Compaction: reads and watches from before it fail with `Compacted`; from it on they work;
/// current values survive; compacting backwards is a no-op, forwards past now an error.
pub async fn compaction<F: Factory>(factory: &F) {
    let (store, _location) = factory.create().await;
    let p = "/registry/pods/default/";
    store
        .create(&format!("{p}kept"), bytes("k"))
        .await
        .expect("r1");
    for i in 2..=10 {
        let key = format!("{p}p{}", i % 3);
        if store.get(&key).await.expect("get").kv.is_some() {
            store
                .update(&key, bytes(&format!("v{i}")), None)
                .await
                .expect("update");
        } else {
            store
                .create(&key, bytes(&format!("v{i}")))
                .await
                .expect("create");
        }
    }
    assert_eq!(current(&store).await, 10);
    let before = list_all(&store, p).await;
    let at_five = store
        .list(
            p,
            ListOptions {
                revision: Some(5),
                ..ListOptions::default()
            },
        )
        .await
        .expect("list at 5")
        .items;

    assert_eq!(store.compact(5).await.expect("compact"), 5);
    assert_eq!(store.compacted_revision().await.expect("compacted"), 5);
    assert_eq!(current(&store).await, 10, "compaction is not a write");

    match store.watch(p, 4).await {
        Err(StoreError::Compacted {
            requested: 4,
            oldest: 5,
        }) => {}
        other => panic!("watch from 4: expected Compacted, got {other:?}"),
    }
    match store.watch(p, 0).await {
        Err(StoreError::Compacted {
            requested: 0,
            oldest: 5,
        }) => {}
        other => panic!("watch from 0: expected Compacted, got {other:?}"),
    }
    let err = store
        .list(
            p,
            ListOptions {
                revision: Some(4),
                ..ListOptions::default()
            },
        )
        .await
        .expect_err("list at 4");
    assert_eq!(
        err,
        StoreError::Compacted {
            requested: 4,
            oldest: 5
        }
    );
    let listed = store
        .list(
            p,
            ListOptions {
                revision: Some(5),
                ..ListOptions::default()
            },
        )
        .await
        .expect("list at 5 after compaction");
    assert_eq!(listed.items, at_five);

    let mut watch = store.watch(p, 5).await.expect("watch from 5");
    let revisions: Vec<i64> = next_events(&mut watch, 5)
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(revisions, [6, 7, 8, 9, 10]);

    assert_eq!(store.compact(3).await.expect("compact backwards"), 5);
    assert_eq!(store.compact(5).await.expect("compact again"), 5);
    let err = store.compact(11).await.expect_err("compact the future");
    assert_eq!(
        err,
        StoreError::FutureRevision {
            requested: 11,
            current: 10
        }
    );

    assert_eq!(
        list_all(&store, p).await,
        before,
        "current values survive compaction"
    );
    assert_eq!(
        store.get(&format!("{p}kept")).await.expect("get").kv,
        Some(kv(&format!("{p}kept"), "k", 1, 1))
    );

    // Compacting everything: watching from now still works.
    assert_eq!(store.compact(10).await.expect("compact all"), 10);
    let mut watch = store.watch(p, 10).await.expect("watch from compacted");
    store
        .delete(&format!("{p}kept"), None)
        .await
        .expect("delete");
    let event = next_event(&mut watch).await;
    assert_eq!(
        event,
        WatchEvent::Delete {
            prev: kv(&format!("{p}kept"), "k", 1, 1),
            revision: 11
        }
    );
}

/// A watcher started before 10,000 rapid writes (16 concurrent writers) sees every one, in
/// revision order, with no gap; so does one that reads nothing until the writes are done.
pub async fn watch_sees_10k_rapid_writes<F: Factory>(factory: &F) {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 625;
    const TOTAL: usize = WRITERS * PER_WRITER;
    let (store, _location) = factory.create().await;
    let store = Arc::new(store);
    let mut eager = store.watch("/registry/", 0).await.expect("watch");
    let mut slow = store.watch("/registry/", 0).await.expect("slow watch");
    let consumer = tokio::spawn(async move {
        let mut events = Vec::with_capacity(TOTAL);
        while events.len() < TOTAL {
            events.push(next_event(&mut eager).await);
        }
        events
    });
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let key = format!("/registry/pods/w{w:02}/p{:03}", i % 100);
                if i < 100 {
                    store
                        .create(&key, bytes(&format!("{i}")))
                        .await
                        .expect("create");
                } else {
                    store
                        .update(&key, bytes(&format!("{i}")), None)
                        .await
                        .expect("update");
                }
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    assert_eq!(current(&*store).await, TOTAL as i64);
    let check = |events: &[WatchEvent], who: &str| {
        assert_eq!(events.len(), TOTAL, "{who}");
        let mut per_key: BTreeMap<&str, i64> = BTreeMap::new();
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.revision(), i as i64 + 1, "{who}: event {i}");
            if let WatchEvent::Put { kv, prev } = event {
                // Each key's events chain: prev is the last event's value.
                let last = per_key.insert(&kv.key, kv.mod_revision);
                assert_eq!(
                    prev.as_ref().map(|p| p.mod_revision),
                    last,
                    "{who}: {}",
                    kv.key
                );
            } else {
                panic!("{who}: unexpected {event:?}");
            }
        }
    };
    let eager_events = consumer.await.expect("consumer");
    check(&eager_events, "eager watcher");
    let slow_events = next_events(&mut slow, TOTAL).await;
    check(&slow_events, "slow watcher");
}

/// Many tasks writing at once never get the same revision, and the revision counts them all.
pub async fn concurrent_writers_unique_revisions<F: Factory>(factory: &F) {
    const TASKS: usize = 32;
    const WRITES: usize = 50;
    let (store, _location) = factory.create().await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..WRITES {
                let key = format!("/registry/events/t{t}/e{i}");
                revisions.push(store.create(&key, bytes("e")).await.expect("create"));
                // Contended keys too: everybody creates the same one; one wins.
                let shared = format!("/registry/leases/shared/{i}");
                if let Ok(revision) = store.create(&shared, bytes(&format!("t{t}"))).await {
                    revisions.push(revision);
                }
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let revisions = task.await.expect("task");
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "one task's revisions increase"
        );
        all.extend(revisions);
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "duplicate revisions");
    assert_eq!(all.len(), TASKS * WRITES + WRITES);
    assert_eq!(all.iter().copied().max(), Some(current(&*store).await));
    assert_eq!(current(&*store).await, all.len() as i64);
    assert_eq!(
        list_all(&*store, "/registry/events/").await.len(),
        TASKS * WRITES
    );
}

/// Read-modify-write loops with compare-and-swap lose no update.
pub async fn concurrent_compare_and_swap<F: Factory>(factory: &F) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    let (store, _location) = factory.create().await;
    let store = Arc::new(store);
    let key = "/registry/counters/c";
    store.create(key, bytes("0")).await.expect("create");
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0usize;
            for _ in 0..INCREMENTS {
                loop {
                    let got = store.get(key).await.expect("get").kv.expect("counter");
                    let n: usize = std::str::from_utf8(&got.value)
                        .expect("utf8")
                        .parse()
                        .expect("number");
                    match store
                        .update(key, bytes(&(n + 1).to_string()), Some(got.mod_revision))
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(err) => panic!("update: {err}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let got = store.get(key).await.expect("get").kv.expect("counter");
    assert_eq!(got.value, bytes(&(TASKS * INCREMENTS).to_string()));
    assert_eq!(got.mod_revision, (TASKS * INCREMENTS) as i64 + 1);
}

/// Everything survives dropping the store and opening it again: values, revisions, the
/// compacted revision, history after it; new writes continue the revision.
pub async fn durable_across_reopen<F: Factory>(factory: &F) {
    let (store, location) = factory.create().await;
    let p = "/registry/pods/default/";
    for i in 0..20 {
        store
            .create(&format!("{p}p{i:02}"), bytes(&format!("v{i}")))
            .await
            .expect("create");
    }
    store
        .update(&format!("{p}p03"), bytes("updated"), Some(4))
        .await
        .expect("update");
    store
        .delete(&format!("{p}p07"), None)
        .await
        .expect("delete");
    store.compact(10).await.expect("compact");
    let revision = current(&store).await;
    assert_eq!(revision, 22);
    let before = list_all(&store, "").await;
    let history: Vec<WatchEvent> = {
        let mut watch = store.watch("", 10).await.expect("watch");
        next_events(&mut watch, 12).await
    };
    drop(store);

    let store = factory.reopen(&location).await;
    assert_eq!(current(&store).await, revision);
    assert_eq!(store.compacted_revision().await.expect("compacted"), 10);
    assert_eq!(list_all(&store, "").await, before);
    let mut watch = store.watch("", 10).await.expect("watch after reopen");
    assert_eq!(next_events(&mut watch, 12).await, history);
    assert_eq!(
        store.get(&format!("{p}p03")).await.expect("get").kv,
        Some(kv(&format!("{p}p03"), "updated", 4, 21))
    );
    let next = store
        .create(&format!("{p}p07"), bytes("back"))
        .await
        .expect("create after reopen");
    assert_eq!(next, revision + 1);
    assert_eq!(next_event(&mut watch).await.revision(), next);
    drop(watch);
    drop(store);
    let store = factory.reopen(&location).await;
    assert_eq!(current(&store).await, revision + 1);
}
