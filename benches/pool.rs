//! Criterion benchmarks: velocity-async beside its peers, in the same run.
//!
//! * `w1_run_get`: one `run(f).get()` on a warm pool (latency of a hand-off).
//! * `w2_submit_collect`: submit 100,000 tiny closures, then collect all in
//!   order (throughput without a thread explosion).
//! * `w3_blocking_fanout`: 1,000 closures that each sleep 10 ms, then wait
//!   for all (a pool that grows for blocking work).
//! * `w4_cpu_map`: an ordered map over 1,000,000 `u64` with a ~15 ns mixing
//!   function, default arguments, beside rayon's `par_iter` and a plain loop.
//! * `w5_all3`: `all` of three trivial closures (fan-out/join latency).
//! * `w6_race`: a race of closures sleeping 1, 2 and 3 ms.
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

const TINY: u64 = 100_000;

fn w2_submit_collect(c: &mut Criterion) {
    let mut g = c.benchmark_group("w2_submit_collect");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.bench_function(BenchmarkId::new("velocity_async", TINY), |b| {
        b.iter(|| {
            let tasks: Vec<_> = (0..TINY)
                .map(|i| va::run(move || black_box(i) * 2))
                .collect();
            tasks.into_iter().map(|t| t.get().unwrap()).sum::<u64>()
        })
    });
    let rt = tokio_runtime();
    g.bench_function(BenchmarkId::new("tokio_spawn_async", TINY), |b| {
        b.iter(|| {
            rt.block_on(async {
                let hs: Vec<_> = (0..TINY)
                    .map(|i| tokio::spawn(async move { black_box(i) * 2 }))
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
        })
    });
    g.bench_function(BenchmarkId::new("tokio_spawn_blocking", TINY), |b| {
        b.iter(|| {
            let hs: Vec<_> = (0..TINY)
                .map(|i| rt.spawn_blocking(move || black_box(i) * 2))
                .collect();
            rt.block_on(async {
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
        })
    });
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    g.bench_function(BenchmarkId::new("rayon_spawn_channel", TINY), |b| {
        b.iter(|| {
            let rxs: Vec<_> = (0..TINY)
                .map(|i| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    pool.spawn(move || tx.send(black_box(i) * 2).unwrap());
                    rx
                })
                .collect();
            rxs.into_iter().map(|rx| rx.recv().unwrap()).sum::<u64>()
        })
    });
    g.finish();
}

/// A ~15 ns integer mixing function (splitmix64 rounds).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for _ in 0..6 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

fn w4_cpu_map(c: &mut Criterion) {
    use rayon::prelude::*;
    let input: Vec<u64> = (0..1_000_000).collect();
    let mut g = c.benchmark_group("w4_cpu_map");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.bench_function("velocity_async_map", |b| {
        b.iter(|| va::map(&input, |&x| mix(x)).unwrap())
    });
    g.bench_function("rayon_par_iter", |b| {
        b.iter(|| input.par_iter().map(|&x| mix(x)).collect::<Vec<u64>>())
    });
    g.bench_function("sequential", |b| {
        b.iter(|| input.iter().map(|&x| mix(x)).collect::<Vec<u64>>())
    });
    g.finish();
}

fn w5_all3(c: &mut Criterion) {
    let mut g = c.benchmark_group("w5_all3");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("velocity_async_all", |b| {
        b.iter(|| va::all((|| black_box(1u64), || black_box(2u64), || black_box(3u64))).unwrap())
    });
    g.bench_function("rayon_join_outside_pool", |b| {
        b.iter(|| {
            rayon::join(
                || black_box(1u64),
                || rayon::join(|| black_box(2u64), || black_box(3u64)),
            )
        })
    });
    g.bench_function("std_thread_scope", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                let a = s.spawn(|| black_box(1u64));
                let b2 = s.spawn(|| black_box(2u64));
                let c3 = black_box(3u64);
                (a.join().unwrap(), b2.join().unwrap(), c3)
            })
        })
    });
    let rt = tokio_runtime();
    g.bench_function("tokio_spawn_blocking_x3", |b| {
        b.iter(|| {
            let hs = [
                rt.spawn_blocking(|| black_box(1u64)),
                rt.spawn_blocking(|| black_box(2u64)),
                rt.spawn_blocking(|| black_box(3u64)),
            ];
            rt.block_on(async {
                let mut v = 0;
                for h in hs {
                    v += h.await.unwrap();
                }
                v
            })
        })
    });
    g.finish();
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn w6_race(c: &mut Criterion) {
    let mut g = c.benchmark_group("w6_race");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.bench_function("bare_sleep_1ms", |b| b.iter(|| sleep_ms(1)));
    g.bench_function("velocity_async_race", |b| {
        b.iter(|| {
            va::race((|| sleep_ms(1), || sleep_ms(2), || sleep_ms(3)))
                .get()
                .unwrap()
        })
    });
    g.bench_function("std_threads_channel", |b| {
        b.iter(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            for ms in [1, 2, 3] {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(sleep_ms(ms));
                });
            }
            rx.recv().unwrap()
        })
    });
    let rt = tokio_runtime();
    g.bench_function("tokio_spawn_blocking_select", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::select! {
                    r = rt.spawn_blocking(|| sleep_ms(1)) => r.unwrap(),
                    r = rt.spawn_blocking(|| sleep_ms(2)) => r.unwrap(),
                    r = rt.spawn_blocking(|| sleep_ms(3)) => r.unwrap(),
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = w1_run_get, w2_submit_collect, w3_blocking_fanout, w4_cpu_map, w5_all3, w6_race
}
criterion_main!(benches);
