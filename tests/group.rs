//! `group` and `group_n`: Go's errgroup (API.md, "Beyond Velocity").

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use common::{within, DropCounter, Gate, PanicOnDrop};
use velocity_async as va;

#[derive(Debug)]
enum AppError {
    Job(u32),
    Body,
    Va(va::Error),
}

impl From<va::Error> for AppError {
    fn from(e: va::Error) -> Self {
        AppError::Va(e)
    }
}

#[test]
fn jobs_borrow_mutably_and_the_bodys_value_comes_back() {
    within(60, || {
        let mut slots = vec![0usize; 32];
        let r: Result<&str, AppError> = va::group(|g| {
            for (i, slot) in slots.iter_mut().enumerate() {
                g.go(move || {
                    *slot = i * 2;
                    Ok(())
                });
            }
            Ok("done")
        });
        assert_eq!(r.unwrap(), "done");
        assert_eq!(slots, (0..32).map(|i| i * 2).collect::<Vec<_>>());
    });
}

#[test]
fn go_never_runs_the_job_on_the_caller() {
    // Each job waits for a message the body sends only after `go`
    // returned: a `go` that ran its job inline would hang here.
    within(60, || {
        let r: Result<(), AppError> = va::group(|g| {
            for _ in 0..8 {
                let (tx, rx) = mpsc::channel::<()>();
                g.go(move || {
                    rx.recv().unwrap();
                    Ok(())
                });
                tx.send(()).unwrap();
            }
            Ok(())
        });
        r.unwrap();
    });
}

#[test]
fn the_first_error_cancels_the_siblings_and_is_returned_after_every_job_ended() {
    within(60, || {
        let ended = AtomicUsize::new(0);
        let started = Barrier::new(4);
        let r: Result<(), AppError> = va::group(|g| {
            for _ in 0..3 {
                g.go(|| {
                    started.wait();
                    va::Context::current().wait(); // until a sibling fails
                    std::thread::sleep(Duration::from_millis(5));
                    ended.fetch_add(1, Ordering::SeqCst);
                    Err(AppError::Job(99)) // later: dropped
                });
            }
            g.go(|| {
                started.wait();
                Err(AppError::Job(1))
            });
            Ok(())
        });
        assert!(matches!(r, Err(AppError::Job(1))), "{r:?}");
        assert_eq!(ended.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_panic_counts_as_the_error_through_from() {
    within(60, || {
        let r: Result<(), AppError> = va::group(|g| {
            g.go(|| panic!("job blew up"));
            Ok(())
        });
        match r {
            Err(AppError::Va(e)) => assert_eq!(e.as_panic().unwrap().message(), "job blew up"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn the_bodys_err_counts_and_cancels_but_an_earlier_job_error_wins() {
    within(60, || {
        let saw_cancel = AtomicBool::new(false);
        let (started_tx, started_rx) = mpsc::channel();
        let r: Result<(), AppError> = va::group(|g| {
            g.go(|| {
                started_tx.send(()).unwrap();
                va::Context::current().wait();
                saw_cancel.store(true, Ordering::SeqCst);
                Ok(())
            });
            started_rx.recv().unwrap();
            Err(AppError::Body)
        });
        assert!(matches!(r, Err(AppError::Body)));
        assert!(saw_cancel.load(Ordering::SeqCst));

        let r: Result<(), AppError> = va::group(|g| {
            let (tx, rx) = mpsc::channel();
            g.go(move || {
                tx.send(()).unwrap();
                Err(AppError::Job(7))
            });
            rx.recv().unwrap();
            // Wait until the job's error is in: the group's context says so.
            g.context().wait();
            Err(AppError::Body)
        });
        assert!(matches!(r, Err(AppError::Job(7))), "{r:?}");
    });
}

#[test]
fn group_n_never_runs_more_than_the_limit_and_go_blocks_at_it() {
    within(60, || {
        let (running, most, ran) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let r: Result<(), AppError> = va::group_n(3, |g| {
            for _ in 0..60 {
                g.go(|| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(500));
                    running.fetch_sub(1, Ordering::SeqCst);
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
                assert!(running.load(Ordering::SeqCst) <= 3);
            }
            Ok(())
        });
        r.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 60);
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?}");
    });
}

#[test]
fn try_go_refuses_at_the_limit_and_drops_the_closure_uncalled() {
    within(60, || {
        let gate = Gate::new();
        let called = AtomicBool::new(false);
        let drops = Arc::new(AtomicUsize::new(0));
        let r: Result<(), AppError> = va::group_n(1, |g| {
            let gt = gate.clone();
            assert!(g.try_go(move || {
                gt.wait();
                Ok(())
            }));
            let (d, c) = (DropCounter(drops.clone()), &called);
            let refused = g.try_go(move || {
                let _d = &d;
                c.store(true, Ordering::SeqCst);
                Ok(())
            });
            assert!(!refused);
            assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped at once");
            gate.open();
            Ok(())
        });
        r.unwrap();
        assert!(!called.load(Ordering::SeqCst));
    });
}

#[test]
fn a_panicking_drop_of_a_refused_closure_is_the_groups_error_not_an_unwind() {
    within(60, || {
        let gate = Gate::new();
        let panics = Arc::new(AtomicUsize::new(0));
        let r: Result<(), AppError> = va::group_n(1, |g| {
            let gt = gate.clone();
            g.go(move || {
                gt.wait();
                Ok(())
            });
            let bomb = PanicOnDrop(panics.clone());
            assert!(!g.try_go(move || {
                let _b = &bomb;
                Ok(())
            }));
            gate.open();
            Ok(())
        });
        assert_eq!(panics.load(Ordering::SeqCst), 1);
        match r {
            Err(AppError::Va(e)) => {
                assert_eq!(e.as_panic().unwrap().message(), "PanicOnDrop dropped")
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn limit_zero_is_the_default_cap_and_usize_max_is_no_limit() {
    within(120, || {
        // A pool of 4 threads: the jobs queue behind the gate, each holding
        // a slot of the limit until it ends.
        let pool = va::Pool::builder().max_threads(4).build();
        let gate = Gate::new();
        let (taken, refused) = pool.install(|| {
            let mut counts = (0usize, 0usize);
            let r: Result<(), AppError> = va::group_n(0, |g| {
                for _ in 0..1100 {
                    let gt = gate.clone();
                    if g.try_go(move || {
                        gt.wait();
                        Ok(())
                    }) {
                        counts.0 += 1;
                    } else {
                        counts.1 += 1;
                    }
                }
                gate.open();
                Ok(())
            });
            r.unwrap();
            counts
        });
        assert_eq!((taken, refused), (1024, 76));

        let gate = Gate::new();
        let taken = pool.install(|| {
            let mut taken = 0;
            let r: Result<(), AppError> = va::group_n(usize::MAX, |g| {
                for _ in 0..3000 {
                    let gt = gate.clone();
                    taken += usize::from(g.try_go(move || {
                        gt.wait();
                        Ok(())
                    }));
                }
                gate.open();
                Ok(())
            });
            r.unwrap();
            taken
        });
        assert_eq!(taken, 3000);
        pool.shutdown(Duration::from_secs(30));
    });
}

#[test]
fn after_the_first_error_go_returns_at_once_and_queued_jobs_are_never_called() {
    within(60, || {
        let pool = va::Pool::builder().max_threads(2).build();
        let called_late = AtomicUsize::new(0);
        let drops = Arc::new(AtomicUsize::new(0));
        let r: Result<(), AppError> = pool.install(|| {
            va::group_n(1, |g| {
                let (tx, rx) = mpsc::channel();
                g.go(move || {
                    rx.recv().unwrap();
                    Err(AppError::Job(3))
                });
                tx.send(()).unwrap();
                g.context().wait();
                // The limit's one slot may still be held by the failed job:
                // `go` must not wait for it.
                for _ in 0..100 {
                    let (d, late) = (DropCounter(drops.clone()), &called_late);
                    g.go(move || {
                        let _d = &d;
                        late.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    });
                }
                Ok(())
            })
        });
        assert!(matches!(r, Err(AppError::Job(3))), "{r:?}");
        assert_eq!(called_late.load(Ordering::SeqCst), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 100);
        pool.shutdown(Duration::from_secs(30));
    });
}

#[test]
fn a_cancel_from_the_callers_context_skips_jobs_and_is_the_error() {
    within(60, || {
        let ctx = va::Context::new();
        let c = ctx.clone();
        let (out_tx, out_rx) = mpsc::channel();
        let called = Arc::new(AtomicBool::new(false));
        let cl = called.clone();
        let task = va::run_with_context(&ctx, move || {
            let r: Result<(), AppError> = va::group(|g| {
                c.cancel();
                g.go(|| {
                    cl.store(true, Ordering::SeqCst);
                    Ok(())
                });
                Ok(())
            });
            out_tx.send(r).unwrap();
        });
        let r = out_rx.recv().unwrap();
        assert!(
            matches!(r, Err(AppError::Va(ref e)) if e.is_cancelled()),
            "{r:?}"
        );
        assert!(!called.load(Ordering::SeqCst));
        assert!(task.get().unwrap_err().is_cancelled());
    });
}

#[test]
fn a_panicking_body_cancels_waits_and_is_resumed() {
    within(60, || {
        let stopped = AtomicBool::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), AppError> = va::group(|g| {
                g.go(|| {
                    va::Context::current().wait();
                    stopped.store(true, Ordering::SeqCst);
                    Ok(())
                });
                panic!("body failed");
            });
        }))
        .unwrap_err();
        assert!(stopped.load(Ordering::SeqCst));
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"body failed"));
    });
}

#[test]
fn a_scope_in_a_group_in_a_map_on_a_pool_capped_at_4() {
    within(120, || {
        let pool = va::Pool::builder().max_threads(4).build();
        let out = pool
            .install(|| {
                va::map(0..16u64, |i| {
                    let mut parts = [0u64; 4];
                    let r: Result<(), AppError> = va::group_n(2, |g| {
                        for (k, part) in parts.iter_mut().enumerate() {
                            g.go(move || {
                                *part = va::scope(|s| {
                                    let a = s.spawn(|| i * 10);
                                    let b = s.spawn(|| k as u64);
                                    a.join().unwrap() + b.join().unwrap()
                                });
                                Ok(())
                            });
                        }
                        Ok(())
                    });
                    r.unwrap();
                    parts.iter().sum::<u64>()
                })
            })
            .unwrap();
        let want: Vec<u64> = (0..16u64).map(|i| 4 * i * 10 + 6).collect();
        assert_eq!(out, want);
        pool.shutdown(Duration::from_secs(30));
    });
}
