//! The borrowing combinators end to end, small enough for Miri: `all`,
//! `all_with_error`, `all_settled`, `map`, `map_n`, `for_each`,
//! `try_for_each`, `race`, `first_ok`, `scope` and `group` over borrowed (`&mut` too) data, on
//! their happy, panicking and early-error paths, with every value counted
//! so each is dropped exactly once.
//!
//! Each test runs on its own pool (installed with `Pool::install`) and ends
//! with `shutdown_and_join`, which joins every thread the pool started, so
//! Miri runs these with its leak check on:
//! `cargo +nightly miri test --lib -- scope::tests borrow_tests`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::panic::planned::{quiet, PLANNED};
use crate::{Error, Pool};

/// Runs `f` with a fresh 3-thread pool installed, then shuts it down and
/// joins its threads.
fn on_pool<R>(f: impl FnOnce() -> R) -> R {
    quiet();
    let pool = Pool::builder().max_threads(3).spin(Duration::ZERO).build();
    let r = pool.install(f);
    assert!(pool.shared.shutdown_and_join().is_complete());
    r
}

/// Counts the values it makes and their drops.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>, Arc<AtomicUsize>);

struct Counted(
    Drops,
    #[allow(dead_code, reason = "gives the type a size")] u64,
);

impl Drops {
    fn make(&self, v: u64) -> Counted {
        self.1.fetch_add(1, Ordering::SeqCst);
        Counted(self.clone(), v)
    }
    /// How many were dropped.
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn made(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A job's own error; the crate's errors (a panic) convert into it.
#[derive(Debug, PartialEq)]
enum Fail {
    Planned,
    Pool(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Pool(e.to_string())
    }
}

fn planned_panic() -> ! {
    std::panic::panic_any(PLANNED)
}

#[test]
fn all_writes_through_mut_borrows_of_tuples_vecs_and_arrays() {
    let (mut a, mut b, mut c) = (0u32, String::new(), vec![0u8; 4]);
    let out = on_pool(|| {
        crate::all((
            || a = 1,
            || b.push_str("two"),
            || c.iter_mut().for_each(|x| *x = 3),
        ))
    });
    assert!(out.is_ok());
    assert_eq!((a, b.as_str(), c.as_slice()), (1, "two", &[3u8; 4][..]));

    let mut cells = [0u64; 4];
    let jobs: Vec<_> = cells
        .iter_mut()
        .enumerate()
        .map(|(i, cell)| move || *cell = i as u64 + 1)
        .collect();
    assert_eq!(on_pool(|| crate::all(jobs)).unwrap().len(), 4);
    assert_eq!(cells, [1, 2, 3, 4]);

    let base = 10u64;
    let times = |k: u64| move || base * k;
    let got = on_pool(|| crate::all([times(1), times(2)]).unwrap());
    assert_eq!(got, [10, 20]);
}

#[test]
fn all_with_a_panic_finishes_every_job_and_drops_every_value_once() {
    let drops = Drops::default();
    let mut written = [0u8; 3];
    let [w0, w1, w2] = &mut written;
    let out = on_pool(|| {
        crate::all((
            || {
                *w0 = 1;
                drops.make(0)
            },
            || -> Counted {
                *w1 = 1;
                planned_panic()
            },
            || {
                *w2 = 1;
                drops.make(2)
            },
        ))
    });
    let err = out.map(|_| ()).unwrap_err();
    assert_eq!(err.as_panic().map(|p| p.message()), Some(PLANNED));
    assert_eq!(written, [1, 1, 1]);
    assert_eq!(drops.count(), 2);
}

#[test]
fn all_with_error_returns_the_first_error_and_drops_the_rest() {
    let drops = Drops::default();
    let mut seen = 0u8;
    let out = on_pool(|| {
        crate::all_with_error((
            || -> Result<Counted, Fail> { Ok(drops.make(0)) },
            || -> Result<Counted, Fail> {
                seen = 1;
                Err(Fail::Planned)
            },
        ))
    });
    assert!(matches!(out.map(|_| ()), Err(Fail::Planned)));
    assert_eq!(seen, 1);
    // Job 0's value, if it ran before the cancel reached it, was dropped.
    assert_eq!(drops.count(), drops.made());

    let settled = on_pool(|| crate::all_settled((|| 1u8, || -> u8 { planned_panic() })));
    assert_eq!(settled.0.unwrap(), 1);
    assert!(settled.1.unwrap_err().is_panic());

    // Over a `Vec`, each job and its own place go to the loop together.
    let values = Drops::default();
    let mut borrowed = vec![10u64, 20, 30];
    let jobs: Vec<Box<dyn FnOnce() -> Counted + Send + '_>> = borrowed
        .iter_mut()
        .enumerate()
        .map(|(i, x)| {
            let values = &values;
            Box::new(move || {
                *x += 1;
                if i == 1 {
                    planned_panic()
                }
                values.make(*x)
            }) as Box<dyn FnOnce() -> Counted + Send + '_>
        })
        .collect();
    let settled = on_pool(|| crate::all_settled(jobs));
    assert!(settled[0].is_ok() && settled[2].is_ok());
    assert!(settled[1].as_ref().err().is_some_and(Error::is_panic));
    drop(settled);
    assert_eq!(borrowed, [11, 21, 31]);
    assert_eq!(values.count(), values.made());
}

#[test]
fn map_borrows_its_input_and_drops_inputs_and_outputs_once() {
    let words = ["a", "bb", "ccc", "dddd", "eeeee"];
    let suffix = String::from("!");
    let out = on_pool(|| crate::map(words.iter(), |w| format!("{w}{suffix}")).unwrap());
    assert_eq!(out, ["a!", "bb!", "ccc!", "dddd!", "eeeee!"]);

    let ins = Drops::default();
    let outs = Drops::default();
    let items: Vec<Counted> = (0..8).map(|i| ins.make(i)).collect();
    let out = on_pool(|| crate::map_n(items, 2, |c| outs.make(c.1 * 2)).unwrap());
    assert_eq!(out.len(), 8);
    assert_eq!(ins.count(), 8);
    drop(out);
    assert_eq!(outs.count(), 8);

    // A panic at index 5: every other item still runs; the error comes back
    // after all, and every input and output is dropped once.
    let ins = Drops::default();
    let outs = Drops::default();
    let items: Vec<Counted> = (0..8).map(|i| ins.make(i)).collect();
    let out = on_pool(|| {
        crate::map(items, |c| {
            if c.1 == 5 {
                planned_panic();
            }
            outs.make(c.1)
        })
    });
    assert!(out.map(|_| ()).unwrap_err().is_panic());
    assert_eq!(ins.count(), 8);
    assert_eq!(outs.count(), 7);
}

#[test]
fn for_each_and_try_for_each_write_through_mut_borrows() {
    let mut cells = [0u32; 8];
    on_pool(|| crate::for_each(cells.iter_mut(), 2, |c| *c += 1)).unwrap();
    assert_eq!(cells, [1; 8]);

    let visited = AtomicUsize::new(0);
    let out: Result<(), Fail> = on_pool(|| {
        crate::try_for_each(0..8u32, 1, |i| {
            visited.fetch_add(1, Ordering::SeqCst);
            if i == 2 {
                Err(Fail::Planned)
            } else {
                Ok(())
            }
        })
    });
    assert_eq!(out, Err(Fail::Planned));
    // Limit 1 runs in order: nothing after the failing item is handed out.
    assert_eq!(visited.load(Ordering::SeqCst), 3);
}

#[test]
fn race_and_first_ok_drop_every_losing_value_once() {
    let drops = Drops::default();
    let (d0, d1) = (drops.clone(), drops.clone());
    let winner = on_pool(|| crate::race((move || d0.make(0), move || d1.make(1))).get());
    drop(winner.unwrap());
    // The loser's value, if it started at all, is gone too.
    assert!(drops.made() >= 1);
    assert_eq!(drops.count(), drops.made());

    let all_failed =
        on_pool(|| crate::race((|| -> u8 { planned_panic() }, || -> u8 { planned_panic() })).get());
    assert!(all_failed.unwrap_err().is_panic());

    let ok = on_pool(|| crate::first_ok((|| Err(Fail::Planned), || Ok::<u8, Fail>(4))).get());
    assert_eq!(ok.unwrap(), Ok(4));
}

#[test]
fn run_go_and_a_cancelled_context_on_a_joined_pool() {
    let drops = Drops::default();
    let d = drops.clone();
    let (value, went) = on_pool(move || {
        let went = Arc::new(AtomicUsize::new(0));
        let w = went.clone();
        crate::go(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let ctx = crate::Context::new();
        ctx.cancel();
        let cancelled = crate::run_with_context(&ctx, move || d.make(1)).get();
        assert!(cancelled.map(|_| ()).unwrap_err().is_cancelled());
        (crate::run(|| 6 * 7).get().unwrap(), went)
    });
    assert_eq!(value, 42);
    // `go` ran before the join returned; the cancelled closure was dropped
    // uncalled, with its captured `Drops`.
    assert_eq!(went.load(Ordering::SeqCst), 1);
    assert_eq!(drops.count(), 0);
}

#[test]
fn scope_jobs_write_through_mut_borrows_joined_detached_and_panicking() {
    let drops = Drops::default();
    let mut cells = [0u64; 4];
    let mut text = String::new();
    let joined = on_pool(|| {
        crate::scope(|s| {
            for (i, cell) in cells.iter_mut().enumerate() {
                s.spawn(move || *cell = i as u64 + 1); // detached
            }
            let t = s.spawn(|| text.push_str("scoped"));
            let kept = s.spawn(|| drops.make(1)); // joined: dropped by us
            let unjoined = s.spawn(|| drops.make(2)); // dropped by the scope
            drop(unjoined);
            let failed = s.spawn(|| -> Counted { planned_panic() });
            t.join().unwrap();
            let kept = kept.join().unwrap();
            drop(kept);
            matches!(failed.join(), Err(e) if e.is_panic())
        })
    });
    assert!(joined);
    assert_eq!(cells, [1, 2, 3, 4]);
    assert_eq!(text, "scoped");
    assert_eq!((drops.made(), drops.count()), (2, 2));
}

#[test]
fn group_jobs_write_through_mut_borrows_and_the_first_error_drops_the_rest() {
    let drops = Drops::default();
    let mut cells = [0u64; 3];
    let r: Result<(), Fail> = on_pool(|| {
        crate::group_n(2, |g| {
            for (i, cell) in cells.iter_mut().enumerate() {
                let d = drops.make(i as u64);
                g.go(move || {
                    let _d = d;
                    *cell = 10 + i as u64;
                    Ok(())
                });
            }
            Ok(())
        })
    });
    assert_eq!(r, Ok(()));
    assert_eq!(cells, [10, 11, 12]);

    let mut hits = 0u32;
    let r: Result<(), Fail> = on_pool(|| {
        crate::group(|g| {
            g.go(|| Err(Fail::Planned));
            g.go(|| planned_panic());
            g.go(|| {
                hits += 1;
                Ok(())
            });
            let d = drops.make(9);
            Err::<(), Fail>(Fail::Pool(format!("body {}", d.1)))
        })
    });
    // Whichever failure came first is returned; every other is dropped.
    assert!(r.is_err());
    assert!(hits <= 1);
    assert_eq!(drops.made(), drops.count());
}
