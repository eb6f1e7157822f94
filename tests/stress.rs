//! Stress tests (issue #5): many operations, random panics and delays, each
//! outcome checked and every value drop-counted. Full size in release
//! (`cargo test --release --test stress`, which `.ci/run` runs); a tenth of
//! the size under plain `cargo test`, so the debug suite stays quick.
//!
//! Randomness is a fixed-seed xorshift: a failure reproduces exactly.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::Duration;

use common::{within, DropCounter};
use velocity_async::{self as va, Pool};

/// Full size in release, a tenth in debug builds.
fn scaled(n: usize) -> usize {
    if cfg!(debug_assertions) {
        (n / 10).max(1)
    } else {
        n
    }
}

/// A pool whose idle workers never retire during a test: a lost wake-up
/// then hangs (and `within` fails the test) instead of being healed by the
/// next keep-alive expiry 10 s later.
fn stress_pool() -> Pool {
    Pool::builder()
        .keep_alive(Duration::from_secs(3600))
        .build()
}

/// `within(300, f)`, with a fresh `stress_pool()` installed for the free
/// functions `f` calls.
fn on_stress_pool<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    within(300, move || stress_pool().install(f))
}

/// Thousands of deliberate panics: keep std's hook from printing each one.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn a_million_go_calls_each_run_and_drop_exactly_once() {
    within(300, || {
        let n = scaled(1_000_000);
        let pool = stress_pool();
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let ran = ran.clone();
            let token = DropCounter(dropped.clone());
            pool.go(move || {
                let _token = token;
                ran.fetch_add(1, Ordering::Relaxed);
            });
        }
        let report = pool.shutdown(Duration::from_secs(120));
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(ran.load(Ordering::SeqCst), n);
        assert_eq!(dropped.load(Ordering::SeqCst), n);
        assert_eq!(pool.stats().completed, n as u64);
    });
}

#[test]
fn run_and_get_from_eight_submitting_threads() {
    within(300, || {
        let per_thread = scaled(100_000) / 8;
        let pool = stress_pool();
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let pool = &pool;
                s.spawn(move || {
                    for i in 0..per_thread as u64 {
                        let v = t * 1_000_000 + i;
                        assert_eq!(pool.run(move || v * 3).get().unwrap(), v * 3);
                    }
                });
            }
        });
        assert_eq!(pool.stats().completed, 8 * per_thread as u64);
        assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
    });
}

#[test]
fn timeouts_at_the_edge_resolve_to_exactly_one_consistent_outcome() {
    within(300, || {
        let n = scaled(10_000);
        let pool = stress_pool();
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut values, mut timeouts) = (0, 0);
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                // Work of 0–200 µs against a 100 µs deadline.
                let work = Duration::from_micros(rng.below(200));
                let token = DropCounter(dropped.clone());
                pool.run_with_timeout(Duration::from_micros(100), move || {
                    std::thread::sleep(work);
                    (i, token)
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            task.wait();
            // Resolved: `timed_out` can no longer change.
            let timed_out = task.timed_out();
            match task.get() {
                Ok((j, _token)) => {
                    assert_eq!(i, j);
                    assert!(!timed_out);
                    values += 1;
                }
                Err(e) => {
                    assert!(e.is_timeout(), "{e}");
                    assert!(timed_out);
                    timeouts += 1;
                }
            }
        }
        assert_eq!(values + timeouts, n);
        // Abandoned work finishes and drops its late result exactly once.
        assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
        assert_eq!(dropped.load(Ordering::SeqCst), n);
    });
}

#[test]
fn races_with_random_panics_and_delays_never_hang_and_pick_a_survivor() {
    quiet_panics();
    on_stress_pool(|| {
        let rounds = scaled(10_000);
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut all_panicked = 0;
        for round in 0..rounds {
            // Every 7th round, every job panics.
            let panics: [bool; 3] = if round % 7 == 0 {
                [true; 3]
            } else {
                [rng.below(2) == 0, rng.below(2) == 0, rng.below(2) == 0]
            };
            let delays: [u64; 3] = [rng.below(50), rng.below(50), rng.below(50)];
            let job = |k: usize| {
                let token = DropCounter(dropped.clone());
                let (panics, delay) = (panics[k], delays[k]);
                move || {
                    std::thread::sleep(Duration::from_micros(delay));
                    if panics {
                        panic!("job {k} of round {round}");
                    }
                    (k, token)
                }
            };
            let outcome = va::race((job(0), job(1), job(2))).get();
            match outcome {
                Ok((k, _token)) => assert!(!panics[k], "round {round}: job {k} panicked yet won"),
                Err(e) => {
                    assert!(e.is_panic(), "round {round}: {e}");
                    assert!(panics.iter().all(|&p| p), "round {round}: a survivor lost");
                    all_panicked += 1;
                }
            }
        }
        assert!(all_panicked >= rounds / 7);
        // Losers finish after the winner and their results are dropped by
        // the race: every job's value is dropped exactly once.
        common::eventually(60, || dropped.load(Ordering::SeqCst) >= 3 * rounds);
        assert_eq!(dropped.load(Ordering::SeqCst), 3 * rounds);
    });
}

#[test]
fn all_and_map_rounds_with_a_random_panic_and_borrowed_output() {
    quiet_panics();
    on_stress_pool(|| {
        let rounds = scaled(1_000);
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for round in 0..rounds {
            let n = 1 + rng.below(32) as usize;
            // A panicking index in about two rounds of three.
            let bad = rng.below(n as u64 * 3 / 2) as usize;
            let dropped = Arc::new(AtomicUsize::new(0));

            // `all` over jobs writing through `&mut` borrows of one buffer.
            let mut out = vec![0usize; n];
            let jobs: Vec<_> = out
                .iter_mut()
                .enumerate()
                .map(|(i, slot)| {
                    let token = DropCounter(dropped.clone());
                    move || {
                        if i == bad {
                            panic!("all item {i}");
                        }
                        *slot = i + 1;
                        token
                    }
                })
                .collect();
            let result = va::all(jobs);
            for (i, v) in out.iter().enumerate() {
                if i != bad {
                    assert_eq!(*v, i + 1, "round {round}: item {i} did not run");
                }
            }
            match result {
                Ok(tokens) => {
                    assert!(bad >= n);
                    assert_eq!(tokens.len(), n);
                }
                Err(e) => {
                    assert!(bad < n);
                    assert!(e.to_string().contains(&format!("all item {bad}")), "{e}");
                }
            }
            // Every job's closure (and result) was dropped before `all` returned.
            assert_eq!(dropped.load(Ordering::SeqCst), n, "round {round}");

            // `map` returning drop-counted values.
            let dropped = Arc::new(AtomicUsize::new(0));
            let result = va::map(0..n, |i| {
                if i == bad {
                    panic!("map item {i}");
                }
                DropCounter(dropped.clone())
            });
            match result {
                Ok(v) => {
                    assert_eq!(v.len(), n);
                    drop(v);
                    assert_eq!(dropped.load(Ordering::SeqCst), n);
                }
                Err(e) => {
                    assert!(e.to_string().contains(&format!("map item {bad}")), "{e}");
                    // The other items' results were produced and dropped.
                    assert_eq!(dropped.load(Ordering::SeqCst), n - 1, "round {round}");
                }
            }
        }
    });
}

/// Waits until `n` parties arrived, or fails after a generous timeout.
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
    n: usize,
}

impl Rendezvous {
    fn wait(&self) {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, timeout) = self
            .all_here
            .wait_timeout_while(arrived, Duration::from_secs(60), |a| *a < self.n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of {} items ran at once",
            *arrived,
            self.n
        );
    }
}

#[test]
fn for_each_runs_exactly_limit_items_at_once() {
    on_stress_pool(|| {
        let items = scaled(10_000).max(200);
        for limit in [1usize, 2, 7, 64] {
            let running = AtomicUsize::new(0);
            let peak = AtomicUsize::new(0);
            let done = AtomicUsize::new(0);
            // The first `limit` items meet: `limit` really run at once.
            let meet = Rendezvous {
                arrived: Mutex::new(0),
                all_here: Condvar::new(),
                n: limit,
            };
            va::for_each(0..items, limit, |i| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                if i < limit {
                    meet.wait();
                } else {
                    std::hint::black_box((0..100).sum::<u64>());
                }
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            assert_eq!(done.load(Ordering::SeqCst), items);
            assert_eq!(peak.load(Ordering::SeqCst), limit, "limit {limit}");
        }
    });
}

#[test]
fn a_cancel_the_work_answers_with_a_panic_resolves_as_cancelled() {
    // The work sees the cancel as soon as the canceller marks its context
    // done, before the canceller records the outcome; a work that then
    // panics must not make the panic the outcome of a cancelled task (the
    // canceller counts on `Cancelled`). The race is narrow (met at least
    // once in each of 3 runs of 400,000 tries before the fix), so four
    // threads try it many times.
    quiet_panics();
    within(300, || {
        let per_thread = scaled(100_000);
        let pool = stress_pool();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    // (Counted, not asserted here: the quiet panic hook
                    // would hide the message.)
                    let mut not_cancelled = Vec::new();
                    for _ in 0..per_thread {
                        let task = pool.run(|| {
                            va::Context::current().wait();
                            panic!("answered the cancel with a panic");
                        });
                        task.cancel();
                        let err = task.get().unwrap_err();
                        if !err.is_cancelled() {
                            not_cancelled.push(err.to_string());
                        }
                    }
                    not_cancelled
                })
            })
            .collect();
        for t in threads {
            let not_cancelled = t.join().unwrap();
            if !not_cancelled.is_empty() {
                eprintln!("resolved otherwise: {not_cancelled:?}");
            }
            assert!(not_cancelled.is_empty());
        }
        assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
    });
}
