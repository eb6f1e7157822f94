//! `Task<T>`: the handle's contract (API.md, "Task<T> — the handle").

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{block_on, within, DropCounter, Gate, PanicOnDrop};
use velocity_async as va;

#[test]
fn into_panic_hands_back_the_original_payload() {
    within(60, || {
        #[derive(Debug, PartialEq)]
        struct Declined(u32);
        let err = va::run(|| -> () { std::panic::panic_any(Declined(402)) })
            .get()
            .unwrap_err();
        let va::Error::Panic(p) = err else {
            panic!("not a panic: {err:?}")
        };
        assert_eq!(p.message(), "Box<dyn Any>");
        let payload = p.into_panic();
        assert_eq!(payload.downcast_ref::<Declined>(), Some(&Declined(402)));

        // `resume_unwind` rethrows it; a second catch sees the same payload.
        let disk = std::hint::black_box(3);
        let err = va::run(move || -> () { panic!("disk {disk} full") })
            .get()
            .unwrap_err();
        let payload = err.as_panic().unwrap().clone().into_panic();
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::panic::resume_unwind(payload)
        }))
        .unwrap_err();
        assert_eq!(
            again.downcast_ref::<String>().map(String::as_str),
            Some("disk 3 full")
        );

        // Clones share the payload: the first to ask takes it, the others
        // get the message as a `String`.
        let err = va::run(|| -> () { std::panic::panic_any(7u32) })
            .get()
            .unwrap_err();
        let (a, b) = (
            err.as_panic().unwrap().clone(),
            err.as_panic().unwrap().clone(),
        );
        assert_eq!(a.into_panic().downcast_ref::<u32>(), Some(&7));
        let b = b.into_panic();
        assert_eq!(
            b.downcast_ref::<String>().map(String::as_str),
            Some("Box<dyn Any>")
        );
        // The error itself is unchanged by it.
        assert_eq!(err.as_panic().unwrap().message(), "Box<dyn Any>");
    });
}

#[test]
fn get_returns_the_value() {
    within(60, || {
        let v = va::run(|| vec![1, 2, 3]).get().unwrap();
        assert_eq!(v, vec![1, 2, 3]);
    });
}

#[test]
fn get_returns_panic_with_message_verbatim() {
    within(60, || {
        let err = va::run(|| -> u8 { panic!("query failed: {}", 42) })
            .get()
            .unwrap_err();
        assert!(err.is_panic() && !err.is_timeout() && !err.is_cancelled());
        assert_eq!(err.as_panic().unwrap().message(), "query failed: 42");
        assert!(err.to_string().contains("query failed: 42"));
        // &'static str payloads too
        let err = va::run(|| -> u8 { panic!("static") }).get().unwrap_err();
        assert_eq!(err.as_panic().unwrap().message(), "static");
        // non-string payloads
        let err = va::run(|| -> u8 { std::panic::panic_any(7u32) })
            .get()
            .unwrap_err();
        assert_eq!(err.as_panic().unwrap().message(), "Box<dyn Any>");
    });
}

#[test]
fn get_or_and_get_or_default() {
    within(60, || {
        assert_eq!(va::run(|| 5).get_or(9), 5);
        assert_eq!(va::run(|| -> i32 { panic!("x") }).get_or(9), 9);
        assert_eq!(va::run(|| String::from("a")).get_or_default(), "a");
        assert_eq!(va::run(|| -> String { panic!("x") }).get_or_default(), "");
        assert_eq!(
            va::run_with_timeout(Duration::ZERO, || 3).get_or_default(),
            0
        );
    });
}

#[test]
fn ready_turns_true_without_get() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::run(move || {
            g.wait();
            1
        });
        assert!(!task.ready());
        assert!(!task.timed_out());
        gate.open();
        assert!(task.wait_timeout(Duration::from_secs(30)));
        assert!(task.ready());
        assert!(!task.timed_out());
        assert_eq!(task.get().unwrap(), 1);
    });
}

#[test]
fn wait_keeps_the_handle_and_wait_timeout_polls() {
    within(60, || {
        let (tx, rx) = mpsc::channel::<()>();
        let task = va::run(move || rx.recv().is_err());
        assert!(!task.wait_timeout(Duration::ZERO));
        let start = Instant::now();
        assert!(!task.wait_timeout(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        drop(tx);
        task.wait();
        assert!(task.ready());
        assert!(task.wait_timeout(Duration::ZERO));
        assert!(task.wait_timeout(Duration::MAX));
        assert!(task.get().unwrap());
    });
}

#[test]
fn wait_deadline_in_the_past_polls() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::run(move || g.wait());
        assert!(!task.wait_deadline(Instant::now()));
        gate.open();
        task.get().unwrap();
    });
}

#[test]
fn dropping_a_task_detaches_it_and_the_work_still_runs() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        let gate = Gate::new();
        let g = gate.clone();
        drop(va::run(move || {
            g.wait();
            tx.send("ran").unwrap();
        }));
        gate.open();
        assert_eq!(rx.recv().unwrap(), "ran");
    });
}

#[test]
fn uncollected_result_is_dropped_exactly_once() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let task = va::run(move || DropCounter(d));
        task.wait();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(task);
        assert!(common::eventually(30, || drops.load(Ordering::SeqCst) == 1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");

        // Detached before it finishes: dropped on the worker, once.
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let d = drops.clone();
        let gate = Gate::new();
        let g = gate.clone();
        drop(va::run(move || {
            g.wait();
            struct Notify(
                #[allow(dead_code, reason = "held for its Drop")] DropCounter,
                mpsc::Sender<()>,
            );
            impl Drop for Notify {
                fn drop(&mut self) {
                    let _ = self.1.send(());
                }
            }
            Notify(DropCounter(d), tx)
        }));
        gate.open();
        rx.recv().unwrap();
        assert!(common::eventually(30, || drops.load(Ordering::SeqCst) == 1));
    });
}

#[test]
fn panicking_drop_of_uncollected_result_unwinds_nowhere() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let task = va::run(move || PanicOnDrop(d));
        task.wait();
        drop(task); // would unwind here if the crate let it
        assert!(common::eventually(30, || drops.load(Ordering::SeqCst) == 1));

        // Detached: the worker drops it and survives.
        let d = drops.clone();
        drop(va::run(move || PanicOnDrop(d)));
        assert!(common::eventually(30, || drops.load(Ordering::SeqCst) == 2));
        assert_eq!(va::run(|| 1).get().unwrap(), 1);
    });
}

#[test]
fn panicking_drop_of_a_captured_value_never_called_unwinds_nowhere() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = PanicOnDrop(drops.clone());
        // Zero timeout: the closure is never called, only dropped.
        let task = va::run_with_timeout(Duration::ZERO, move || {
            let _keep = &d;
        });
        assert!(task.timed_out());
        drop(task);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn outcome_is_decided_once_first_wins() {
    within(60, || {
        // Timeout first: the late value never replaces it.
        let gate = Gate::new();
        let g = gate.clone();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let (done_tx, done_rx) = mpsc::channel();
        let task = va::run_with_timeout(Duration::from_millis(10), move || {
            g.wait();
            let _ = done_tx.send(());
            DropCounter(d)
        });
        task.wait();
        assert!(task.timed_out());
        gate.open();
        done_rx.recv().unwrap();
        // The late value is dropped on the worker, exactly once.
        assert!(common::eventually(30, || drops.load(Ordering::SeqCst) == 1));
        assert!(task.timed_out());
        assert!(task.get().unwrap_err().is_timeout());
    });
}

#[test]
fn task_is_a_future_under_a_hand_written_executor() {
    within(60, || {
        let task = va::run(|| 40 + 2);
        assert_eq!(block_on(task).unwrap(), 42);

        let gate = Gate::new();
        let g = gate.clone();
        let task = va::run(move || {
            g.wait();
            "late"
        });
        let opener = std::thread::spawn(move || gate.open());
        assert_eq!(block_on(task).unwrap(), "late");
        opener.join().unwrap();
    });
}

#[test]
fn future_is_woken_by_a_timeout_without_anyone_polling_for_it() {
    within(60, || {
        // The clock is read before the deadline is set: read after it, a
        // preemption of the test thread between the two (seen under TSan
        // beside CPU hogs) would eat into any margin below 20 ms.
        let start = Instant::now();
        let task = va::run_with_timeout(Duration::from_millis(20), || {
            va::Context::current().wait();
        });
        assert!(block_on(task).unwrap_err().is_timeout());
        assert!(start.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn many_waiters_all_wake() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let task = Arc::new(va::run(move || g.wait()));
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let t = task.clone();
                std::thread::spawn(move || {
                    t.wait();
                    t.ready()
                })
            })
            .collect();
        gate.open();
        for w in waiters {
            assert!(w.join().unwrap());
        }
    });
}

#[test]
fn debug_shows_the_state() {
    within(60, || {
        let task = va::run(|| 1);
        task.wait();
        assert!(format!("{task:?}").contains("value"));
        let task = va::run_with_timeout(Duration::ZERO, || 1);
        assert!(format!("{task:?}").contains("timed out"));
    });
}

#[test]
fn cancel_resolves_a_running_task_at_once_and_tells_the_work() {
    within(60, || {
        let (saw_tx, saw_rx) = mpsc::channel();
        let started = Gate::new();
        let s = started.clone();
        let task = va::run(move || {
            s.open();
            va::Context::current().wait();
            let _ = saw_tx.send(va::Context::current().error());
            "late"
        });
        started.wait();
        assert!(!task.ready());
        task.cancel();
        assert!(task.ready(), "cancel resolves the task before it returns");
        task.cancel(); // twice: nothing more happens
        assert!(task.get().unwrap_err().is_cancelled());
        let seen = saw_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(
            seen.unwrap().is_cancelled(),
            "the work's context is cancelled"
        );
    });
}

#[test]
fn the_works_context_is_one_context_whoever_asks_first() {
    within(60, || {
        // A cancel before the work ever asked: it still sees it.
        let (saw_tx, saw_rx) = mpsc::channel();
        let (started, go_on) = (Gate::new(), Gate::new());
        let (s, g) = (started.clone(), go_on.clone());
        let task = va::run(move || {
            s.open();
            g.wait();
            let _ = saw_tx.send(va::Context::current().error());
        });
        started.wait();
        task.cancel();
        go_on.open();
        assert!(task.get().unwrap_err().is_cancelled());
        let seen = saw_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(seen.unwrap().is_cancelled());

        // Two asks are one context: cancelling the first ends the second,
        // and the task.
        let task = va::run(|| {
            let (a, b) = (va::Context::current(), va::Context::current());
            a.cancel();
            b.error()
        });
        assert!(task.get().unwrap_err().is_cancelled());

        // Work started by the work is a child of its context: a cancel of
        // the outer task reaches it.
        let (inner_tx, inner_rx) = mpsc::channel();
        let outer = va::run(move || {
            let inner = va::run(|| {
                va::Context::current().wait();
                va::Context::current().error()
            });
            let _ = inner_tx.send(inner);
        });
        let inner = inner_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        outer.wait();
        assert!(!inner.ready());
        outer.cancel(); // finished: keeps its value, but its context ends
        assert!(outer.get().is_ok());
        assert!(inner.get().unwrap_err().is_cancelled());
    });
}

#[test]
fn cancel_of_a_queued_task_never_calls_it_and_drops_it_once() {
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        let gate = Gate::new();
        let g = gate.clone();
        let blocker = pool.run(move || g.wait());
        let called = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (c, d) = (called.clone(), DropCounter(drops.clone()));
        let queued = pool.run(move || {
            let _d = &d;
            c.fetch_add(1, Ordering::SeqCst);
        });
        queued.cancel();
        assert!(queued.ready());
        gate.open();
        blocker.get().unwrap();
        assert!(queued.get().unwrap_err().is_cancelled());
        pool.shutdown(Duration::from_secs(30));
        assert_eq!(called.load(Ordering::SeqCst), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn cancel_after_the_value_keeps_the_value_and_of_a_refused_task_keeps_its_error() {
    within(60, || {
        let task = va::run(|| 5);
        task.wait();
        task.cancel();
        assert!(!task.timed_out());
        assert_eq!(task.get().unwrap(), 5);

        let pool = va::Pool::builder().build();
        pool.shutdown(Duration::from_secs(30));
        let refused = pool.run(|| 1);
        refused.cancel();
        assert!(matches!(refused.get(), Err(va::Error::ShutDown)));

        let timed = va::run_with_timeout(Duration::ZERO, || 1);
        timed.cancel();
        assert!(timed.get().unwrap_err().is_timeout());
    });
}

#[test]
fn a_wait_on_a_shared_handle_ends_at_a_cancel_from_another_thread() {
    // A worker waiting with `wait(&self)` must not run the queued job
    // inline: a cancel from another thread must end that wait at once,
    // which a job running on the waiter itself (here: until the gate
    // opens) could not.
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        let gate = Gate::new();
        let (handle_tx, handle_rx) = mpsc::channel::<Arc<va::Task<()>>>();
        let (p, g) = (pool.clone(), gate.clone());
        let outer = pool.run(move || {
            let g = g.clone();
            let inner = Arc::new(p.run(move || g.wait()));
            handle_tx.send(inner.clone()).unwrap();
            inner.wait();
            inner.ready()
        });
        let inner = handle_rx.recv().unwrap();
        inner.cancel();
        assert!(
            outer.wait_timeout(Duration::from_secs(20)),
            "the waiting worker ran the job inline"
        );
        gate.open();
        assert!(outer.get().unwrap());
        pool.shutdown(Duration::from_secs(30));
    });
}

#[test]
fn cancel_wakes_a_registered_waker() {
    within(60, || {
        use std::task::{Context, Poll, Wake, Waker};
        struct Woken(mpsc::Sender<()>);
        impl Wake for Woken {
            fn wake(self: Arc<Self>) {
                let _ = self.0.send(());
            }
        }
        let (woken_tx, woken) = mpsc::channel();
        let waker = Waker::from(Arc::new(Woken(woken_tx)));
        let mut cx = Context::from_waker(&waker);
        let mut task = va::run(|| va::Context::current().wait());
        assert!(std::pin::Pin::new(&mut task).poll(&mut cx).is_pending());
        task.cancel();
        // Decided when `cancel` returns; the waker is woken by whichever
        // thread decided it: this one, or the worker whose work saw the
        // cancel first and returned (then possibly just after `cancel`
        // returns: seen in up to 61 of 400,000 tries on four threads,
        // release build).
        assert!(task.ready());
        woken
            .recv_timeout(Duration::from_secs(30))
            .expect("the waker was woken");
        match std::pin::Pin::new(&mut task).poll(&mut cx) {
            Poll::Ready(r) => assert!(r.unwrap_err().is_cancelled()),
            Poll::Pending => panic!("still pending after cancel"),
        }
        assert!(woken.try_recv().is_err(), "the waker was woken once");
    });
}
