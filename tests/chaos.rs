//! A seeded chaos test: every helper mixed at random — `run`,
//! `run_with_timeout`, `run_with_context` with cancels, `go`, `all`,
//! `all_with_error`, `race`, `map`, `for_each`, `try_for_each`, nested waits
//! inside jobs — with random panics, work of 0 to 3 ms (sleeping and
//! computing), random deadlines and cancels, on pools capped at 1 to 4
//! threads, and a `shutdown` at a random moment.
//!
//! After each round it checks that every call returned within a generous
//! bound, that every closure was called at most once and dropped exactly
//! once, that every outcome agrees with `timed_out()` and with what the
//! closure did (a value only if it returned one, a panic only if it
//! panicked), and that the pool's counters return to zero.
//!
//! `VELOCITY_CHAOS_ROUNDS` sets the number of rounds (default 40; CI runs
//! 1,000 in release) and `VELOCITY_CHAOS_SEED` the first seed. A failing
//! round prints its seed; add it to `REGRESSION_SEEDS` to keep it.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use velocity_async as va;

/// Seeds that once failed, run first in every run.
const REGRESSION_SEEDS: &[u64] = &[
    // A dependent pair on a one-thread pool: the first job then waited on a
    // std channel, the caller's own deadlock at a cap of one (a test bug);
    // it now waits on a `Context`, whose wait lends the worker's slot.
    0xc6a8_97f5_beac_ce4d,
    // `Stats::abandoned` stayed at 1 after a complete shutdown: a cancel
    // between a worker's claim of a task and its check of the outcome was
    // counted as abandoned and never uncounted (found by CI's 1,000 rounds).
    0xc87a_39f0_b7d8_2355,
    // A dependent pair whose second job a shutdown refused: the first
    // waited its full 20 s for a cancel that never came, past the
    // shutdown's own 20 s (a test bug; CI's ThreadSanitizer run).
    0x4537_8595_30e1_8905,
];

/// The payload of every planned panic (kept quiet by the hook below).
const PLANNED: &str = "chaos: planned panic";

/// Generous bound for any one call.
const CALL_BOUND: Duration = Duration::from_secs(20);

/// A long job, in microseconds: a timeout or cancel of at most a few
/// milliseconds must resolve its task well before it could end.
const LONG_WORK: u64 = 150_000;

/// How late a task with a deadline (or cancel) of at most 4 ms may resolve:
/// generous, yet well under `LONG_WORK`.
const EARLY_BOUND: Duration = Duration::from_millis(75);

/// A waker whose `wake` panics.
struct PanickyWaker;

impl std::task::Wake for PanickyWaker {
    fn wake(self: Arc<Self>) {
        std::panic::panic_any(PLANNED);
    }
}

/// splitmix64: a small, seedable generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What one closure did: called (at most once) and dropped (exactly once).
#[derive(Default)]
struct Life {
    called: AtomicUsize,
    dropped: AtomicUsize,
}

/// Moved into each closure; its drop is the closure's drop.
struct Token(Arc<Life>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// The ledger of every closure of a round.
#[derive(Default)]
struct Ledger(Mutex<Vec<Arc<Life>>>);

impl Ledger {
    fn token(&self) -> Token {
        let life = Arc::new(Life::default());
        self.0.lock().unwrap().push(life.clone());
        Token(life)
    }

    fn check(&self, seed: u64) {
        for (i, life) in self.0.lock().unwrap().iter().enumerate() {
            let called = life.called.load(Ordering::SeqCst);
            let dropped = life.dropped.load(Ordering::SeqCst);
            assert!(
                called <= 1,
                "seed {seed:#x}: closure {i} called {called} times"
            );
            assert_eq!(
                dropped, 1,
                "seed {seed:#x}: closure {i} dropped {dropped} times"
            );
        }
    }
}

/// One unit of work: how long, sleeping or computing, and whether it panics.
#[derive(Clone, Copy, Debug)]
struct Work {
    micros: u64,
    sleep: bool,
    panics: bool,
    value: u64,
}

impl Work {
    fn random(rng: &mut Rng) -> Work {
        Work {
            // Now and then a long job, which deadlines and cancels must not
            // wait for.
            micros: if rng.chance(4) {
                LONG_WORK
            } else {
                rng.below(3_000)
            },
            sleep: rng.chance(50),
            panics: rng.chance(10),
            value: rng.below(1_000_000),
        }
    }

    /// The closure doing this work, with its token.
    fn job(self, token: Token) -> impl FnOnce() -> u64 + Send + 'static {
        move || {
            token.0.called.fetch_add(1, Ordering::SeqCst);
            let end = Instant::now() + Duration::from_micros(self.micros);
            if self.sleep {
                std::thread::sleep(Duration::from_micros(self.micros));
            } else {
                let mut x = self.value;
                while Instant::now() < end {
                    x = std::hint::black_box(x.rotate_left(5) ^ 0x55);
                }
            }
            if self.panics {
                std::panic::panic_any(PLANNED);
            }
            let _keep = &token;
            self.value
        }
    }
}

/// Checks an outcome against the work that produced it. `ended_early` lists
/// the errors a deadline, a cancel or a shutdown may give instead.
fn check(seed: u64, what: &str, work: Work, r: &Result<u64, va::Error>, ended_early: bool) {
    match r {
        Ok(v) => {
            assert!(
                !work.panics,
                "seed {seed:#x}: {what}: a value from a panicking job"
            );
            assert_eq!(*v, work.value, "seed {seed:#x}: {what}: wrong value");
        }
        Err(va::Error::Panic(p)) => {
            assert!(
                work.panics,
                "seed {seed:#x}: {what}: a panic from a job that returned"
            );
            assert_eq!(p.message(), PLANNED, "seed {seed:#x}: {what}");
        }
        Err(e) if (e.is_timeout() || e.is_cancelled() || matches!(e, va::Error::ShutDown)) => {
            assert!(ended_early, "seed {seed:#x}: {what}: unexpected {e:?}");
        }
        Err(e) => panic!("seed {seed:#x}: {what}: unexpected error {e:?}"),
    }
}

/// A deadline or cancel of at most a few milliseconds on long work resolved
/// its task long before the work could end.
fn resolved_early(seed: u64, work: Work, began: Instant, what: &str) {
    let took = began.elapsed();
    if work.micros == LONG_WORK {
        assert!(
            took < EARLY_BOUND,
            "seed {seed:#x}: {what} resolved after {took:?}"
        );
    }
}

/// Waits for a task with the generous bound, and checks `timed_out()`
/// agrees with the outcome.
fn settle(seed: u64, what: &str, task: va::Task<u64>) -> Result<u64, va::Error> {
    assert!(
        task.wait_timeout(CALL_BOUND),
        "seed {seed:#x}: {what}: no outcome within {CALL_BOUND:?}"
    );
    let timed_out = task.timed_out();
    let r = task.get();
    assert_eq!(
        timed_out,
        matches!(r, Err(va::Error::Timeout)),
        "seed {seed:#x}: {what}: timed_out() disagrees with {r:?}"
    );
    r
}

/// One random operation on `pool`, checked.
fn operate(seed: u64, rng: &mut Rng, pool: &va::Pool, ledger: &Ledger, may_shut: bool) {
    let start = Instant::now();
    let op = rng.below(14);
    if std::env::var_os("VELOCITY_CHAOS_TRACE").is_some() {
        println!("  op {op}");
    }
    match op {
        0 => {
            let w = Work::random(rng);
            let r = settle(seed, "run", pool.run(w.job(ledger.token())));
            check(seed, "run", w, &r, may_shut);
        }
        1 => {
            let w = Work::random(rng);
            let d = Duration::from_micros(rng.below(4_000));
            let began = Instant::now();
            let task = pool.run_with_timeout(d, w.job(ledger.token()));
            let r = settle(seed, "run_with_timeout", task);
            check(seed, "run_with_timeout", w, &r, true);
            resolved_early(seed, w, began, &format!("a {d:?} timeout"));
        }
        2 => {
            let w = Work::random(rng);
            let ctx = va::Context::new();
            let task = pool.run_with_context(&ctx, w.job(ledger.token()));
            let delay = Duration::from_micros(rng.below(3_000));
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(delay);
                ctx.cancel();
            });
            let began = Instant::now();
            let r = settle(seed, "run_with_context", task);
            check(seed, "run_with_context", w, &r, true);
            resolved_early(seed, w, began, &format!("a cancel after {delay:?}"));
            canceller.join().unwrap();
        }
        3 => {
            let w = Work::random(rng);
            let job = w.job(ledger.token());
            pool.go(move || {
                job();
            });
        }
        4 => {
            let ws = [Work::random(rng), Work::random(rng), Work::random(rng)];
            let (a, b, c) = (
                ws[0].job(ledger.token()),
                ws[1].job(ledger.token()),
                ws[2].job(ledger.token()),
            );
            let r = pool.install(|| va::all((a, b, c)));
            match r {
                Ok((x, y, z)) => {
                    assert!(
                        ws.iter().all(|w| !w.panics),
                        "seed {seed:#x}: all: value despite a panic"
                    );
                    assert_eq!([x, y, z], [ws[0].value, ws[1].value, ws[2].value]);
                }
                Err(e) => assert!(
                    e.is_panic() && ws.iter().any(|w| w.panics)
                        || (may_shut && matches!(e, va::Error::ShutDown)),
                    "seed {seed:#x}: all: {e:?}"
                ),
            }
        }
        5 => {
            let n = rng.below(6) as usize + 1;
            let ws: Vec<Work> = (0..n).map(|_| Work::random(rng)).collect();
            let fail_at = rng.chance(30).then(|| rng.below(n as u64) as usize);
            let jobs: Vec<_> = ws
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let job = w.job(ledger.token());
                    move || -> Result<u64, va::Error> {
                        let v = job();
                        if Some(i) == fail_at {
                            Err(va::Error::NoJobs)
                        } else {
                            Ok(v)
                        }
                    }
                })
                .collect();
            match pool.install(|| va::all_with_error(jobs)) {
                Ok(vs) => {
                    assert!(
                        fail_at.is_none() && ws.iter().all(|w| !w.panics),
                        "seed {seed:#x}"
                    );
                    assert_eq!(vs, ws.iter().map(|w| w.value).collect::<Vec<_>>());
                }
                Err(e) => assert!(
                    (e.is_panic() && ws.iter().any(|w| w.panics))
                        || (matches!(e, va::Error::NoJobs) && fail_at.is_some())
                        || (may_shut && matches!(e, va::Error::ShutDown)),
                    "seed {seed:#x}: all_with_error: {e:?}"
                ),
            }
        }
        6 => {
            let ws = [Work::random(rng), Work::random(rng)];
            let timeout = rng
                .chance(50)
                .then(|| Duration::from_micros(rng.below(4_000)));
            let (a, b) = (ws[0].job(ledger.token()), ws[1].job(ledger.token()));
            let task = pool.install(|| match timeout {
                Some(d) => va::race_with_timeout(d, (a, b)),
                None => va::race((a, b)),
            });
            let r = settle(seed, "race", task);
            match &r {
                Ok(v) => assert!(
                    ws.iter().any(|w| !w.panics && w.value == *v),
                    "seed {seed:#x}: race: {v} is no job's value"
                ),
                Err(e) if e.is_panic() => {
                    assert!(
                        ws.iter().all(|w| w.panics),
                        "seed {seed:#x}: race lost to a panic"
                    )
                }
                Err(e) => assert!(
                    (e.is_timeout() && timeout.is_some())
                        || (may_shut && matches!(e, va::Error::ShutDown)),
                    "seed {seed:#x}: race: {e:?}"
                ),
            }
        }
        7 | 8 => {
            let n = rng.below(12) as usize;
            let ws: Vec<Work> = (0..n).map(|_| Work::random(rng)).collect();
            let limit = rng.below(4) as usize; // 0 is the default cap
            let jobs: Vec<_> = ws
                .iter()
                .map(|w| Mutex::new(Some(w.job(ledger.token()))))
                .collect();
            let call = |i: usize| jobs[i].lock().unwrap().take().map(|job| job());
            if op == 7 {
                match pool.install(|| va::map_n(0..n, limit, call)) {
                    Ok(vs) => {
                        assert!(ws.iter().all(|w| !w.panics), "seed {seed:#x}: map");
                        let want: Vec<_> = ws.iter().map(|w| Some(w.value)).collect();
                        assert_eq!(vs, want, "seed {seed:#x}: map");
                    }
                    Err(e) => assert!(
                        e.is_panic() && ws.iter().any(|w| w.panics),
                        "seed {seed:#x}: map: {e:?}"
                    ),
                }
            } else {
                let r = pool.install(|| {
                    va::for_each(0..n, limit, |i| {
                        call(i);
                    })
                });
                assert_eq!(
                    r.is_err(),
                    ws.iter().any(|w| w.panics),
                    "seed {seed:#x}: for_each: {r:?}"
                );
            }
            drop(jobs); // closures never called are dropped here
        }
        9 => {
            let n = rng.below(12) as usize;
            let ws: Vec<Work> = (0..n).map(|_| Work::random(rng)).collect();
            let fail_at = rng.chance(50).then(|| rng.below(n.max(1) as u64) as usize);
            let jobs: Vec<_> = ws
                .iter()
                .map(|w| Mutex::new(Some(w.job(ledger.token()))))
                .collect();
            let r = pool.install(|| {
                va::try_for_each(0..n, rng.below(3) as usize + 1, |i| {
                    let job = jobs[i].lock().unwrap().take();
                    if let Some(job) = job {
                        job();
                    }
                    if Some(i) == fail_at {
                        Err(va::Error::NoJobs)
                    } else {
                        Ok(())
                    }
                })
            });
            if let Err(e) = &r {
                assert!(
                    e.is_panic() || matches!(e, va::Error::NoJobs),
                    "seed {seed:#x}: try_for_each: {e:?}"
                );
            }
            drop(jobs);
        }
        11 => {
            // Nested waits at the cap: a race, a first_ok or a cancellable
            // task waited for inside a job (they never run inline on the
            // waiter, so the pool must lend the waiter's slot).
            let ws = [Work::random(rng), Work::random(rng)];
            let (a, b) = (ws[0].job(ledger.token()), ws[1].job(ledger.token()));
            let kind = rng.below(3);
            let task = pool.run(move || match kind {
                0 => va::race((a, b)).get(),
                1 => va::first_ok((move || Ok::<u64, va::Error>(a()), move || Ok(b())))
                    .get()
                    .and_then(|r| r.map_err(|mut errors| errors.remove(0))),
                _ => {
                    let ctx = va::Context::new();
                    let r = va::run_with_context(&ctx, a).get();
                    drop(b);
                    r
                }
            });
            assert!(
                task.wait_timeout(CALL_BOUND),
                "seed {seed:#x}: nested race: hung"
            );
            match task.get() {
                Ok(Ok(v)) => assert!(
                    ws.iter().any(|w| !w.panics && w.value == v),
                    "seed {seed:#x}: nested race: {v}"
                ),
                Ok(Err(e)) | Err(e) => assert!(
                    e.is_panic() || (may_shut && matches!(e, va::Error::ShutDown)),
                    "seed {seed:#x}: nested race: {e:?}"
                ),
            }
        }
        12 => {
            // Work that waits for work queued behind it, maybe across a
            // shutdown: once the second is accepted, the first must get it,
            // at any cap (it waits in a wait of ours, which lends its slot;
            // waiting on a std channel at a cap of one is the caller's own
            // deadlock).
            let ctx = va::Context::new();
            let got = Arc::new(AtomicUsize::new(0));
            let (g, c) = (got.clone(), ctx.clone());
            let first = ledger.token();
            pool.go(move || {
                first.0.called.fetch_add(1, Ordering::SeqCst);
                if c.wait_timeout(CALL_BOUND) {
                    g.fetch_add(1, Ordering::SeqCst);
                }
                drop(first);
            });
            let second = ledger.token();
            let keep = ctx.clone();
            let accepted = pool
                .try_go(move || {
                    second.0.called.fetch_add(1, Ordering::SeqCst);
                    ctx.cancel();
                    drop(second);
                })
                .is_ok();
            if !accepted {
                // Refused by a shutdown: nothing will cancel the context the
                // first job waits on, which would hold the shutdown for
                // CALL_BOUND (a test bug: seed 0x4537859530e18905 under
                // ThreadSanitizer, where the first job started after the
                // shutdown began).
                keep.cancel();
            }
            if accepted {
                assert!(
                    common::eventually(20, || got.load(Ordering::SeqCst) == 1),
                    "seed {seed:#x}: the dependent job never got its thread: {:?}",
                    pool.stats()
                );
            }
        }
        13 => {
            // A future polled with a waker that panics: whoever resolves the
            // task (a worker, the timer, a canceller) must survive it.
            let w = Work::random(rng);
            let d = Duration::from_micros(rng.below(4_000));
            let mut task = if rng.chance(50) {
                pool.run_with_timeout(d, w.job(ledger.token()))
            } else {
                pool.run(w.job(ledger.token()))
            };
            let waker = std::task::Waker::from(Arc::new(PanickyWaker));
            let mut cx = std::task::Context::from_waker(&waker);
            let polled = std::pin::Pin::new(&mut task).poll(&mut cx);
            let r = match polled {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => settle(seed, "polled task", task),
            };
            check(seed, "polled task", w, &r, true);
        }
        _ => {
            // Nested waits inside a job: a task and a loop on the same pool.
            let (outer, inner) = (Work::random(rng), Work::random(rng));
            let (oj, ij) = (outer.job(ledger.token()), inner.job(ledger.token()));
            let deadline = rng
                .chance(50)
                .then(|| Duration::from_micros(rng.below(4_000)));
            let p = pool.clone();
            let task = pool.run(move || {
                let inner = match deadline {
                    Some(d) => va::run_with_timeout(d, ij),
                    None => va::run(ij),
                };
                let first = inner.get();
                let _ = va::map(0..3, |i| i * 2);
                drop(p);
                (first, oj())
            });
            assert!(
                task.wait_timeout(CALL_BOUND),
                "seed {seed:#x}: nested: hung"
            );
            match task.get() {
                Ok((first, v)) => {
                    check(
                        seed,
                        "nested inner",
                        inner,
                        &first,
                        deadline.is_some() || may_shut,
                    );
                    check(seed, "nested outer", outer, &Ok(v), false);
                }
                Err(e) => assert!(
                    (e.is_panic() && outer.panics)
                        || (may_shut && matches!(e, va::Error::ShutDown)),
                    "seed {seed:#x}: nested: {e:?}"
                ),
            }
        }
    }
    assert!(
        start.elapsed() < CALL_BOUND,
        "seed {seed:#x}: operation {op} took {:?}",
        start.elapsed()
    );
}

/// One round: a random pool, a few threads of random operations, maybe a
/// shutdown at a random moment; then every check.
fn round(seed: u64) {
    let mut rng = Rng(seed);
    let max = rng.below(4) as usize + 1;
    if std::env::var_os("VELOCITY_CHAOS_TRACE").is_some() {
        println!("round {seed:#x}: max_threads {max}");
    }
    let pool = va::Pool::builder()
        .max_threads(max)
        .target_running(rng.below(max as u64) as usize + 1)
        .spin(if rng.chance(50) {
            Duration::ZERO
        } else {
            Duration::from_micros(50)
        })
        .keep_alive(Duration::from_millis(rng.below(50) + 1))
        .build();
    let ledger = Arc::new(Ledger::default());
    let shut_after = rng
        .chance(30)
        .then(|| Duration::from_micros(rng.below(10_000)));
    let drivers: Vec<_> = (0..rng.below(3) + 1)
        .map(|d| {
            let (pool, ledger) = (pool.clone(), ledger.clone());
            let mut rng = Rng(seed ^ (d + 1).wrapping_mul(0x1234_5678_9abc_def1));
            let ops = rng.below(8) + 2;
            std::thread::spawn(move || {
                for _ in 0..ops {
                    operate(seed, &mut rng, &pool, &ledger, shut_after.is_some());
                }
            })
        })
        .collect();
    if let Some(after) = shut_after {
        std::thread::sleep(after);
        let report = pool.shutdown(CALL_BOUND);
        assert!(report.is_complete(), "seed {seed:#x}: shutdown: {report:?}");
    }
    for d in drivers {
        if let Err(p) = d.join() {
            std::panic::resume_unwind(p);
        }
    }
    // Everything submitted ends; then the books balance.
    let report = pool.shutdown(CALL_BOUND);
    assert!(
        report.is_complete(),
        "seed {seed:#x}: final shutdown: {report:?}"
    );
    let stats = pool.stats();
    assert_eq!(stats.threads_running, 0, "seed {seed:#x}: {stats:?}");
    assert_eq!(stats.queued, 0, "seed {seed:#x}: {stats:?}");
    assert_eq!(stats.abandoned, 0, "seed {seed:#x}: {stats:?}");
    assert!(
        common::eventually(20, || pool.stats().threads_blocked == 0),
        "seed {seed:#x}: {:?}",
        pool.stats()
    );
    ledger.check(seed);
}

#[test]
fn chaos_rounds_keep_every_promise() {
    // Planned panics are expected by the thousand: keep them quiet.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PLANNED) {
            default(info);
        }
    }));
    let rounds: u64 = std::env::var("VELOCITY_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40);
    let first: u64 = std::env::var("VELOCITY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let seeds = REGRESSION_SEEDS
        .iter()
        .copied()
        .chain((0..rounds).map(|i| first.wrapping_add(i).wrapping_mul(0x2545_f491_4f6c_dd1d)));
    for seed in seeds {
        println!("chaos round, seed {seed:#x}");
        common::within(120, move || round(seed));
    }
}
