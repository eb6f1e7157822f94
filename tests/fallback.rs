//! The pool's two promises on every platform, whatever its probes: CPU work
//! stays at `target_running` threads, blocking work gets threads. `.ci/run`
//! runs this binary (with the pool and loop suites) a second time under
//! `RUSTFLAGS="--cfg velocity_no_os_probes"`, which turns off the Linux
//! per-thread probes so the fallback of other platforms (the process CPU
//! clock) is what decides.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::within;
use velocity_async as va;

/// One test at a time: on the fallback, the process clock is the evidence,
/// and another test's CPU-bound map in the same process would hide this
/// one's blocked workers (see "Platforms" in the README).
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

fn spin_for(d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut x = 1u64;
    while Instant::now() < end {
        x = std::hint::black_box(x.rotate_left(7) ^ 0x9e37);
    }
    x
}

/// Before: with the probes off, this map started 168 threads (every long
/// CPU item looked blocked after a tick).
#[test]
fn a_cpu_bound_map_of_long_items_starts_at_most_one_thread_more_than_its_target() {
    within(120, || {
        let _alone = alone();
        let pool = va::Pool::builder().target_running(2).build();
        let out = pool
            .install(|| va::map(0..400u64, |_| spin_for(Duration::from_millis(5))))
            .unwrap();
        assert_eq!(out.len(), 400);
        let stats = pool.stats();
        assert!(
            stats.threads_spawned <= 3,
            "a CPU-bound map on a pool targeting 2 started {} threads: {stats:?}",
            stats.threads_spawned
        );
    });
}

#[test]
fn two_hundred_blocking_jobs_finish_well_under_their_serial_time() {
    within(120, || {
        let _alone = alone();
        let pool = va::Pool::builder().target_running(2).build();
        let start = Instant::now();
        let tasks: Vec<_> = (0..200)
            .map(|_| pool.run(|| std::thread::sleep(Duration::from_millis(20))))
            .collect();
        for t in tasks {
            t.get().unwrap();
        }
        let took = start.elapsed();
        // Serially 4 s; on two threads 2 s. Generous: half the serial time.
        assert!(took < Duration::from_secs(2), "200 x 20 ms took {took:?}");
    });
}

#[test]
fn a_blocking_loop_grows_past_its_target() {
    within(120, || {
        let _alone = alone();
        let pool = va::Pool::builder().target_running(2).build();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let start = Instant::now();
        pool.install(|| {
            va::for_each(0..64, 16, |_| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .unwrap();
        let took = start.elapsed();
        // Serially 1.28 s; at the target of 2, 0.64 s.
        assert!(
            took < Duration::from_millis(640),
            "64 x 20 ms at limit 16 took {took:?}"
        );
        assert!(
            peak.load(Ordering::SeqCst) > 2,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
    });
}
