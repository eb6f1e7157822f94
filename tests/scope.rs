//! `scope`: std's `thread::scope` semantics on the pool (API.md, "Beyond
//! Velocity").

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use common::{within, DropCounter, Gate};
use velocity_async as va;

#[test]
fn jobs_borrow_mutably_and_every_job_ends_before_scope_returns() {
    within(60, || {
        let mut cells = vec![0u64; 64];
        let words = vec!["a"; 64];
        let ended = AtomicUsize::new(0);
        let r = va::scope(|s| {
            for (i, (cell, w)) in cells.iter_mut().zip(&words).enumerate() {
                // Detached: never joined, still waited for.
                let ended = &ended;
                drop(s.spawn(move || {
                    std::thread::sleep(Duration::from_micros(200));
                    *cell = i as u64 + w.len() as u64;
                    ended.fetch_add(1, Ordering::SeqCst);
                }));
            }
            "body"
        });
        assert_eq!(r, "body");
        assert_eq!(ended.load(Ordering::SeqCst), 64);
        assert_eq!(cells, (1..=64).collect::<Vec<u64>>());
    });
}

#[test]
fn blocking_jobs_run_at_once_and_join_returns_their_values() {
    // 16 jobs that can only finish once all 16 and the body meet: the pool
    // must run them side by side, however few CPUs there are.
    within(60, || {
        let barrier = Barrier::new(17);
        let sum: usize = va::scope(|s| {
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let b = &barrier;
                    s.spawn(move || {
                        b.wait();
                        i
                    })
                })
                .collect();
            barrier.wait();
            tasks.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(sum, (0..16).sum());
    });
}

#[test]
fn a_job_sees_the_scope_context_a_child_of_the_callers_cancelled_at_the_end() {
    within(60, || {
        let parent = va::Context::new();
        let (ctx_tx, ctx_rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::channel();
        let p = parent.clone();
        let outer = va::run_with_context(&parent, move || {
            va::scope(|s| {
                let t = s.spawn(|| {
                    let current = va::Context::current();
                    ctx_tx.send(current.clone()).unwrap();
                    current.wait(); // until the caller's context is cancelled
                    current.error().map(|e| e.is_cancelled())
                });
                assert!(!s.context().is_done());
                let seen = ctx_rx.recv().unwrap();
                assert!(!seen.is_done());
                p.cancel();
                let r = t.join().unwrap();
                out_tx.send((r, s.context().is_done(), seen)).unwrap();
            })
        });
        let (r, scope_done, seen) = out_rx.recv().unwrap();
        assert_eq!(r, Some(true), "the job saw its context cancelled");
        assert!(scope_done, "the scope's context is a child of the caller's");
        assert!(seen.is_done());
        assert!(outer.get().unwrap_err().is_cancelled());

        // Cancelled when `scope` returns, even with nothing cancelled above.
        let leaked = va::scope(|s| s.spawn(va::Context::current).join().unwrap());
        assert!(leaked.is_done());
        assert!(leaked.error().unwrap().is_cancelled());
    });
}

#[test]
fn a_job_not_started_when_the_callers_context_ends_is_never_called() {
    within(60, || {
        let ctx = va::Context::new();
        let called = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(AtomicUsize::new(0));
        let (c, d) = (called.clone(), DropCounter(drops.clone()));
        let (outcome_tx, outcome_rx) = mpsc::channel();
        let cancel = ctx.clone();
        // The scope runs inside work of `ctx`, so its context is a child of
        // `ctx`: cancelled before the job is spawned, the job is skipped.
        let task = va::run_with_context(&ctx, move || {
            va::scope(|s| {
                cancel.cancel();
                let job = s.spawn(move || {
                    let _d = &d;
                    c.store(true, Ordering::SeqCst);
                });
                outcome_tx.send(job.join()).unwrap();
            })
        });
        let job = outcome_rx.recv().unwrap();
        assert!(job.unwrap_err().is_cancelled());
        assert!(task.get().unwrap_err().is_cancelled());
        assert!(!called.load(Ordering::SeqCst));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the closure dropped once");
    });
}

#[test]
fn join_runs_a_job_nobody_started_on_the_joining_thread() {
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        let gate = Gate::new();
        let g = gate.clone();
        let blocker = pool.run(move || g.wait());
        let here = std::thread::current().id();
        let ran_on = pool.install(|| {
            va::scope(|s| {
                let t = s.spawn(|| std::thread::current().id());
                assert!(!t.ready(), "the pool's one thread is blocked");
                t.join().unwrap()
            })
        });
        assert_eq!(ran_on, here);
        gate.open();
        blocker.get().unwrap();
        pool.shutdown(Duration::from_secs(30));
    });
}

#[test]
fn an_unjoined_panic_is_resumed_after_every_job_ended_a_joined_one_is_not() {
    within(60, || {
        #[derive(Debug, PartialEq)]
        struct Boom(u8);
        let ended = AtomicBool::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            va::scope(|s| {
                drop(s.spawn(|| -> () { std::panic::panic_any(Boom(1)) }));
                s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    ended.store(true, Ordering::SeqCst);
                });
            })
        }))
        .unwrap_err();
        assert!(
            ended.load(Ordering::SeqCst),
            "resumed only after every job ended"
        );
        assert_eq!(
            caught.downcast_ref::<Boom>(),
            Some(&Boom(1)),
            "the original payload"
        );

        let joined = va::scope(|s| {
            let t = s.spawn(|| -> u8 { panic!("handled") });
            t.join().unwrap_err()
        });
        assert_eq!(joined.as_panic().unwrap().message(), "handled");
    });
}

#[test]
fn a_panicking_body_cancels_the_jobs_waits_for_them_and_is_resumed() {
    within(60, || {
        let stopped = AtomicBool::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            va::scope(|s| {
                s.spawn(|| {
                    va::Context::current().wait(); // until the body fails
                    stopped.store(true, Ordering::SeqCst);
                });
                panic!("body failed");
            })
        }))
        .unwrap_err();
        assert!(stopped.load(Ordering::SeqCst));
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"body failed"));
    });
}

#[test]
fn jobs_spawn_jobs_and_scopes_nest() {
    within(60, || {
        let total = AtomicUsize::new(0);
        va::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..8 {
                        s.spawn(|| {
                            va::scope(|inner| {
                                inner.spawn(|| total.fetch_add(1, Ordering::SeqCst));
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::SeqCst), 64);
    });
}

#[test]
fn a_hundred_thousand_detached_jobs_all_run_and_drop() {
    within(120, || {
        let n = 100_000;
        let ran = AtomicUsize::new(0);
        let drops = Arc::new(AtomicUsize::new(0));
        va::scope(|s| {
            for _ in 0..n {
                let d = DropCounter(drops.clone());
                drop(s.spawn(|| {
                    let _d = d;
                    ran.fetch_add(1, Ordering::Relaxed);
                }));
            }
        });
        assert_eq!(ran.load(Ordering::SeqCst), n);
        assert_eq!(drops.load(Ordering::SeqCst), n);
    });
}

#[test]
fn unjoined_values_are_dropped_once_and_panicking_drops_are_contained() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let panics = Arc::new(AtomicUsize::new(0));
        va::scope(|s| {
            for _ in 0..10 {
                let d = drops.clone();
                drop(s.spawn(move || DropCounter(d)));
            }
            let p = panics.clone();
            drop(s.spawn(move || common::PanicOnDrop(p)));
        });
        assert_eq!(drops.load(Ordering::SeqCst), 10);
        assert_eq!(panics.load(Ordering::SeqCst), 1);
        // The pool still works.
        assert_eq!(va::run(|| 2).get().unwrap(), 2);
    });
}

#[test]
fn a_job_spawned_after_the_pool_closed_is_run_by_the_waiting_owner() {
    // The owner already ran the unstarted jobs and waits; then a job
    // running on a worker spawns a detached one, which the closed pool
    // refuses. The owner must wake and run it, or `scope` waits forever.
    within(60, || {
        let pool = va::Pool::builder().max_threads(2).build();
        let gate = Gate::new();
        let (started_tx, started_rx) = mpsc::channel();
        let (running_tx, running_rx) = mpsc::channel();
        let ran_on = Mutex::new(None);
        let closer = {
            let (pool, gate) = (pool.clone(), gate.clone());
            std::thread::spawn(move || {
                started_rx.recv().unwrap();
                // Closes the pool; the running job keeps it from completing.
                pool.shutdown(Duration::ZERO);
                gate.open();
            })
        };
        let owner = std::thread::current().id();
        pool.install(|| {
            va::scope(|s| {
                s.spawn(|| {
                    running_tx.send(()).unwrap();
                    started_tx.send(()).unwrap();
                    gate.wait(); // until the pool is closed
                    drop(s.spawn(|| *ran_on.lock().unwrap() = Some(std::thread::current().id())));
                });
                // The job runs on a worker before the owner starts waiting.
                running_rx.recv().unwrap();
            })
        });
        closer.join().unwrap();
        assert_eq!(*ran_on.lock().unwrap(), Some(owner));
    });
}
