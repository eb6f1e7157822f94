//! A `Task` and `Context::done()` awaited under other executors: tokio
//! (multi-thread and current-thread), and futures-lite's `block_on` (smol's).
//! The hand-written executor is in tests/task.rs.

mod common;

use std::time::{Duration, Instant};

use common::{within, Gate};
use velocity_async::{self as va, Context};

#[test]
fn a_task_is_awaited_inside_tokio_tasks() {
    within(60, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let sum = rt.block_on(async {
            let handles: Vec<_> = (0..50u64)
                .map(|i| tokio::spawn(async move { va::run(move || i * 2).await.unwrap() }))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..50u64).map(|i| i * 2).sum::<u64>());
    });
}

/// The README's rule for async callers: a blocking helper wrapped in
/// `va::run(..).await` leaves the runtime thread free. Here `all`'s jobs can
/// only finish once another task on the same single-threaded runtime has
/// run; called directly in the `async` block, `all` would block that thread
/// and never finish.
/// A single-threaded tokio runtime with timers.
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn a_fan_out_awaited_through_run_leaves_a_current_thread_runtime_free() {
    within(60, || {
        let rt = current_thread_runtime();
        let gate = Gate::new();
        let (a, b) = (gate.clone(), gate.clone());
        let out = rt.block_on(async move {
            let opener = tokio::spawn(async move { gate.open() });
            let both = va::run(move || va::all((move || a.wait(), move || b.wait()))).await;
            opener.await.unwrap();
            both
        });
        assert!(matches!(out, Ok(Ok(((), ())))), "{out:?}");
    });
}

#[test]
fn a_blocked_task_does_not_block_a_current_thread_runtime() {
    within(60, || {
        let rt = current_thread_runtime();
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::run(move || {
            g.wait();
            7
        });
        let out = rt.block_on(async move {
            // While the task waits on the gate, the single runtime thread
            // still runs other futures: opening the gate happens there.
            let opener = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                gate.open();
            });
            let v = task.await.unwrap();
            opener.await.unwrap();
            v
        });
        assert_eq!(out, 7);
    });
}

#[test]
fn a_timeout_wakes_an_awaiting_tokio_task() {
    within(60, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let start = Instant::now();
        let err = rt.block_on(async move {
            va::run_with_timeout(Duration::from_millis(20), move || g.wait())
                .await
                .unwrap_err()
        });
        assert!(err.is_timeout());
        assert!(start.elapsed() >= Duration::from_millis(20));
        gate.open();
    });
}

#[test]
fn tasks_and_races_are_awaited_under_futures_lite() {
    within(60, || {
        let v = futures_lite::future::block_on(async {
            let a = va::run(|| 20).await.unwrap();
            let b = va::race((|| 1, || 1)).await.unwrap();
            a + b
        });
        assert_eq!(v, 21);
    });
}

#[test]
fn context_done_is_a_future_under_tokio_select() {
    within(60, || {
        let rt = current_thread_runtime();
        let ctx = Context::with_timeout(Duration::from_millis(10));
        let which = rt.block_on(async {
            tokio::select! {
                _ = ctx.done() => "context",
                _ = tokio::time::sleep(Duration::from_secs(30)) => "sleep",
            }
        });
        assert_eq!(which, "context");
        assert!(ctx.is_done());

        // Cancelled from another thread while awaited.
        let ctx = Context::new();
        let c = ctx.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            c.cancel();
        });
        futures_lite::future::block_on(ctx.done());
        assert!(ctx.is_done());
        canceller.join().unwrap();
    });
}
