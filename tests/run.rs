//! `run`, `run_with_timeout`, `run_with_context`, `go`, `go_with_recover`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{within, DropCounter, Gate};
use va::Context;
use velocity_async as va;

#[test]
fn run_runs_on_another_thread() {
    within(60, || {
        let me = std::thread::current().id();
        let other = va::run(move || std::thread::current().id() != me)
            .get()
            .unwrap();
        assert!(other);
    });
}

#[test]
fn run_with_timeout_resolves_at_the_deadline_not_when_work_ends() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let start = Instant::now();
        let task = va::run_with_timeout(Duration::from_millis(30), move || {
            g.wait(); // ignores its context: cannot be stopped
            1
        });
        let err = task.get().unwrap_err();
        assert!(err.is_timeout());
        assert!(start.elapsed() >= Duration::from_millis(30));
        gate.open();
    });
}

#[test]
fn run_with_timeout_ready_and_timed_out_turn_true_without_get() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::run_with_timeout(Duration::from_millis(10), move || g.wait());
        assert!(common::eventually(30, || task.ready()));
        assert!(task.timed_out());
        gate.open();
    });
}

#[test]
fn run_with_timeout_in_time_returns_the_value() {
    within(60, || {
        let task = va::run_with_timeout(Duration::from_secs(3600), || 5);
        assert_eq!(task.get().unwrap(), 5);
        let task = va::run_with_timeout(Duration::MAX, || 6);
        assert_eq!(task.get().unwrap(), 6);
        assert!(!va::run_with_timeout(Duration::MAX, || 6).timed_out());
    });
}

#[test]
fn run_with_timeout_zero_times_out_without_calling() {
    within(60, || {
        let called = Arc::new(AtomicUsize::new(0));
        let c = called.clone();
        let task = va::run_with_timeout(Duration::ZERO, move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        assert!(task.ready() && task.timed_out());
        assert!(task.get().unwrap_err().is_timeout());
        assert_eq!(called.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn timed_out_work_sees_its_context_done() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        let task = va::run_with_timeout(Duration::from_millis(10), move || {
            let ctx = Context::current();
            ctx.wait();
            tx.send(ctx.error().map(|e| e.is_timeout())).unwrap();
        });
        assert!(task.get().unwrap_err().is_timeout());
        assert_eq!(rx.recv().unwrap(), Some(true));
    });
}

#[test]
fn run_with_context_cancel_resolves_at_once() {
    within(60, || {
        let ctx = Context::new();
        let (started_tx, started_rx) = mpsc::channel();
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::run_with_context(&ctx, move || {
            started_tx.send(()).unwrap();
            g.wait();
            1
        });
        started_rx.recv().unwrap();
        ctx.cancel();
        let err = task.get().unwrap_err();
        assert!(err.is_cancelled() && !err.is_timeout());
        gate.open();
    });
}

#[test]
fn run_with_context_deadline_is_a_timeout() {
    within(60, || {
        let ctx = Context::with_timeout(Duration::from_millis(10));
        let task = va::run_with_context(&ctx, || Context::current().wait());
        let err = task.get().unwrap_err();
        assert!(err.is_timeout());
        let t2 = va::run_with_context(&ctx, || 1);
        assert!(t2.timed_out());
    });
}

#[test]
fn run_with_done_context_never_calls_the_closure() {
    within(60, || {
        let ctx = Context::new();
        ctx.cancel();
        let called = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let c = called.clone();
        let d = DropCounter(drops.clone());
        let task = va::run_with_context(&ctx, move || {
            let _d = d;
            c.fetch_add(1, Ordering::SeqCst);
        });
        assert!(task.get().unwrap_err().is_cancelled());
        assert_eq!(called.load(Ordering::SeqCst), 0);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the closure is dropped exactly once"
        );
    });
}

#[test]
fn run_with_context_finishing_first_keeps_the_value() {
    within(60, || {
        let ctx = Context::new();
        let task = va::run_with_context(&ctx, || 9);
        task.wait();
        ctx.cancel();
        assert_eq!(task.get().unwrap(), 9);
    });
}

#[test]
fn work_cancelling_its_own_context_resolves_as_cancelled() {
    within(60, || {
        let task = va::run(|| {
            Context::current().cancel();
            1
        });
        assert!(task.get().unwrap_err().is_cancelled());
    });
}

#[test]
fn go_runs_fire_and_forget() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        for i in 0..100 {
            let tx = tx.clone();
            va::go(move || tx.send(i).unwrap());
        }
        drop(tx);
        let mut got: Vec<i32> = rx.iter().collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn go_panic_does_not_kill_the_pool() {
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        for _ in 0..10 {
            pool.go(|| panic!("fire-and-forget panic"));
        }
        assert_eq!(pool.run(|| 1).get().unwrap(), 1);
        pool.shutdown(Duration::from_secs(30));
        let s = pool.stats();
        assert_eq!(s.panicked, 10);
        assert_eq!(s.completed, 11);
    });
}

#[test]
fn go_with_recover_passes_the_panic() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        va::go_with_recover(
            || panic!("risky {}", 1),
            move |p| tx.send(p.message().to_owned()).unwrap(),
        );
        assert_eq!(rx.recv().unwrap(), "risky 1");
    });
}

#[test]
fn go_with_recover_does_not_call_the_handler_without_a_panic() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        va::go_with_recover(
            move || done_tx.send(()).unwrap(),
            move |_| tx.send(()).unwrap(),
        );
        done_rx.recv().unwrap();
        // The handler is dropped uncalled: its sender closes.
        assert!(rx.recv().is_err());
    });
}

#[test]
fn go_with_recover_survives_a_panicking_handler() {
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        pool.go_with_recover(|| panic!("first"), |_| panic!("handler too"));
        assert_eq!(pool.run(|| 2).get().unwrap(), 2);
    });
}

#[test]
fn go_sees_its_own_context_inheriting_the_callers() {
    within(60, || {
        let ctx = Context::new();
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let c = ctx.clone();
        let task = va::run_with_context(&c, move || {
            va::go(move || {
                started_tx.send(()).unwrap();
                Context::current().wait();
                tx.send(Context::current().is_done()).unwrap();
            });
        });
        task.get().unwrap();
        started_rx.recv().unwrap();
        ctx.cancel();
        assert!(rx.recv().unwrap());
    });
}

#[test]
fn free_try_go_reports_a_shutdown_and_drops_the_closure_uncalled() {
    within(60, || {
        let pool = va::Pool::builder().build();
        let (tx, rx) = std::sync::mpsc::channel();
        pool.install(|| va::try_go(move || tx.send(1).unwrap()))
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 1);
        assert!(pool.shutdown(Duration::from_secs(30)).is_complete());
        let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let token = common::DropCounter(drops.clone());
        let refused = pool.install(|| {
            va::try_go(move || {
                let _keep = &token;
                unreachable!("refused work is never called")
            })
        });
        assert!(matches!(refused, Err(va::Error::ShutDown)), "{refused:?}");
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    });
}

#[test]
fn errors_convert_into_io_errors_with_matching_kinds() {
    use std::io::ErrorKind;
    let kind = |e: va::Error| std::io::Error::from(e).kind();
    assert_eq!(kind(va::Error::Timeout), ErrorKind::TimedOut);
    assert_eq!(kind(va::Error::Cancelled), ErrorKind::Other);
    assert_eq!(kind(va::Error::NoJobs), ErrorKind::InvalidInput);
    assert_eq!(kind(va::Error::ShutDown), ErrorKind::Other);
    let io = std::io::Error::from(va::Error::Cancelled);
    let inner = io.into_inner().unwrap().downcast::<va::Error>().unwrap();
    assert!(inner.is_cancelled());
    // The point of it: io-returning jobs compose as they are.
    let r: std::io::Result<(u8, u8)> = va::all_with_error((|| Ok(1), || Ok(2)));
    assert_eq!(r.unwrap(), (1, 2));
}
