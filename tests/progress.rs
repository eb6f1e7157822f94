//! `with_progress`: the progress callback of `for_each`, `map` and `all`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::within;
use velocity_async as va;

/// Every `(done, total)` call, in call order.
type Calls = Arc<Mutex<Vec<(usize, usize)>>>;

fn recorder() -> (Calls, impl Fn(usize, usize) + Send + Sync + 'static) {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    (calls, move |done, total| {
        c.lock().unwrap().push((done, total))
    })
}

#[test]
fn reports_increasing_progress_ending_at_the_total() {
    within(60, || {
        let (calls, cb) = recorder();
        let ran = AtomicUsize::new(0);
        va::with_progress(cb, || {
            va::for_each(0..10_000, 4, |_| {
                ran.fetch_add(1, Ordering::Relaxed);
            })
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 10_000);
        let calls = calls.lock().unwrap();
        assert!(!calls.is_empty());
        assert!(calls.iter().all(|&(_, total)| total == 10_000));
        assert!(
            calls.windows(2).all(|w| w[0].0 < w[1].0),
            "strictly increasing"
        );
        assert_eq!(calls.last(), Some(&(10_000, 10_000)));
        // Batched: far fewer calls than items.
        assert!(calls.len() < 10_000);
    });
}

#[test]
fn map_and_all_report_too_and_nested_loops_do_not() {
    within(60, || {
        let (calls, cb) = recorder();
        let out = va::with_progress(cb, || {
            let sums = va::map(0..50u64, |i| {
                // A loop started by an item: not reported.
                va::map(0..100u64, move |j| i * j)
                    .unwrap()
                    .iter()
                    .sum::<u64>()
            })
            .unwrap();
            let (a, b) = va::all((|| 1, || 2)).unwrap();
            (sums, a + b)
        });
        assert_eq!(out.0[2], 2 * (0..100).sum::<u64>());
        assert_eq!(out.1, 3);
        let calls = calls.lock().unwrap();
        let totals: std::collections::BTreeSet<usize> = calls.iter().map(|c| c.1).collect();
        assert_eq!(
            totals,
            [2, 50].into_iter().collect(),
            "outer map and all only"
        );
        assert!(calls.contains(&(50, 50)) && calls.contains(&(2, 2)));
    });
}

#[test]
fn nothing_is_reported_outside_with_progress_or_for_empty_loops() {
    within(60, || {
        let (calls, cb) = recorder();
        va::with_progress(cb, || va::for_each(Vec::<u8>::new(), 0, |_| {})).unwrap();
        va::for_each(0..100, 0, |_| {}).unwrap();
        assert!(calls.lock().unwrap().is_empty());
    });
}

#[test]
fn a_panicking_callback_does_not_stop_the_loop() {
    within(60, || {
        let ran = AtomicUsize::new(0);
        let result = va::with_progress(
            |_, _| panic!("progress display broke"),
            || {
                va::for_each(0..1_000, 4, |_| {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
            },
        );
        assert!(result.is_ok());
        assert_eq!(ran.load(Ordering::Relaxed), 1_000);
    });
}

#[test]
fn an_early_stop_ends_below_the_total() {
    within(60, || {
        let (calls, cb) = recorder();
        let result: Result<(), va::Error> = va::with_progress(cb, || {
            va::try_for_each(0..1_000, 1, |i| {
                if i == 10 {
                    Err(va::Error::Cancelled)
                } else {
                    Ok(())
                }
            })
        });
        assert!(result.unwrap_err().is_cancelled());
        let calls = calls.lock().unwrap();
        let last = calls.last().copied().unwrap();
        assert!(last.0 < 1_000 && last.1 == 1_000, "{last:?}");
    });
}
