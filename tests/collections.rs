//! `for_each`, `map`, `map_n`, `try_for_each`, `go_for_each`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use common::{within, DropCounter};
use va::{Context, Error};
use velocity_async as va;

fn observe_concurrency(limit: usize, items: usize) -> usize {
    let current = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    va::for_each(0..items, limit, |_| {
        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(300)); // blocking work
        current.fetch_sub(1, Ordering::SeqCst);
    })
    .unwrap();
    peak.load(Ordering::SeqCst)
}

#[test]
fn for_each_visits_every_item_once() {
    within(60, || {
        let seen = Mutex::new(vec![0u8; 1000]);
        va::for_each(0..1000usize, 8, |i| seen.lock().unwrap()[i] += 1).unwrap();
        assert!(seen.into_inner().unwrap().iter().all(|&c| c == 1));
    });
}

#[test]
fn for_each_never_exceeds_the_limit() {
    within(120, || {
        for limit in [1, 2, 7] {
            let peak = observe_concurrency(limit, 60);
            assert!(peak <= limit, "limit {limit}, observed {peak}");
        }
    });
}

#[test]
fn for_each_reaches_the_limit_for_blocking_items() {
    within(120, || {
        // 16 items that can only finish together: the limit of 16 must be
        // reached, or this hangs (and the outer timeout fails it).
        let b = Barrier::new(16);
        va::for_each(0..16, 16, |_| {
            b.wait();
        })
        .unwrap();
    });
}

#[test]
fn limit_zero_is_the_default_cap_and_huge_limits_are_fine() {
    within(120, || {
        let b = Barrier::new(20);
        va::for_each(0..20, 0, |_| {
            b.wait();
        })
        .unwrap();
        let sum = AtomicUsize::new(0);
        va::for_each(0..100usize, usize::MAX, |i| {
            sum.fetch_add(i, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(sum.load(Ordering::Relaxed), 4950);
    });
}

#[test]
fn empty_inputs() {
    within(60, || {
        va::for_each(Vec::<u8>::new(), 4, |_| unreachable!()).unwrap();
        assert!(va::map(Vec::<u8>::new(), |x| x).unwrap().is_empty());
        va::try_for_each(Vec::<u8>::new(), 4, |_| Err(Error::NoJobs)).unwrap();
    });
}

#[test]
fn for_each_panics_do_not_stop_others_and_the_lowest_index_wins() {
    within(60, || {
        for bad in [0usize, 17, 99] {
            let ran = AtomicUsize::new(0);
            let err = va::for_each(0..100usize, 4, |i| {
                if i == bad || i == 99 {
                    panic!("item {i}");
                }
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap_err();
            assert_eq!(err.as_panic().unwrap().message(), format!("item {bad}"));
            let expected = if bad == 99 { 99 } else { 98 };
            assert_eq!(ran.load(Ordering::SeqCst), expected);
        }
    });
}

#[test]
fn map_keeps_input_order() {
    within(60, || {
        let out = va::map(0..10_000u64, |i| i * i).unwrap();
        assert_eq!(out, (0..10_000u64).map(|i| i * i).collect::<Vec<_>>());
        let words = vec!["a".to_string(), "bb".to_string()];
        assert_eq!(va::map(&words, |w| w.len()).unwrap(), vec![1, 2]);
    });
}

#[test]
fn map_of_a_million_items() {
    within(300, || {
        let out = va::map(0..1_000_000u64, |i| i.wrapping_mul(31)).unwrap();
        assert_eq!(out.len(), 1_000_000);
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, v)| *v == (i as u64).wrapping_mul(31)));
    });
}

#[test]
fn map_with_per_item_results() {
    within(60, || {
        let out = va::map(0..5, |i| {
            if i % 2 == 0 {
                Ok(i)
            } else {
                Err(format!("odd {i}"))
            }
        })
        .unwrap();
        assert_eq!(out[1], Err("odd 1".to_string()));
        assert_eq!(out[4], Ok(4));
    });
}

#[test]
fn map_n_limits_and_borrows_mutably() {
    within(60, || {
        let mut cells = [0u32; 50];
        let out = va::map_n(cells.iter_mut().enumerate(), 3, |(i, c)| {
            *c = i as u32 + 1;
            i
        })
        .unwrap();
        assert_eq!(out, (0..50).collect::<Vec<_>>());
        assert!(cells.iter().enumerate().all(|(i, c)| *c == i as u32 + 1));
    });
}

#[test]
fn map_drops_every_input_and_output_exactly_once() {
    within(60, || {
        let in_drops = Arc::new(AtomicUsize::new(0));
        let out_drops = Arc::new(AtomicUsize::new(0));
        let inputs: Vec<_> = (0..300).map(|_| DropCounter(in_drops.clone())).collect();
        let out = va::map(inputs, |d| {
            drop(d);
            DropCounter(out_drops.clone())
        })
        .unwrap();
        assert_eq!(in_drops.load(Ordering::SeqCst), 300);
        drop(out);
        assert_eq!(out_drops.load(Ordering::SeqCst), 300);

        // With a panic: the outputs made are dropped, once.
        let out_drops = Arc::new(AtomicUsize::new(0));
        let made = AtomicUsize::new(0);
        let r = va::map(0..300, |i| {
            if i == 150 {
                panic!("bad item");
            }
            made.fetch_add(1, Ordering::SeqCst);
            DropCounter(out_drops.clone())
        });
        assert!(r.is_err());
        assert_eq!(
            out_drops.load(Ordering::SeqCst),
            made.load(Ordering::SeqCst)
        );
        assert_eq!(made.load(Ordering::SeqCst), 299);
    });
}

#[test]
fn a_panic_at_every_index_is_reported_at_that_index() {
    within(120, || {
        for bad in 0..20 {
            let err = va::map(0..20, |i| if i == bad { panic!("{i}") } else { i }).unwrap_err();
            assert_eq!(err.as_panic().unwrap().message(), bad.to_string());
        }
    });
}

#[test]
fn items_see_a_child_of_the_callers_context() {
    within(60, || {
        let ctx = Context::new();
        let (started_tx, started_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let started_tx = Mutex::new(started_tx);
        let c = ctx.clone();
        let _t = va::run_with_context(&c, move || {
            let r = va::map(0..2, |_| {
                started_tx.lock().unwrap().send(()).unwrap();
                Context::current().wait();
                Context::current().is_done()
            });
            tx.send(r).unwrap();
        });
        // Both items started (a cancelled loop starts no further item), then
        // the cancel reaches both.
        started_rx.recv().unwrap();
        started_rx.recv().unwrap();
        ctx.cancel();
        assert!(rx.recv().unwrap().unwrap().iter().all(|d| *d));
    });
}

#[test]
fn try_for_each_stops_after_the_first_error_and_cancels_the_running() {
    within(60, || {
        let ran = AtomicUsize::new(0);
        let r = va::try_for_each(0..10_000, 2, |i| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 3 {
                return Err(Error::NoJobs);
            }
            if i < 3 {
                return Ok(());
            }
            // Items running when the error happens see their context done.
            Context::current().wait_timeout(Duration::from_secs(30));
            Ok(())
        });
        assert!(matches!(r, Err(Error::NoJobs)));
        assert!(
            ran.load(Ordering::SeqCst) < 100,
            "stopped handing out items: {}",
            ran.load(Ordering::SeqCst)
        );

        let r: Result<(), Error> =
            va::try_for_each(0..10, 3, |i| if i == 5 { panic!("boom") } else { Ok(()) });
        assert!(r.unwrap_err().is_panic());
        assert!(va::try_for_each(0..10, 3, |_| Ok::<(), Error>(())).is_ok());
    });
}

#[test]
fn try_for_each_with_limit_one_starts_nothing_after_the_failing_item() {
    // Limit 1 runs the items one after another, so "no item starts after
    // the first error" is exact here. Fast items are taken in growing
    // chunks: the failing item often sits in the middle of a chunk (found
    // by Miri in CI, where item 3 of the chunk [2, 3] still ran).
    within(60, || {
        for fail_at in [0usize, 1, 2, 3, 5, 6, 7, 100, 999] {
            let started = AtomicUsize::new(0);
            let r = va::try_for_each(0..1_000usize, 1, |i| {
                started.fetch_add(1, Ordering::SeqCst);
                if i == fail_at {
                    Err(Error::NoJobs)
                } else {
                    Ok(())
                }
            });
            assert!(matches!(r, Err(Error::NoJobs)));
            assert_eq!(
                started.load(Ordering::SeqCst),
                fail_at + 1,
                "failing at {fail_at}"
            );
        }
    });
}

#[test]
fn go_for_each_runs_in_the_background() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        va::go_for_each(0..100, 4, move |i| tx.lock().unwrap().send(i).unwrap());
        let mut got: Vec<i32> = rx.iter().take(100).collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn cpu_bound_map_does_not_grow_the_pool() {
    within(120, || {
        let pool = va::Pool::builder().build();
        let out = pool
            .run(|| va::map(0..2_000_000u64, |i| i.count_ones()).unwrap().len())
            .get()
            .unwrap();
        assert_eq!(out, 2_000_000);
        // A heuristic: brief stalls (page faults on a busy machine) may add a
        // few threads, never hundreds.
        assert!(pool.stats().threads_spawned <= 64, "{:?}", pool.stats());
    });
}

/// Regression: the monitor did not count the caller of `map` as computing,
/// so during a long CPU-bound `map` it woke one worker more than the pool's
/// `target_running`: three threads time-shared two CPUs (W4 ran up to 30 %
/// slower). Now the caller plus `target_running - 1` workers run the items.
///
/// That bug woke the extra worker in every run. A thread the hypervisor
/// stalls for a tick rightly looks blocked to the monitor, which may then add
/// a helper: on this shared VM that happened in 1 of ~65 runs. So the map
/// is tried up to three times and one run within the target passes.
///
/// Not under ThreadSanitizer (`.ci/run` sets `--cfg velocity_tsan`): TSan
/// slows threads unevenly, so the monitor misread them (3 threads ran the
/// map on a pool targeting 2 in 5 of 12 runs).
#[test]
#[cfg_attr(
    velocity_tsan,
    ignore = "ThreadSanitizer slows threads unevenly; the monitor's reading is checked in every other step"
)]
fn cpu_bound_map_keeps_target_running_threads_computing_caller_included() {
    within(120, || {
        let pool = va::Pool::builder().target_running(2).build();
        // Each thread counts itself once per run, lock-free: a shared lock
        // taken on the hot path made the test itself block (under load, a
        // preempted holder leaves the other thread asleep on the futex,
        // which the monitor rightly counted as blocked and grew for).
        static RUN: AtomicUsize = AtomicUsize::new(0);
        thread_local!(static SEEN_IN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });
        let n = if cfg!(debug_assertions) {
            300_000
        } else {
            3_000_000
        };
        // Warm: a worker measured from its birth may look blocked while its
        // thread starts (the monitor's heuristic); that is not what this
        // test is about.
        pool.install(|| va::map(0..10_000u64, |i| i + 1)).unwrap();
        let mut runs = Vec::new();
        for _ in 0..3 {
            let run = RUN.fetch_add(1, Ordering::SeqCst) + 1;
            let used = AtomicUsize::new(0);
            // Tens of milliseconds of CPU work: dozens of monitor ticks.
            pool.install(|| {
                va::map(0..n, |i: u64| {
                    if i % 1024 == 0 && SEEN_IN.with(|s| s.replace(run)) != run {
                        used.fetch_add(1, Ordering::Relaxed);
                    }
                    (0..20).fold(i, |a, b| a.rotate_left(5) ^ b)
                })
                .unwrap()
            });
            let used = used.load(Ordering::SeqCst);
            if used <= 2 {
                return;
            }
            runs.push(used);
        }
        panic!(
            "{runs:?} threads ran the items of each of three maps on a pool targeting 2: {:?}",
            pool.stats()
        );
    });
}
