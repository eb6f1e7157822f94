//! `Singleflight`: calls in flight with one key are shared; a panic reaches
//! every caller and poisons nothing; a waiter can be cancelled.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::within;
use velocity_async as va;

fn waiting<K, V>(f: &va::Singleflight<K, V>) -> usize {
    let text = format!("{f:?}");
    let tail = &text[text.find("waiting: ").expect("Debug shows the waiters") + 9..];
    tail.trim_end_matches([' ', '}']).parse().unwrap()
}

/// `n` callers of one key; the first one's `f` returns (or panics) only
/// once the other `n - 1` wait for it.
fn overlapping<V: Clone + Send + Sync + 'static>(
    n: usize,
    f: impl Fn() -> V + Send + Sync + 'static,
) -> (Vec<Result<V, va::Error>>, usize) {
    let flights = Arc::new(va::Singleflight::<&'static str, V>::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let (in_flight_tx, in_flight) = mpsc::channel();
    let leader = {
        let (flights, calls, f) = (flights.clone(), calls.clone(), f.clone());
        std::thread::spawn(move || {
            let fl = flights.clone();
            flights.run(&"key", || {
                calls.fetch_add(1, Ordering::SeqCst);
                in_flight_tx.send(()).unwrap();
                assert!(common::eventually(30, || waiting(&fl) == n - 1));
                f()
            })
        })
    };
    in_flight.recv().unwrap();
    let followers: Vec<_> = (1..n)
        .map(|_| {
            let (flights, calls, f) = (flights.clone(), calls.clone(), f.clone());
            std::thread::spawn(move || {
                flights.run(&"key", || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    f()
                })
            })
        })
        .collect();
    let mut out = vec![leader.join().unwrap()];
    out.extend(followers.into_iter().map(|t| t.join().unwrap()));
    (out, calls.load(Ordering::SeqCst))
}

#[test]
fn overlapping_calls_of_one_key_share_one_call_and_its_value() {
    within(60, || {
        let (out, calls) = overlapping(6, || String::from("page"));
        assert_eq!(calls, 1);
        assert_eq!(out.len(), 6);
        assert!(out.iter().all(|r| r.as_deref().is_ok_and(|v| v == "page")));
    });
}

#[test]
fn a_panic_reaches_every_caller_and_poisons_nothing() {
    within(60, || {
        let (out, calls) = overlapping(4, || -> u32 { panic!("backend down") });
        assert_eq!(calls, 1);
        for r in &out {
            let err = r.as_ref().unwrap_err();
            assert!(
                err.as_panic().unwrap().message().contains("backend down"),
                "{err}"
            );
        }
        // The key is free again: the next call runs.
        let flights = va::Singleflight::new();
        assert!(flights.run(&1, || -> u8 { panic!("once") }).is_err());
        assert_eq!(flights.run(&1, || 7u8).unwrap(), 7);
    });
}

#[test]
fn once_a_call_ended_the_next_one_calls_afresh_and_keys_are_apart() {
    within(60, || {
        let flights = va::Singleflight::new();
        let calls = AtomicUsize::new(0);
        for i in 0..3 {
            let v = flights
                .run(&"k", || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    i
                })
                .unwrap();
            assert_eq!(v, i);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(flights.run(&"other", || 9).unwrap(), 9);
    });
}

#[test]
fn a_waiting_caller_is_cancelled_while_the_call_goes_on_for_the_others() {
    within(60, || {
        let flights = Arc::new(va::Singleflight::<u8, u8>::new());
        let (release_tx, release) = mpsc::channel::<()>();
        let (in_flight_tx, in_flight) = mpsc::channel();
        let leader = {
            let flights = flights.clone();
            std::thread::spawn(move || {
                flights.run(&1, || {
                    in_flight_tx.send(()).unwrap();
                    release.recv().unwrap();
                    42
                })
            })
        };
        in_flight.recv().unwrap();
        let ctx = va::Context::new();
        let (tx, rx) = mpsc::channel();
        let f2 = flights.clone();
        let follower = va::run_with_context(&ctx, move || {
            tx.send(f2.run(&1, || 0).map_err(|e| e.is_cancelled()))
                .unwrap();
        });
        assert!(common::eventually(30, || waiting(&flights) == 1));
        ctx.cancel();
        assert_eq!(rx.recv().unwrap(), Err(true));
        assert!(follower.get().is_err());
        release_tx.send(()).unwrap();
        assert_eq!(leader.join().unwrap().unwrap(), 42);
    });
}

#[test]
fn a_run_of_its_own_key_from_inside_is_refused_not_a_deadlock() {
    within(60, || {
        let flights = va::Singleflight::new();
        let inner = flights
            .run(&"k", || match flights.run(&"k", || 1) {
                Err(va::Error::Invalid(_)) => 2,
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(inner, 2);
    });
}
