//! `Context`: cancellation, deadlines, the tree, and `current()`.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{block_on, within};
use va::Context;
use velocity_async as va;

#[test]
fn new_context_is_live_until_cancelled() {
    let ctx = Context::new();
    assert!(!ctx.is_done());
    assert!(ctx.error().is_none());
    assert!(ctx.deadline().is_none());
    ctx.cancel();
    assert!(ctx.is_done());
    assert!(ctx.error().unwrap().is_cancelled());
    ctx.cancel();
    assert!(
        ctx.error().unwrap().is_cancelled(),
        "done is final and keeps its reason"
    );
}

#[test]
fn clones_share_one_state() {
    let a = Context::new();
    let b = a.clone();
    b.cancel();
    assert!(a.is_done());
}

#[test]
fn with_timeout_expires_and_reports_a_timeout() {
    within(60, || {
        let start = Instant::now();
        let ctx = Context::with_timeout(Duration::from_millis(20));
        assert!(!ctx.is_done());
        assert!(ctx.deadline().is_some());
        ctx.wait();
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(ctx.is_done());
        assert!(ctx.error().unwrap().is_timeout());
    });
}

#[test]
fn zero_and_max_timeouts_never_panic() {
    let zero = Context::with_timeout(Duration::ZERO);
    assert!(zero.is_done());
    assert!(zero.error().unwrap().is_timeout());
    let max = Context::with_timeout(Duration::MAX);
    assert!(!max.is_done());
    assert!(
        max.deadline().is_none(),
        "an unrepresentable deadline is no deadline"
    );
    assert!(!max.wait_timeout(Duration::ZERO));
    let child = max.child_with_timeout(Duration::MAX);
    assert!(!child.is_done());
    assert!(Context::new().child_with_timeout(Duration::ZERO).is_done());
}

#[test]
fn cancel_flows_down_never_up() {
    let root = Context::new();
    let child = root.child();
    let grandchild = child.child();
    grandchild.cancel();
    assert!(!child.is_done() && !root.is_done());
    let grandchild = child.child();
    child.cancel();
    assert!(grandchild.is_done());
    assert!(!root.is_done());
    let sibling = root.child();
    root.cancel();
    assert!(sibling.is_done());
    assert!(
        root.child().is_done(),
        "a child of a done context is born done"
    );
}

#[test]
fn a_parent_deadline_reaches_children_with_its_reason() {
    within(60, || {
        let parent = Context::with_timeout(Duration::from_millis(10));
        let child = parent.child();
        assert_eq!(child.deadline(), parent.deadline());
        child.wait();
        assert!(child.error().unwrap().is_timeout());
    });
}

#[test]
fn child_deadline_is_the_earlier_one() {
    let parent = Context::with_timeout(Duration::from_secs(1));
    let child = parent.child_with_timeout(Duration::from_secs(3600));
    assert_eq!(child.deadline(), parent.deadline());
    let short = parent.child_with_timeout(Duration::from_millis(1));
    assert!(short.deadline() < parent.deadline());
}

#[test]
fn cancel_wakes_every_waiter_at_once() {
    within(60, || {
        let ctx = Context::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiters: Vec<_> = (0..6)
            .map(|i| {
                let c = if i % 2 == 0 { ctx.clone() } else { ctx.child() };
                let r = ready_tx.clone();
                std::thread::spawn(move || {
                    r.send(()).unwrap();
                    c.wait();
                    c.is_done()
                })
            })
            .collect();
        for _ in 0..6 {
            ready_rx.recv().unwrap();
        }
        ctx.cancel();
        for w in waiters {
            assert!(w.join().unwrap());
        }
    });
}

#[test]
fn wait_timeout_returns_false_while_live() {
    let ctx = Context::new();
    let start = Instant::now();
    assert!(!ctx.wait_timeout(Duration::from_millis(10)));
    assert!(start.elapsed() >= Duration::from_millis(10));
    assert!(
        !Context::current().wait_timeout(Duration::from_millis(1)),
        "background is never done"
    );
}

#[test]
fn done_future_completes_on_cancel_and_deadline() {
    within(60, || {
        let ctx = Context::new();
        let c = ctx.clone();
        let t = std::thread::spawn(move || c.cancel());
        block_on(ctx.done());
        t.join().unwrap();
        block_on(Context::with_timeout(Duration::from_millis(5)).done());
        block_on(Context::with_timeout(Duration::ZERO).done());
    });
}

#[test]
fn current_outside_work_is_never_done() {
    let ctx = Context::current();
    assert!(!ctx.is_done());
    ctx.cancel(); // a no-op on the background context
    assert!(!Context::current().is_done());
}

#[test]
fn current_inside_work_is_the_tasks_own_child_context() {
    within(60, || {
        let parent = Context::new();
        let p = parent.clone();
        let task = va::run_with_context(&parent, move || {
            let mine = Context::current();
            // Cancelling my own context does not touch the parent.
            assert!(!mine.is_done());
            assert!(!p.is_done());
            mine
        });
        let seen = task.get().unwrap();
        parent.cancel();
        assert!(
            seen.is_done(),
            "the task's context is a child of the one it ran with"
        );
    });
}

#[test]
fn a_go_job_outside_any_work_has_one_context_of_its_own() {
    // Made only when the job first asks (no parent, no deadline): it must
    // still be one context for the whole job, not the background one, and
    // work the job starts must be its child.
    within(60, || {
        let (tx, rx) = mpsc::channel();
        va::go(move || {
            let first = Context::current();
            // Bounded: were it not the job's child, the cancel below would
            // miss it and the test fail after 10 s rather than hang.
            let child = va::run(|| Context::current().wait_timeout(Duration::from_secs(10)));
            first.cancel();
            tx.send((
                Context::current().is_done(),
                format!("{first:?}") != "Context(background)",
                child.get(),
            ))
            .unwrap();
        });
        let (same, not_background, child) = rx.recv().unwrap();
        assert!(same, "a later Context::current() is the cancelled one");
        assert!(not_background);
        assert!(child.unwrap_err().is_cancelled(), "its work is its child");
        // The next job's context is a new one, not the cancelled one.
        let (tx, rx) = mpsc::channel();
        va::go(move || tx.send(Context::current().is_done()).unwrap());
        assert!(!rx.recv().unwrap());
    });
}

#[test]
fn work_started_inside_work_inherits_the_context() {
    within(60, || {
        let ctx = Context::new();
        let (started_tx, started_rx) = mpsc::channel();
        let outer = va::run_with_context(&ctx, move || {
            let inner = va::run(move || {
                started_tx.send(()).unwrap();
                Context::current().wait();
                Context::current().error().map(|e| e.is_cancelled())
            });
            inner.get()
        });
        started_rx.recv().unwrap();
        ctx.cancel();
        assert!(outer.get().unwrap_err().is_cancelled());
    });
}

#[test]
fn deep_chains_cancel_without_overflowing_the_stack() {
    within(60, || {
        let root = Context::new();
        let mut leaf = root.clone();
        let mut all = Vec::new();
        for _ in 0..100_000 {
            leaf = leaf.child();
            all.push(leaf.clone());
        }
        root.cancel();
        assert!(leaf.is_done());
        drop(all);
    });
}

#[test]
fn dropped_children_leave_their_parent() {
    within(60, || {
        // A long-lived parent with a million short-lived children must not
        // grow: each child leaves on drop (checked by it staying fast and not
        // running out of memory; cancel then has nothing to walk).
        let parent = Context::new();
        for _ in 0..1_000_000 {
            let _c = parent.child();
        }
        let start = Instant::now();
        parent.cancel();
        assert!(start.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn debug_is_informative() {
    assert_eq!(format!("{:?}", Context::current()), "Context(background)");
    let c = Context::new();
    c.cancel();
    assert!(format!("{c:?}").contains("Cancelled"));
}

#[test]
fn a_cancel_guard_cancels_on_drop_and_on_unwind_and_disarms() {
    within(60, || {
        let ctx = Context::new();
        drop(ctx.cancel_on_drop());
        assert!(ctx.error().unwrap().is_cancelled());

        // A scope left by a panic still cancels what it started.
        let ctx = Context::new();
        let c = ctx.clone();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _guard = c.cancel_on_drop();
            panic!("leaving by a panic");
        }));
        assert!(unwound.is_err());
        assert!(ctx.is_done());

        let ctx = Context::new();
        ctx.cancel_on_drop().disarm();
        assert!(!ctx.is_done());
        // A child made under the guard is cancelled with it.
        let child = {
            let _guard = ctx.cancel_on_drop();
            ctx.child()
        };
        assert!(child.is_done());
    });
}
