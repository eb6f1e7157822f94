//! Running one function: `run`, `run_with_timeout`, `run_with_context`, `go`,
//! `go_with_recover`, on the current pool or a given one, and the task
//! builder (`task()`) that names a task and combines these options.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::Error;
use crate::panic;
use crate::panic::PanicError;
use crate::pool::{self, Job, Pool, Shared, ShutdownReport, Stats, Wake};
use crate::task::{Task, TaskCell};

/// What one `run*`/`go*` call (or the task builder) decided about its job.
struct Spec<'a> {
    /// The job's context is a child of this one.
    parent: &'a Context,
    deadline: Option<Instant>,
    name: Option<Arc<str>>,
}

impl<'a> Spec<'a> {
    fn child_of(parent: &'a Context) -> Spec<'a> {
        Spec {
            parent,
            deadline: None,
            name: None,
        }
    }

    fn with_timeout(mut self, timeout: Duration) -> Spec<'a> {
        // `None` (an instant past the end of time) means no deadline.
        self.deadline = Instant::now().checked_add(timeout);
        self
    }
}

/// Builds a task with its own context (a child of `spec.parent`) and queues it.
fn spawn_task<T, F>(shared: &Arc<Shared>, spec: Spec<'_>, f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cell = TaskCell::new(shared, spec.parent, spec.deadline, spec.name, f);
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

/// A fire-and-forget job running `f` in its own context (a child of
/// `spec.parent`), handing a panic to `on_panic` if given.
fn go_job<F, H>(shared: &Arc<Shared>, spec: Spec<'_>, f: F, on_panic: Option<H>) -> Job
where
    F: FnOnce() + Send + 'static,
    H: FnOnce(PanicError) + Send + 'static,
{
    let external = spec.deadline.is_some();
    // Made only if the job asks (`Context::current`) when it may wait: one
    // allocation fewer per `go`.
    let ctx = (!Context::child_can_wait(spec.parent, spec.deadline))
        .then(|| spec.parent.make_child(spec.deadline, external, None));
    let name = spec.name;
    let shared = name.is_some().then(|| shared.clone());
    Job::Go(Box::new(move || {
        let _current = match &ctx {
            Some(ctx) => ctx.enter(),
            None => Context::enter_fresh(),
        };
        let _named = shared
            .as_ref()
            .zip(name.as_ref())
            .map(|(s, n)| s.enter_named(n));
        let _span = crate::observe::enter_job("go", name.as_deref());
        match panic::catch_in(name.as_ref(), f) {
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
        spawn_task(&self.shared, Spec::child_of(&Context::current()), f)
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
            Spec::child_of(&Context::current()).with_timeout(timeout),
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
        spawn_task(&self.shared, Spec::child_of(ctx), f)
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
        let job = go_job(
            &self.shared,
            Spec::child_of(&Context::current()),
            f,
            None::<fn(PanicError)>,
        );
        submit_go(&self.shared, job)
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
        let job = go_job(
            &self.shared,
            Spec::child_of(&Context::current()),
            f,
            Some(on_panic),
        );
        let _ = submit_go(&self.shared, job);
    }
}

/// Starts a [`TaskBuilder`]: one task with options — a name for
/// diagnostics, a timeout, a parent context, a pool.
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let total = va::task()
///     .name("billing.charge")
///     .timeout(Duration::from_secs(30))
///     .run(|| 42)
///     .get()
///     .unwrap();
/// assert_eq!(total, 42);
/// ```
pub fn task() -> TaskBuilder {
    TaskBuilder::default()
}

/// Options for one task, ending in [`run`](TaskBuilder::run) or
/// [`go`](TaskBuilder::go). Made by [`task`] or [`Pool::task`].
///
/// A **name** (any string; a dotted `area.action` reads well) shows:
///
/// * in panic reports: [`PanicError::task_name`], its `Display`
///   (`task 'billing.charge' panicked: …`), the handler of
///   [`set_panic_handler`](crate::set_panic_handler), and the `log` and
///   `tracing` reports;
/// * as the worker thread's name while the job runs (Linux: the first 15
///   bytes, as `top -H`, `perf` and debuggers show it; std's
///   `thread::current().name()` keeps the pool's name);
/// * in [`Pool::running_tasks`], while it runs — also after its task timed
///   out or was cancelled and the work goes on;
/// * as the `name` field of the `velocity_async::job` span (`tracing`).
///
/// Naming costs a lock and two thread-name system calls per job; unnamed
/// tasks pay nothing for the feature.
///
/// Without a pool the task runs where [`run`](crate::run) would (the
/// current worker's pool, else the global one); without a context its
/// context is a child of [`Context::current`]; a timeout behaves as in
/// [`run_with_timeout`] (zero: never called; `Duration::MAX`: none).
#[derive(Clone, Debug, Default)]
#[must_use = "a task builder does nothing until `run` or `go`"]
pub struct TaskBuilder {
    name: Option<Arc<str>>,
    timeout: Option<Duration>,
    context: Option<Context>,
    pool: Option<Pool>,
}

impl TaskBuilder {
    /// Names the task (see the type's docs for where the name shows).
    ///
    /// ```
    /// let t = velocity_async::task().name(format!("import.{}", 7)).run(|| 1);
    /// assert_eq!(t.get().unwrap(), 1);
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> TaskBuilder {
        self.name = Some(name.into());
        self
    }

    /// Resolves the task as [`Error::Timeout`] after `timeout`, as
    /// [`run_with_timeout`] does; the job's context turns done then.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = velocity_async::task()
    ///     .timeout(Duration::from_millis(5))
    ///     .run(|| velocity_async::Context::current().wait());
    /// assert!(t.get().unwrap_err().is_timeout());
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> TaskBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Makes the task's context a child of `ctx` (cancelling `ctx` cancels
    /// the task), as [`run_with_context`] does.
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// ctx.cancel();
    /// let t = velocity_async::task().context(&ctx).run(|| 1);
    /// assert!(t.get().unwrap_err().is_cancelled());
    /// ```
    pub fn context(mut self, ctx: &Context) -> TaskBuilder {
        self.context = Some(ctx.clone());
        self
    }

    /// Runs the task on `pool`.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().thread_name("db").build();
    /// let name = velocity_async::task()
    ///     .pool(&pool)
    ///     .run(|| std::thread::current().name().map(String::from));
    /// assert_eq!(name.get().unwrap().as_deref(), Some("db"));
    /// ```
    pub fn pool(mut self, pool: &Pool) -> TaskBuilder {
        self.pool = Some(pool.clone());
        self
    }

    /// Queues `f` and returns its handle, like [`run`](crate::run) with the
    /// options given. Never panics; a panic in `f` is [`Error::Panic`] with
    /// the task's name.
    ///
    /// ```
    /// let t = velocity_async::task().name("answer").run(|| 6 * 7);
    /// assert_eq!(t.get().unwrap(), 42);
    /// ```
    pub fn run<T, F>(self, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone().unwrap_or_else(Pool::current);
        let parent = self.context.clone().unwrap_or_else(Context::current);
        spawn_task(&pool.shared, self.spec(&parent), f)
    }

    /// Runs `f` fire-and-forget, like [`go`](crate::go) with the options
    /// given: a panic goes to the handler of
    /// [`set_panic_handler`](crate::set_panic_handler), with the name.
    ///
    /// ```
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// velocity_async::task().name("mailer.send").go(move || tx.send(1).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// ```
    pub fn go<F>(self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let pool = self.pool.clone().unwrap_or_else(Pool::current);
        let parent = self.context.clone().unwrap_or_else(Context::current);
        let job = go_job(&pool.shared, self.spec(&parent), f, None::<fn(PanicError)>);
        let _ = submit_go(&pool.shared, job);
    }

    fn spec<'a>(self, parent: &'a Context) -> Spec<'a> {
        let spec = Spec {
            parent,
            deadline: None,
            name: self.name,
        };
        match self.timeout {
            Some(t) => spec.with_timeout(t),
            None => spec,
        }
    }
}

impl Pool {
    /// A [`TaskBuilder`] for one task on this pool.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// let t = pool.task().name("cache.warm").run(|| "warm");
    /// assert_eq!(t.get().unwrap(), "warm");
    /// ```
    pub fn task(&self) -> TaskBuilder {
        task().pool(self)
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
    Pool::current().run(f)
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
    Pool::current().run_with_timeout(timeout, f)
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
    Pool::current().run_with_context(ctx, f)
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
/// lost. **After a shutdown, `go` drops `f` uncalled** (there is no handle to
/// report it to); use [`try_go`] to learn of it.
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
    Pool::current().go(f);
}

/// Like [`go`], but says whether the work was accepted.
///
/// # Errors
///
/// [`Error::ShutDown`] after [`shutdown`](crate::shutdown) of the current
/// pool (the global one, or the one of [`Pool::install`]); `f` is then
/// dropped uncalled. A panic in `f` is handled as by [`go`].
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let pool = va::Pool::builder().build();
/// pool.install(|| assert!(va::try_go(|| ()).is_ok()));
/// pool.shutdown(std::time::Duration::from_secs(10));
/// let refused = pool.install(|| va::try_go(|| unreachable!()));
/// assert!(matches!(refused, Err(va::Error::ShutDown)));
/// ```
pub fn try_go<F>(f: F) -> Result<(), Error>
where
    F: FnOnce() + Send + 'static,
{
    Pool::current().try_go(f)
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
    Pool::current().go_with_recover(f, on_panic);
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
