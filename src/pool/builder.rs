//! The public face of the pool: [`Pool`], [`Builder`], [`Stats`],
//! [`ShutdownReport`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Config, Shared};

/// The default cap on threads per pool.
///
/// High enough that 1,000 concurrent blocking calls (database queries, HTTP
/// requests) each get a thread, as they would in Go; low enough that a runaway
/// submitter cannot exhaust the system's thread limit. At the cap, work queues.
///
/// ```
/// assert_eq!(velocity_async::DEFAULT_MAX_THREADS, 1024);
/// ```
pub const DEFAULT_MAX_THREADS: usize = 1024;

/// The default time an idle worker waits for work before its thread exits.
///
/// ```
/// assert_eq!(velocity_async::DEFAULT_KEEP_ALIVE.as_secs(), 10);
/// ```
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// An elastic thread pool. The free functions ([`run`](crate::run),
/// [`go`](crate::go), …) use a global one built with the defaults; build your
/// own to isolate workloads or change the limits.
///
/// # How it behaves
///
/// * It starts no thread until work arrives, and keeps about as many threads
///   *computing* as there are CPUs (Go's `GOMAXPROCS`).
/// * When workers block (sleep, I/O, waiting on a lock or another task) and
///   work is waiting, it starts more threads, up to
///   [`max_threads`](Builder::max_threads). CPU-bound work never makes it grow
///   past the CPU count.
/// * Idle threads spin for a few microseconds while the CPUs have room (a
///   job submitted then costs about a microsecond, not a ~25 µs wake-up),
///   then sleep, then exit after the [`keep_alive`](Builder::keep_alive).
/// * Free functions called from a worker of this pool use this pool.
///
/// Dropping the last `Pool` handle does not stop the work already submitted:
/// it runs, then the threads retire. Call [`shutdown`](Pool::shutdown) to
/// wait for it.
///
/// # vs rayon, tokio and `blocking`
///
/// rayon's pool is fixed at the CPU count, so blocking jobs starve it; tokio's
/// `spawn_blocking` and the `blocking` crate start a thread whenever none is
/// free, so 100,000 tiny jobs make hundreds of threads (and `blocking` never
/// shrinks). This pool grows only for work that blocks.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async::Pool;
///
/// let pool = Pool::builder().max_threads(4).keep_alive(Duration::from_secs(1)).build();
/// let task = pool.run(|| 2 + 2);
/// assert_eq!(task.get().unwrap(), 4);
/// assert!(pool.shutdown(Duration::from_secs(10)).is_complete());
/// ```
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pool {
    /// A builder for a new pool.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().thread_name("db").build();
    /// assert_eq!(pool.run(|| std::thread::current().name().map(String::from)).get().unwrap().as_deref(), Some("db"));
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The global pool the free functions use (built with the defaults on
    /// first use).
    ///
    /// # Example
    ///
    /// ```
    /// let before = velocity_async::Pool::global().stats().completed;
    /// velocity_async::run(|| ()).get().unwrap();
    /// assert!(velocity_async::Pool::global().stats().completed > before);
    /// ```
    pub fn global() -> &'static Pool {
        super::global()
    }

    /// The pool the free functions use: the current worker's pool, else the
    /// global one.
    pub(crate) fn current() -> Pool {
        Pool {
            shared: super::current(),
        }
    }

    /// A snapshot of the pool's counters. Each field is read consistently with
    /// the others under the pool's lock, except the monotonic counters.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// pool.run(|| ()).get().unwrap();
    /// let stats = pool.stats();
    /// assert_eq!(stats.completed, 1);
    /// assert!(stats.threads_alive <= stats.threads_spawned as usize);
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The named tasks running on this pool now, longest-running first:
    /// tasks and `go` jobs given a name with [`Pool::task`] or
    /// [`task`](crate::task), including work still running after its task
    /// timed out or was cancelled. Unnamed work is counted in
    /// [`Stats`] only.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let pool = velocity_async::Pool::builder().build();
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, release_rx) = mpsc::channel::<()>();
    /// let task = pool.task().name("nightly.report").run(move || {
    ///     started_tx.send(()).unwrap();
    ///     release_rx.recv().unwrap();
    /// });
    /// started.recv().unwrap();
    /// let running = pool.running_tasks();
    /// assert_eq!(running[0].name(), "nightly.report");
    /// release.send(()).unwrap();
    /// task.get().unwrap();
    /// ```
    pub fn running_tasks(&self) -> Vec<RunningTask> {
        let mut runs: Vec<RunningTask> = self
            .shared
            .named_runs()
            .into_iter()
            .map(|r| RunningTask {
                name: r.name,
                started: r.started,
            })
            .collect();
        runs.sort_by_key(|r| r.started);
        runs
    }

    /// Stops accepting work and waits up to `timeout` for everything already
    /// submitted — queued, running, fire-and-forget, and work abandoned after
    /// a timeout — to finish. Nothing submitted before the call is dropped:
    /// queued work still runs.
    ///
    /// Afterwards, submissions are refused: tasks resolve to
    /// [`Error::ShutDown`](crate::Error::ShutDown) and
    /// [`Pool::try_go`] returns it. `Duration::ZERO` only closes the pool and
    /// reports; `Duration::MAX` waits as long as it takes. Calling it again is
    /// harmless.
    ///
    /// A thread cannot be killed, so work that never returns keeps its thread;
    /// the report counts it.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().build();
    /// pool.go(|| std::thread::sleep(Duration::from_millis(10)));
    /// let report = pool.shutdown(Duration::from_secs(60));
    /// assert!(report.is_complete());
    /// assert!(pool.run(|| 1).get().unwrap_err().to_string().contains("shut down"));
    /// ```
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.shared.shutdown(timeout)
    }

    /// Runs `f` on the calling thread with this pool as the one the free
    /// functions use: [`run`](crate::run), [`go`](crate::go),
    /// [`all`](crate::all), [`race`](crate::race), [`map`](crate::map),
    /// [`for_each`](crate::for_each) and the rest, called inside `f`, put
    /// their work on this pool instead of the global one (rayon's
    /// `ThreadPool::install`, without moving `f` to another thread). Work
    /// running on the pool's workers uses the pool anyway, so everything
    /// nested inside stays on it too.
    ///
    /// Installs nest (the innermost wins) and the previous pool is restored
    /// when `f` returns or unwinds; a panic in `f` propagates unchanged. If
    /// the pool is shut down, what `f` submits is refused as on
    /// [`Pool::run`]. Returns `f`'s value.
    ///
    /// # Example
    ///
    /// ```
    /// use velocity_async as va;
    /// // At most 8 database calls at once, whatever the global pool does.
    /// let db = va::Pool::builder().max_threads(8).thread_name("db").build();
    /// let names = db.install(|| {
    ///     va::map((1..=20).collect::<Vec<u32>>(), |id| format!("user {id}")).unwrap()
    /// });
    /// assert_eq!(names[19], "user 20");
    /// assert!(db.stats().threads_spawned <= 8);
    /// ```
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        super::install(&self.shared, f)
    }
}

/// Longer spinning only burns CPU: a sleeping thread wakes in ~25 µs.
const MAX_SPIN: Duration = Duration::from_millis(10);
/// Ticks shorter than this only cost CPU.
const MIN_MONITOR_INTERVAL: Duration = Duration::from_micros(10);
/// Ticks longer than this would leave blocked work starving for that long
/// before the pool grows.
const MAX_MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// Configures a [`Pool`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// let pool = velocity_async::Pool::builder()
///     .max_threads(64)
///     .keep_alive(Duration::from_secs(30))
///     .thread_name("worker")
///     .stack_size(256 * 1024)
///     .build();
/// assert_eq!(pool.run(|| 1).get().unwrap(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    config: Config,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: [`DEFAULT_MAX_THREADS`], [`DEFAULT_KEEP_ALIVE`], threads
    /// named `velocity-async`, std's default stack size, one computing thread
    /// per available CPU.
    ///
    /// ```
    /// let pool = velocity_async::Builder::new().build();
    /// assert_eq!(pool.run(|| 1).get().unwrap(), 1);
    /// ```
    pub fn new() -> Builder {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Builder {
            config: Config {
                max_threads: DEFAULT_MAX_THREADS,
                keep_alive: DEFAULT_KEEP_ALIVE,
                name: "velocity-async".into(),
                stack_size: None,
                target_running: cpus,
                monitor_interval: Duration::from_micros(500),
                spin: Duration::from_micros(50),
            },
        }
    }

    /// The most jobs the pool runs at once — the most threads running your
    /// code. At the cap, work queues. `0` is taken as `1` (a pool needs a
    /// thread to run anything).
    ///
    /// A worker blocked in a wait of this crate (`Task::get`, a loop's join,
    /// `Context::wait`) lends its slot: the pool may start one more thread
    /// while it waits, so the work it waits for runs even at the cap (a
    /// nested wait cannot deadlock, and a deadline or cancel it waits on
    /// still ends it on time). Threads alive may therefore exceed the cap by
    /// the number of such waiters. A job blocked on anything else (a channel,
    /// a lock, I/O) holds its slot.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().max_threads(2).build();
    /// let tasks: Vec<_> = (0..8).map(|i| pool.run(move || i)).collect();
    /// assert!(tasks.into_iter().all(|t| t.get().is_ok()));
    /// assert!(pool.stats().threads_alive <= 2);
    /// ```
    pub fn max_threads(mut self, n: usize) -> Builder {
        self.config.max_threads = n.max(1);
        self
    }

    /// How long an idle thread waits for work before it exits.
    /// `Duration::ZERO` retires threads as soon as the queue is empty (after
    /// their brief spin); `Duration::MAX` keeps them forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().keep_alive(Duration::from_millis(50)).build();
    /// pool.run(|| ()).get().unwrap();
    /// ```
    pub fn keep_alive(mut self, d: Duration) -> Builder {
        self.config.keep_alive = d;
        self
    }

    /// The name of the pool's threads (shown by debuggers, `top -H`, panic
    /// messages). Linux shows the first 15 bytes. NUL bytes, which thread
    /// names cannot hold, are removed.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().thread_name("db-pool").build();
    /// let name = pool.run(|| std::thread::current().name().map(String::from)).get().unwrap();
    /// assert_eq!(name.as_deref(), Some("db-pool"));
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        let mut name = name.into();
        // std refuses (panics on) thread names with NUL bytes.
        name.retain(|c| c != '\0');
        self.config.name = name;
        self
    }

    /// The stack size of the pool's threads, in bytes. The default is std's
    /// (2 MiB, or `RUST_MIN_STACK`).
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().stack_size(8 << 20).build();
    /// assert_eq!(pool.run(|| [0u8; 1 << 20].len()).get().unwrap(), 1 << 20);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.config.stack_size = Some(bytes);
        self
    }

    /// How many threads the pool keeps computing at once (Go's `GOMAXPROCS`);
    /// the default is the number of available CPUs. `0` is taken as `1`.
    /// Threads beyond this are started only for work that blocks.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().target_running(1).build();
    /// assert_eq!(pool.run(|| 2).get().unwrap(), 2);
    /// ```
    pub fn target_running(mut self, n: usize) -> Builder {
        self.config.target_running = n.max(1);
        self
    }

    /// How long an idle thread spins for new work before it sleeps (default
    /// 50 µs). Spinning costs CPU but turns a ~25 µs wake-up into a hand-off
    /// of well under a microsecond. A thread spins only while fewer threads
    /// run jobs than [`target_running`](Builder::target_running): with the
    /// CPUs full, a spin would take one from the work. `Duration::ZERO`
    /// never spins; longer than 10 ms is taken as 10 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// // A pool for rare background work: never burn CPU waiting for more.
    /// let pool = velocity_async::Pool::builder().spin(Duration::ZERO).build();
    /// assert_eq!(pool.run(|| 3).get().unwrap(), 3);
    /// ```
    pub fn spin(mut self, d: Duration) -> Builder {
        self.config.spin = d.min(MAX_SPIN);
        self
    }

    /// How often the monitor checks for blocked workers while work waits
    /// (default 500 µs). Clamped to between 10 µs and 1 s, so a huge value
    /// cannot leave blocked work starving.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().monitor_interval(Duration::from_millis(2)).build();
    /// assert_eq!(pool.run(|| 4).get().unwrap(), 4);
    /// ```
    pub fn monitor_interval(mut self, d: Duration) -> Builder {
        self.config.monitor_interval = d.clamp(MIN_MONITOR_INTERVAL, MAX_MONITOR_INTERVAL);
        self
    }

    /// Builds the pool. No thread starts until work arrives.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// assert_eq!(pool.stats().threads_alive, 0);
    /// ```
    pub fn build(self) -> Pool {
        Pool {
            shared: Arc::new(Shared::new(self.config)),
        }
    }
}

/// A named task running now (see [`Pool::running_tasks`]).
///
/// # Example
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
///
/// let pool = velocity_async::Pool::builder().build();
/// let (tx, rx) = mpsc::channel::<()>();
/// let (started_tx, started) = mpsc::channel();
/// pool.task().name("export.csv").go(move || {
///     started_tx.send(()).unwrap();
///     let _ = rx.recv();
/// });
/// started.recv().unwrap();
/// for t in pool.running_tasks() {
///     println!("{} has run for {:?}", t.name(), t.running_for());
/// }
/// drop(tx);
/// assert!(pool.shutdown(Duration::from_secs(10)).is_complete());
/// ```
#[derive(Clone, Debug)]
pub struct RunningTask {
    name: Arc<str>,
    started: Instant,
}

impl RunningTask {
    /// The name given with the task builder.
    ///
    /// ```
    /// let pool = velocity_async::Pool::builder().build();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let t = pool.task().name("sync.users").run(move || rx.recv().unwrap());
    /// while pool.running_tasks().is_empty() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(pool.running_tasks()[0].name(), "sync.users");
    /// tx.send(()).unwrap();
    /// t.get().unwrap();
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long it has been running (from when its job started, not when
    /// it was submitted).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let pool = velocity_async::Pool::builder().build();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let before = Instant::now();
    /// let t = pool.task().name("slow").run(move || rx.recv().unwrap());
    /// while pool.running_tasks().is_empty() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(pool.running_tasks()[0].running_for() <= before.elapsed());
    /// tx.send(()).unwrap();
    /// t.get().unwrap();
    /// ```
    pub fn running_for(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A snapshot of a pool's counters ([`Pool::stats`], [`crate::stats`]).
///
/// # Example
///
/// ```
/// let s = velocity_async::stats();
/// assert!(s.threads_idle + s.threads_running <= s.threads_alive + 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Threads alive (or starting).
    pub threads_alive: usize,
    /// Threads sleeping until work arrives.
    pub threads_idle: usize,
    /// Threads running a job.
    pub threads_running: usize,
    /// Workers blocked waiting on a task.
    pub threads_blocked: usize,
    /// Jobs waiting for a thread.
    pub queued: usize,
    /// Jobs finished (including panicked ones), on workers or inline.
    pub completed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs still running although their task already timed out or was
    /// cancelled (work that cannot be killed is counted, never hidden).
    pub abandoned: usize,
    /// Jobs never called because their task was cancelled or timed out first.
    pub skipped: u64,
    /// Jobs run by the thread waiting on them instead of a worker.
    pub ran_inline: u64,
    /// Threads started over the pool's life.
    pub threads_spawned: u64,
    /// Thread starts the operating system refused.
    pub spawn_failures: u64,
    /// Whether [`Pool::shutdown`] was called.
    pub shut_down: bool,
}

/// What [`Pool::shutdown`] found when it returned.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// let report = velocity_async::Pool::builder().build().shutdown(Duration::ZERO);
/// assert!(report.is_complete());
/// assert_eq!(report.still_running(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    complete: bool,
    running: usize,
    queued: usize,
    abandoned: usize,
}

impl ShutdownReport {
    pub(crate) fn new(complete: bool, running: usize, queued: usize, abandoned: usize) -> Self {
        ShutdownReport {
            complete,
            running,
            queued,
            abandoned,
        }
    }

    /// True if everything submitted had finished.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().build();
    /// pool.go(|| ());
    /// assert!(pool.shutdown(Duration::from_secs(30)).is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Jobs still running when the call returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = velocity_async::Pool::builder().build();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let (started_tx, started_rx) = std::sync::mpsc::channel();
    /// pool.go(move || { started_tx.send(()).unwrap(); let _ = rx.recv(); });
    /// started_rx.recv().unwrap();
    /// assert_eq!(pool.shutdown(Duration::from_millis(1)).still_running(), 1);
    /// drop(tx);
    /// assert!(pool.shutdown(Duration::from_secs(30)).is_complete());
    /// ```
    pub fn still_running(&self) -> usize {
        self.running
    }

    /// Jobs still queued when the call returned (they will still run).
    ///
    /// ```
    /// use std::time::Duration;
    /// let report = velocity_async::Pool::builder().build().shutdown(Duration::ZERO);
    /// assert_eq!(report.still_queued(), 0);
    /// ```
    pub fn still_queued(&self) -> usize {
        self.queued
    }

    /// Of the running jobs, those whose task had already timed out or been
    /// cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// let report = velocity_async::Pool::builder().build().shutdown(Duration::ZERO);
    /// assert_eq!(report.abandoned(), 0);
    /// ```
    pub fn abandoned(&self) -> usize {
        self.abandoned
    }
}
