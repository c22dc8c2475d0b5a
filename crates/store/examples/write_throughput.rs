//! Measures SQLite store write throughput and read latency on this machine.
//!
//! `cargo run --release -p nodelet-store --example write_throughput -- [COUNT] [CONCURRENCY] [VALUE_BYTES]`
//! (defaults: 10000 creates from 64 concurrent tasks, 1 KiB values), in a temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nodelet_store::{Bytes, ListOptions, SqliteStorage, Storage};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(default)
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let count = arg(1, 10_000);
    let concurrency = arg(2, 64).max(1);
    let value = Bytes::from(vec![b'x'; arg(3, 1024)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStorage::open(dir.path().join("store.db")).expect("open"));

    // One write at a time: every write waits for its own commit (fsync).
    let sequential = count.min(1000);
    let start = Instant::now();
    for i in 0..sequential {
        store
            .create(&format!("/registry/seq/default/p{i:06}"), value.clone())
            .await
            .expect("create");
    }
    let elapsed = start.elapsed();
    println!(
        "sequential creates: {sequential} in {elapsed:.2?} = {:.0}/s ({:.2?} each)",
        per_second(sequential, elapsed),
        elapsed / sequential as u32
    );

    // Many writers: commits are grouped.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let store = Arc::clone(&store);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < count {
                store
                    .create(&format!("/registry/pods/default/p{i:06}"), value.clone())
                    .await
                    .expect("create");
                i += concurrency;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let elapsed = start.elapsed();
    println!(
        "concurrent creates: {count} from {concurrency} tasks in {elapsed:.2?} = {:.0}/s",
        per_second(count, elapsed)
    );

    let start = Instant::now();
    let reads = 1000.min(count);
    for i in 0..reads {
        store
            .get(&format!("/registry/pods/default/p{i:06}"))
            .await
            .expect("get")
            .kv
            .expect("exists");
    }
    let elapsed = start.elapsed();
    println!(
        "gets: {reads} in {elapsed:.2?} ({:.2?} each)",
        elapsed / reads as u32
    );

    let start = Instant::now();
    let listed = store
        .list("/registry/pods/default/", ListOptions::default())
        .await
        .expect("list");
    println!(
        "list of {} items: {:.2?}",
        listed.items.len(),
        start.elapsed()
    );
    let start = Instant::now();
    let page = store
        .list(
            "/registry/pods/default/",
            ListOptions {
                limit: Some(500),
                ..ListOptions::default()
            },
        )
        .await
        .expect("list page");
    println!("list page of {}: {:.2?}", page.items.len(), start.elapsed());
}
