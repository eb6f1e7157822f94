//! `Semaphore`: weighted, FIFO, cancellable, bad inputs refused at once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::within;
use velocity_async as va;

fn waiting(s: &va::Semaphore) -> usize {
    let text = format!("{s:?}");
    let tail = &text[text.find("waiting: ").expect("Debug shows the queue") + 9..];
    tail.trim_end_matches([' ', '}']).parse().unwrap()
}

fn until(mut cond: impl FnMut() -> bool) {
    assert!(common::eventually(30, &mut cond), "condition never held");
}

#[test]
fn never_more_permits_in_use_than_it_has() {
    within(60, || {
        let s = va::Semaphore::new(3);
        let in_use = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        va::for_each((0..200).map(|i| 1 + i % 3), 16, |weight| {
            let p = s.acquire(weight).unwrap();
            assert_eq!(p.permits(), weight);
            let now = in_use.fetch_add(weight, Ordering::SeqCst) + weight;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::yield_now();
            in_use.fetch_sub(weight, Ordering::SeqCst);
        })
        .unwrap();
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(s.available(), 3);
    });
}

/// A large request at the front is served before smaller ones behind it,
/// even when those would fit: it is not starved.
#[test]
fn requests_are_served_first_come_first_served() {
    within(60, || {
        let s = Arc::new(va::Semaphore::new(2));
        let held = s.acquire(1).unwrap();
        let (order_tx, order) = mpsc::channel();
        let (s2, tx) = (s.clone(), order_tx.clone());
        let (let_go, release_big) = mpsc::channel::<()>();
        let big = std::thread::spawn(move || {
            let p = s2.acquire(2).unwrap();
            tx.send("big").unwrap();
            release_big.recv().unwrap();
            drop(p);
        });
        until(|| waiting(&s) == 1);
        // One permit is free, but the big request waits before: no barging.
        assert!(s.try_acquire(1).is_none());
        let (s3, tx) = (s.clone(), order_tx);
        let small = std::thread::spawn(move || {
            let p = s3.acquire(1).unwrap();
            tx.send("small").unwrap();
            drop(p);
        });
        until(|| waiting(&s) == 2);
        drop(held);
        assert_eq!(order.recv().unwrap(), "big");
        // Small still waits while big holds both (a bounded look, not a
        // synchronisation: the order above is what is proved).
        assert!(
            order.recv_timeout(Duration::from_millis(50)).is_err(),
            "small waits for big"
        );
        let_go.send(()).unwrap();
        big.join().unwrap();
        assert_eq!(order.recv().unwrap(), "small");
        small.join().unwrap();
        assert_eq!(s.available(), 2);
    });
}

#[test]
fn a_waiting_acquire_ends_with_its_contexts_timeout_and_lets_the_rest_through() {
    within(60, || {
        let s = Arc::new(va::Semaphore::new(2));
        let held = s.acquire(1).unwrap();
        let s2 = s.clone();
        let (tx, rx) = mpsc::channel();
        // A big request that will time out, holding up a small one.
        let big = va::run_with_timeout(Duration::from_millis(100), move || {
            tx.send(s2.acquire(2).map(|_| ()).unwrap_err()).unwrap();
        });
        until(|| waiting(&s) == 1);
        let s3 = s.clone();
        let small = std::thread::spawn(move || s3.acquire(1).map(|p| p.permits()));
        until(|| waiting(&s) == 2);
        let err = rx.recv().unwrap();
        assert!(err.is_timeout(), "{err}");
        assert!(big.get().unwrap_err().is_timeout());
        // The small one behind it got the free permit once it left.
        assert_eq!(small.join().unwrap().unwrap(), 1);
        assert_eq!(waiting(&s), 0);
        drop(held);
        assert_eq!(s.available(), 2);
    });
}

#[test]
fn a_cancel_reaches_a_job_waiting_for_permits() {
    within(60, || {
        let s = Arc::new(va::Semaphore::new(1));
        let held = s.acquire(1).unwrap();
        let ctx = va::Context::new();
        let s2 = s.clone();
        let (tx, rx) = mpsc::channel();
        let job = va::run_with_context(&ctx, move || {
            tx.send(s2.acquire(1).map(|_| ()).unwrap_err()).unwrap();
        });
        until(|| waiting(&s) == 1);
        ctx.cancel();
        assert!(rx.recv().unwrap().is_cancelled());
        assert!(job.get().unwrap_err().is_cancelled());
        assert_eq!(waiting(&s), 0);
        // A done context fails at once, even with permits free.
        drop(held);
        let done = va::Context::new();
        let (c, s3) = (done.clone(), s.clone());
        let (tx, rx) = mpsc::channel();
        let job = va::run_with_context(&done, move || {
            c.cancel();
            tx.send(s3.acquire(1).map(|_| ()).unwrap_err().is_cancelled())
                .unwrap();
        });
        assert!(rx.recv().unwrap());
        assert!(job.get().is_err());
        assert_eq!(s.available(), 1);
    });
}

#[test]
fn bad_inputs_are_refused_at_once_and_empty_requests_always_succeed() {
    within(60, || {
        let s = va::Semaphore::new(2);
        let all = s.acquire(2).unwrap();
        // Nothing free, yet an empty request succeeds at once.
        assert_eq!(s.acquire(0).unwrap().permits(), 0);
        assert_eq!(s.try_acquire(0).unwrap().permits(), 0);
        // More than it has: an error at once, not a hang.
        let err = s.acquire(3).unwrap_err();
        assert!(matches!(err, va::Error::Invalid(_)), "{err:?}");
        assert!(s.try_acquire(3).is_none());
        assert!(va::Semaphore::new(0).acquire(1).is_err());
        assert!(va::Semaphore::new(0).acquire(0).is_ok());
        drop(all);
        // The largest semaphore works too.
        let huge = va::Semaphore::new(usize::MAX);
        let p = huge.acquire(usize::MAX).unwrap();
        assert!(huge.try_acquire(1).is_none());
        drop(p);
        assert_eq!(huge.available(), usize::MAX);
        // A leaked permit keeps its permits; nothing else goes wrong.
        std::mem::forget(s.acquire(1).unwrap());
        assert_eq!(s.available(), 1);
        assert!(s.try_acquire(2).is_none());
    });
}

#[test]
fn eight_threads_hammering_keep_the_count_exact() {
    within(120, || {
        let s = va::Semaphore::new(4);
        let in_use = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..8usize {
                let (s, in_use) = (&s, &in_use);
                scope.spawn(move || {
                    for i in 0..2_000usize {
                        let n = 1 + (i + t) % 4;
                        let p = s.acquire(n).unwrap();
                        assert!(in_use.fetch_add(n, Ordering::SeqCst) + n <= 4);
                        in_use.fetch_sub(n, Ordering::SeqCst);
                        drop(p);
                    }
                });
            }
        });
        assert_eq!(s.available(), 4);
        assert_eq!(waiting(&s), 0);
    });
}
