//! Lifetime erasure for the borrowing combinators: the crate's one module of
//! `unsafe` memory reasoning (the other `unsafe` is FFI in
//! `pool/cpu_clock.rs`).
//!
//! `all`, `map` and `for_each` block until every job they handed out has
//! finished, so their jobs may borrow from the caller's stack — the reasoning
//! of `std::thread::scope` and `rayon::join`. The pool's queue only holds
//! `'static` jobs, so [`Join::spawn`] erases the closure's lifetime; [`scope`]
//! guarantees that no erased closure outlives the borrow:
//!
//! * every spawned job is counted in the `Latch` *before* it can run, and
//!   counted down only after its closure has been called *and dropped*;
//! * [`scope`] returns, or resumes an unwind, only after the latch reads zero.
//!   It catches the unwind itself (`catch_unwind`) rather than trusting a
//!   guard's destructor, and if waiting could not complete it aborts the
//!   process — crossbeam's choice — instead of returning with jobs in flight;
//! * a job the pool refuses (shutdown, no thread could start) is run on the
//!   refusing thread, and jobs nobody has started yet are run by the waiting
//!   thread itself, so the latch always reaches zero.
//!
//! The lifetimes follow `std::thread::scope`: a closure may borrow anything
//! that outlives `'scope`, and `'scope` ends inside [`scope`], before it
//! returns.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::Error;
use crate::pool::{BlockedGuard, Job, Shared};
use crate::task::{spin_until, Runnable, WAIT_SPIN};

/// Counts jobs in flight; `wait` returns when it reaches zero.
pub(crate) struct Latch {
    /// ORDERING: `count_down` is Release and `wait` reads with Acquire, so
    /// everything a job wrote (its result) is visible after `wait`.
    pending: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Latch {
    fn new() -> Latch {
        Latch {
            pending: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    fn count_up(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    fn count_down(&self) {
        if self.pending.fetch_sub(1, Ordering::Release) == 1 {
            // Take the lock so a waiter between its check and its sleep cannot
            // miss the notification.
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.cond.notify_all();
        }
    }

    fn is_zero(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    fn wait(&self) {
        if spin_until(WAIT_SPIN, || self.is_zero()) {
            return;
        }
        let _blocked = BlockedGuard::enter();
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_zero() {
            guard = self.cond.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

type Erased = Box<dyn FnOnce() + Send + 'static>;

/// A queued job whose closure borrows from a [`scope`].
struct ScopedJob {
    /// ORDERING: the claim is a swap; whoever turns it true runs the closure.
    claimed: AtomicBool,
    run: Mutex<Option<Erased>>,
    latch: Arc<Latch>,
    shared: Arc<Shared>,
}

impl ScopedJob {
    /// Runs the closure if nobody claimed it yet; true if this call ran it.
    fn try_run(&self) -> bool {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return false;
        }
        let f = self.run.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(f) = f {
            // The closure catches its own panics (see `Join::spawn`); calling
            // it consumes and drops it, so its borrows end before the count.
            f();
            self.shared.count_done(false);
        }
        self.latch.count_down();
        true
    }
}

impl Runnable for ScopedJob {
    fn run_queued(&self) {
        self.try_run();
    }

    fn refuse(&self, _err: Error) {
        // The latch must reach zero and the work must not be lost: run it here.
        self.try_run();
    }
}

/// Hands out jobs that may borrow anything outliving `'scope`.
pub(crate) struct Join<'scope, 'env: 'scope> {
    shared: Arc<Shared>,
    latch: Arc<Latch>,
    jobs: Mutex<Vec<Arc<ScopedJob>>>,
    /// Invariant in `'scope` and `'env`, as in `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Join<'scope, '_> {
    /// Queues `f` on the pool. `f` must not unwind: callers wrap user code in
    /// `panic::catch` (a panic escaping here would still be caught by
    /// `catch_unwind` below on the caller's side, but on a worker it is the
    /// closure's own contract).
    pub(crate) fn spawn<F>(&'scope self, f: F)
    where
        F: FnOnce() + Send + 'scope,
    {
        let f: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || {
            // Defence in depth: never unwind into a worker, whatever `f` does.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                crate::panic::recover(None, payload);
            }
        });
        // SAFETY: only the lifetime changes (`'scope` to `'static`); the
        // layout of the box is the same. The box is called or dropped before
        // the latch is counted down (`ScopedJob::try_run`), and `scope` does
        // not return before the latch reads zero (see the module docs), so the
        // closure never runs or drops after `'scope` ends.
        let f: Erased =
            unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'scope>, Erased>(f) };
        self.latch.count_up();
        let job = Arc::new(ScopedJob {
            claimed: AtomicBool::new(false),
            run: Mutex::new(Some(f)),
            latch: self.latch.clone(),
            shared: self.shared.clone(),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job.clone());
        if let Err(job) = self.shared.submit(Job::Task(job)) {
            job.refuse(Error::ShutDown);
        }
    }

    /// Runs, on this thread, every job nobody has started yet.
    pub(crate) fn run_unstarted(&self) {
        loop {
            let next = {
                let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                jobs.iter()
                    .find(|j| !j.claimed.load(Ordering::Acquire))
                    .cloned()
            };
            match next {
                Some(job) => {
                    job.try_run();
                }
                None => return,
            }
        }
    }
}

/// Runs `f` with a [`Join`] and returns only after every job spawned on it has
/// finished and been dropped, also if `f` panics (the panic is resumed after
/// the wait).
pub(crate) fn scope<'env, R>(
    shared: Arc<Shared>,
    f: impl for<'scope> FnOnce(&'scope Join<'scope, 'env>) -> R,
) -> R {
    let join = Join {
        shared,
        latch: Arc::new(Latch::new()),
        jobs: Mutex::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&join)));
    // Jobs may still be queued or running; they borrow what `'scope` covers.
    let waited = catch_unwind(AssertUnwindSafe(|| {
        join.run_unstarted();
        join.latch.wait();
    }));
    if waited.is_err() || !join.latch.is_zero() {
        // Returning now could let a job outlive its borrow.
        std::process::abort();
    }
    match result {
        Ok(r) => r,
        Err(payload) => resume_unwind(payload),
    }
}
