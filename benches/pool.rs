//! Criterion benchmarks: velocity-async beside its peers, in the same run.
//!
//! The workloads and their contenders live in `benches/workloads/mod.rs`
//! (shared with `examples/benchmark.rs`, the side-by-side report):
//!
//! * `w1_run_get`: `run(f).get()` on a warm pool (latency of a hand-off).
//! * `w2_submit_collect`: submit 100,000 tiny closures, then collect all in
//!   order (throughput without a thread explosion).
//! * `w3_blocking_fanout` (warm) and `w3_blocking_fanout_cold`: 1,000
//!   closures that each sleep 10 ms, then wait for all (a pool that grows
//!   for blocking work), with a no-pool floor of 1,000 pre-spawned threads.
//! * `w4_cpu_map`: an ordered map over 1,000,000 `u64` with a ~50 ns mixing
//!   function, default arguments, beside rayon's `par_iter` and a plain loop.
//! * `w5_all3`: `all` of three trivial closures (fan-out/join latency).
//! * `w6_race`: a race of closures sleeping 1, 2 and 3 ms.
//!
//! Run with `cargo bench --bench pool` (criterion reports time per element:
//! per call, per closure, per burst); compare the medians as ratios.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[allow(
    dead_code,
    reason = "the report (examples/benchmark.rs) reads the titles, units and bars"
)]
mod workloads;

fn bench_all(c: &mut Criterion) {
    for w in workloads::all() {
        let mut g = c.benchmark_group(w.id);
        g.sample_size(w.samples)
            .measurement_time(Duration::from_secs(4))
            .throughput(Throughput::Elements(w.ops));
        for contender in &w.contenders {
            let mut iteration = (contender.make)();
            g.bench_function(contender.name, |b| b.iter_with_large_drop(&mut iteration));
        }
        g.finish();
    }
}

criterion_group!(benches, bench_all);
criterion_main!(benches);
