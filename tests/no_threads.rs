//! What the crate does where no thread can be started at all: wasm without
//! the `atomics` feature (`wasm32-wasip1` here, run under Node's WASI by
//! `.ci/run`; `wasm32-unknown-unknown` behaves the same but has no clock,
//! see the README). A handle-returning submission resolves with
//! `Error::Spawn` at once; everything that blocks its caller anyway (`all`,
//! the loops, `race`) or is fire-and-forget (`go`) runs on the caller, with
//! the same results as elsewhere. Nothing hangs or panics.
#![cfg(all(target_family = "wasm", not(target_feature = "atomics")))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use velocity_async as va;

#[test]
fn handles_resolve_with_a_spawn_error() {
    let err = va::run(|| 1).get().unwrap_err();
    assert!(matches!(err, va::Error::Spawn(_)), "{err:?}");
    let err = va::run_with_timeout(Duration::from_millis(10), || 1)
        .get()
        .unwrap_err();
    assert!(matches!(err, va::Error::Spawn(_)), "{err:?}");
}

#[test]
fn fire_and_forget_runs_on_the_caller() {
    let (tx, rx) = mpsc::channel();
    va::go(move || tx.send(5).unwrap());
    assert_eq!(rx.try_recv(), Ok(5));
}

#[test]
fn joins_and_loops_run_on_the_caller() {
    assert_eq!(va::all(vec![|| 1, || 2]).unwrap(), vec![1, 2]);
    assert_eq!(
        va::map_n(vec![1, 2, 3], 2, |x| x * 2).unwrap(),
        vec![2, 4, 6]
    );
    let n = AtomicUsize::new(0);
    va::for_each(0..100, 4, |_| {
        n.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 100);
    let first = va::race(vec![|| 1, || 2]).get().unwrap();
    assert!(first == 1 || first == 2, "{first}");
}

#[test]
fn a_deadline_is_kept_without_a_timer_thread() {
    let ctx = va::Context::with_timeout(Duration::from_millis(5));
    ctx.wait();
    assert!(ctx.is_done());
    assert!(
        matches!(ctx.error(), Some(va::Error::Timeout)),
        "{:?}",
        ctx.error()
    );
}
