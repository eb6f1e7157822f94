//! The adaptive elastic pool: private machinery behind every function of the
//! crate. `README.md` beside this file explains how it grows, spins, sleeps
//! and retires, and why it cannot deadlock; the public face is [`Pool`] and
//! [`Builder`] in `builder.rs`.

mod builder;
mod monitor;
mod os;
mod policy;
mod worker;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

pub use builder::{
    Builder, Pool, RunningTask, ShutdownReport, Stats, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_THREADS,
};

use crate::error::{Error, SpawnError};
use crate::sync::thread::{self, Thread};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard};
use os::ThreadProbe;

pub(crate) use policy::Wake;
use policy::{Counts, OnSubmit, Take};

/// What the pool's queue holds for a task: run it unless a waiter already did.
pub(crate) trait Runnable: Send + Sync {
    /// Runs the job if nobody claimed it yet.
    fn run_queued(&self);
    /// The pool could not run the job: decide the outcome with `err`.
    fn refuse(&self, err: Error);
    /// The loop (scope) this job helps, if it is a loop helper: non-zero,
    /// unique per scope. The monitor promotes the queued helpers of a loop
    /// whose running helpers it finds blocked.
    fn scope_id(&self) -> u64 {
        0
    }
    /// Already run by someone else (a loop's caller ran the helper nobody
    /// took): popping it costs nothing.
    fn is_claimed(&self) -> bool {
        false
    }
}

/// A unit of work in the queue.
pub(crate) enum Job {
    /// A task with a handle; a waiter may have run it inline already.
    Task(Arc<dyn Runnable>),
    /// Fire-and-forget work, already wrapped in its panic policy. Returns true
    /// if it panicked.
    Go(Box<dyn FnOnce() -> bool + Send>),
}

impl Job {
    /// Whether the job was already run elsewhere (`Runnable::is_claimed`).
    fn is_claimed(&self) -> bool {
        match self {
            Job::Task(t) => t.is_claimed(),
            Job::Go(_) => false,
        }
    }

    /// The loop this job helps, or 0 (`Runnable::scope_id`).
    fn scope_id(&self) -> u64 {
        match self {
            Job::Task(t) => t.scope_id(),
            Job::Go(_) => 0,
        }
    }

    /// Runs the job on this thread and counts it in `shared`'s stats.
    fn run(self, shared: &Shared) {
        match self {
            Job::Task(t) => t.run_queued(),
            Job::Go(f) => shared.count_done(f()),
        }
    }

    /// The pool cannot run this job: a task resolves with `err`. Fire-and-
    /// forget work has nobody to report to, so when no thread could be started
    /// it runs on the submitting thread rather than be lost; after a shutdown
    /// it is dropped uncalled (`Pool::try_go` reports that).
    #[cold]
    pub(crate) fn refuse(self, err: Error) {
        match self {
            Job::Task(t) => t.refuse(err),
            Job::Go(f) => {
                if matches!(err, Error::Spawn(_)) {
                    f();
                } else {
                    crate::panic::drop_quietly(f);
                }
            }
        }
    }
}

/// Settings fixed when a pool is built.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) name: String,
    pub(crate) stack_size: Option<usize>,
    /// How many threads should be computing at once (Go's GOMAXPROCS).
    pub(crate) target_running: usize,
    pub(crate) monitor_interval: Duration,
    pub(crate) spin: Duration,
}

/// A worker's public face, read by the monitor.
pub(crate) struct WorkerInfo {
    pub(crate) id: u64,
    /// Its CPU time and run state, where the platform tells.
    pub(crate) probe: ThreadProbe,
    pub(crate) born: Instant,
    /// Running a job. ORDERING: Relaxed; the monitor's view is advisory.
    pub(crate) busy: AtomicBool,
    /// Blocked in `Task::wait` (known to block, no clock needed).
    pub(crate) blocked: AtomicBool,
    /// Waiting inside its job for work that is not there yet (a loop's
    /// helper or caller waiting for its input, `IdleGuard`): neither
    /// computing nor blocked work, so the monitor leaves it out.
    pub(crate) idle_in_job: AtomicBool,
    /// Jobs started; progress for platforms without thread clocks.
    pub(crate) jobs: AtomicU64,
    /// Set the first time the worker goes idle: from then on its CPU time
    /// since birth no longer measures its current job.
    pub(crate) has_idled: AtomicBool,
    /// The loop whose helper it runs (`Runnable::scope_id`), or 0.
    pub(crate) scope: AtomicU64,
    /// For a thread outside the pool: the pool (`Shared::id`) whose loop it
    /// runs the items of now, or 0. Its record stays in the lists of the
    /// pools it ever ran a loop of (`Shared::callers`); the monitor samples
    /// it only while this names its own pool.
    pub(crate) caller_of: AtomicU64,
    /// Found the pool's lock held on its way to the next job since the
    /// monitor last looked (`Shared::lock_between_jobs`); the monitor clears it.
    pub(crate) waited_for_lock: AtomicBool,
}

/// How an idle worker is woken.
pub(crate) struct Sleeper {
    thread: Thread,
    /// Written only under the pool lock: set by whoever pops the sleeper
    /// from the idle list, cleared by the worker when it pushes itself. So a
    /// worker is in the idle list exactly when it pushed itself and
    /// `notified` is still false. ORDERING: Relaxed suffices under the lock;
    /// the sleeper's lock-free check after waking is only a hint.
    notified: AtomicBool,
}

impl Sleeper {
    fn unpark(&self) {
        self.thread.unpark();
    }
}

impl State {
    /// Pops the most recently idle worker and marks it woken. The caller
    /// unparks it after releasing the lock.
    fn pop_idle(&mut self) -> Option<Arc<Sleeper>> {
        let s = self.idle.pop()?;
        s.notified.store(true, Ordering::Relaxed);
        self.waking += 1;
        Some(s)
    }
}

/// What `Shared::call_monitor` decided.
pub(crate) enum MonitorCall {
    Nothing,
    Notify,
    Start,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub(crate) queue: VecDeque<(Job, Wake)>,
    /// How many queued jobs are `Wake::Eager`.
    pub(crate) eager_queued: usize,
    /// Sleeping workers, most recently idle last (LIFO: warm threads are
    /// reused, cold ones reach their keep-alive and retire).
    pub(crate) idle: Vec<Arc<Sleeper>>,
    /// Threads alive or being started.
    pub(crate) alive: usize,
    /// Workers running a job.
    pub(crate) running: usize,
    /// Jobs submitted and not yet finished (queued or running).
    pub(crate) outstanding: usize,
    pub(crate) closed: bool,
    pub(crate) workers: Vec<Arc<WorkerInfo>>,
    pub(crate) next_id: u64,
    /// The monitor thread is alive.
    pub(crate) monitor: bool,
    /// The monitor is waiting for the queue to back up.
    pub(crate) monitor_sleeping: bool,
    /// Workers woken (popped from `idle`) or being started that have not yet
    /// looked at the queue. While one is in flight, submitters do not wake
    /// more: the woken worker fans the wake-ups out itself (see README.md).
    pub(crate) waking: usize,
}

impl State {
    /// Counts a thread about to be spawned: alive, and on its way to the
    /// queue (in `waking`) until its first look at it, so submitters and the
    /// monitor see it coming and do not start another for the same work.
    fn reserve_thread(&mut self) {
        self.alive += 1;
        self.waking += 1;
    }

    /// Turns the queued helpers of the loops in `scopes` into eager jobs: the
    /// monitor found helpers of theirs blocked, so these are blocking work
    /// that must get threads whatever the CPU load. Returns how many.
    pub(crate) fn promote(&mut self, scopes: &[u64]) -> usize {
        let mut promoted = 0;
        for (job, wake) in &mut self.queue {
            if *wake == Wake::Elastic && scopes.contains(&job.scope_id()) {
                *wake = Wake::Eager;
                promoted += 1;
            }
        }
        self.eager_queued += promoted;
        promoted
    }

    /// Pops the oldest job, or with `eager_only` the oldest eager one,
    /// keeping `eager_queued` in step.
    pub(crate) fn pop_job(&mut self, eager_only: bool) -> Option<Job> {
        let at = if eager_only {
            if self.eager_queued == 0 {
                return None;
            }
            self.queue.iter().position(|(_, w)| *w == Wake::Eager)?
        } else {
            0
        };
        let (job, wake) = self.queue.remove(at)?;
        if wake == Wake::Eager {
            self.eager_queued -= 1;
        }
        Some(job)
    }
}

/// The pool's shared core. `Pool` handles, workers and tasks hold an `Arc`.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) config: Config,
    /// Mirror of `state.queue.len()`, for spinners to watch without the lock.
    queued: AtomicUsize,
    /// Workers spinning for work. Incremented without the lock; decremented
    /// under it, followed by a check of the queue (see README.md).
    spinners: AtomicUsize,
    /// Signalled when `outstanding` reaches zero or a thread exits.
    drained: Condvar,
    monitor_wake: Condvar,
    completed: AtomicU64,
    panicked: AtomicU64,
    abandoned: AtomicUsize,
    skipped: AtomicU64,
    inline: AtomicU64,
    blocked: AtomicUsize,
    spawned: AtomicU64,
    spawn_failures: AtomicU64,
    /// Threads the monitor still wants started; new workers start them.
    pub(crate) grow_budget: AtomicUsize,
    /// Threads outside the pool running a loop's items themselves (the
    /// caller of `map` or `all`): they occupy a CPU like a running worker.
    external: AtomicUsize,
    /// The records of the threads outside the pool that ran a loop of it
    /// and still live (each listed once, on its first loop here); the
    /// monitor samples those in a loop now (`WorkerInfo::caller_of`).
    callers: Mutex<Vec<Weak<WorkerInfo>>>,
    /// Unique among the process's pools, never 0 (`WorkerInfo::caller_of`).
    id: u64,
    /// Named tasks running now, for `Pool::running_tasks`; unnamed tasks
    /// never touch it.
    named: Mutex<Vec<NamedRun>>,
    next_named: AtomicU64,
    /// Unit tests only: the pool's threads, so `shutdown_and_join` can join
    /// them (Miri's leak check fails a test that ends with threads running).
    /// Everywhere else threads are detached.
    #[cfg(all(test, not(velocity_loom)))]
    handles: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// One named task that is running.
#[derive(Clone)]
pub(crate) struct NamedRun {
    id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) started: Instant,
}

/// Lists a named task as running (and shows its name as the worker thread's)
/// until dropped.
pub(crate) struct NamedGuard<'a> {
    shared: &'a Shared,
    id: u64,
    renamed: bool,
}

impl Drop for NamedGuard<'_> {
    fn drop(&mut self) {
        if self.renamed {
            os::set_thread_name(&self.shared.config.name);
        }
        let mut named = self.shared.named.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = named.iter().position(|r| r.id == self.id) {
            named.swap_remove(i);
        }
    }
}

crate::sync::thread_local_const! {
    /// The pool and worker record of the current thread, if it is a worker.
    static WORKER: RefCell<Option<(Arc<Shared>, Arc<WorkerInfo>)>> = RefCell::new(None);
}

crate::sync::thread_local_const! {
    /// The pool installed on this thread by `Pool::install`, if any.
    static INSTALLED: RefCell<Option<Arc<Shared>>> = RefCell::new(None);
}

/// The pool that free functions use: the one installed on this thread, else
/// the current worker's pool, else the global one.
pub(crate) fn current() -> Arc<Shared> {
    INSTALLED
        .try_with(|i| i.borrow().clone())
        .ok()
        .flatten()
        .or_else(|| {
            WORKER
                .try_with(|w| w.borrow().as_ref().map(|(s, _)| s.clone()))
                .ok()
                .flatten()
        })
        .unwrap_or_else(|| global().shared.clone())
}

/// Restores the previously installed pool when dropped (also on unwind).
struct InstallGuard {
    previous: Option<Arc<Shared>>,
}

impl Drop for InstallGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = INSTALLED.try_with(|i| *i.borrow_mut() = previous);
    }
}

/// Runs `f` with `shared` as the pool of the free functions on this thread.
pub(crate) fn install<R>(shared: &Arc<Shared>, f: impl FnOnce() -> R) -> R {
    let previous = INSTALLED
        .try_with(|i| i.borrow_mut().replace(shared.clone()))
        .ok()
        .flatten();
    let _guard = InstallGuard { previous };
    f()
}

/// The lazily built global pool (default settings).
pub(crate) fn global() -> &'static Pool {
    static GLOBAL: OnceLock<Pool> = OnceLock::new();
    GLOBAL.get_or_init(|| Builder::new().build())
}

crate::sync::thread_local_const! {
    /// The record of a thread outside the pool while it runs a loop's items
    /// (made on its first loop, then reused): the monitor samples it like a
    /// worker's, so a loop whose caller blocks is seen blocking.
    static CALLER: RefCell<Option<Caller>> = RefCell::new(None);
}

/// A thread's record as a loop caller, and the pools it knows it is listed
/// in (`Shared::callers`).
struct Caller {
    info: Arc<WorkerInfo>,
    /// `Shared::id`s, the most recent last; at most `LISTED_KNOWN`. A pool
    /// not among them is asked under its lock, so forgetting one costs a
    /// lock, never a second listing.
    listed: Vec<u64>,
}

/// How many pools a thread remembers being listed in (`Caller::listed`):
/// a thread rarely runs loops of more pools than that in turn.
const LISTED_KNOWN: usize = 4;

impl Caller {
    fn new() -> Caller {
        // Ids of callers never meet workers' ids (counted from 0 per pool).
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 63);
        let info = Arc::new(WorkerInfo {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            probe: ThreadProbe::current(),
            born: Instant::now(),
            busy: AtomicBool::new(true),
            blocked: AtomicBool::new(false),
            idle_in_job: AtomicBool::new(false),
            waited_for_lock: AtomicBool::new(false),
            jobs: AtomicU64::new(0),
            // Not measured from its birth: it did other things.
            has_idled: AtomicBool::new(true),
            scope: AtomicU64::new(0),
            caller_of: AtomicU64::new(0),
        });
        Caller {
            info,
            listed: Vec::with_capacity(LISTED_KNOWN),
        }
    }
}

/// The calling thread's record as a loop caller (see `CALLER`), listed in
/// `shared`'s callers.
fn caller_info(shared: &Shared) -> Option<Arc<WorkerInfo>> {
    CALLER
        .try_with(|c| {
            let mut c = c.borrow_mut();
            let caller = c.get_or_insert_with(Caller::new);
            if !caller.listed.contains(&shared.id) {
                shared.list_caller(&caller.info);
                if caller.listed.len() == LISTED_KNOWN {
                    caller.listed.remove(0);
                }
                caller.listed.push(shared.id);
            }
            caller.info.clone()
        })
        .ok()
}

/// Undoes [`Shared::enter_external`].
pub(crate) struct ExternalGuard<'a> {
    /// Set for a thread outside the pool: counted in `external`.
    shared: Option<&'a Shared>,
    info: Option<Arc<WorkerInfo>>,
    previous_scope: u64,
    /// For a thread outside the pool, the pool it was a caller of before
    /// (a loop inside a loop's item).
    previous_pool: u64,
}

impl Drop for ExternalGuard<'_> {
    fn drop(&mut self) {
        if let Some(info) = &self.info {
            info.scope.store(self.previous_scope, Ordering::Relaxed);
            if self.shared.is_some() {
                info.caller_of.store(self.previous_pool, Ordering::Relaxed);
            }
        }
        if let Some(shared) = self.shared {
            shared.external.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Marks the current worker, or loop caller, as idle inside its job while
/// alive (see `WorkerInfo::idle_in_job`): a loop helper parked until its
/// input has more. Counted as blocked, it would grow the pool and promote
/// the loop's helpers, which would find nothing to do.
pub(crate) struct IdleGuard {
    info: Option<Arc<WorkerInfo>>,
}

impl IdleGuard {
    pub(crate) fn enter() -> IdleGuard {
        let info = WORKER
            .try_with(|w| w.borrow().as_ref().map(|(_, info)| info.clone()))
            .ok()
            .flatten()
            .or_else(|| {
                CALLER
                    .try_with(|c| c.borrow().as_ref().map(|c| c.info.clone()))
                    .ok()
                    .flatten()
            });
        if let Some(info) = &info {
            info.idle_in_job.store(true, Ordering::Relaxed);
        }
        IdleGuard { info }
    }
}

impl Drop for IdleGuard {
    fn drop(&mut self) {
        if let Some(info) = &self.info {
            info.idle_in_job.store(false, Ordering::Relaxed);
        }
    }
}

/// Marks the current worker as blocked while alive (see `Task::wait`).
pub(crate) struct BlockedGuard {
    worker: Option<(Arc<Shared>, Arc<WorkerInfo>)>,
}

impl BlockedGuard {
    /// If this thread is a worker, counts it as blocked and, if work is
    /// waiting and no thread is free, starts one: Go's hand-off of a thread
    /// that enters a blocking system call.
    pub(crate) fn enter() -> BlockedGuard {
        let worker = WORKER.try_with(|w| w.borrow().clone()).ok().flatten();
        if let Some((shared, info)) = &worker {
            info.blocked.store(true, Ordering::Relaxed);
            shared.blocked.fetch_add(1, Ordering::Relaxed);
            shared.replace_blocked_worker();
        }
        BlockedGuard { worker }
    }
}

impl Drop for BlockedGuard {
    fn drop(&mut self) {
        if let Some((shared, info)) = &self.worker {
            info.blocked.store(false, Ordering::Relaxed);
            shared.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Shared {
    pub(crate) fn new(config: Config) -> Shared {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                eager_queued: 0,
                idle: Vec::new(),
                alive: 0,
                running: 0,
                outstanding: 0,
                closed: false,
                workers: Vec::new(),
                next_id: 0,
                monitor: false,
                monitor_sleeping: false,
                waking: 0,
            }),
            config,
            queued: AtomicUsize::new(0),
            spinners: AtomicUsize::new(0),
            drained: Condvar::new(),
            monitor_wake: Condvar::new(),
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            abandoned: AtomicUsize::new(0),
            skipped: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            blocked: AtomicUsize::new(0),
            spawned: AtomicU64::new(0),
            spawn_failures: AtomicU64::new(0),
            grow_budget: AtomicUsize::new(0),
            external: AtomicUsize::new(0),
            callers: Mutex::new(Vec::new()),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
            named: Mutex::new(Vec::new()),
            next_named: AtomicU64::new(0),
            #[cfg(all(test, not(velocity_loom)))]
            handles: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic inside the pool's own bookkeeping
        // (user code never runs under it); the state is still consistent
        // because every critical section finishes its updates before anything
        // that could panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock, taken by a worker between two jobs. A worker that finds it
    /// held (a submitter or another worker has it) says so in `info`: the
    /// CPU time it then spends asleep on this lock is the pool's own
    /// contention, which more threads would only worsen, not blocking work
    /// (the monitor's `classify` reads the flag).
    pub(crate) fn lock_between_jobs(&self, info: &WorkerInfo) -> MutexGuard<'_, State> {
        match self.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                info.waited_for_lock.store(true, Ordering::Relaxed);
                self.lock()
            }
        }
    }

    /// How many threads may be alive, and how many jobs may run at once:
    /// `max_threads`, plus one for every worker blocked in a wait of ours
    /// (`Task::wait`, a loop's join, `Context::wait`). A blocked worker lends
    /// its slot, as Go
    /// hands a blocked thread's P to another: the work it waits for must stay
    /// runnable at the cap, or a nested wait could outlive its deadline
    /// (run inline) or never end (a race at the cap). `max_threads` therefore
    /// bounds the threads *running user code*; the threads alive exceed it
    /// only by waiters of ours (README.md, "Why nested waits cannot
    /// deadlock").
    pub(crate) fn cap(&self) -> usize {
        policy::cap(self.config.max_threads, self.blocked.load(Ordering::SeqCst))
    }

    /// The counters the wake policy reads (`policy.rs`), at this moment.
    pub(crate) fn counts(&self, st: &State) -> Counts {
        Counts {
            queued: st.queue.len(),
            eager_queued: st.eager_queued,
            front_claimed: st.queue.front().is_some_and(|(job, _)| job.is_claimed()),
            running: st.running,
            waking: st.waking,
            spinners: self.spinners.load(Ordering::SeqCst),
            idle: st.idle.len(),
            alive: st.alive,
            external: self.external.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::SeqCst),
            target_running: self.config.target_running,
            max_threads: self.config.max_threads,
            closed: st.closed,
        }
    }

    /// Whether a worker may take a job now (`policy::take`).
    pub(crate) fn can_take(&self, st: &State) -> bool {
        policy::take(&self.counts(st)).is_some()
    }

    /// Pops the job a worker may take now (`policy::take`).
    pub(crate) fn take_job(&self, st: &mut State) -> Option<Job> {
        let take = policy::take(&self.counts(st))?;
        st.pop_job(take == Take::OldestEager)
    }

    /// Lists the named task about to run on this thread until the guard
    /// drops; on one of this pool's workers, the thread shows its name.
    pub(crate) fn enter_named(self: &Arc<Self>, name: &Arc<str>) -> NamedGuard<'_> {
        let id = self.next_named.fetch_add(1, Ordering::Relaxed);
        self.named
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(NamedRun {
                id,
                name: name.clone(),
                started: Instant::now(),
            });
        let renamed = self.is_own_worker();
        if renamed {
            os::set_thread_name(name);
        }
        NamedGuard {
            shared: self,
            id,
            renamed,
        }
    }

    /// The named tasks running now.
    pub(crate) fn named_runs(&self) -> Vec<NamedRun> {
        self.named.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The calling thread runs the items of loop `scope` while the guard
    /// lives: its record says so (for the monitor to promote the loop's
    /// helpers should it block), and unless it is one of the pool's own
    /// workers (already counted) it counts as computing and is sampled.
    pub(crate) fn enter_external(&self, scope: u64) -> ExternalGuard<'_> {
        let own = WORKER
            .try_with(|w| {
                w.borrow()
                    .as_ref()
                    .filter(|(s, _)| std::ptr::eq(Arc::as_ptr(s), self))
                    .map(|(_, info)| info.clone())
            })
            .ok()
            .flatten();
        let (shared, info) = match own {
            Some(info) => (None, Some(info)),
            None => {
                self.external.fetch_add(1, Ordering::Relaxed);
                (Some(self), caller_info(self))
            }
        };
        let previous_scope = info
            .as_ref()
            .map_or(0, |i| i.scope.swap(scope, Ordering::Relaxed));
        // Sampled by its clock, or without one by the fallback's process
        // clock (`monitor.rs`, `Fallback`), like a worker.
        let previous_pool = match (shared, &info) {
            (Some(_), Some(info)) => info.caller_of.swap(self.id, Ordering::Relaxed),
            _ => 0,
        };
        ExternalGuard {
            shared,
            info,
            previous_scope,
            previous_pool,
        }
    }

    /// Lists `info` among this pool's loop callers unless it already is.
    fn list_caller(&self, info: &Arc<WorkerInfo>) {
        let mut callers = self.live_callers();
        if !callers
            .iter()
            .any(|c| std::ptr::eq(c.as_ptr(), Arc::as_ptr(info)))
        {
            callers.push(Arc::downgrade(info));
        }
    }

    /// The callers' list, locked, without the records of threads that have
    /// exited.
    fn live_callers(&self) -> MutexGuard<'_, Vec<Weak<WorkerInfo>>> {
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        callers.retain(|c| c.strong_count() > 0);
        callers
    }

    /// The records of the loop callers outside the pool that run one of its
    /// loops now, for the monitor.
    pub(crate) fn callers(&self) -> Vec<Arc<WorkerInfo>> {
        self.live_callers()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.caller_of.load(Ordering::Relaxed) == self.id)
            .collect()
    }

    /// Work waits that no thread is on its way to take (`policy::starving`).
    pub(crate) fn starving(&self, st: &State) -> bool {
        policy::starving(&self.counts(st))
    }

    /// Queues `job` and makes sure some thread will run it. Hands the job
    /// back if the pool is shut down.
    pub(crate) fn submit(self: &Arc<Self>, job: Job, wake: Wake) -> Result<(), Job> {
        let mut st = self.lock();
        if st.closed {
            return Err(job);
        }
        st.queue.push_back((job, wake));
        if wake == Wake::Eager {
            st.eager_queued += 1;
        }
        st.outstanding += 1;
        let queued = st.queue.len();
        // ORDERING: Release pairs with the spinners' Acquire load; they then
        // take the lock to pop, which is what actually synchronises.
        self.queued.store(queued, Ordering::Release);
        match policy::on_submit(&self.counts(&st), wake) {
            OnSubmit::Nothing => return Ok(()),
            OnSubmit::WakeOrStart { cap } => match self.wake_or_start(st, cap) {
                Some(back) => st = back,
                None => return Ok(()),
            },
            OnSubmit::Monitor => {}
        }
        self.wake_monitor(st);
        Ok(())
    }

    /// Wakes an idle worker, or else starts one if fewer than `cap` threads
    /// live. Hands the lock back if it could do neither.
    fn wake_or_start<'a>(
        self: &Arc<Self>,
        mut st: MutexGuard<'a, State>,
        cap: usize,
    ) -> Option<MutexGuard<'a, State>> {
        if let Some(sleeper) = st.pop_idle() {
            drop(st);
            sleeper.unpark();
            None
        } else if st.alive < cap {
            self.start_worker(st);
            None
        } else {
            Some(st)
        }
    }

    /// A worker is about to block: if work waits, wake an idle worker or
    /// start one (its slot is lent, see `cap`), so the CPU it leaves is used
    /// and the work it may be waiting for runs. Also after a shutdown: the
    /// work it waits for was submitted before and must run.
    pub(crate) fn replace_blocked_worker(self: &Arc<Self>) {
        let st = self.lock();
        if st.queue.is_empty() {
            return;
        }
        let _ = self.wake_or_start(st, self.cap());
    }

    /// Gives the queue `n` more workers: idle ones first, then new threads
    /// (started as a tree, see `pass_on_growth`). Called by the monitor.
    pub(crate) fn add_workers(self: &Arc<Self>, n: usize) {
        let mut st = self.lock();
        let mut woken = Vec::new();
        while woken.len() < n {
            match st.pop_idle() {
                Some(s) => woken.push(s),
                None => break,
            }
        }
        // A closed pool grows too: work submitted before the shutdown may
        // wait for work queued behind it, and must all run.
        let spawn = (n - woken.len()).min(self.cap().saturating_sub(st.alive));
        let spawn_now = spawn > 0;
        if spawn_now {
            self.grow_budget.store(spawn - 1, Ordering::Relaxed);
            st.reserve_thread();
        }
        drop(st);
        for s in woken {
            s.unpark();
        }
        if spawn_now {
            self.spawn_worker();
        }
    }

    /// Called by a new worker: starts up to two of the threads the monitor
    /// still wants, while work is still starving.
    pub(crate) fn pass_on_growth(self: &Arc<Self>) {
        for _ in 0..2 {
            let took = self
                .grow_budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .is_ok();
            if !took {
                return;
            }
            let st = self.lock();
            if !self.starving(&st) || st.alive >= self.cap() {
                self.grow_budget.store(0, Ordering::Relaxed);
                return;
            }
            self.start_worker(st);
        }
    }

    /// Starts a worker thread: counts it in `alive` under the lock `st`
    /// (so the cap holds), then spawns outside the lock.
    fn start_worker(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        st.reserve_thread();
        drop(st);
        self.spawn_worker();
    }

    /// Starts a worker thread; `alive` was already incremented for it.
    fn spawn_worker(self: &Arc<Self>) {
        let mut builder = thread::Builder::new().name(self.config.name.clone());
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        let shared = self.clone();
        match builder.spawn(move || worker::main_loop(shared)) {
            Ok(handle) => {
                self.spawned.fetch_add(1, Ordering::Relaxed);
                self.keep_handle(handle);
            }
            Err(e) => self.spawn_failed(e),
        }
    }

    /// Rolls back a failed spawn. If no worker is left to run the queue, every
    /// queued job is refused with the error rather than stranded.
    #[cold]
    fn spawn_failed(self: &Arc<Self>, e: std::io::Error) {
        self.spawn_failures.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        st.alive -= 1;
        st.waking -= 1;
        if st.alive > 0 {
            // The living workers will get to the queue, but submitters may
            // have counted on this thread (it was in `waking`) and woken
            // nobody: wake a sleeper, or have the monitor look.
            if !st.queue.is_empty() {
                if let Some(sleeper) = st.pop_idle() {
                    drop(st);
                    sleeper.unpark();
                } else {
                    self.wake_monitor(st);
                }
            }
            return;
        }
        let jobs: Vec<Job> = st.queue.drain(..).map(|(job, _)| job).collect();
        st.eager_queued = 0;
        st.outstanding -= jobs.len();
        self.queued.store(0, Ordering::Release);
        let drained = st.outstanding == 0;
        drop(st);
        if drained {
            self.drained.notify_all();
        }
        let err = Error::Spawn(SpawnError::new(e));
        for job in jobs {
            job.refuse(err.clone());
        }
    }

    fn wake_monitor(self: &Arc<Self>, mut st: MutexGuard<'_, State>) {
        let call = Self::call_monitor(&mut st);
        drop(st);
        self.finish_monitor_call(call);
    }

    /// Under the lock: what it takes to get the monitor looking at the
    /// queue. `finish_monitor_call` does it once the lock is released.
    pub(crate) fn call_monitor(st: &mut State) -> MonitorCall {
        if !st.monitor {
            st.monitor = true;
            MonitorCall::Start
        } else if st.monitor_sleeping {
            st.monitor_sleeping = false;
            MonitorCall::Notify
        } else {
            MonitorCall::Nothing
        }
    }

    /// Wakes or starts the monitor as `call_monitor` decided (without the
    /// pool lock held).
    pub(crate) fn finish_monitor_call(self: &Arc<Self>, call: MonitorCall) {
        match call {
            MonitorCall::Nothing => {}
            MonitorCall::Notify => self.monitor_wake.notify_one(),
            // Under loom (no clock to tick by) the monitor is never started:
            // the pool takes the path of a monitor that could not be spawned.
            MonitorCall::Start if cfg!(velocity_loom) => self.lock().monitor = false,
            MonitorCall::Start => {
                let weak = Arc::downgrade(self);
                let spawned = std::thread::Builder::new()
                    .name(format!("{}-monitor", self.config.name))
                    .spawn(move || {
                        // It runs no user code; should a bug of ours panic
                        // in it, the next backed-up submission starts a
                        // new one instead of the pool never growing again.
                        let run = std::panic::AssertUnwindSafe(|| monitor::main_loop(weak.clone()));
                        if let Err(payload) = std::panic::catch_unwind(run) {
                            crate::panic::recover(payload);
                            if let Some(shared) = weak.upgrade() {
                                let mut st = shared.lock();
                                st.monitor = false;
                                st.monitor_sleeping = false;
                            }
                        }
                    });
                if let Ok(handle) = spawned {
                    self.keep_handle(handle);
                } else {
                    // Without a monitor the pool still grows on blocked
                    // waits; the next backed-up submission tries again.
                    self.lock().monitor = false;
                }
            }
        }
    }

    /// Unit tests keep the pool's threads to join them; otherwise they are
    /// detached.
    #[cfg(all(test, not(velocity_loom)))]
    fn keep_handle(&self, handle: std::thread::JoinHandle<()>) {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
    }

    #[cfg(not(all(test, not(velocity_loom))))]
    fn keep_handle<H>(&self, _handle: H) {}

    /// Unit tests only: shuts down, waiting as long as it takes, then joins
    /// every thread the pool started (a worker may start more while
    /// finishing, so until none is left).
    #[cfg(all(test, not(velocity_loom)))]
    pub(crate) fn shutdown_and_join(self: &Arc<Self>) -> ShutdownReport {
        let report = self.shutdown(Duration::MAX);
        loop {
            let handles =
                std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
            if handles.is_empty() {
                return report;
            }
            for h in handles {
                let _ = h.join();
            }
        }
    }

    /// Whether the calling thread is one of this pool's workers.
    pub(crate) fn is_own_worker(self: &Arc<Self>) -> bool {
        WORKER
            .try_with(|w| {
                w.borrow()
                    .as_ref()
                    .is_some_and(|(s, _)| Arc::ptr_eq(s, self))
            })
            .unwrap_or(false)
    }

    pub(crate) fn count_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_inline(&self) {
        self.inline.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_done(&self, panicked: bool) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        if panicked {
            self.panicked.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn abandoned_started(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn abandoned_finished(&self) {
        self.abandoned.fetch_sub(1, Ordering::Relaxed);
    }

    /// Closes the pool and waits up to `timeout` for submitted work to finish.
    pub(crate) fn shutdown(self: &Arc<Self>, timeout: Duration) -> ShutdownReport {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.lock();
        st.closed = true;
        let mut idle = Vec::new();
        while let Some(s) = st.pop_idle() {
            idle.push(s);
        }
        let monitor_sleeping = std::mem::replace(&mut st.monitor_sleeping, false);
        // Work queued before the shutdown still runs. If no thread is alive
        // to run it (say, loop helpers that the caller did not need, on a
        // pool that never started a worker), start one: a closed pool does
        // not grow otherwise. (With no thread alive, none is idle either.)
        if !st.queue.is_empty() && st.alive == 0 {
            self.start_worker(st);
        } else {
            drop(st);
        }
        for s in idle {
            s.unpark();
        }
        if monitor_sleeping {
            self.monitor_wake.notify_one();
        }
        let mut st = self.lock();
        loop {
            if st.outstanding == 0 {
                break;
            }
            let now = Instant::now();
            st = match deadline {
                Some(d) if now >= d => break,
                Some(d) => {
                    self.drained
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.drained.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
        }
        ShutdownReport::new(
            st.outstanding == 0,
            st.running,
            st.queue.len(),
            self.abandoned.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            threads_alive: st.alive,
            threads_idle: st.idle.len(),
            threads_running: st.running,
            threads_blocked: self.blocked.load(Ordering::Relaxed),
            queued: st.queue.len(),
            completed: self.completed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            ran_inline: self.inline.load(Ordering::Relaxed),
            threads_spawned: self.spawned.load(Ordering::Relaxed),
            spawn_failures: self.spawn_failures.load(Ordering::Relaxed),
            shut_down: st.closed,
        }
    }
}

#[cfg(all(test, not(velocity_loom)))]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::Builder;

    /// Regression: the monitor, woken by a shutdown while work still ran,
    /// went back to sleep for a whole keep-alive (an hour here), so its
    /// thread outlived the shutdown and `shutdown_and_join` hung.
    #[test]
    fn the_monitor_exits_once_a_shutdown_has_drained() {
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let pool = Builder::new()
                .max_threads(1)
                .target_running(1)
                .keep_alive(Duration::from_secs(3600))
                .build();
            // One job blocks the only worker, a second queues: the monitor starts.
            let (release_a, a) = mpsc::channel::<()>();
            let (release_b, b) = mpsc::channel::<()>();
            pool.go(move || a.recv().unwrap());
            pool.go(move || b.recv().unwrap());
            let started = |pool: &crate::Pool| pool.shared.lock().monitor;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !started(&pool) && Instant::now() < deadline {
                std::thread::yield_now();
            }
            assert!(started(&pool), "the monitor never started");
            // Let the second job run, then wait until the monitor sleeps
            // (nothing is starving) while work is still outstanding.
            release_a.send(()).unwrap();
            let sleeping = |pool: &crate::Pool| pool.shared.lock().monitor_sleeping;
            while !sleeping(&pool) && Instant::now() < deadline {
                std::thread::yield_now();
            }
            assert!(sleeping(&pool), "the monitor never went to sleep");
            assert!(!pool.shutdown(Duration::ZERO).is_complete());
            release_b.send(()).unwrap();
            assert!(pool.shared.shutdown_and_join().is_complete());
            done_tx.send(()).unwrap();
        });
        done.recv_timeout(Duration::from_secs(60))
            .expect("the pool's threads did not exit after the shutdown");
    }

    /// A thread outside the pool is listed among its loop callers once,
    /// however many loops it runs and however many pools it alternates
    /// between (more than it remembers), and is forgotten once it exits.
    #[test]
    fn a_loop_caller_is_listed_once_and_forgotten_when_its_thread_exits() {
        let pools: Vec<_> = (0..super::LISTED_KNOWN + 2)
            .map(|_| Builder::new().build())
            .collect();
        let listed = |pool: &crate::Pool| {
            let callers = pool.shared.callers.lock().unwrap();
            callers.iter().filter(|c| c.strong_count() > 0).count()
        };
        // Joined with `join`, not in a `thread::scope`: the record drops
        // with the thread's locals, which a scope's end does not wait for.
        let pools = std::thread::spawn(move || {
            for _ in 0..3 {
                for pool in &pools {
                    pool.install(|| crate::all((|| 1, || 2)).unwrap());
                }
            }
            for pool in &pools {
                assert_eq!(listed(pool), 1, "listed once");
                // Not in a loop of this pool now: not sampled.
                assert!(pool.shared.callers().is_empty());
            }
            pools
        })
        .join()
        .unwrap();
        for pool in &pools {
            assert_eq!(listed(pool), 0, "the exited thread is forgotten");
            pool.install(|| crate::all((|| 1, || 2)).unwrap());
            assert_eq!(pool.shared.callers.lock().unwrap().len(), 1, "pruned");
        }
    }
}
