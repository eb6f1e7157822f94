//! Fault injection: bad and extreme inputs, work that never returns, and a
//! shutdown under load. Each test runs inside one generous outer timeout
//! (`within`), so a hang fails fast instead of stalling CI. Panicking
//! closures, handlers, callbacks and `Drop`s are in `panic_handler.rs`,
//! `task.rs` and `progress.rs`; thread-spawn failure in `spawn_failure.rs`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{within, worker_thread_name, Gate};
use va::Pool;
use velocity_async as va;

#[test]
fn zero_and_max_durations_never_panic_anywhere() {
    within(120, || {
        // Zero: decided at once, nothing called.
        let called = Arc::new(AtomicUsize::new(0));
        let c = called.clone();
        let t = va::run_with_timeout(Duration::ZERO, move || c.fetch_add(1, Ordering::SeqCst));
        assert!(t.timed_out());
        assert!(t.get().unwrap_err().is_timeout());
        let race = va::race_with_timeout(Duration::ZERO, (|| 1,));
        assert!(race.get().unwrap_err().is_timeout());
        assert!(va::Context::with_timeout(Duration::ZERO).is_done());
        assert!(!va::Context::new().wait_timeout(Duration::ZERO));
        let slow = va::run(|| std::thread::sleep(Duration::from_millis(50)));
        assert!(!slow.wait_timeout(Duration::ZERO) || slow.ready());

        // MAX: no overflow, simply no deadline.
        assert_eq!(va::run_with_timeout(Duration::MAX, || 5).get().unwrap(), 5);
        assert_eq!(
            va::race_with_timeout(Duration::MAX, (|| 6,)).get().unwrap(),
            6
        );
        let ctx = va::Context::with_timeout(Duration::MAX);
        assert!(!ctx.is_done());
        assert!(ctx.child_with_timeout(Duration::MAX).deadline().is_none());
        let t = va::run(|| 7);
        assert!(t.wait_timeout(Duration::MAX));
        assert_eq!(t.get().unwrap(), 7);
        assert!(va::task().timeout(Duration::MAX).run(|| ()).get().is_ok());
        assert_eq!(called.load(Ordering::SeqCst), 0);

        // The pool's own durations.
        let pool = Pool::builder()
            .keep_alive(Duration::MAX)
            .spin(Duration::MAX)
            .monitor_interval(Duration::MAX)
            .build();
        assert_eq!(pool.run(|| 8).get().unwrap(), 8);
        assert!(pool.shutdown(Duration::MAX).is_complete());
        let pool = Pool::builder()
            .keep_alive(Duration::ZERO)
            .spin(Duration::ZERO)
            .monitor_interval(Duration::ZERO)
            .build();
        assert_eq!(pool.run(|| 9).get().unwrap(), 9);
        assert!(pool.shutdown(Duration::ZERO).still_running() <= 1);
        slow.get().unwrap();
    });
}

/// With `monitor_interval(MAX)` the pool must still grow for blocking work
/// (the interval is clamped), and with `spin(MAX)` idle threads must still go
/// to sleep and shut down (the spin is clamped).
#[test]
fn huge_monitor_interval_and_spin_are_clamped() {
    within(120, || {
        let pool = Pool::builder()
            .target_running(1)
            .monitor_interval(Duration::MAX)
            .spin(Duration::MAX)
            .build();
        // Four jobs that can only finish together: the pool has to see the
        // first one blocked to start the others.
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let b = barrier.clone();
                pool.run(move || {
                    b.wait();
                })
            })
            .collect();
        for t in tasks {
            t.get().unwrap();
        }
        assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
        assert!(common::eventually(30, || pool.stats().threads_alive == 0));
    });
}

#[test]
fn zero_and_huge_limits_everywhere() {
    within(120, || {
        for limit in [0, 1, usize::MAX] {
            let seen = AtomicUsize::new(0);
            va::for_each(0..100, limit, |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            assert_eq!(seen.load(Ordering::SeqCst), 100);
            let out = va::map_n(0..100u32, limit, |x| x + 1).unwrap();
            assert_eq!(out, (1..101).collect::<Vec<_>>());
            let r: Result<(), va::Error> = va::try_for_each(0..100, limit, |_| Ok(()));
            assert!(r.is_ok());
            let (a, b) = va::all_n((|| 1, || 2), limit).unwrap();
            assert_eq!(a + b, 3);
            let r: Result<(u8,), va::Error> = va::all_with_error_n((|| Ok(1u8),), limit);
            assert_eq!(r.unwrap(), (1,));
            let (tx, rx) = mpsc::channel();
            va::go_for_each(0..10, limit, move |i| tx.send(i).unwrap());
            let mut got: Vec<i32> = rx.iter().collect();
            got.sort_unstable();
            assert_eq!(got, (0..10).collect::<Vec<_>>());
        }
        // Pool limits: 0 threads means 1, usize::MAX is a cap never reached.
        for max in [0, usize::MAX] {
            let pool = Pool::builder().max_threads(max).target_running(max).build();
            let tasks: Vec<_> = (0..64).map(|i| pool.run(move || i)).collect();
            let sum: i32 = tasks.into_iter().map(|t| t.get().unwrap()).sum();
            assert_eq!(sum, (0..64).sum());
            assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
        }
        // A stack of 0 bytes is raised to the platform's minimum.
        let pool = Pool::builder().stack_size(0).build();
        assert_eq!(pool.run(|| 1).get().unwrap(), 1);
    });
}

#[test]
fn empty_inputs_everywhere() {
    within(60, || {
        let none: Vec<u8> = Vec::new();
        va::for_each(none.iter(), 0, |_| unreachable!()).unwrap();
        assert!(va::map(none.iter(), |_| 0).unwrap().is_empty());
        let jobs: Vec<fn() -> u8> = Vec::new();
        assert!(va::all(jobs).unwrap().is_empty());
        let jobs: Vec<fn() -> u8> = Vec::new();
        assert!(va::race(jobs).get().is_err());
        let jobs: [fn() -> u8; 0] = [];
        assert_eq!(va::all(jobs).unwrap(), [0u8; 0]);
    });
}

#[test]
fn names_with_nul_bytes_are_accepted() {
    within(60, || {
        let pool = Pool::builder().thread_name("bad\0name").build();
        let name = worker_thread_name(&pool);
        assert_eq!(name.as_deref(), Some("badname"));
        let named = pool.task().name("task\0with nul").run(|| 3);
        assert_eq!(named.get().unwrap(), 3);
    });
}

/// A task times out while its work never returns: the task resolves at the
/// deadline, the work is counted as abandoned (never hidden), a shutdown
/// reports it, and once it finally returns everything is accounted for.
#[test]
fn a_timed_out_task_whose_work_never_returns() {
    within(120, || {
        let pool = Pool::builder().build();
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        let (started_tx, started) = mpsc::channel();
        let task = pool.run_with_timeout(Duration::from_millis(20), move || {
            started_tx.send(()).unwrap();
            while !r.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_millis(1));
            }
            "late"
        });
        started.recv().unwrap();
        assert!(task.get().unwrap_err().is_timeout());
        assert!(common::eventually(10, || pool.stats().abandoned == 1));
        let report = pool.shutdown(Duration::from_millis(10));
        assert!(!report.is_complete());
        assert_eq!((report.still_running(), report.abandoned()), (1, 1));
        release.store(true, Ordering::SeqCst);
        assert!(pool.shutdown(Duration::MAX).is_complete());
        assert_eq!(pool.stats().abandoned, 0);
    });
}

/// Shutdown while 10 jobs run and 1,000 wait: the report counts both, and
/// once the running ones are let go every queued job still runs — nothing
/// submitted before the shutdown is lost — while new work is refused.
#[test]
fn shutdown_with_a_thousand_queued_and_ten_running() {
    within(120, || {
        let pool = Pool::builder().max_threads(10).target_running(10).build();
        let gate = Gate::new();
        let (started_tx, started) = mpsc::channel();
        for _ in 0..10 {
            let g = gate.clone();
            let tx = started_tx.clone();
            pool.go(move || {
                tx.send(()).unwrap();
                g.wait();
            });
        }
        for _ in 0..10 {
            started.recv().unwrap();
        }
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let r = ran.clone();
            pool.go(move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
        let report = pool.shutdown(Duration::ZERO);
        assert!(!report.is_complete());
        assert_eq!(report.still_running(), 10);
        assert_eq!(report.still_queued(), 1000);
        assert!(pool
            .try_go(|| ())
            .unwrap_err()
            .to_string()
            .contains("shut down"));
        gate.open();
        assert!(pool.shutdown(Duration::MAX).is_complete());
        assert_eq!(ran.load(Ordering::SeqCst), 1000);
        assert_eq!(pool.stats().completed, 1010);
    });
}
