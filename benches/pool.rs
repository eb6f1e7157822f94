//! Criterion benchmarks: velocity-async beside its peers, in the same run.
//!
//! * `w1_run_get`: one `run(f).get()` on a warm pool (latency of a hand-off).
//! * `w3_blocking_fanout`: 1,000 closures that each sleep 10 ms, then wait
//!   for all (a pool that grows for blocking work).
//!
//! Run with `cargo bench --bench pool`; compare the medians as ratios.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use velocity_async as va;

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().build().unwrap()
}

fn w1_run_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1_run_get");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("velocity_async", |b| {
        b.iter(|| va::run(|| black_box(1u64)).get().unwrap())
    });
    g.bench_function("std_thread_spawn", |b| {
        b.iter(|| std::thread::spawn(|| black_box(1u64)).join().unwrap())
    });
    let rt = tokio_runtime();
    g.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| rt.block_on(rt.spawn_blocking(|| black_box(1u64))).unwrap())
    });
    g.bench_function("blocking_unblock", |b| {
        b.iter(|| futures_lite::future::block_on(blocking::unblock(|| black_box(1u64))))
    });
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    g.bench_function("rayon_spawn_channel", |b| {
        b.iter(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            pool.spawn(move || tx.send(black_box(1u64)).unwrap());
            rx.recv().unwrap()
        })
    });
    g.finish();
}

const FANOUT: usize = 1_000;
const SLEEP: Duration = Duration::from_millis(10);

fn w3_blocking_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("w3_blocking_fanout");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function(BenchmarkId::new("velocity_async", FANOUT), |b| {
        b.iter(|| {
            let tasks: Vec<_> = (0..FANOUT)
                .map(|_| va::run(|| std::thread::sleep(SLEEP)))
                .collect();
            tasks.into_iter().for_each(|t| t.get().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("std_thread_spawn", FANOUT), |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..FANOUT)
                .map(|_| std::thread::spawn(|| std::thread::sleep(SLEEP)))
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    let rt = tokio_runtime();
    g.bench_function(BenchmarkId::new("tokio_spawn_blocking", FANOUT), |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..FANOUT)
                .map(|_| rt.spawn_blocking(|| std::thread::sleep(SLEEP)))
                .collect();
            rt.block_on(async {
                for h in hs {
                    h.await.unwrap();
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("blocking_unblock", FANOUT), |b| {
        b.iter(|| {
            let ts: Vec<_> = (0..FANOUT)
                .map(|_| blocking::unblock(|| std::thread::sleep(SLEEP)))
                .collect();
            futures_lite::future::block_on(async {
                for t in ts {
                    t.await;
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = w1_run_get, w3_blocking_fanout
}
criterion_main!(benches);
