//! The handle: [`Task<T>`] and the shared slot its outcome lands in.
//!
//! # States
//!
//! A task has two small state machines, both in one allocation
//! ([`TaskCell`]):
//!
//! * the **outcome** (`Slot::kind`): `PENDING` → one of `VALUE`, `PANIC`,
//!   `TIMEOUT`, `CANCELLED`, `FAILED`. Written once, by whoever resolves first:
//!   the job returning, the job's context firing (timeout, cancel), or the
//!   pool refusing the job. The outcome itself sits in `Slot::inner` under its
//!   mutex; `kind` mirrors it so `ready()` and spinning waiters need no lock.
//! * the **run state** (`TaskCell::run`): `QUEUED` → `RUNNING` → `FINISHED`.
//!   `QUEUED → RUNNING` is a CAS, so exactly one thread runs the closure: a
//!   worker that pops the job, or a waiter that runs it inline.
//!
//! The outcome can be decided while the job still runs (a timeout): the job's
//! late result is then dropped under `catch_unwind` and the run counted as
//! abandoned until it finishes.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::context::{CancelHook, Context, LazyContext, Reason};
use crate::error::Error;
use crate::panic;
use crate::pool::{self, Runnable, Shared};
use crate::sync::{spin_until, AtomicBool, AtomicU8, Condvar, Mutex, MutexGuard, WAIT_SPIN};

// Outcome kinds. ORDERING: `kind` is stored (Release) under the slot's mutex
// after the outcome is written; a lock-free Acquire load that sees a non-
// PENDING kind is followed by taking the mutex to read the outcome.
const PENDING: u8 = 0;
const VALUE: u8 = 1;
const PANIC: u8 = 2;
const TIMEOUT: u8 = 3;
const CANCELLED: u8 = 4;
const FAILED: u8 = 5;

fn kind_of<T>(r: &Result<T, Error>) -> u8 {
    match r {
        Ok(_) => VALUE,
        Err(Error::Panic(_)) => PANIC,
        Err(Error::Timeout) => TIMEOUT,
        Err(Error::Cancelled) => CANCELLED,
        Err(_) => FAILED,
    }
}

struct SlotInner<T> {
    outcome: Option<Result<T, Error>>,
    /// Threads blocked on `cond`; `notify_all` is skipped when zero.
    sleepers: usize,
    wakers: Vec<Waker>,
}

/// Where a task's outcome lands: decided once, first writer wins.
pub(crate) struct Slot<T> {
    kind: AtomicU8,
    inner: Mutex<SlotInner<T>>,
    cond: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            kind: AtomicU8::new(PENDING),
            inner: Mutex::new(SlotInner {
                outcome: None,
                sleepers: 0,
                wakers: Vec::new(),
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotInner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.kind.load(Ordering::Acquire) != PENDING
    }

    /// Decides the outcome, waking every waiter. If the outcome was already
    /// decided, hands `r` back so the caller can drop it safely.
    pub(crate) fn resolve(&self, r: Result<T, Error>) -> Result<(), Result<T, Error>> {
        let mut inner = self.lock();
        if self.kind.load(Ordering::Relaxed) != PENDING {
            return Err(r);
        }
        let kind = kind_of(&r);
        inner.outcome = Some(r);
        self.kind.store(kind, Ordering::Release);
        let wakers = std::mem::take(&mut inner.wakers);
        let sleepers = inner.sleepers;
        drop(inner);
        if sleepers > 0 {
            self.cond.notify_all();
        }
        for w in wakers {
            panic::wake(w);
        }
        Ok(())
    }

    pub(crate) fn take(&self) -> Option<Result<T, Error>> {
        self.lock().outcome.take()
    }

    /// Blocks until the outcome is decided, with no deadline of its own:
    /// spins briefly, then sleeps counted as blocked (a worker lends its
    /// slot, as in `Task::wait`).
    pub(crate) fn wait(&self) {
        if spin_until(WAIT_SPIN, || self.is_resolved()) {
            return;
        }
        let _blocked = pool::BlockedGuard::enter();
        let mut inner = self.lock();
        while !self.is_resolved() {
            inner = self.sleep(inner, None);
        }
    }

    /// Sleeps on the slot's condition variable (at most `timeout`), counted
    /// in `sleepers` so `resolve` knows to notify. The caller holds the lock
    /// and has seen the outcome still pending under it, so a `resolve` cannot
    /// slip between that check and this sleep.
    fn sleep<'a>(
        &'a self,
        mut inner: MutexGuard<'a, SlotInner<T>>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, SlotInner<T>> {
        inner.sleepers += 1;
        let mut inner = match timeout {
            Some(t) => {
                self.cond
                    .wait_timeout(inner, t)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self.cond.wait(inner).unwrap_or_else(|e| e.into_inner()),
        };
        inner.sleepers -= 1;
        inner
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // A result nobody collected, and wakers nobody woke: their Drop may
        // panic, and this may run on a worker or in whoever dropped the last
        // handle.
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        panic::drop_quietly(inner.outcome.take());
        panic::drop_quietly(std::mem::take(&mut inner.wakers));
    }
}

/// What a [`Task`] handle needs from the allocation behind it.
pub(crate) trait TaskCore<T>: Send + Sync {
    fn slot(&self) -> &Slot<T>;
    fn context(&self) -> Option<&Context>;
    /// Cancels the work's context (`Task::cancel`).
    fn cancel(&self) {
        if let Some(ctx) = self.context() {
            ctx.cancel();
        }
    }
    /// Claims the job if it has not started and runs it on this thread.
    /// Returns false if it had started (or there is no job).
    fn run_inline(&self) -> bool;
    /// The pool the job was given to, if any.
    fn pool(&self) -> Option<&Arc<Shared>>;
}

/// A task that was decided at submission (refused, or born timed out).
pub(crate) struct Decided<T>(Slot<T>);

impl<T: Send> TaskCore<T> for Decided<T> {
    fn slot(&self) -> &Slot<T> {
        &self.0
    }
    fn context(&self) -> Option<&Context> {
        None
    }
    fn run_inline(&self) -> bool {
        false
    }
    fn pool(&self) -> Option<&Arc<Shared>> {
        None
    }
}

// Run states. ORDERING: QUEUED -> RUNNING is an AcqRel CAS (one runner);
// RUNNING -> FINISHED a SeqCst swap paired with the SeqCst `abandoned` flag.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const FINISHED: u8 = 2;

/// One allocation per task: the closure, its context and the outcome slot.
pub(crate) struct TaskCell<T, F> {
    slot: Slot<T>,
    run: AtomicU8,
    /// Set by whoever sees the other side first: the canceller that resolved
    /// the task while it was RUNNING, or the job finishing. See `abandon`.
    abandoned: AtomicBool,
    func: Mutex<Option<F>>,
    /// The work's context, a child of the submitter's. Made at once if it
    /// has a parent or a deadline (it must hear of their end); else only
    /// when first asked for ([`LazyContext`]: `Context::current()` in the
    /// job, `Task::cancel`), as most jobs never ask.
    ctx: OnceLock<Context>,
    /// This cell, for the lazy context's cancel hook and the job's
    /// current context.
    me: Weak<Self>,
    shared: Arc<Shared>,
    /// Given with the task builder: shown in panic reports, the running
    /// thread's name, `Pool::running_tasks` and `tracing` spans.
    name: Option<Arc<str>>,
}

impl<T, F> TaskCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    /// Builds the cell with its own context, a child of `parent`.
    pub(crate) fn new(
        shared: &Arc<Shared>,
        parent: &Context,
        deadline: Option<Instant>,
        name: Option<Arc<str>>,
        f: F,
    ) -> Arc<Self> {
        let external = deadline.is_some();
        let lazy = Context::child_can_wait(parent, deadline);
        Arc::new_cyclic(|me: &Weak<Self>| {
            let hook: Weak<dyn CancelHook> = me.clone();
            let ctx = if lazy {
                OnceLock::new()
            } else {
                OnceLock::from(parent.make_child(deadline, external, Some(hook)))
            };
            TaskCell {
                slot: Slot::new(),
                run: AtomicU8::new(QUEUED),
                abandoned: AtomicBool::new(false),
                func: Mutex::new(Some(f)),
                ctx,
                me: me.clone(),
                shared: shared.clone(),
                name,
            }
        })
    }

    /// If the context was born done, decide the outcome now.
    pub(crate) fn resolve_if_born_done(&self) {
        if let Some(reason) = self.ctx.get().and_then(Context::reason) {
            let _ = self.slot.resolve(Err(reason.to_error()));
        }
    }

    /// The work's context, made now if it was not yet (see `ctx`).
    fn made_context(&self) -> &Context {
        self.ctx.get_or_init(|| {
            let hook: Weak<dyn CancelHook> = self.me.clone();
            Context::deferred_child(Some(hook))
        })
    }

    fn take_func(&self) -> Option<F> {
        self.func.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Runs the claimed job on this thread and counts it.
    fn execute(&self) {
        let Some(f) = self.take_func() else {
            return;
        };
        if self.slot.is_resolved() {
            // Cancelled or timed out before it started: never called.
            panic::drop_quietly(f);
            self.run.store(FINISHED, Ordering::SeqCst);
            // A cancel that came after this thread claimed the job (so it
            // saw it RUNNING) counted it as abandoned: uncount it, as a run
            // that ends does (found by the chaos test: `abandoned` stayed 1).
            if self.abandoned.swap(true, Ordering::SeqCst) {
                self.shared.abandoned_finished();
            }
            self.shared.count_skipped();
            return;
        }
        let result = {
            let lazy = match self.ctx.get() {
                Some(_) => None,
                None => self.me.upgrade(),
            };
            let _current = match lazy {
                Some(me) => Context::enter_lazy(me),
                None => self.made_context().enter(),
            };
            let _named = self.name.as_ref().map(|n| self.shared.enter_named(n));
            let _span = crate::observe::enter_job("task", self.name.as_deref());
            panic::catch_in(self.name.as_ref(), f)
        };
        let panicked = result.is_err();
        // Counted before the outcome is published, so a caller that saw the
        // outcome also sees it in `Stats::completed`.
        self.shared.count_done(panicked);
        self.run.swap(FINISHED, Ordering::SeqCst);
        if self.abandoned.swap(true, Ordering::SeqCst) {
            // The canceller counted this run as abandoned; it is over now.
            self.shared.abandoned_finished();
        }
        // The context finished first (a deadline that passed while the work
        // ran, a cancel): that decided the outcome, even if its hook has not
        // run yet. The value is late, and so is a panic (already reported):
        // work that answers a cancel by panicking must not turn a cancelled
        // task into a panicked one when it beats the canceller's hook.
        let outcome = match self.ctx.get().and_then(Context::reason) {
            Some(reason) => {
                panic::drop_quietly(result);
                Err(reason.to_error())
            }
            None => result.map_err(Error::Panic),
        };
        if let Err(late) = self.slot.resolve(outcome) {
            panic::drop_quietly(late);
        }
    }
}

impl<T, F> Drop for TaskCell<T, F> {
    fn drop(&mut self) {
        // A closure that was never called (refused, or cancelled before it
        // started) is dropped here; its captures' `Drop` may panic.
        let f = self
            .func
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        panic::drop_quietly(f);
    }
}

impl<T, F> LazyContext for TaskCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn context(&self) -> Context {
        self.made_context().clone()
    }
}

impl<T, F> CancelHook for TaskCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn on_cancel(&self, reason: Reason) {
        if self.slot.is_resolved() {
            return;
        }
        // Count the abandoned run *before* publishing the outcome, so whoever
        // sees the timeout also sees it counted. If the job finishes first
        // after all, it sees the flag and uncounts it: the books balance
        // either way (see `execute`).
        if self.run.load(Ordering::SeqCst) == RUNNING
            && !self.abandoned.swap(true, Ordering::SeqCst)
        {
            self.shared.abandoned_started();
        }
        let _ = self.slot.resolve(Err(reason.to_error()));
    }
}

impl<T, F> TaskCore<T> for TaskCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn slot(&self) -> &Slot<T> {
        &self.slot
    }

    fn context(&self) -> Option<&Context> {
        // Not made yet: no deadline and no parent, so nothing to observe.
        self.ctx.get()
    }

    fn cancel(&self) {
        self.made_context().cancel();
    }

    fn run_inline(&self) -> bool {
        if self
            .run
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.shared.count_inline();
        self.execute();
        true
    }

    fn pool(&self) -> Option<&Arc<Shared>> {
        Some(&self.shared)
    }
}

impl<T, F> Runnable for TaskCell<T, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    fn run_queued(&self) {
        if self
            .run
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.execute();
        }
    }

    fn refuse(&self, err: Error) {
        if self
            .run
            .compare_exchange(QUEUED, FINISHED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let f = self.take_func();
            let _ = self.slot.resolve(Err(err));
            panic::drop_quietly(f);
        }
    }
}

/// A handle to work running in the background: Go's `async.Result[T]`.
///
/// The outcome — a value, a panic, a timeout, a cancellation, or a refused
/// submission — is decided once, by whichever comes first, and never changes.
/// [`ready`](Task::ready) turns true that moment, whether or not anyone waits.
///
/// * [`get`](Task::get) blocks until the outcome is known and returns it.
/// * `Task<T>` is also a [`Future`]: `.await` it under any executor (tokio,
///   smol, `futures::executor::block_on`, your own); no runtime of ours runs.
/// * Dropping a task **detaches** it: the work still runs to completion, and
///   its result is dropped on the worker (a panic in that `Drop` is recovered
///   and reported to the panic handler).
///
/// # Timeouts and cancellation
///
/// A timeout or cancellation resolves the task at that moment, not when the
/// work ends, and wakes every waiter. The work itself cannot be killed — no
/// thread can be, safely — so it is *told* to stop: its
/// [`Context::current`] is done. Work that never checks runs to its end, is
/// counted in [`Stats::abandoned`](crate::Stats::abandoned) meanwhile, and its
/// late result is dropped.
///
/// # Waiting runs unstarted work
///
/// A worker of the pool that [`get`](Task::get)s a task of its pool that
/// has not started yet runs it itself, as `rayon::join` does, unless its
/// context can be cancelled from outside (a timeout, a user context, a
/// combinator): such a wait must return the moment the context is done, so
/// it never runs the job inline. Nor do the waits on a shared handle
/// ([`wait`](Task::wait) and its timed kin), which a
/// [`cancel`](Task::cancel) from another thread must end at once. Instead,
/// a worker blocked in a wait lends its slot: the pool may start a thread
/// beyond `max_threads` for the work it waits for, so a nested wait neither
/// deadlocks at the cap nor outlives its deadline.
/// Unrelated queued work is never run while waiting.
///
/// # vs `std::thread::JoinHandle`
///
/// A `JoinHandle` owns an OS thread and can only be joined; a `Task` is a
/// pooled job with a non-blocking [`ready`](Task::ready), timed waits, a
/// timeout outcome, `Future` support, and a panic turned into an
/// [`Error`] instead of a `Box<dyn Any>`.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let task = va::run(|| 6 * 7);
/// let answer = task.get().unwrap();
/// assert_eq!(answer, 42);
/// ```
#[must_use = "dropping a Task detaches it; call get() to wait for the result"]
pub struct Task<T> {
    core: Arc<dyn TaskCore<T>>,
    /// The handle hands a `T` to whoever holds it, on its thread: `Send`
    /// only if `T` is, and `Sync` only if `T` is `Send` (shared handles
    /// only wait and look, like a `Mutex<T>`'s guarantees). Without this,
    /// `Arc<dyn TaskCore<T>>` (whose trait is `Send + Sync`) made every
    /// `Task<T>` both, whatever `T`.
    _value: PhantomData<std::sync::Mutex<T>>,
}

// A handle is only an `Arc`: moving it never moves the outcome.
impl<T> Unpin for Task<T> {}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.core.slot().kind.load(Ordering::Acquire) {
            PENDING => "pending",
            VALUE => "value",
            PANIC => "panicked",
            TIMEOUT => "timed out",
            CANCELLED => "cancelled",
            _ => "failed",
        };
        f.debug_struct("Task").field("state", &state).finish()
    }
}

impl<T: Send + 'static> Task<T> {
    /// A handle on a task's core: a queued job's cell, a race's record.
    pub(crate) fn from_core(core: Arc<dyn TaskCore<T>>) -> Self {
        Task {
            core,
            _value: PhantomData,
        }
    }

    /// A task whose outcome is already decided.
    pub(crate) fn decided(r: Result<T, Error>) -> Self {
        let slot = Slot::new();
        let _ = slot.resolve(r);
        Task {
            core: Arc::new(Decided(slot)),
            _value: PhantomData,
        }
    }
}

impl<T> Task<T> {
    /// Observes a deadline that has passed even if the timer thread is late,
    /// then reports the outcome kind.
    fn kind(&self) -> u8 {
        let kind = self.core.slot().kind.load(Ordering::Acquire);
        if kind == PENDING {
            if let Some(ctx) = self.core.context() {
                if ctx.deadline().is_some() && ctx.reason().is_some() {
                    return self.core.slot().kind.load(Ordering::Acquire);
                }
            }
        }
        kind
    }

    /// Blocks until the outcome is known and returns it.
    ///
    /// # Errors
    ///
    /// [`Error::Panic`] if the work panicked (the panic is also shown to the
    /// handler of [`set_panic_handler`](crate::set_panic_handler)),
    /// [`Error::Timeout`] or [`Error::Cancelled`] if its context finished
    /// first, [`Error::Spawn`] or [`Error::ShutDown`] if the pool refused it.
    ///
    /// # Example
    ///
    /// ```
    /// let err = velocity_async::run(|| -> i32 { panic!("no") }).get().unwrap_err();
    /// assert!(err.is_panic());
    /// ```
    pub fn get(self) -> Result<T, Error> {
        // Owned: no other thread holds this handle, so no `cancel` can
        // expect this wait to end while the job runs inline here.
        self.wait_until(None, true);
        match self.core.slot().take() {
            Some(r) => r,
            // Unreachable: `wait` returns only once the outcome is set, and
            // only `get` (which consumes the handle) or a completed `poll`
            // takes it. Report it rather than panic.
            None => Err(Error::Cancelled),
        }
    }

    /// The value, or `default` if the task failed in any way (Go's
    /// `GetOrDefault`).
    ///
    /// # Example
    ///
    /// ```
    /// let v = velocity_async::run(|| -> u8 { panic!("x") }).get_or(7);
    /// assert_eq!(v, 7);
    /// ```
    pub fn get_or(self, default: T) -> T {
        self.get().unwrap_or(default)
    }

    /// The value, or `T::default()` if the task failed in any way.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let v: Vec<u8> = velocity_async::run_with_timeout(Duration::ZERO, || vec![1]).get_or_default();
    /// assert!(v.is_empty());
    /// ```
    pub fn get_or_default(self) -> T
    where
        T: Default,
    {
        self.get().unwrap_or_default()
    }

    /// Non-blocking: true once the outcome (value, panic, timeout,
    /// cancellation or refusal) is known.
    ///
    /// # Example
    ///
    /// ```
    /// let task = velocity_async::run(|| 1);
    /// task.wait();
    /// assert!(task.ready());
    /// ```
    pub fn ready(&self) -> bool {
        self.kind() != PENDING
    }

    /// True if the outcome is a timeout (of `run_with_timeout`,
    /// `race_with_timeout`, or a context deadline). False while pending.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let task = velocity_async::run_with_timeout(Duration::ZERO, || 1);
    /// assert!(task.timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.kind() == TIMEOUT
    }

    /// Blocks until the outcome is known, keeping the handle.
    ///
    /// Unlike [`get`](Task::get), it never runs the job on this thread: a
    /// shared handle may be [`cancel`](Task::cancel)led by another thread,
    /// and this wait must then end at once.
    ///
    /// # Example
    ///
    /// ```
    /// let task = velocity_async::run(|| "done");
    /// task.wait();
    /// assert_eq!(task.get().unwrap(), "done");
    /// ```
    pub fn wait(&self) {
        self.wait_until(None, false);
    }

    /// Blocks until the outcome is known or `d` has passed; true if it is
    /// known. `Duration::ZERO` polls; `Duration::MAX` waits as long as needed.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let task = velocity_async::run(move || rx.recv().is_ok());
    /// assert!(!task.wait_timeout(Duration::from_millis(1)));
    /// drop(tx);
    /// assert!(task.wait_timeout(Duration::from_secs(60)));
    /// ```
    pub fn wait_timeout(&self, d: Duration) -> bool {
        self.wait_until(Instant::now().checked_add(d), false)
    }

    /// Like [`wait_timeout`](Task::wait_timeout), with an instant.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let task = velocity_async::run(|| 1);
    /// assert!(task.wait_deadline(Instant::now() + Duration::from_secs(60)));
    /// ```
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        self.wait_until(Some(deadline), false)
    }

    /// Cancels the task: resolves it with [`Error::Cancelled`] at once,
    /// unless its outcome is already known, and cancels the work's
    /// [`Context`] (what it sees as [`Context::current`]), so work that
    /// checks it can stop.
    ///
    /// The work itself cannot be killed: if it has started, it runs on
    /// until it returns or notices its context, is counted in
    /// [`Stats::abandoned`](crate::Stats::abandoned) meanwhile, and its late
    /// value is dropped. If it has not started, it is never called. A task
    /// that already finished keeps its outcome: a later `get` still returns
    /// its value. Cancelling twice, or a task decided at submission (refused
    /// by the pool), does nothing.
    ///
    /// A waker registered by polling the task is woken by whichever thread
    /// records the outcome: usually this one, but if the work sees its
    /// context cancelled and returns first, its worker records the same
    /// [`Error::Cancelled`] and wakes it, possibly just after `cancel`
    /// returns. Either way [`ready`](Task::ready) is true once `cancel`
    /// returns, and the waker is woken once.
    ///
    /// # Example
    ///
    /// ```
    /// use velocity_async as va;
    ///
    /// let task = va::run(|| {
    ///     va::Context::current().wait(); // work that stops when told
    ///     "stopped"
    /// });
    /// task.cancel();
    /// assert!(task.ready());
    /// assert!(task.get().unwrap_err().is_cancelled());
    ///
    /// let done = va::run(|| 7);
    /// done.wait();
    /// done.cancel();
    /// assert_eq!(done.get().unwrap(), 7);
    /// ```
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// Waits until the outcome is known or `until`; true if it is known.
    /// `inline`: the caller owns the handle, so this thread may run the job
    /// itself (see the type's docs).
    fn wait_until(&self, until: Option<Instant>, inline: bool) -> bool {
        let slot = self.core.slot();
        if self.kind() != PENDING {
            return true;
        }
        let external = self.core.context().is_some_and(Context::is_external);
        if inline
            && !external
            && self.core.pool().is_some_and(|p| p.is_own_worker())
            && self.core.run_inline()
        {
            return true;
        }
        if spin_until_resolved(slot, until) {
            return true;
        }
        // Block. While blocked, a worker thread counts as blocked and lends
        // its slot, so its pool starts another thread for the queue even at
        // its cap (Go's hand-off on a blocking system call): the job this
        // waits for stays runnable, and the wait still ends at its deadline
        // or cancel, which running the job inline here could not promise.
        let _blocked = pool::BlockedGuard::enter();
        let ctx_deadline = self.core.context().and_then(Context::deadline);
        let mut inner = slot.lock();
        loop {
            if slot.kind.load(Ordering::Acquire) != PENDING {
                return true;
            }
            let now = Instant::now();
            if until.is_some_and(|u| now >= u) {
                return false;
            }
            if ctx_deadline.is_some_and(|d| now >= d) {
                drop(inner);
                // Fires the context, which resolves the slot as a timeout.
                let _ = self.core.context().map(Context::reason);
                inner = slot.lock();
                continue;
            }
            let wake = [until, ctx_deadline].into_iter().flatten().min();
            inner = slot.sleep(inner, wake.map(|w| w - now));
        }
    }
}

fn spin_until_resolved<T>(slot: &Slot<T>, until: Option<Instant>) -> bool {
    let limit = match until {
        Some(u) => u.saturating_duration_since(Instant::now()).min(WAIT_SPIN),
        None => WAIT_SPIN,
    };
    spin_until(limit, || slot.kind.load(Ordering::Acquire) != PENDING)
}

impl<T> Future for Task<T> {
    type Output = Result<T, Error>;

    /// Ready once the outcome is known. Needs no runtime: completion wakes the
    /// registered waker from whichever thread decides the outcome (a worker,
    /// the timer thread, a canceller).
    ///
    /// # Panics
    ///
    /// If polled again after it returned `Ready`, as futures may.
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let slot = self.core.slot();
        if self.kind() == PENDING {
            // Cloning and dropping a waker runs the executor's code: never
            // under the slot's lock.
            let mut waker = Some(cx.waker().clone());
            let pending = {
                let mut inner = slot.lock();
                let pending = slot.kind.load(Ordering::Acquire) == PENDING;
                if pending && !inner.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    inner.wakers.extend(waker.take());
                }
                pending
            };
            panic::drop_quietly(waker);
            if pending {
                return Poll::Pending;
            }
        }
        match slot.take() {
            Some(r) => Poll::Ready(r),
            None => panic!("velocity_async::Task polled after it completed"),
        }
    }
}

/// Loom models of the outcome slot: run with
/// `RUSTFLAGS="--cfg velocity_loom" cargo test --release --lib loom_`.
#[cfg(all(test, velocity_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Blocks the way `Task::wait_until` does: check under the lock, sleep.
    fn wait<T>(slot: &Slot<T>) {
        let mut inner = slot.lock();
        while !slot.is_resolved() {
            inner = slot.sleep(inner, None);
        }
    }

    /// A job's value races its timeout while a waiter blocks: exactly one
    /// outcome wins, the waiter is woken (loom reports a waiter sleeping
    /// forever as a deadlock) and sees it, and the losing value is dropped
    /// exactly once.
    #[test]
    fn loom_slot_first_resolve_wins_and_wakes_the_waiter() {
        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let slot = Arc::new(Slot::<Counted>::new());
            let (s, d) = (slot.clone(), drops.clone());
            let value = loom::thread::spawn(move || s.resolve(Ok(Counted(d))).is_ok());
            let s = slot.clone();
            let timeout = loom::thread::spawn(move || s.resolve(Err(Error::Timeout)).is_ok());
            wait(&slot);
            let (won_value, won_timeout) = (value.join().unwrap(), timeout.join().unwrap());
            assert!(won_value != won_timeout, "exactly one outcome wins");
            let outcome = slot.take().expect("the outcome is there");
            assert_eq!(outcome.is_ok(), won_value);
            assert!(slot.is_resolved());
            drop(outcome);
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    /// The handle is dropped while the job completes (the shape of the
    /// oneshot crate's use-after-free bugs): whichever side drops the slot
    /// last drops the value, exactly once.
    #[test]
    fn loom_slot_handle_dropped_during_completion_drops_the_value_once() {
        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let slot = Arc::new(Slot::<Counted>::new());
            let (s, d) = (slot.clone(), drops.clone());
            let job = loom::thread::spawn(move || {
                assert!(s.resolve(Ok(Counted(d))).is_ok());
            });
            drop(slot);
            job.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }
}
