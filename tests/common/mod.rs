//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and fails the test if it does not finish within
/// `secs`: one generous outer timeout that turns a hang into a failure.
pub(crate) fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(_) => unreachable!(),
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test body hung for more than {secs} s"),
    }
}

/// Polls `cond` until it holds or `secs` pass; for states that nothing
/// signals (a thread retiring after its keep-alive).
pub(crate) fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Counts drops, to prove each value is dropped exactly once.
#[derive(Debug)]
pub(crate) struct DropCounter(pub(crate) Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value whose `Drop` panics.
#[derive(Debug)]
pub(crate) struct PanicOnDrop(pub(crate) Arc<AtomicUsize>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("PanicOnDrop dropped");
    }
}

/// Blocks the calling job until `open` is called: a gate tests control.
#[derive(Clone)]
pub(crate) struct Gate {
    inner: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            inner: Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new())),
        }
    }
    pub(crate) fn open(&self) {
        *self.inner.0.lock().unwrap() = true;
        self.inner.1.notify_all();
    }
    pub(crate) fn wait(&self) {
        let mut open = self.inner.0.lock().unwrap();
        while !*open {
            open = self.inner.1.wait(open).unwrap();
        }
    }
}

/// A minimal executor: polls a future on this thread, parking between wakes.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Runs `n` jobs on `pool` that can only finish once all `n` run at the same
/// time: the pool must have grown to `n` threads.
pub(crate) fn run_all_at_once(pool: &velocity_async::Pool, n: usize) {
    let barrier = Arc::new(Barrier::new(n + 1));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let b = barrier.clone();
            pool.run(move || {
                b.wait();
            })
        })
        .collect();
    barrier.wait();
    for t in tasks {
        t.get().unwrap();
    }
}

/// The name std gives the pool's worker threads (what `Builder::thread_name`
/// set), as seen from inside a job.
pub(crate) fn worker_thread_name(pool: &velocity_async::Pool) -> Option<String> {
    pool.run(|| std::thread::current().name().map(str::to_owned))
        .get()
        .unwrap()
}
