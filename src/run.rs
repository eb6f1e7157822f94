//! Running one function: `run`, `run_with_timeout`, `run_with_context`, `go`,
//! `go_with_recover`, on the current pool or a given one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, PanicError};
use crate::panic;
use crate::pool::{self, Job, Pool, Shared, ShutdownReport, Stats, Wake};
use crate::task::{Task, TaskCell};

/// Builds a task with its own context (a child of `parent`) and queues it.
fn spawn_task<T, F>(
    shared: &Arc<Shared>,
    parent: &Context,
    deadline: Option<Instant>,
    f: F,
) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cell = TaskCell::new(shared, parent, deadline, f);
    cell.resolve_if_born_done();
    if crate::task::TaskCore::slot(&*cell).is_resolved() {
        // Born done (zero timeout, cancelled parent): never queued or called.
        shared.count_skipped();
        return Task::from_core(cell);
    }
    if let Err(job) = shared.submit(Job::Task(cell.clone()), Wake::Eager) {
        job.refuse(Error::ShutDown);
    }
    Task::from_core(cell)
}

/// Wraps fire-and-forget work in the panic policy, with its own context.
fn go_job<F, H>(f: F, on_panic: Option<H>) -> Job
where
    F: FnOnce() + Send + 'static,
    H: FnOnce(PanicError) + Send + 'static,
{
    let ctx = Context::current().make_child(None, false, None);
    Job::Go(Box::new(move || {
        let _current = ctx.enter();
        let _span = crate::observe::enter_job("go");
        match panic::catch(f) {
            Ok(()) => false,
            Err(p) => {
                if let Some(h) = on_panic {
                    // A panicking callback is recovered and reported too.
                    let _ = panic::catch(move || h(p));
                }
                true
            }
        }
    }))
}

impl Pool {
    /// Runs `f` on this pool; see [`run`](crate::run).
    ///
    /// # Example
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// assert_eq!(pool.run(|| "hi").get().unwrap(), "hi");
    /// ```
    pub fn run<T, F>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_task(&self.shared, &Context::current(), None, f)
    }

    /// Runs `f` on this pool with a timeout; see
    /// [`run_with_timeout`](crate::run_with_timeout).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().build();
    /// assert!(pool.run_with_timeout(Duration::ZERO, || 1).timed_out());
    /// ```
    pub fn run_with_timeout<T, F>(&self, timeout: Duration, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_task(
            &self.shared,
            &Context::current(),
            Instant::now().checked_add(timeout),
            f,
        )
    }

    /// Runs `f` on this pool under `ctx`; see
    /// [`run_with_context`](crate::run_with_context).
    ///
    /// # Example
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// let ctx = velocity_async::Context::new();
    /// ctx.cancel();
    /// assert!(pool.run_with_context(&ctx, || 1).get().unwrap_err().is_cancelled());
    /// ```
    pub fn run_with_context<T, F>(&self, ctx: &Context, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_task(&self.shared, ctx, None, f)
    }

    /// Runs `f` on this pool and forgets it; see [`go`](crate::go). On a
    /// shut-down pool the closure is dropped uncalled; use
    /// [`try_go`](Pool::try_go) to find out.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.go(move || tx.send(5).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 5);
    /// ```
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let _ = self.try_go(f);
    }

    /// Like [`go`](Pool::go), but reports a refused submission.
    ///
    /// # Errors
    ///
    /// [`Error::ShutDown`] after [`shutdown`](Pool::shutdown); the closure is
    /// dropped uncalled.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().build();
    /// assert!(pool.try_go(|| ()).is_ok());
    /// pool.shutdown(Duration::from_secs(10));
    /// assert!(pool.try_go(|| ()).is_err());
    /// ```
    pub fn try_go<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce() + Send + 'static,
    {
        submit_go(&self.shared, go_job(f, None::<fn(PanicError)>))
    }

    /// Runs `f` on this pool and forgets it, calling `on_panic` if it panics;
    /// see [`go_with_recover`](crate::go_with_recover).
    ///
    /// # Example
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.go_with_recover(|| panic!("bad"), move |p| tx.send(p.message().to_owned()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), "bad");
    /// ```
    pub fn go_with_recover<F, H>(&self, f: F, on_panic: H)
    where
        F: FnOnce() + Send + 'static,
        H: FnOnce(PanicError) + Send + 'static,
    {
        let _ = submit_go(&self.shared, go_job(f, Some(on_panic)));
    }
}

fn submit_go(shared: &Arc<Shared>, job: Job) -> Result<(), Error> {
    match shared.submit(job, Wake::Eager) {
        Ok(()) => Ok(()),
        Err(job) => {
            job.refuse(Error::ShutDown);
            Err(Error::ShutDown)
        }
    }
}

/// Runs `f` in the background and returns a handle to its result (Go:
/// `async.Run`).
///
/// `f` runs on the current pool: the global one, or, when called from a
/// pool's worker, that pool. It gets its own [`Context`], a child of the
/// caller's [`Context::current`].
///
/// # Panics
///
/// Never panics. A panic in `f` is caught: [`Task::get`] returns
/// [`Error::Panic`], and the handler of
/// [`set_panic_handler`](crate::set_panic_handler) sees it.
///
/// # Cancellation
///
/// The task is resolved as cancelled if its context is cancelled — by the
/// caller's context (when called inside other work), or by `f` itself through
/// `Context::current().cancel()`.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let task = va::run(|| {
///     // pretend this is a database query
///     (1..=10).sum::<u32>()
/// });
/// if task.ready() {
///     println!("already done");
/// }
/// assert_eq!(task.get().unwrap(), 55);
/// ```
pub fn run<T, F>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_task(&pool::current(), &Context::current(), None, f)
}

/// Runs `f` in the background; the task resolves to [`Error::Timeout`] if `f`
/// has not returned within `timeout` (Go: `async.RunWithTimeout`).
///
/// # Timeouts
///
/// At the deadline the task is resolved — [`Task::ready`] and
/// [`Task::timed_out`] turn true and every waiter wakes — and `f`'s context
/// ([`Context::current`] inside it) is done. `f` itself cannot be killed: it
/// runs on until it returns (counted in [`Stats::abandoned`]), and its late
/// result is dropped. `Duration::ZERO` times out at once without calling `f`;
/// a duration too large to represent as a deadline (`Duration::MAX`) never
/// times out. Neither panics.
///
/// # Panics
///
/// Never panics; a panic in `f` before the deadline becomes [`Error::Panic`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let task = va::run_with_timeout(Duration::from_millis(10), || {
///     va::Context::current().wait(); // stands for slow work that checks its context
///     "too late"
/// });
/// assert!(task.get_or("fallback") == "fallback");
/// ```
pub fn run_with_timeout<T, F>(timeout: Duration, f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_task(
        &pool::current(),
        &Context::current(),
        Instant::now().checked_add(timeout),
        f,
    )
}

/// Runs `f` in the background under `ctx` (Go: `async.RunWithContext`).
///
/// # Cancellation
///
/// The task resolves to [`Error::Cancelled`] the moment `ctx` is cancelled and
/// to [`Error::Timeout`] the moment its deadline passes; `f` sees the same
/// through [`Context::current`] (a child of `ctx`). If `ctx` is already done,
/// `f` is never called. A cancelled `f` that keeps running is counted in
/// [`Stats::abandoned`] and its late result is dropped.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let ctx = va::Context::with_timeout(Duration::from_millis(5));
/// let task = va::run_with_context(&ctx, || {
///     va::Context::current().wait();
///     1
/// });
/// assert!(task.get().unwrap_err().is_timeout());
/// ```
pub fn run_with_context<T, F>(ctx: &Context, f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_task(&pool::current(), ctx, None, f)
}

/// Runs `f` in the background and forgets it (Go: `async.Go`).
///
/// # Panics
///
/// A panic in `f` is caught and shown to the handler of
/// [`set_panic_handler`](crate::set_panic_handler) (std's hook has already
/// printed it); it never takes down a worker.
///
/// # Shutdown
///
/// Detached work dies with the process like any thread: call
/// [`shutdown`](crate::shutdown) before `main` returns to wait for it. If the
/// pool cannot start any thread, `f` runs on the calling thread rather than be
/// lost.
///
/// # Example
///
/// ```
/// use std::sync::mpsc;
/// use velocity_async as va;
///
/// let (tx, rx) = mpsc::channel();
/// va::go(move || tx.send("email sent").unwrap());
/// assert_eq!(rx.recv().unwrap(), "email sent");
/// ```
pub fn go<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    let _ = submit_go(&pool::current(), go_job(f, None::<fn(PanicError)>));
}

/// Like [`go`], calling `on_panic` with the panic if `f` panics (Go:
/// `async.GoWithRecover`).
///
/// # Panics
///
/// The panic is shown to the process-wide handler first, then to `on_panic`.
/// If `on_panic` itself panics, that panic is caught and shown to the handler
/// too; nothing unwinds into the pool.
///
/// # Example
///
/// ```
/// use std::sync::mpsc;
/// use velocity_async as va;
///
/// let (tx, rx) = mpsc::channel();
/// va::go_with_recover(
///     || panic!("risky operation failed"),
///     move |p| tx.send(p.message().to_string()).unwrap(),
/// );
/// assert_eq!(rx.recv().unwrap(), "risky operation failed");
/// ```
pub fn go_with_recover<F, H>(f: F, on_panic: H)
where
    F: FnOnce() + Send + 'static,
    H: FnOnce(PanicError) + Send + 'static,
{
    let _ = submit_go(&pool::current(), go_job(f, Some(on_panic)));
}

/// A snapshot of the global pool's counters.
///
/// # Example
///
/// ```
/// let s = velocity_async::stats();
/// println!("{} threads, {} queued", s.threads_alive, s.queued);
/// ```
pub fn stats() -> Stats {
    pool::global().stats()
}

/// Shuts the global pool down: waits up to `timeout` for everything submitted
/// (fire-and-forget included) to finish, and reports what is still running.
///
/// Call it at the end of `main`. It is final: afterwards the free functions
/// refuse new work ([`Error::ShutDown`]).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// va::go(|| std::thread::sleep(Duration::from_millis(5)));
/// let report = va::shutdown(Duration::from_secs(30));
/// assert!(report.is_complete());
/// ```
pub fn shutdown(timeout: Duration) -> ShutdownReport {
    pool::global().shutdown(timeout)
}
