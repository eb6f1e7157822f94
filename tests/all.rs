//! `all`, `all_n`, `all_with_error`, `all_with_error_n`, `all_settled`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{within, DropCounter};
use va::{Context, Error};
use velocity_async as va;

#[derive(Debug, PartialEq)]
struct User(u32);

#[test]
fn all_returns_a_typed_tuple() {
    within(60, || {
        let (user, posts, stats) =
            va::all((|| User(7), || vec!["a", "b"], || (3u8, 4.5f64))).unwrap();
        assert_eq!(user, User(7));
        assert_eq!(posts, vec!["a", "b"]);
        assert_eq!(stats, (3, 4.5));
    });
}

#[test]
fn all_of_one_and_of_twelve() {
    within(60, || {
        assert_eq!(va::all((|| 1,)).unwrap(), (1,));
        let t = va::all((
            || 0u8,
            || 1u16,
            || 2u32,
            || 3u64,
            || 4usize,
            || 5i8,
            || 6i16,
            || 7i32,
            || 8i64,
            || "9",
            || 10.0f32,
            || String::from("11"),
        ))
        .unwrap();
        assert_eq!(t.0, 0);
        assert_eq!(t.9, "9");
        assert_eq!(t.11, "11");
    });
}

#[test]
fn all_vec_keeps_input_order_and_arrays_work() {
    within(60, || {
        let jobs: Vec<_> = (0..200)
            .map(|i| {
                move || {
                    if i % 7 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    i * 3
                }
            })
            .collect();
        assert_eq!(
            va::all(jobs).unwrap(),
            (0..200).map(|i| i * 3).collect::<Vec<_>>()
        );
        let empty: Vec<fn() -> u8> = Vec::new();
        assert_eq!(va::all(empty).unwrap(), Vec::<u8>::new());
        let arr: [u32; 4] = va::all([|| 1, || 2, || 3, || 4]).unwrap();
        assert_eq!(arr, [1, 2, 3, 4]);
    });
}

#[test]
fn all_jobs_run_concurrently_when_they_block() {
    within(60, || {
        // Four jobs that can only finish together.
        let b = Barrier::new(4);
        let (_, _, _, _) = va::all((|| b.wait(), || b.wait(), || b.wait(), || b.wait())).unwrap();
        // And a Vec of 64.
        let b = Barrier::new(64);
        let jobs: Vec<_> = (0..64).map(|_| || b.wait().is_leader()).collect();
        va::all(jobs).unwrap();
    });
}

#[test]
fn all_borrows_and_writes_through_mut_references() {
    within(60, || {
        let mut a = vec![1, 2, 3];
        let mut b = String::from("x");
        let shared = [10, 20];
        va::all((|| a.push(shared[0]), || b.push_str("yz"), || shared[1])).unwrap();
        assert_eq!(a, vec![1, 2, 3, 10]);
        assert_eq!(b, "xyz");

        let mut outputs = vec![0u64; 100];
        let jobs: Vec<_> = outputs
            .iter_mut()
            .enumerate()
            .map(|(i, o)| move || *o = i as u64 * i as u64)
            .collect();
        va::all(jobs).unwrap();
        assert!(outputs
            .iter()
            .enumerate()
            .all(|(i, o)| *o == (i * i) as u64));
    });
}

#[test]
fn all_returns_the_lowest_index_panic_after_every_job_finished() {
    within(60, || {
        for bad in 0..5 {
            let finished = AtomicUsize::new(0);
            let jobs: Vec<Box<dyn FnOnce() -> usize + Send + '_>> = (0..5usize)
                .map(|i| {
                    let finished = &finished;
                    Box::new(move || {
                        if i == bad || i == 4 {
                            panic!("job {i} failed");
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                        i
                    }) as Box<dyn FnOnce() -> usize + Send + '_>
                })
                .collect();
            let err = va::all(jobs).unwrap_err();
            assert_eq!(
                err.as_panic().unwrap().message(),
                format!("job {bad} failed")
            );
            let expected = if bad == 4 { 4 } else { 3 };
            assert_eq!(
                finished.load(Ordering::SeqCst),
                expected,
                "every other job still ran"
            );
        }
        let err = va::all((
            || 1,
            || -> u8 { panic!("second") },
            || -> u8 { panic!("third") },
        ))
        .unwrap_err();
        assert_eq!(err.as_panic().unwrap().message(), "second");
    });
}

#[test]
fn all_drops_every_result_exactly_once_on_success_and_failure() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = &drops;
        let out = va::all((|| DropCounter(d.clone()), || DropCounter(d.clone()))).unwrap();
        drop(out);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        let r = va::all((
            || DropCounter(d.clone()),
            || -> DropCounter { panic!("x") },
            || DropCounter(d.clone()),
        ));
        assert!(r.is_err());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            4,
            "results of a failed all are dropped, once"
        );
    });
}

#[test]
fn all_n_bounds_concurrency() {
    within(60, || {
        let current = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let jobs: Vec<_> = (0..40)
            .map(|_| {
                || {
                    let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    current.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .collect();
        va::all_n(jobs, 3).unwrap();
        assert!(peak.load(Ordering::SeqCst) <= 3);
        let out = va::all_n((0..10).map(|i| move || i).collect::<Vec<_>>(), 0).unwrap();
        assert_eq!(out.len(), 10);
    });
}

#[test]
fn all_of_100_000_jobs() {
    within(120, || {
        let jobs: Vec<_> = (0..100_000u64).map(|i| move || i ^ 0x55).collect();
        let out = va::all(jobs).unwrap();
        assert_eq!(out.len(), 100_000);
        assert!(out.iter().enumerate().all(|(i, v)| *v == (i as u64) ^ 0x55));
    });
}

#[test]
fn jobs_see_a_child_of_the_callers_context() {
    within(60, || {
        let outer = Context::new();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (result_tx, result_rx) = std::sync::mpsc::channel();
        let _task = va::run_with_context(&outer, move || {
            let r = va::all((
                move || {
                    started_tx.send(()).unwrap();
                    Context::current().wait(); // returns once the caller's context is cancelled
                    Context::current().error().map(|e| e.is_cancelled())
                },
                || Context::current().is_done(),
            ));
            result_tx.send(r).unwrap();
        });
        started_rx.recv().unwrap();
        outer.cancel();
        // The cancel reaches the running job; a job not started by then is
        // never started, and `all` returns the cancellation instead.
        match result_rx.recv().unwrap() {
            Ok((cancelled, _)) => assert_eq!(cancelled, Some(true)),
            Err(e) => assert!(e.is_cancelled(), "{e:?}"),
        }
        // Cancelling a job's context never reaches the caller's.
        let mine = Context::new();
        let m = mine.clone();
        va::run_with_context(&m, || va::all((|| Context::current().cancel(),)).unwrap())
            .get()
            .unwrap();
        assert!(!mine.is_done());
    });
}

#[derive(Debug)]
enum AppError {
    NotFound(u32),
    Async(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Async(e)
    }
}

#[test]
fn all_with_error_returns_values_or_the_first_error() {
    within(60, || {
        let ok: (u32, &str) = va::all_with_error((|| Ok::<_, AppError>(1), || Ok("b"))).unwrap();
        assert_eq!(ok, (1, "b"));
        let err = va::all_with_error((
            || Ok::<u32, AppError>(1),
            || Err::<u32, _>(AppError::NotFound(9)),
        ))
        .unwrap_err();
        assert!(matches!(err, AppError::NotFound(9)));
        let v: Vec<u32> = va::all_with_error(
            (0..10)
                .map(|i| move || Ok::<_, AppError>(i))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
        let arr = va::all_with_error([|| Ok::<_, AppError>(1), || Ok(2)]).unwrap();
        assert_eq!(arr, [1, 2]);
    });
}

#[test]
fn all_with_error_cancels_siblings_at_once() {
    within(60, || {
        let err = va::all_with_error((
            || Err::<u32, AppError>(AppError::NotFound(1)),
            || {
                // Would hang forever without the cancellation.
                Context::current().wait();
                Ok(2)
            },
            || {
                Context::current().wait();
                Ok(3)
            },
        ))
        .unwrap_err();
        assert!(matches!(err, AppError::NotFound(1)));
    });
}

#[test]
fn all_with_error_turns_a_panic_into_e_and_cancels() {
    within(60, || {
        let err = va::all_with_error((
            || -> Result<u32, AppError> { panic!("exploded") },
            || {
                Context::current().wait();
                Ok(2)
            },
        ))
        .unwrap_err();
        match err {
            AppError::Async(e) => assert_eq!(e.as_panic().unwrap().message(), "exploded"),
            other => panic!("unexpected {other:?}"),
        }
        let jobs: Vec<Box<dyn FnOnce() -> Result<u8, AppError> + Send>> =
            vec![Box::new(|| Ok(1)), Box::new(|| panic!("in a vec"))];
        assert!(matches!(va::all_with_error(jobs), Err(AppError::Async(_))));
    });
}

#[test]
fn all_with_error_first_in_time_wins() {
    within(60, || {
        let err = va::all_with_error((
            || {
                // Fails only once the second job's failure cancelled it.
                Context::current().wait();
                Err::<u32, AppError>(AppError::NotFound(0))
            },
            || Err::<u32, _>(AppError::NotFound(1)),
        ))
        .unwrap_err();
        assert!(matches!(err, AppError::NotFound(1)));
    });
}

#[test]
fn all_with_error_n_limits_and_drops_values_of_a_failed_call() {
    within(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let made = AtomicUsize::new(0);
        let d = &drops;
        let jobs: Vec<Box<dyn FnOnce() -> Result<DropCounter, AppError> + Send + '_>> = (0..8)
            .map(|i| {
                let made = &made;
                Box::new(move || {
                    if i == 5 {
                        Err(AppError::NotFound(i))
                    } else {
                        made.fetch_add(1, Ordering::SeqCst);
                        Ok(DropCounter(d.clone()))
                    }
                }) as Box<dyn FnOnce() -> Result<DropCounter, AppError> + Send + '_>
            })
            .collect();
        assert!(va::all_with_error_n(jobs, 2).is_err());
        // Every value made is dropped. After the failure no job starts: jobs
        // claimed but not started by then (lower indices too, when the other
        // helper had claimed them) are dropped unrun.
        let made = made.load(Ordering::SeqCst);
        assert_eq!(drops.load(Ordering::SeqCst), made);
        assert!(made <= 7, "{made} jobs made a value");
    });
}

#[test]
fn all_settled_reports_every_outcome_in_order() {
    within(60, || {
        let (a, b, c) = va::all_settled((|| 1, || -> u8 { panic!("b") }, || "c"));
        assert_eq!(a.unwrap(), 1);
        assert_eq!(b.unwrap_err().as_panic().unwrap().message(), "b");
        assert_eq!(c.unwrap(), "c");
        let jobs: Vec<Box<dyn FnOnce() -> u8 + Send>> =
            vec![Box::new(|| 1), Box::new(|| panic!("two")), Box::new(|| 3)];
        let out = va::all_settled(jobs);
        assert_eq!(out.len(), 3);
        assert!(out[1].is_err() && out[0].is_ok() && out[2].is_ok());
        let arr = va::all_settled([|| 1, || 2]);
        assert_eq!(arr[1].as_ref().unwrap(), &2);
    });
}

#[test]
fn nested_all_inside_pool_workers_at_a_small_cap() {
    within(120, || {
        let pool = va::Pool::builder().max_threads(2).build();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                pool.run(move || {
                    va::all((move || i, move || va::all((move || i * 2, || 1)).unwrap().0)).unwrap()
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.get().unwrap(), (i, i * 2));
        }
    });
}
