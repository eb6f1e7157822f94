//! The process-wide panic handler. Its own test binary: the handler is global,
//! so these tests run one at a time under a lock.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{within, PanicOnDrop};
use velocity_async as va;

static SERIAL: Mutex<()> = Mutex::new(());

/// Installs a handler that forwards every message, runs `f`, and returns what
/// the handler saw, waiting (up to 30 s) for `expected` reports, since a
/// worker may report just after `f` returns.
fn seen_during(expected: usize, f: impl FnOnce() + Send + 'static) -> Vec<String> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    va::set_panic_handler(move |p| {
        let _ = tx.lock().unwrap().send(p.message().to_owned());
    });
    within(60, f);
    let mut seen: Vec<String> = (0..expected)
        .map_while(|_| rx.recv_timeout(Duration::from_secs(30)).ok())
        .collect();
    va::set_panic_handler(|_| {});
    seen.extend(rx.try_iter());
    seen
}

#[test]
fn handler_sees_task_panics_that_get_also_returns() {
    let seen = seen_during(1, || {
        let err = va::run(|| -> () { panic!("task boom") }).get().unwrap_err();
        assert_eq!(err.as_panic().unwrap().message(), "task boom");
    });
    assert_eq!(seen, vec!["task boom".to_string()]);
}

#[test]
fn handler_sees_go_panics_once() {
    let seen = seen_during(1, || {
        let pool = va::Pool::builder().build();
        pool.go(|| panic!("go boom"));
        pool.shutdown(Duration::from_secs(30));
    });
    assert_eq!(seen, vec!["go boom".to_string()]);
}

#[test]
fn handler_sees_go_with_recover_panics_and_a_panicking_callback() {
    let seen = seen_during(2, || {
        let pool = va::Pool::builder().build();
        let (tx, rx) = mpsc::channel();
        pool.go_with_recover(
            || panic!("first"),
            move |p| {
                tx.send(p.message().to_owned()).unwrap();
                panic!("callback")
            },
        );
        assert_eq!(rx.recv().unwrap(), "first");
        pool.shutdown(Duration::from_secs(30));
    });
    assert_eq!(seen, vec!["first".to_string(), "callback".to_string()]);
}

#[test]
fn handler_sees_a_panicking_drop_of_an_uncollected_result() {
    let seen = seen_during(1, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let task = va::run(move || PanicOnDrop(d));
        task.wait();
        drop(task); // the last holder may be the worker, finishing up
        assert!(common::eventually(30, || drops.load(Ordering::SeqCst) == 1));
    });
    assert_eq!(seen, vec!["PanicOnDrop dropped".to_string()]);
}

#[test]
fn a_panicking_handler_takes_nothing_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    va::set_panic_handler(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        panic!("handler panics");
    });
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        assert!(pool
            .run(|| -> () { panic!("x") })
            .get()
            .unwrap_err()
            .is_panic());
        pool.go(|| panic!("y"));
        assert_eq!(pool.run(|| 3).get().unwrap(), 3);
        pool.shutdown(Duration::from_secs(30));
    });
    va::set_panic_handler(|_| {});
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_panicking_payload_drop_is_contained() {
    let seen = seen_during(2, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let err = va::run(move || -> () { std::panic::panic_any(PanicOnDrop(d)) })
            .get()
            .unwrap_err();
        assert!(err.is_panic());
        // The payload is kept for `into_panic` until the last clone of the
        // error goes; its panicking `Drop` then runs, caught and reported.
        let clone = err.clone();
        drop(err);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(clone);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(va::run(|| 1).get().unwrap(), 1);
    });
    assert_eq!(
        seen,
        vec![
            "Box<dyn Any>".to_string(),
            "PanicOnDrop dropped".to_string()
        ]
    );
}
