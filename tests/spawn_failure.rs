//! Thread-spawn failure (EAGAIN / ENOMEM): the pool rolls back, keeps
//! queueing while a worker lives, and otherwise resolves tasks with a clear
//! error; nothing panics, hangs or is lost.
//!
//! The refusing operating system is simulated with `ulimit -v` in a child
//! process (as root, `RLIMIT_NPROC` is not enforced): each worker reserves a
//! large stack, so only a few fit in the address space.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::Gate;
use velocity_async as va;

const CHILD_ENV: &str = "VELOCITY_ASYNC_SPAWN_CHILD";

fn run_child(test: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    // 3 GiB of address space: room for the test harness, not for many 256 MiB
    // stacks.
    let script = format!(
        "ulimit -v 3145728 && exec \"{}\" --exact {test} --ignored --nocapture --test-threads=1",
        exe.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {test} failed:\n{text}");
    text
}

#[test]
fn spawn_failure_with_living_workers_keeps_queueing() {
    let out = run_child("child_some_threads_fit");
    assert!(out.contains("CHILD-OK some"), "{out}");
}

#[test]
fn spawn_failure_with_no_worker_refuses_with_a_clear_error() {
    let out = run_child("child_no_thread_fits");
    assert!(out.contains("CHILD-OK none"), "{out}");
}

#[test]
#[ignore = "run by the tests above in a child process under ulimit -v"]
fn child_some_threads_fit() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pool = va::Pool::builder().stack_size(256 << 20).build();
    let gate = Gate::new();
    let done = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    // Blocking jobs make the pool try to grow far past what fits.
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (g, d, s) = (gate.clone(), done.clone(), started_tx.clone());
            pool.run(move || {
                let _ = s.send(());
                g.wait();
                d.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    started_rx.recv().unwrap();
    assert!(
        common::eventually(60, || pool.stats().spawn_failures > 0),
        "{:?}",
        pool.stats()
    );
    gate.open();
    for t in tasks {
        t.get()
            .expect("a queued task still runs on the workers that exist");
    }
    assert_eq!(done.load(Ordering::SeqCst), 64);
    let s = pool.stats();
    assert!(s.threads_alive < 64, "{s:?}");
    println!("CHILD-OK some {s:?}");
}

#[test]
#[ignore = "run by the tests above in a child process under ulimit -v"]
fn child_no_thread_fits() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // A stack larger than the whole address-space limit: no thread can start.
    let pool = va::Pool::builder().stack_size(8 << 30).build();
    let err = pool.run(|| 1).get().unwrap_err();
    assert!(matches!(err, va::Error::Spawn(_)), "{err:?}");
    assert!(
        err.to_string().contains("could not start a worker thread"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    // Fire-and-forget work is not lost: it runs on the caller's thread.
    let (tx, rx) = mpsc::channel();
    pool.go(move || tx.send(std::thread::current().id()).unwrap());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        std::thread::current().id()
    );
    // Regression (#11): a refused loop helper used to run on the refusing
    // thread, where it started helpers that were refused in turn: 10,000
    // closures overflowed the stack. The caller now runs them all.
    let ran = AtomicUsize::new(0);
    let jobs: Vec<_> = (0..10_000)
        .map(|_| {
            || {
                ran.fetch_add(1, Ordering::Relaxed);
            }
        })
        .collect();
    pool.install(|| va::all(jobs)).unwrap();
    assert_eq!(ran.load(Ordering::Relaxed), 10_000);
    let s = pool.stats();
    assert!(s.spawn_failures >= 2 && s.threads_alive == 0, "{s:?}");
    assert!(pool.shutdown(Duration::from_secs(10)).is_complete());
    println!("CHILD-OK none {s:?}");
}
