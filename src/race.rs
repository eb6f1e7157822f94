//! Take the fastest: `race`, `race_with_timeout`, and `first_ok` (the first
//! success among fallible jobs).
//!
//! A race is one shared record ([`RaceCore`]) behind the returned
//! [`Task`]: the outcome slot, the race's context (a child of the caller's,
//! with the deadline of `race_with_timeout`), and the books of how many jobs
//! are still running. Each job is queued as fire-and-forget work. The first
//! job to *win* resolves the slot and cancels the race's context — the losers
//! see `Context::current().is_done()`, and their late results are dropped. A
//! job that starts after the race is over is not called. When every job has
//! lost, the last one resolves the slot with the race's verdict (the
//! lowest-index panic for `race`, every error for `first_ok`): a race never
//! hangs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::context::{CancelHook, Context, Reason};
use crate::error::Error;
use crate::panic;
use crate::panic::PanicError;
use crate::pool::{self, Job, Shared, Wake};
use crate::sync::{AtomicUsize, Mutex};
use crate::task::{Slot, Task, TaskCore};

/// Jobs that [`race`] can run: a tuple of 1 to 12 closures, a `Vec` or an
/// array of closures, all returning the same `T`, each `Send + 'static`.
///
/// This trait is sealed: it is implemented here for those shapes only.
///
/// # Example
///
/// ```
/// let fastest = velocity_async::race(vec![|| 1, || 1, || 1]).get().unwrap();
/// assert_eq!(fastest, 1);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a set of jobs that `race` can run",
    label = "expected a tuple of 1 to 12 closures, a `Vec` or an array of closures, each `Send + 'static` and returning the same type",
    note = "race jobs outlive the call, so they cannot borrow: move owned data in, and give each closure its own clone, e.g. `let db2 = Arc::clone(&db); move || db2.fetch(id)`"
)]
pub trait RaceJobs: sealed::Sealed {
    /// The type every job returns.
    type Output: Send + 'static;

    #[doc(hidden)]
    fn into_boxed(self) -> Vec<Box<dyn FnOnce() -> Self::Output + Send + 'static>>;
}

mod sealed {
    pub trait Sealed {}
}

impl<F, T> sealed::Sealed for Vec<F> where F: FnOnce() -> T + Send + 'static {}

impl<F, T> RaceJobs for Vec<F>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    fn into_boxed(self) -> Vec<Box<dyn FnOnce() -> T + Send + 'static>> {
        self.into_iter()
            .map(|f| Box::new(f) as Box<dyn FnOnce() -> T + Send>)
            .collect()
    }
}

impl<F, T, const N: usize> sealed::Sealed for [F; N] where F: FnOnce() -> T + Send + 'static {}

impl<F, T, const N: usize> RaceJobs for [F; N]
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    fn into_boxed(self) -> Vec<Box<dyn FnOnce() -> T + Send + 'static>> {
        Vec::from(self).into_boxed()
    }
}

macro_rules! tuple_race {
    ($($f:ident $idx:tt),+) => {
        impl<T, $($f),+> sealed::Sealed for ($($f,)+) where $($f: FnOnce() -> T + Send + 'static),+ {}

        impl<T, $($f),+> RaceJobs for ($($f,)+)
        where
            T: Send + 'static,
            $($f: FnOnce() -> T + Send + 'static),+
        {
            type Output = T;

            fn into_boxed(self) -> Vec<Box<dyn FnOnce() -> T + Send + 'static>> {
                vec![$(Box::new(self.$idx)),+]
            }
        }
    };
}

tuple_race!(F0 0);
tuple_race!(F0 0, F1 1);
tuple_race!(F0 0, F1 1, F2 2);
tuple_race!(F0 0, F1 1, F2 2, F3 3);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5, F6 6);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5, F6 6, F7 7);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5, F6 6, F7 7, F8 8);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5, F6 6, F7 7, F8 8, F9 9);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5, F6 6, F7 7, F8 8, F9 9, F10 10);
tuple_race!(F0 0, F1 1, F2 2, F3 3, F4 4, F5 5, F6 6, F7 7, F8 8, F9 9, F10 10, F11 11);

/// Decides a race's outcome once every job lost.
type Verdict<T> = Box<dyn Fn(&RaceCore<T>) -> Result<T, Error> + Send + Sync>;

/// What one job's run meant for the race.
enum Step<T> {
    /// The job won (if nobody won before): this is the race's value.
    Win(T),
    /// The job lost (failed or panicked); its reason is recorded.
    Lose,
}

/// How many jobs are still running, and whether the race is over. Under one
/// lock so a finishing job and the end of the race agree on who counts what.
struct Books {
    running: usize,
    over: bool,
}

/// The shared record of one race; see the module docs.
struct RaceCore<T> {
    slot: Slot<T>,
    ctx: Context,
    lost: AtomicUsize,
    jobs: usize,
    books: Mutex<Books>,
    /// The lowest-index panic, for the all-failed verdict.
    first_panic: Mutex<Option<(usize, PanicError)>>,
    /// The verdict once every job lost.
    verdict: Verdict<T>,
    shared: Arc<Shared>,
}

impl<T: Send + 'static> RaceCore<T> {
    fn new(
        shared: Arc<Shared>,
        jobs: usize,
        timeout: Option<Duration>,
        verdict: Verdict<T>,
    ) -> Arc<Self> {
        let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
        let core = Arc::new_cyclic(|me: &Weak<Self>| {
            let hook: Weak<dyn CancelHook> = me.clone();
            RaceCore {
                slot: Slot::new(),
                ctx: Context::current().make_child(deadline, true, Some(hook)),
                lost: AtomicUsize::new(0),
                jobs,
                books: Mutex::new(Books {
                    running: jobs,
                    over: false,
                }),
                first_panic: Mutex::new(None),
                verdict,
                shared,
            }
        });
        if let Some(reason) = core.ctx.reason() {
            core.on_cancel(reason);
        }
        core
    }

    /// Runs one job (on a worker). Returns whether it panicked.
    fn run_job(&self, index: usize, f: Box<dyn FnOnce() -> Step<T> + Send>) -> bool {
        if self.slot.is_resolved() {
            // The race is over before this job started: never called.
            panic::drop_quietly(f);
            self.job_finished();
            return false;
        }
        let step = {
            let _current = self.ctx.enter();
            panic::catch(f)
        };
        self.job_finished();
        match step {
            Ok(Step::Win(v)) if self.ctx.is_done() => {
                // The race ended (deadline, cancel, another winner) before
                // this job returned: its value is late.
                panic::drop_quietly(v);
                if let Some(reason) = self.ctx.reason() {
                    self.on_cancel(reason);
                }
                false
            }
            Ok(Step::Win(v)) => {
                match self.slot.resolve(Ok(v)) {
                    Ok(()) => self.ctx.cancel(), // tell the losers
                    Err(late) => panic::drop_quietly(late),
                }
                false
            }
            Ok(Step::Lose) => {
                self.lose();
                false
            }
            Err(p) => {
                {
                    let mut first = self.first_panic.lock().unwrap_or_else(|e| e.into_inner());
                    if first.as_ref().map_or(true, |(i, _)| index < *i) {
                        *first = Some((index, p));
                    }
                }
                self.lose();
                true
            }
        }
    }

    fn lose(&self) {
        if self.lost.fetch_add(1, Ordering::AcqRel) + 1 == self.jobs {
            let verdict = (self.verdict)(self);
            if let Err(v) = self.slot.resolve(verdict) {
                panic::drop_quietly(v);
            }
            self.ctx.cancel();
        }
    }

    fn job_finished(&self) {
        let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
        books.running -= 1;
        if books.over {
            self.shared.abandoned_finished();
        }
    }
}

impl<T: Send + 'static> CancelHook for RaceCore<T> {
    /// The race's context is done: a winner cancelled it, its deadline passed,
    /// or the caller's context was cancelled. Decide the outcome (unless a
    /// winner already did) and count the jobs still running as abandoned.
    fn on_cancel(&self, reason: Reason) {
        {
            let mut books = self.books.lock().unwrap_or_else(|e| e.into_inner());
            if !books.over {
                books.over = true;
                for _ in 0..books.running {
                    self.shared.abandoned_started();
                }
            }
        }
        let _ = self.slot.resolve(Err(reason.to_error()));
    }
}

impl<T: Send + 'static> TaskCore<T> for RaceCore<T> {
    fn slot(&self) -> &Slot<T> {
        &self.slot
    }
    fn context(&self) -> Option<&Context> {
        Some(&self.ctx)
    }
    fn run_inline(&self) -> bool {
        false
    }
    fn pool(&self) -> Option<&Arc<Shared>> {
        Some(&self.shared)
    }
}

/// Queues every job of a race and returns its handle.
fn start<T: Send + 'static>(
    jobs: Vec<Box<dyn FnOnce() -> Step<T> + Send>>,
    timeout: Option<Duration>,
    verdict: Verdict<T>,
) -> Task<T> {
    if jobs.is_empty() {
        return Task::decided(Err(Error::NoJobs));
    }
    let shared = pool::current();
    let core = RaceCore::new(shared.clone(), jobs.len(), timeout, verdict);
    for (index, f) in jobs.into_iter().enumerate() {
        let c = core.clone();
        let job = Job::Go(Box::new(move || c.run_job(index, f)));
        if let Err(job) = shared.submit(job, Wake::Eager) {
            // Shut down: the rest cannot run. End the race with that error;
            // the refused job is dropped uncalled.
            if core.slot.resolve(Err(Error::ShutDown)).is_ok() {
                core.ctx.cancel();
            }
            job.refuse(Error::ShutDown);
            core.job_finished();
        }
    }
    Task::from_core(core)
}

fn race_verdict<T>(core: &RaceCore<T>) -> Result<T, Error> {
    match core
        .first_panic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        Some((_, p)) => Err(Error::Panic(p)),
        // Every job lost without a panic: only refused jobs do that.
        None => Err(Error::ShutDown),
    }
}

/// Runs every job concurrently and resolves with the first to return without
/// panicking (Go: `async.Race`). Returns at once.
///
/// # Cancellation
///
/// The jobs share a context, a child of the caller's
/// [`Context::current`]. When a job wins, that context is cancelled: the
/// losers see [`Context::current().is_done()`](Context::is_done) and may stop;
/// those still running are counted in
/// [`Stats::abandoned`](crate::Stats::abandoned) until they return, and their
/// results are dropped. Jobs that had not started are never called.
///
/// # Panics
///
/// A panicking job just loses. If every job panics, the task resolves to the
/// lowest-index panic — it never hangs. With no jobs at all (an empty `Vec`),
/// the task resolves to [`Error::NoJobs`] at once.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let fastest = va::race((
///     || { std::thread::sleep(Duration::from_millis(50)); "database" },
///     || "cache",
/// ));
/// assert_eq!(fastest.get().unwrap(), "cache");
/// ```
///
/// # Sharing data between the jobs
///
/// `race` returns before its jobs end, so they must own what they use
/// (`'static`): they cannot borrow. rustc's hint to add `move` then meets a
/// second closure that needs the same value ("use of moved value"). Give
/// each job its own handle — an `Arc` clone for shared state, a `clone()` of
/// a small value:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use velocity_async as va;
///
/// let cache: Arc<HashMap<&str, u32>> = Arc::new(HashMap::from([("sku-1", 42)]));
/// let sku = String::from("sku-1");
///
/// let price = va::race((
///     {
///         let (cache, sku) = (Arc::clone(&cache), sku.clone());
///         move || cache.get(sku.as_str()).copied().ok_or("miss")
///     },
///     {
///         let sku = sku.clone();
///         move || -> Result<u32, &str> {
///             std::thread::sleep(std::time::Duration::from_millis(50)); // the slow API
///             Ok(if sku == "sku-1" { 42 } else { 0 })
///         }
///     },
/// ));
/// assert_eq!(price.get().unwrap(), Ok(42));
/// assert_eq!(sku, "sku-1"); // still ours
/// ```
pub fn race<J: RaceJobs>(jobs: J) -> Task<J::Output> {
    race_inner(jobs, None)
}

/// Like [`race`], resolving to [`Error::Timeout`] if no job has won within
/// `timeout` (Go: `async.RaceWithTimeout`); [`Task::timed_out`] is then true
/// and every job's context is done.
///
/// `Duration::ZERO` times out at once (no job is called); `Duration::MAX`
/// never times out.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let task = va::race_with_timeout(Duration::from_millis(10), (
///     || { va::Context::current().wait(); "primary" },
///     || { va::Context::current().wait(); "fallback" },
/// ));
/// assert!(task.get().unwrap_err().is_timeout());
/// ```
pub fn race_with_timeout<J: RaceJobs>(timeout: Duration, jobs: J) -> Task<J::Output> {
    race_inner(jobs, Some(timeout))
}

fn race_inner<J: RaceJobs>(jobs: J, timeout: Option<Duration>) -> Task<J::Output> {
    let jobs = jobs
        .into_boxed()
        .into_iter()
        .map(|f| Box::new(move || Step::Win(f())) as Box<dyn FnOnce() -> Step<J::Output> + Send>)
        .collect();
    start(jobs, timeout, Box::new(race_verdict))
}

/// Runs every fallible job concurrently and resolves with the first success
/// (JavaScript's `Promise.any`). Returns at once.
///
/// The task's value is `Ok(v)` from the first job that returned `Ok(v)`, or,
/// if every job failed, `Err(errors)` with every job's error in input order
/// (a panic becomes `E` through `From<Error>`). Losers are cancelled as in
/// [`race`]. No jobs: [`Error::NoJobs`] at once.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let first = va::first_ok((
///     || Err::<u32, va::Error>(va::Error::NoJobs),
///     || Ok(7),
/// ));
/// assert_eq!(first.get().unwrap().unwrap(), 7);
///
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// let none = va::first_ok((|| Err::<u32, BoxError>("a".into()), || Err("b".into())));
/// let errors = none.get().unwrap().unwrap_err();
/// assert_eq!(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(), ["a", "b"]);
/// ```
pub fn first_ok<J, T, E>(jobs: J) -> Task<Result<T, Vec<E>>>
where
    J: RaceJobs<Output = Result<T, E>>,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    let boxed = jobs.into_boxed();
    let n = boxed.len();
    let errors: Arc<Mutex<Vec<Option<E>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let jobs = boxed
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let errors = errors.clone();
            Box::new(move || {
                let r = match panic::catch(f) {
                    Ok(r) => r,
                    Err(p) => Err(E::from(Error::Panic(p))),
                };
                match r {
                    Ok(v) => Step::Win(Ok(v)),
                    Err(e) => {
                        errors.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(e);
                        Step::Lose
                    }
                }
            }) as Box<dyn FnOnce() -> Step<Result<T, Vec<E>>> + Send>
        })
        .collect();
    let verdict = move |_: &RaceCore<Result<T, Vec<E>>>| {
        let errors = std::mem::take(&mut *errors.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Err(errors.into_iter().flatten().collect()))
    };
    start(jobs, None, Box::new(verdict))
}
