//! Loops over streams (#14): `for_each`, `map`, `map_n`, `try_for_each` and
//! `go_for_each` pull their input lazily — the first item starts as soon as
//! it exists, endless inputs work with `try_for_each`, a fire-and-forget
//! loop returns before its input is read, and a panicking iterator is
//! reported like a panicking item. (Memory bounded by what is in flight:
//! `tests/heap.rs`.)
//!
//! The orderings are proved with channels, not timings: an iterator that
//! waits for an item's start before yielding the next hangs (and the outer
//! timeout fails the test) if the loop collects its input first.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{within, DropCounter};
use velocity_async as va;

/// Regression: the endless input made the loop collect forever, then panic
/// inside the library with a capacity overflow.
#[test]
fn try_for_each_ends_an_endless_input_at_its_first_error() {
    within(60, || {
        let failing_ran = AtomicBool::new(false);
        let r = va::try_for_each(0u64.., 4, |i| {
            if i == 1000 {
                failing_ran.store(true, Ordering::Relaxed);
                Err(va::Error::Cancelled)
            } else {
                Ok(())
            }
        });
        assert!(r.unwrap_err().is_cancelled());
        // The loop ended, after the failing item ran. How many of the items
        // before it ran is not promised: an item another helper had claimed
        // but not yet started when the error came is never started (CI saw
        // 1,000 of the first 1,001 start, once in the fallback step).
        assert!(failing_ran.load(Ordering::Relaxed));
    });
}

/// An iterator whose item `k` (k ≥ 1) exists only once item `k - 1` has
/// started: a loop that pulls its whole input first never starts item 0.
fn each_after_the_last_started(
    n: usize,
    started: mpsc::Receiver<usize>,
) -> impl Iterator<Item = usize> {
    (0..n).inspect(move |&k| {
        if k > 0 {
            let got = started
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|e| {
                    panic!(
                        "item {} should have started before item {k} is pulled: {e:?}",
                        k - 1
                    )
                });
            assert_eq!(got, k - 1);
        }
    })
}

#[test]
fn for_each_starts_each_item_as_soon_as_it_exists() {
    within(60, || {
        for limit in [1, 2, 8] {
            let (tx, rx) = mpsc::channel();
            let tx = Mutex::new(tx);
            let done = AtomicUsize::new(0);
            va::for_each(each_after_the_last_started(50, rx), limit, |k| {
                tx.lock().unwrap().send(k).unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap_or_else(|e| panic!("limit {limit}: {e}"));
            assert_eq!(done.load(Ordering::Relaxed), 50, "limit {limit}");
        }
    });
}

#[test]
fn map_of_a_stream_keeps_input_order() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let out = va::map_n(each_after_the_last_started(40, rx), 4, |k| {
            tx.lock().unwrap().send(k).unwrap();
            k * 3
        })
        .unwrap();
        assert_eq!(out, (0..40).map(|k| k * 3).collect::<Vec<_>>());
        // A long one, through growing chunks and several helpers.
        let out = va::map((0..200_000u64).filter(|x| x % 3 != 1), |x| x * 2).unwrap();
        let want: Vec<u64> = (0..200_000u64)
            .filter(|x| x % 3 != 1)
            .map(|x| x * 2)
            .collect();
        assert_eq!(out, want);
    });
}

/// Regression: `go_for_each` collected its input on the caller before
/// returning, so an input that waits for the caller never ended.
#[test]
fn go_for_each_returns_before_its_input_is_read() {
    within(60, || {
        let (release, gate) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let items = (0..25).inspect(move |&k| {
            if k == 0 {
                gate.recv_timeout(Duration::from_secs(20))
                    .expect("go_for_each should return before pulling");
            }
        });
        let done_tx = Mutex::new(done_tx);
        va::go_for_each(items, 4, move |k| done_tx.lock().unwrap().send(k).unwrap());
        release.send(()).unwrap();
        let mut got: Vec<i32> = (0..25)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(20)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..25).collect::<Vec<_>>());
    });
}

/// The iterator need not be `Send`: the caller's thread pulls it.
#[test]
fn a_non_send_iterator_is_pulled_on_the_callers_thread() {
    within(60, || {
        let shared = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let counter = shared.clone();
        let items = std::iter::from_fn(move || {
            let n = counter.get();
            counter.set(n + 1);
            (n < 1000).then_some(n)
        });
        let out = va::map_n(items, 4, |n| n + 1).unwrap();
        assert_eq!(out.len(), 1000);
        assert_eq!(out[999], 1000);
        assert_eq!(shared.get(), 1001, "pulled until it ended, once");
    });
}

#[test]
fn a_panicking_iterator_is_reported_after_the_started_items_finish() {
    within(60, || {
        let dropped = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let finished = AtomicUsize::new(0);
        let (m, d) = (made.clone(), dropped.clone());
        let items = (0..100usize).map(move |k| {
            if k == 60 {
                panic!("the iterator broke at 60");
            }
            m.fetch_add(1, Ordering::SeqCst);
            (k, DropCounter(d.clone()))
        });
        let r = va::for_each(items, 4, |(_, counter)| {
            std::thread::sleep(Duration::from_micros(200));
            finished.fetch_add(1, Ordering::SeqCst);
            drop(counter);
        });
        let err = r.unwrap_err();
        let p = err.as_panic().expect("the iterator's panic");
        assert!(p.message().contains("broke at 60"), "{p}");
        // Every item made was run and dropped; nothing after the panic.
        assert_eq!(made.load(Ordering::SeqCst), 60);
        assert_eq!(finished.load(Ordering::SeqCst), 60);
        assert_eq!(dropped.load(Ordering::SeqCst), 60);
    });
}

#[test]
fn a_stream_runs_at_most_limit_items_at_once() {
    within(60, || {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        va::for_each((0..64).map(|k| k * 2), 3, |_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "{peak}");
    });
}

#[test]
fn try_for_each_starts_no_item_after_the_first_error_of_a_stream() {
    within(60, || {
        let after = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let r: Result<(), va::Error> = va::try_for_each(0u64.., 1, |i| {
            if failed.load(Ordering::SeqCst) {
                after.fetch_add(1, Ordering::SeqCst);
            }
            if i == 10 {
                failed.store(true, Ordering::SeqCst);
                return Err(va::Error::Cancelled);
            }
            Ok(())
        });
        assert!(r.is_err());
        assert_eq!(after.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_cancelled_stream_stops_pulling_and_reports_the_cancel() {
    within(60, || {
        let ctx = va::Context::new();
        let c = ctx.clone();
        let (tx, rx) = mpsc::channel();
        let task = va::run_with_context(&ctx, move || {
            let pulled = AtomicUsize::new(0);
            let r = va::for_each(
                (0u64..).inspect(|_| {
                    pulled.fetch_add(1, Ordering::SeqCst);
                }),
                2,
                |i| {
                    if i == 20 {
                        c.cancel();
                    }
                },
            );
            tx.send((r, pulled.load(Ordering::SeqCst))).unwrap();
        });
        let (r, pulled) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(matches!(r, Err(va::Error::Cancelled)), "{r:?}");
        assert!(pulled < 1_000_000, "{pulled}");
        assert!(task.get().is_err());
    });
}

/// An iterator whose `size_hint` is wrong (safe code may lie): the block
/// sized by it is left part empty, or more blocks follow.
struct Lying {
    next: u32,
    end: u32,
    claims: usize,
}

impl Iterator for Lying {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.claims.saturating_sub(self.next as usize);
        (left, Some(left))
    }
}

#[test]
fn a_wrong_size_hint_changes_nothing_but_the_block_sizes() {
    within(60, || {
        for (end, claims) in [(20u32, 10usize), (5, 1000), (100_000, 3), (0, 50), (7, 0)] {
            for limit in [1, 3, 0] {
                let out = va::map_n(
                    Lying {
                        next: 0,
                        end,
                        claims,
                    },
                    limit,
                    |x| u64::from(x) * 2,
                )
                .unwrap();
                let want: Vec<u64> = (0..end).map(|x| u64::from(x) * 2).collect();
                assert_eq!(out, want, "end {end}, claims {claims}, limit {limit}");
                // Same-size results (in place) and other sizes alike.
                let out = va::map_n(
                    Lying {
                        next: 0,
                        end,
                        claims,
                    },
                    limit,
                    |x| x + 1,
                )
                .unwrap();
                assert_eq!(out, (1..=end).collect::<Vec<_>>());
            }
        }
    });
}

#[test]
fn progress_of_an_input_of_unknown_length_never_passes_its_total() {
    within(60, || {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        va::with_progress(
            move |done, total| seen.lock().unwrap().push((done, total)),
            || va::for_each((0..50_000u32).filter(|x| x % 7 != 0), 4, |_| {}),
        )
        .unwrap();
        let calls = calls.lock().unwrap();
        let n = (0..50_000u32).filter(|x| x % 7 != 0).count();
        assert!(!calls.is_empty());
        assert!(
            calls.iter().all(|&(done, total)| done <= total),
            "{calls:?}"
        );
        assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(*calls.last().unwrap(), (n, n));
    });
}
