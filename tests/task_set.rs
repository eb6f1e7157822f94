//! `TaskSet<T>`: tasks in the order they finish (API.md, "Beyond Velocity").

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::{block_on, within, Gate};
use velocity_async as va;

#[test]
fn tasks_come_out_in_the_order_they_finish() {
    within(60, || {
        let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
        let mut set = va::TaskSet::new();
        for (i, g) in gates.iter().enumerate() {
            let g = g.clone();
            set.spawn(move || {
                g.wait();
                i
            });
        }
        assert_eq!(set.len(), 4);
        assert_eq!(set.size_hint(), (4, Some(4)));
        for i in [2, 0, 3, 1] {
            gates[i].open();
            assert_eq!(set.next().unwrap().unwrap(), i);
        }
        assert!(set.is_empty());
        assert!(set.next().is_none());
    });
}

#[test]
fn every_kind_of_outcome_is_yielded_and_pushed_tasks_count() {
    within(60, || {
        let mut set = va::TaskSet::new();
        set.spawn(|| -> u8 { panic!("bad job") });
        set.push(va::run_with_timeout(Duration::ZERO, || 1));
        set.push(va::task().name("fine").run(|| 2));
        let pool = va::Pool::builder().build();
        pool.shutdown(Duration::from_secs(30));
        set.push(pool.run(|| 3));
        let mut outcomes: Vec<String> = set
            .map(|r| match r {
                Ok(v) => format!("value {v}"),
                Err(e) if e.is_panic() => format!("panic {}", e.as_panic().unwrap().message()),
                Err(e) if e.is_timeout() => "timeout".to_string(),
                Err(va::Error::ShutDown) => "shut down".to_string(),
                Err(e) => format!("other {e}"),
            })
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes,
            ["panic bad job", "shut down", "timeout", "value 2"]
        );
    });
}

#[test]
fn cancel_all_resolves_what_runs_at_once_and_tells_the_work() {
    within(60, || {
        let stopped = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = mpsc::channel();
        let mut set = va::TaskSet::new();
        for _ in 0..3 {
            let (s, tx) = (stopped.clone(), started_tx.clone());
            set.spawn(move || {
                tx.send(()).unwrap();
                va::Context::current().wait();
                s.fetch_add(1, Ordering::SeqCst);
            });
        }
        set.spawn(|| ()); // may finish before the cancel: then it is a value
        for _ in 0..3 {
            started_rx.recv().unwrap();
        }
        set.cancel_all();
        let outcomes: Vec<_> = set.collect();
        assert_eq!(outcomes.len(), 4);
        let cancelled = outcomes
            .iter()
            .filter(|r| matches!(r, Err(e) if e.is_cancelled()))
            .count();
        assert!(cancelled >= 3, "{outcomes:?}");
        assert!(common::eventually(30, || stopped.load(Ordering::SeqCst) == 3));
    });
}

#[test]
fn dropping_the_set_cancels_what_still_runs() {
    within(60, || {
        let (done_tx, done_rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        let mut set = va::TaskSet::new();
        set.spawn(move || {
            started_tx.send(()).unwrap();
            va::Context::current().wait();
            done_tx.send(va::Context::current().error()).unwrap();
        });
        started_rx.recv().unwrap();
        drop(set);
        let seen = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(seen.unwrap().is_cancelled());
    });
}

#[test]
fn join_next_awaits_the_next_finished_task() {
    within(60, || {
        let gate = Gate::new();
        let mut set = va::TaskSet::new();
        let g = gate.clone();
        set.spawn(move || {
            g.wait();
            "late"
        });
        set.spawn(|| "early");
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                gate.open();
            })
        };
        let seen = block_on(async {
            let mut seen = Vec::new();
            while let Some(r) = set.join_next().await {
                seen.push(r.unwrap());
            }
            seen
        });
        opener.join().unwrap();
        assert_eq!(seen, ["early", "late"]);
    });
}

#[test]
fn a_panicking_waker_takes_nothing_down() {
    within(60, || {
        struct Bomb(AtomicBool);
        impl Wake for Bomb {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
                panic!("waker exploded");
            }
        }
        let bomb = Arc::new(Bomb(AtomicBool::new(false)));
        let waker = Waker::from(bomb.clone());
        let mut cx = Context::from_waker(&waker);
        let gate = Gate::new();
        let g = gate.clone();
        let mut set = va::TaskSet::new();
        set.spawn(move || {
            g.wait();
            5
        });
        {
            let mut next = std::pin::pin!(set.join_next());
            assert!(next.as_mut().poll(&mut cx).is_pending());
        }
        gate.open();
        assert!(common::eventually(30, || bomb.0.load(Ordering::SeqCst)));
        assert_eq!(set.next().unwrap().unwrap(), 5);
        assert_eq!(va::run(|| 6).get().unwrap(), 6, "the worker lives");
    });
}

#[test]
fn a_worker_draining_a_set_at_the_pools_cap_does_not_deadlock() {
    within(60, || {
        let pool = va::Pool::builder().max_threads(1).build();
        let sum = pool
            .run(|| {
                // Spawned on this worker's pool, queued behind this job: the
                // blocked `next` lends the slot.
                let set: va::TaskSet<u32> = (1..=5).map(|i| va::run(move || i)).collect();
                set.map(Result::unwrap).sum::<u32>()
            })
            .get()
            .unwrap();
        assert_eq!(sum, 15);
        pool.shutdown(Duration::from_secs(30));
    });
}

#[test]
fn ten_thousand_tasks_each_once() {
    within(120, || {
        let mut set = va::TaskSet::new();
        for i in 0..10_000u64 {
            set.spawn(move || i);
        }
        let mut seen: Vec<u64> = Vec::new();
        while let Some(r) = set.try_join_next() {
            seen.push(r.unwrap());
        }
        seen.extend(set.by_ref().map(Result::unwrap));
        assert!(set.is_empty());
        seen.sort_unstable();
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
    });
}
