//! `race`, `race_with_timeout`, `first_ok`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{eventually, within, DropCounter, Gate};
use va::{Context, Error};
use velocity_async as va;

#[test]
fn race_returns_the_first_to_finish() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let winner = va::race((
            move || {
                g.wait();
                "slow"
            },
            || "fast",
        ));
        assert_eq!(winner.get().unwrap(), "fast");
        gate.open();
        let v = va::race(vec![|| 5]).get().unwrap();
        assert_eq!(v, 5);
        let arr = va::race([|| 1, || 1]).get().unwrap();
        assert_eq!(arr, 1);
    });
}

#[test]
fn race_returns_at_once() {
    within(60, || {
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::race((move || g.wait(),));
        assert!(!task.ready());
        gate.open();
        task.get().unwrap();
    });
}

#[test]
fn losers_are_cancelled_and_their_results_dropped() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (d1, d2) = (drops.clone(), drops.clone());
        let (loser_saw_tx, loser_saw_rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::race((
            move || {
                started_tx.send(()).unwrap();
                Context::current().wait();
                loser_saw_tx.send(Context::current().is_done()).unwrap();
                DropCounter(d1)
            },
            move || {
                g.wait();
                DropCounter(d2)
            },
        ));
        started_rx.recv().unwrap();
        gate.open();
        let winner = task.get().unwrap();
        assert!(
            loser_saw_rx.recv().unwrap(),
            "the loser's context is cancelled"
        );
        assert!(
            eventually(30, || drops.load(Ordering::SeqCst) == 1),
            "the loser's result is dropped"
        );
        drop(winner);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_panicking_job_loses() {
    within(60, || {
        let task = va::race((
            || -> u8 { panic!("fails fast") },
            || {
                std::thread::sleep(Duration::from_millis(5));
                2
            },
        ));
        assert_eq!(task.get().unwrap(), 2);
    });
}

#[test]
fn every_job_panicking_is_a_panic_error_not_a_hang() {
    within(60, || {
        let task = va::race((|| -> u8 { panic!("first") }, || -> u8 { panic!("second") }));
        let err = task.get().unwrap_err();
        assert_eq!(
            err.as_panic().unwrap().message(),
            "first",
            "the lowest-index panic"
        );
        for n in 1..6 {
            let jobs: Vec<Box<dyn FnOnce() -> u8 + Send>> = (0..n)
                .map(|i| {
                    Box::new(move || -> u8 { panic!("p{i}") }) as Box<dyn FnOnce() -> u8 + Send>
                })
                .collect();
            assert!(va::race(jobs).get().unwrap_err().is_panic());
        }
    });
}

#[test]
fn no_jobs_is_an_error_at_once() {
    let jobs: Vec<fn() -> u8> = Vec::new();
    let task = va::race(jobs);
    assert!(task.ready());
    assert!(matches!(task.get().unwrap_err(), Error::NoJobs));
    let jobs: Vec<fn() -> u8> = Vec::new();
    assert!(matches!(
        va::race_with_timeout(Duration::from_secs(1), jobs).get(),
        Err(Error::NoJobs)
    ));
}

#[test]
fn race_with_timeout_times_out_at_the_deadline() {
    within(60, || {
        let start = Instant::now();
        let task = va::race_with_timeout(
            Duration::from_millis(30),
            (
                || {
                    Context::current().wait();
                    1
                },
                || {
                    Context::current().wait();
                    2
                },
            ),
        );
        assert!(common::eventually(30, || task.ready()));
        assert!(task.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(task.get().unwrap_err().is_timeout());
    });
}

#[test]
fn race_with_timeout_in_time_wins() {
    within(60, || {
        let task = va::race_with_timeout(
            Duration::from_secs(3600),
            (
                || 1,
                || {
                    Context::current().wait();
                    2
                },
            ),
        );
        assert_eq!(task.get().unwrap(), 1);
        assert_eq!(
            va::race_with_timeout(Duration::MAX, (|| 3,)).get().unwrap(),
            3
        );
    });
}

#[test]
fn race_with_zero_timeout_calls_nothing() {
    within(60, || {
        let called = Arc::new(AtomicUsize::new(0));
        let c = called.clone();
        let task =
            va::race_with_timeout(Duration::ZERO, (move || c.fetch_add(1, Ordering::SeqCst),));
        assert!(task.timed_out());
        assert!(task.get().unwrap_err().is_timeout());
        let pool_done = va::run(|| ()).get();
        assert!(pool_done.is_ok());
        assert_eq!(called.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn race_is_a_future() {
    within(60, || {
        let v = common::block_on(va::race((|| 1, || 1))).unwrap();
        assert_eq!(v, 1);
    });
}

#[test]
fn a_race_inside_a_cancelled_context_is_cancelled() {
    within(60, || {
        let ctx = Context::new();
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let c = ctx.clone();
        let _outer = va::run_with_context(&c, move || {
            let t = va::race((move || {
                started_tx.send(()).unwrap();
                Context::current().wait();
                0
            },));
            tx.send(t.get()).unwrap();
        });
        started_rx.recv().unwrap();
        ctx.cancel();
        assert!(rx.recv().unwrap().unwrap_err().is_cancelled());
    });
}

#[test]
fn losers_still_running_are_counted_as_abandoned() {
    within(60, || {
        let pool = va::Pool::builder().build();
        let gate = Gate::new();
        let g = gate.clone();
        let (started_tx, started_rx) = mpsc::channel();
        let task = pool.run(move || {
            va::race((
                move || {
                    started_tx.send(()).unwrap();
                    g.wait();
                    0
                },
                || 1,
            ))
            .get()
        });
        assert_eq!(task.get().unwrap().unwrap(), 1);
        started_rx.recv().unwrap();
        assert!(
            eventually(30, || pool.stats().abandoned == 1),
            "{:?}",
            pool.stats()
        );
        gate.open();
        assert!(eventually(30, || pool.stats().abandoned == 0));
    });
}

#[derive(Debug, PartialEq)]
struct Msg(String);

impl From<Error> for Msg {
    fn from(e: Error) -> Self {
        Msg(e.to_string())
    }
}

fn msg(s: &str) -> Msg {
    Msg(s.to_string())
}

#[test]
fn first_ok_returns_the_first_success_or_every_error() {
    within(60, || {
        let v = va::first_ok((
            || Err::<u32, Msg>(msg("a")),
            || {
                std::thread::sleep(Duration::from_millis(5));
                Ok(2)
            },
        ));
        assert_eq!(v.get().unwrap().unwrap(), 2);
        let all_failed = va::first_ok((
            || Err::<u32, Msg>(msg("x")),
            || Err(msg("y")),
            || Err(msg("z")),
        ));
        assert_eq!(
            all_failed.get().unwrap().unwrap_err(),
            vec![msg("x"), msg("y"), msg("z")]
        );
        let with_panic = va::first_ok((
            || -> Result<u8, Error> { panic!("p") },
            || Err(Error::Cancelled),
        ));
        let errs = with_panic.get().unwrap().unwrap_err();
        assert!(errs[0].is_panic() && errs[1].is_cancelled());
        let none: Vec<fn() -> Result<u8, Error>> = Vec::new();
        assert!(matches!(va::first_ok(none).get(), Err(Error::NoJobs)));
    });
}
