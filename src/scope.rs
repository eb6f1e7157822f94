//! Lifetime erasure for the borrowing combinators: the crate's one module of
//! `unsafe` memory reasoning (the other `unsafe` is FFI in
//! `pool/os/`).
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
//! * jobs nobody has started (also those the pool refused: shutdown, no
//!   thread could start) are run by the waiting owner itself; a job refused
//!   after the owner began to wait (spawned by a running job) wakes it to
//!   run that one too. So the latch always reaches zero.
//!
//! The lifetimes follow `std::thread::scope`: a closure may borrow anything
//! that outlives `'scope`, and `'scope` ends inside [`scope`], before it
//! returns.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::context::{Context, FirstError};
use crate::error::Error;
use crate::panic::PanicError;
use crate::pool::{BlockedGuard, Job, Runnable, Shared, Wake};
use crate::semaphore::Semaphore;
use crate::sync::{spin_until, AtomicBool, AtomicUsize, Condvar, Mutex, WAIT_SPIN};

/// Counts jobs in flight; its one owner waits until it reaches zero.
///
/// The count and a "the owner sleeps" bit share one word, so the last
/// `count_down` learns from its own subtraction whether anyone must be
/// woken: a scope whose owner never slept (the common case: it ran the jobs
/// nobody took, or spun while the last one finished) ends without touching
/// the lock or the condition variable (a `notify_all` is a system call
/// whether or not a thread waits). Both sides change the one word with
/// read-modify-writes, whose order is total, so no wake-up is lost: either
/// the owner's `fetch_or` of the bit comes first and the last count-down
/// sees it, or the count-down comes first and the owner's `fetch_or`
/// returns the zero count.
pub(crate) struct Latch {
    /// `ONE` per job in flight, plus `SLEEPING` while the owner is (about
    /// to be) blocked on `cond`. ORDERING: `count_down` is Release and the
    /// owner reads with Acquire, so everything a job wrote (its result) is
    /// visible once the count reads zero.
    state: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

/// The owner is blocked, or about to block, on the latch's condvar.
const SLEEPING: usize = 1;
/// One job in flight.
const ONE: usize = 2;

impl Latch {
    fn new() -> Latch {
        Latch {
            state: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    fn count_up(&self) {
        self.state.fetch_add(ONE, Ordering::Relaxed);
    }

    fn count_down(&self) {
        let before = self.state.fetch_sub(ONE, Ordering::Release);
        if before == ONE | SLEEPING {
            // Take the lock so the owner, between setting the bit and its
            // sleep, cannot miss the notification.
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.cond.notify_all();
        }
    }

    fn is_zero(&self) -> bool {
        self.state.load(Ordering::Acquire) < ONE
    }

    #[cfg(all(test, velocity_loom))]
    fn wait(&self) {
        while !self.wait_or(|| false) {}
    }

    /// Waits until the count reads zero (true) or, checked under the lock
    /// so a `poke` cannot slip past it, `poked()` holds (false). `poked`
    /// may consume what it checks (a swap): it is believed the first time
    /// it holds. Only the latch's owner calls it (one waiter at a time).
    fn wait_or(&self, poked: impl Fn() -> bool) -> bool {
        let was_poked = std::cell::Cell::new(false);
        let spun = spin_until(WAIT_SPIN, || {
            self.is_zero() || {
                was_poked.set(poked());
                was_poked.get()
            }
        });
        if spun {
            return !was_poked.get();
        }
        let _blocked = BlockedGuard::enter();
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let zero = loop {
            // Sets the bit (again: harmless) and reads the count in one step.
            if self.state.fetch_or(SLEEPING, Ordering::Acquire) < ONE {
                break true;
            }
            if poked() {
                break false;
            }
            guard = self.cond.wait(guard).unwrap_or_else(|e| e.into_inner());
        };
        // Awake: a later count-down need not notify. (One that already saw
        // the bit notifies nobody, harmlessly.)
        self.state.fetch_and(!SLEEPING, Ordering::Relaxed);
        drop(guard);
        zero
    }

    /// Wakes the waiter to look at `poked` again.
    fn poke(&self) {
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
        self.cond.notify_all();
    }
}

/// A queued job whose closure borrows from a [`scope`]: one allocation
/// holding the closure and what it takes to claim and count it. Handed out
/// as an `Arc<dyn Runnable>` with its lifetime erased (`Join::spawn_with`).
struct ScopedJob<F> {
    /// The scope's id (`Runnable::scope_id`).
    scope_id: u64,
    /// ORDERING: the claim is a swap; whoever turns it true runs the closure.
    claimed: AtomicBool,
    /// Taken, and so consumed, by the claim's winner.
    run: Mutex<Option<F>>,
    latch: Arc<Latch>,
    shared: Arc<Shared>,
}

impl<F: FnOnce() + Send> ScopedJob<F> {
    /// Runs the closure if nobody claimed it yet.
    fn try_run(&self) {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return;
        }
        let f = self.run.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(f) = f {
            // The closure catches its own panics (see `Join::spawn_with`);
            // calling it consumes and drops it, so its borrows end before the
            // count.
            f();
            self.shared.count_done(false);
        }
        self.latch.count_down();
    }
}

impl<F: FnOnce() + Send> Runnable for ScopedJob<F> {
    /// Runs the job unless someone claimed it: the pool's worker, the
    /// scope's owner (`Join::run_unstarted`) or a joiner (`ScopedTask::join`),
    /// whoever comes first.
    fn run_queued(&self) {
        self.try_run();
    }

    fn scope_id(&self) -> u64 {
        self.scope_id
    }

    fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    fn refuse(&self, _err: Error) {
        // Left unclaimed: the scope's owner runs every job nobody started
        // (`Join::run_unstarted`) before it waits, so the latch reaches zero
        // and nothing is lost. Running it here instead recursed: a refused
        // helper starts helpers that are refused in turn (10,000 jobs with no
        // thread to spawn overflowed the stack).
    }
}

/// A handed-out scoped job, its lifetime erased (see `Join::spawn_with`).
pub(crate) type ScopedRef = Arc<dyn Runnable>;

/// The jobs a scope handed out, for its owner to run those nobody started.
struct Handed {
    /// The first job, kept out of `jobs`: most scopes (a small `all`) hand
    /// out one, which then costs no list.
    first: Option<ScopedRef>,
    jobs: Vec<ScopedRef>,
    /// When `jobs` reaches this length, the claimed ones are dropped from it,
    /// so a scope that spawns millions of jobs keeps only those in the queue.
    prune_at: usize,
}

/// Hands out jobs that may borrow anything outliving `'scope`.
pub(crate) struct Join<'scope, 'env: 'scope> {
    shared: Arc<Shared>,
    /// Unique per scope, never 0 (`Runnable::scope_id`).
    id: u64,
    latch: Arc<Latch>,
    handed: Mutex<Handed>,
    /// Set when the pool refused a job (shut down): the owner, maybe already
    /// waiting, must run it itself. ORDERING: set before the latch's poke,
    /// read under the latch's lock.
    refused: AtomicBool,
    /// Invariant in `'scope` and `'env`, as in `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Join<'scope, '_> {
    /// Made only here, by the functions that also wait it out.
    fn new(shared: Arc<Shared>) -> Self {
        // A process-wide count (std's atomic: loom objects cannot outlive one
        // execution); 2^64 scopes do not wrap in practice.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Join {
            shared,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            latch: Arc::new(Latch::new()),
            handed: Mutex::new(Handed {
                first: None,
                jobs: Vec::new(),
                prune_at: 64,
            }),
            refused: AtomicBool::new(false),
            scope: PhantomData,
            env: PhantomData,
        }
    }

    /// Queues `f` on the pool as a loop helper: optional parallelism
    /// (`Wake::Elastic`), promoted to eager by the monitor if its loop
    /// blocks. `f` must not unwind: callers wrap user code in
    /// `panic::catch` (a panic escaping here would still be caught by
    /// `catch_unwind` below on the caller's side, but on a worker it is the
    /// closure's own contract).
    pub(crate) fn spawn<F>(&'scope self, f: F)
    where
        F: FnOnce() + Send + 'scope,
    {
        self.spawn_with(Wake::Elastic, f);
    }

    /// Queues `f` on the pool, woken as `wake` says; the job is returned so
    /// a joiner can run it if nobody has started it (`run_queued`).
    pub(crate) fn spawn_with<F>(&'scope self, wake: Wake, f: F) -> ScopedRef
    where
        F: FnOnce() + Send + 'scope,
    {
        self.latch.count_up();
        let job: Arc<dyn Runnable + 'scope> = Arc::new(ScopedJob {
            scope_id: self.id,
            claimed: AtomicBool::new(false),
            run: Mutex::new(Some(move || {
                // Defence in depth: never unwind into a worker, whatever `f`
                // does.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                    crate::panic::recover(payload);
                }
            })),
            latch: self.latch.clone(),
            shared: self.shared.clone(),
        });
        // SAFETY: only the lifetime changes (`'scope` to `'static`); the
        // layout of the `Arc` is the same. The closure inside is taken out
        // and consumed by whoever claims the job, before the latch is counted
        // down (`ScopedJob::try_run`); no `Join` outlives the wait for its
        // latch to read zero (`Join::new` is called only by `scope`,
        // `open_scope` and `open_group`, which wait before they return; see
        // the module docs), and that wait first claims every job nobody
        // started (`run_unstarted`). So the closure never runs or drops after
        // `'scope` ends; what may outlive it (a claimed job still in the
        // pool's queue, dropped when popped) holds `None` in its place, whose
        // drop touches nothing the closure borrowed.
        let job: ScopedRef =
            unsafe { std::mem::transmute::<Arc<dyn Runnable + 'scope>, ScopedRef>(job) };
        {
            let mut handed = self.handed.lock().unwrap_or_else(|e| e.into_inner());
            if handed.first.is_none() {
                handed.first = Some(job.clone());
            } else {
                if handed.jobs.len() >= handed.prune_at {
                    handed.jobs.retain(|j| !j.is_claimed());
                    handed.prune_at = (handed.jobs.len() * 2).max(64);
                }
                handed.jobs.push(job.clone());
            }
        }
        if let Err(refused) = self.shared.submit(Job::Task(job.clone()), wake) {
            refused.refuse(Error::ShutDown);
            // The owner may already wait: wake it to run the job.
            self.refused.store(true, Ordering::Release);
            self.latch.poke();
        }
        job
    }

    /// This scope's id (`Runnable::scope_id`).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Runs, on this thread, every job nobody has started yet (also those
    /// the jobs it runs spawn).
    pub(crate) fn run_unstarted(&self) {
        loop {
            let (first, jobs) = {
                let mut handed = self.handed.lock().unwrap_or_else(|e| e.into_inner());
                (handed.first.take(), std::mem::take(&mut handed.jobs))
            };
            if first.is_none() && jobs.is_empty() {
                return;
            }
            for job in first.into_iter().chain(jobs) {
                job.run_queued();
            }
        }
    }

    /// Waits until every job handed out has finished and been dropped. Jobs
    /// nobody started run on this thread. If waiting fails (it cannot, short
    /// of a bug), the process aborts rather than let a job outlive its
    /// borrows.
    fn wait_out(&self) {
        let waited = catch_unwind(AssertUnwindSafe(|| loop {
            self.run_unstarted();
            // A job refused after this thread looked (a running job spawned
            // it on a pool shut down since) wakes the wait to run it.
            if self
                .latch
                // A load first: the spin must not write this line per look.
                .wait_or(|| {
                    self.refused.load(Ordering::Acquire)
                        && self.refused.swap(false, Ordering::AcqRel)
                })
            {
                break;
            }
        }));
        if waited.is_err() || !self.latch.is_zero() {
            // Returning now could let a job outlive its borrow.
            std::process::abort();
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
    let join = Join::new(shared);
    let result = catch_unwind(AssertUnwindSafe(|| f(&join)));
    // Jobs may still be queued or running; they borrow what `'scope` covers.
    join.wait_out();
    match result {
        Ok(r) => r,
        Err(payload) => resume_unwind(payload),
    }
}

/// The spawner of [`scope`](crate::scope()): jobs may borrow from outside the
/// call and run on the pool; every job has ended when `scope` returns.
///
/// Made only by [`scope`](crate::scope()), which hands the closure a
/// reference. Its API is in `scoped.rs`.
pub struct Scope<'scope, 'env> {
    pub(crate) join: Join<'scope, 'env>,
    /// Every job's `Context::current()`, a child of the caller's, cancelled
    /// when the scope ends.
    pub(crate) ctx: Context,
    /// The first panic of a job nobody joined, resumed by `scope` after the
    /// wait.
    pub(crate) unjoined: Mutex<Option<PanicError>>,
}

/// Runs `f` with a new [`Scope`] in `ctx` and returns its outcome (an unwind
/// of `f` is returned, not resumed) and the first panic nobody joined, only
/// after every job of the scope has finished. If `f` unwinds, `ctx` is
/// cancelled before the wait, so the jobs are told to stop.
pub(crate) fn open_scope<'env, R>(
    shared: Arc<Shared>,
    ctx: Context,
    f: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
) -> (std::thread::Result<R>, Option<PanicError>) {
    let scope = Scope {
        join: Join::new(shared),
        ctx,
        unjoined: Mutex::new(None),
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    if result.is_err() {
        scope.ctx.cancel();
    }
    scope.join.wait_out();
    let unjoined = scope
        .unjoined
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    (result, unjoined)
}

/// The spawner of [`group`](crate::group()) and
/// [`group_n`](crate::group_n()): Go's `errgroup.Group`. Jobs may borrow
/// from outside the call; the first error cancels the group's context.
///
/// Made only by `group` and `group_n`, which hand the closure a reference.
/// Its API is in `group.rs`.
pub struct Group<'scope, 'env, E> {
    pub(crate) join: Join<'scope, 'env>,
    /// Every job's `Context::current()`, a child of the caller's, cancelled
    /// at the first error and when the group ends.
    pub(crate) ctx: Context,
    /// At most this many jobs at once (`None`: no limit).
    pub(crate) limit: Option<Semaphore>,
    /// The first error, in time.
    pub(crate) first: FirstError<E>,
}

/// Runs `f` with a new [`Group`] in `ctx` and returns its outcome (an unwind
/// of `f` is returned, not resumed) and the first error, only after every job
/// of the group has finished. If `f` unwinds, `ctx` is cancelled before the
/// wait.
pub(crate) fn open_group<'env, E, R>(
    shared: Arc<Shared>,
    ctx: Context,
    limit: Option<Semaphore>,
    f: impl for<'scope> FnOnce(&'scope Group<'scope, 'env, E>) -> R,
) -> (std::thread::Result<R>, Option<E>) {
    let group = Group {
        join: Join::new(shared),
        ctx,
        limit,
        first: FirstError::new(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&group)));
    if result.is_err() {
        group.ctx.cancel();
    }
    group.join.wait_out();
    (result, group.first.take())
}

/// One place of the loop engine's buffer: first an item, then its result.
/// Index `i`'s result overwrites index `i`'s item, which was moved out just
/// before, so when `T` and `R` have the same size the items' allocation
/// becomes the output `Vec<R>` without a copy (as std's in-place `collect`).
union Slot<T, R> {
    item: ManuallyDrop<T>,
    output: ManuallyDrop<R>,
    /// Not filled yet (`Claims::with_capacity`); zero-sized, so the slot
    /// keeps the size of the larger of `T` and `R`.
    #[allow(dead_code, reason = "written, never read: it marks a place not filled")]
    empty: (),
}

/// The loop engine's input and output, handed out by index without a lock.
///
/// A helper claims a range of indices with one compare-and-swap, below the
/// places filled so far; the range is then its alone. All places are filled
/// at once (`new`, from a `Vec`), or one at a time by the one [`Filler`] of
/// `with_capacity` while helpers already claim (the iterator engine,
/// `stream.rs`): each item is claimable as soon as it is written. [`Batch`]
/// moves the items out of it and writes each result into
/// the same place — no per-chunk vectors, no final copy when `T` and `R` are
/// the same size, and page faults of the output happen on every helper in
/// parallel. The batch itself records every item it took but gave no result
/// for (the item panicked), so what each place holds is known here, exactly:
/// below `next`, a result unless recorded missing; from `next` on, an item.
pub(crate) struct Claims<T, R> {
    slots: Box<[UnsafeCell<Slot<T, R>>]>,
    /// The next index to claim; never above `filled`. ORDERING: Relaxed:
    /// each index is touched by the one thread whose compare-and-swap
    /// covered it (the items' writes are published by `filled`), and the
    /// owner reads the results only after the join's latch (Acquire).
    next: CachePadded<AtomicUsize>,
    /// Places below hold an item or, below `next`, its result; places from
    /// here on are empty. ORDERING: the filler stores it with Release after
    /// writing the item, claims load it with Acquire. On its own cache line:
    /// the filler writes it per item, helpers compare-and-swap `next` per
    /// chunk (sharing a line cost the iterator engine ~5 ns per item).
    filled: CachePadded<AtomicUsize>,
    /// Whether the one `Filler` was handed out (`new` has none).
    filler_taken: AtomicBool,
    /// Made `with_capacity`: filled one item at a time. (Made by `new`,
    /// `next` may run past `filled` by a claim's size and is clamped.)
    fills: bool,
    /// Indices taken without a result.
    missing: Mutex<Vec<usize>>,
}

// SAFETY: a `Claims` is shared between threads only to move each item out and
// write each result once, by the one thread that claimed its index (`claim`
// hands out disjoint ranges): as thread-safe as sending each `T` and `R`
// between threads.
unsafe impl<T: Send, R: Send> Sync for Claims<T, R> {}

fn same_layout<A, B>() -> bool {
    std::mem::size_of::<A>() == std::mem::size_of::<B>()
        && std::mem::align_of::<A>() == std::mem::align_of::<B>()
}

impl<T, R> Claims<T, R> {
    pub(crate) fn new(items: Vec<T>) -> Claims<T, R> {
        let slots: Box<[UnsafeCell<Slot<T, R>>]> = if same_layout::<T, UnsafeCell<Slot<T, R>>>() {
            let mut items = ManuallyDrop::new(items.into_boxed_slice());
            let len = items.len();
            let ptr = items.as_mut_ptr().cast::<UnsafeCell<Slot<T, R>>>();
            // SAFETY: the slot type has the size and alignment of `T` (checked
            // above), and a `Slot` holding its `item` field is exactly a `T`
            // (union fields start at offset 0; `ManuallyDrop` and
            // `UnsafeCell` are `repr(transparent)`), so the allocation is a
            // valid slice of slots. The original box is never used or dropped
            // again (`ManuallyDrop`).
            unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) }
        } else {
            items
                .into_iter()
                .map(|t| {
                    UnsafeCell::new(Slot {
                        item: ManuallyDrop::new(t),
                    })
                })
                .collect()
        };
        let len = slots.len();
        Claims {
            slots,
            next: CachePadded::new(AtomicUsize::new(0)),
            filled: CachePadded::new(AtomicUsize::new(len)),
            filler_taken: AtomicBool::new(true),
            fills: false,
            missing: Mutex::new(Vec::new()),
        }
    }

    /// Room for `capacity` items, none there yet: its [`Filler`] adds them.
    pub(crate) fn with_capacity(capacity: usize) -> Claims<T, R> {
        Claims {
            slots: (0..capacity)
                .map(|_| UnsafeCell::new(Slot { empty: () }))
                .collect(),
            next: CachePadded::new(AtomicUsize::new(0)),
            filled: CachePadded::new(AtomicUsize::new(0)),
            filler_taken: AtomicBool::new(false),
            fills: true,
            missing: Mutex::new(Vec::new()),
        }
    }

    /// The one handle that adds items (`None` after the first call, and for
    /// `new`, which is full).
    pub(crate) fn filler(&self) -> Option<Filler<'_, T, R>> {
        if self.filler_taken.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(Filler {
            slots: &self.slots,
            filled: &self.filled,
            len: self.filled.load(Ordering::Relaxed),
        })
    }

    /// How many places there are.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many places hold an item or a result.
    pub(crate) fn filled(&self) -> usize {
        self.filled.load(Ordering::Acquire)
    }

    /// How many items have been claimed so far (made by `new`, it may
    /// exceed the length for a moment; made `with_capacity`, it never
    /// exceeds `filled`).
    pub(crate) fn claimed(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Claims up to `n` of the items filled so far; `None` if all of them
    /// are claimed.
    pub(crate) fn claim(&self, n: usize) -> Option<Batch<'_, T, R>> {
        let n = n.max(1);
        if !self.fills {
            // Filled at once (`new`): one add, as the `Vec` engine always did.
            let len = self.slots.len();
            let start = self.next.fetch_add(n, Ordering::Relaxed);
            if start >= len {
                // Keep `next` from creeping towards overflow on repeated calls.
                self.next.store(len, Ordering::Relaxed);
                return None;
            }
            return Some(self.batch(start, (start + n).min(len)));
        }
        let mut start = self.next.load(Ordering::Relaxed);
        loop {
            // Acquire: the items below `filled` were written before it was
            // stored (Release), so this thread may move them out.
            let filled = self.filled.load(Ordering::Acquire);
            if start >= filled {
                return None;
            }
            let end = filled.min(start.saturating_add(n));
            match self
                .next
                .compare_exchange(start, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.batch(start, end)),
                Err(now) => start = now,
            }
        }
    }

    fn batch(&self, start: usize, end: usize) -> Batch<'_, T, R> {
        Batch {
            claims: self,
            next: start,
            end,
            unanswered: None,
        }
    }

    /// The results in input order, if every item gave one; otherwise drops
    /// those that exist and returns `None`.
    pub(crate) fn into_outputs(mut self) -> Option<Vec<R>> {
        let capacity = self.slots.len();
        let len = self.filled.load(Ordering::Relaxed);
        let complete = self.next.load(Ordering::Relaxed) >= len
            && self
                .missing
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
        if !complete {
            return None; // `Drop` drops what each place holds
        }
        let slots = std::mem::take(&mut self.slots);
        // From here on `self` holds no slots: its `Drop` touches nothing.
        if same_layout::<R, UnsafeCell<Slot<T, R>>>() && len == capacity {
            let ptr = Box::into_raw(slots).cast::<R>();
            // SAFETY: every index was claimed and none is missing, so every
            // place holds a result written exactly once (`Batch::run`); the
            // slot type has the size and alignment of `R`, and a slot holding
            // `output` is exactly an `R`, so the allocation is a valid `[R]`.
            Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) }.into_vec())
        } else if same_layout::<R, UnsafeCell<Slot<T, R>>>() && std::mem::size_of::<R>() != 0 {
            let ptr = Box::into_raw(slots).cast::<R>();
            // SAFETY: as above for the first `len` places, and the rest are
            // empty. The allocation was made by the global allocator for
            // `capacity` slots (more than `len`, so not empty, and `R` is not
            // zero-sized), which is one for `capacity` `R`s whose first `len`
            // are initialised: what `Vec::from_raw_parts` requires.
            Some(unsafe { Vec::from_raw_parts(ptr, len, capacity) })
        } else {
            let slots = Vec::from(slots);
            Some(
                slots
                    .into_iter()
                    .take(len)
                    // SAFETY: as above, each of the first `len` places holds
                    // its result; each is moved out once, and the slot itself
                    // has no drop glue (the empty rest are dropped as slots).
                    .map(|cell| ManuallyDrop::into_inner(unsafe { cell.into_inner().output }))
                    .collect(),
            )
        }
    }
}

impl<T, R> Drop for Claims<T, R> {
    fn drop(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        let filled = self.filled.load(Ordering::Relaxed);
        let claimed = self.next.load(Ordering::Relaxed).min(filled);
        let mut missing = std::mem::take(self.missing.get_mut().unwrap_or_else(|e| e.into_inner()));
        missing.sort_unstable();
        let mut gaps = missing.into_iter().peekable();
        for (i, cell) in self.slots.iter_mut().enumerate().take(filled) {
            if i >= claimed {
                // SAFETY: filled but never claimed, so the place still holds
                // its item; `&mut self` excludes every other access; dropped
                // once, here. (Places from `filled` on are empty.)
                unsafe { ManuallyDrop::drop(&mut cell.get_mut().item) };
            } else if gaps.peek() == Some(&i) {
                gaps.next(); // taken without a result: the place is empty
            } else {
                // SAFETY: claimed and not missing, so its batch wrote the
                // result exactly once; dropped once, here.
                unsafe { ManuallyDrop::drop(&mut cell.get_mut().output) };
            }
        }
    }
}

/// The one handle that adds items to a [`Claims`] made `with_capacity`.
pub(crate) struct Filler<'a, T, R> {
    /// The claims' places and `filled`, held directly: the feeder pushes
    /// every item of a stream, so each push is a bounds check, a write and
    /// a store.
    slots: &'a [UnsafeCell<Slot<T, R>>],
    filled: &'a AtomicUsize,
    /// Places filled by this handle (the only writer of `filled`).
    len: usize,
}

impl<T, R> Filler<'_, T, R> {
    /// Adds `item` after the others, claimable at once; gives it back if
    /// every place is filled.
    #[inline]
    pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
        let Some(cell) = self.slots.get(self.len) else {
            return Err(item);
        };
        // SAFETY: the place is at `filled`, so it is empty and no claim
        // reaches it (claims stay below `filled`); this handle is the only
        // writer (`Claims::filler` hands out one). The item is written once,
        // before `filled` moves past it.
        unsafe { (*cell.get()).item = ManuallyDrop::new(item) };
        self.len += 1;
        // Release: the write above happens before any claim that sees it.
        self.filled.store(self.len, Ordering::Release);
        Ok(())
    }
}

/// A claimed range of [`Claims`]: [`run`](Batch::run) moves its items out
/// in order and stores each one's result in its place. An item taken without
/// a result (it panicked) is recorded as missing; untaken items are dropped
/// with the batch and recorded as missing too.
pub(crate) struct Batch<'a, T, R> {
    claims: &'a Claims<T, R>,
    next: usize,
    end: usize,
    /// The index of the item taken last, until its result is stored.
    unanswered: Option<usize>,
}

impl<T, R> Batch<'_, T, R> {
    pub(crate) fn len(&self) -> usize {
        self.end - self.next
    }

    /// The index of the next item (or of the end).
    pub(crate) fn start(&self) -> usize {
        self.next
    }

    /// Moves the next item out, marking it unanswered (for the unit tests:
    /// the engine takes items through `run`).
    #[cfg(test)]
    fn take(&mut self) -> Option<(usize, T)> {
        self.settle();
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        self.unanswered = Some(index);
        // SAFETY: this index lies in a range claimed by this batch alone
        // (`Claims::claim` hands out disjoint ranges), and `next` moved past
        // it, so the item is moved out exactly once; the place is then empty
        // until `run` writes its result.
        let item = unsafe { ManuallyDrop::take(&mut (*self.claims.slots[index].get()).item) };
        Some((index, item))
    }

    /// Runs `f` on every remaining item and stores each result in the item's
    /// place. If `f` panics, the batch stays consistent: the panicking item
    /// is recorded as missing (on the next call or the drop) and the rest
    /// remain for the next call.
    ///
    /// `go_on` is asked before each item: once it says no, the rest of the
    /// batch is left untaken (dropped and recorded missing with the batch).
    #[inline]
    pub(crate) fn run(&mut self, go_on: impl Fn() -> bool, mut f: impl FnMut(usize, T) -> R) {
        self.settle();
        let slots = &self.claims.slots[self.next..self.end];
        for (k, cell) in slots.iter().enumerate() {
            if !go_on() {
                return;
            }
            let index = self.next;
            debug_assert_eq!(index, self.end - slots.len() + k);
            self.next += 1;
            self.unanswered = Some(index);
            // SAFETY: `cell` is place `index`, in this batch's exclusive range;
            // `next` moved past it, so its item is moved out exactly once and
            // the place is empty until the write below.
            let item = unsafe { ManuallyDrop::take(&mut (*cell.get()).item) };
            let value = f(index, item);
            // SAFETY: the same place, whose item was just moved out; this is
            // its one write (`unanswered` is cleared right after).
            unsafe { (*cell.get()).output = ManuallyDrop::new(value) };
            self.unanswered = None;
        }
    }

    /// The index of the item taken last that has no result yet, if any.
    pub(crate) fn unanswered(&self) -> Option<usize> {
        self.unanswered
    }

    /// Records the item taken last as missing if it got no result.
    #[inline]
    fn settle(&mut self) {
        if let Some(index) = self.unanswered.take() {
            self.record_missing(index);
        }
    }

    #[cold]
    fn record_missing(&self, index: usize) {
        self.claims
            .missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(index);
    }
}

impl<T, R> Drop for Batch<'_, T, R> {
    fn drop(&mut self) {
        // Untaken items must still be dropped, exactly once, and recorded as
        // missing (they give no result). Recorded first, in one lock: should
        // anything unwind below, an unrecorded place would later be read as
        // a result; a recorded one whose item was not dropped only leaks.
        self.settle();
        let (from, to) = (self.next, self.end);
        if from < to {
            self.claims
                .missing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(from..to);
        }
        for index in from..to {
            self.next = index + 1;
            // SAFETY: `index` lies in this batch's exclusive range and was not
            // taken (it is at or past `next`, which now moves past it), so its
            // place still holds its item, moved out exactly once here.
            let item = unsafe { ManuallyDrop::take(&mut (*self.claims.slots[index].get()).item) };
            crate::panic::drop_quietly(item);
        }
    }
}

#[cfg(all(test, not(velocity_loom)))]
mod tests {
    //! The unsafe layer on its own, small enough for Miri
    //! (`cargo +nightly miri test --lib -- scope::tests`). Each test's pool
    //! is joined at the end, so Miri's leak check stays on.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{scope, Claims};
    use crate::pool::Builder;

    struct Counted(
        Arc<AtomicUsize>,
        #[allow(dead_code, reason = "gives the type a size")] u64,
    );

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn test_pool() -> crate::Pool {
        Builder::new()
            .spin(std::time::Duration::ZERO)
            .keep_alive(std::time::Duration::ZERO)
            .build()
    }

    #[test]
    fn scoped_jobs_write_through_borrows_and_finish_before_scope_returns() {
        let pool = test_pool();
        let mut data = vec![0u32; 6];
        {
            let (a, b) = data.split_at_mut(3);
            scope(pool.shared.clone(), |join| {
                join.spawn(move || a.iter_mut().for_each(|x| *x = 1));
                join.spawn(move || b.iter_mut().for_each(|x| *x = 2));
            });
        }
        assert_eq!(data, [1, 1, 1, 2, 2, 2]);
        assert!(pool.shared.shutdown_and_join().is_complete());
    }

    #[test]
    fn a_panic_in_the_scope_body_still_waits_for_the_jobs() {
        let pool = test_pool();
        let done = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope(pool.shared.clone(), |join| {
                join.spawn(|| {
                    done.fetch_add(1, Ordering::SeqCst);
                });
                panic!("body panics after spawning");
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert!(pool.shared.shutdown_and_join().is_complete());
    }

    #[test]
    fn claims_in_place_map_gives_every_result_once() {
        let claims: Claims<u64, u64> = Claims::new((0..50).collect());
        while let Some(mut batch) = claims.claim(7) {
            batch.run(
                || true,
                |i, x| {
                    assert_eq!(i as u64, x);
                    x * 2
                },
            );
        }
        assert_eq!(
            claims.into_outputs().unwrap(),
            (0..50).map(|x| x * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn claims_with_other_layouts_drop_everything_exactly_once() {
        let ins = Arc::new(AtomicUsize::new(0));
        let outs = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..20).map(|i| Counted(ins.clone(), i)).collect();
        let claims: Claims<Counted, (Counted, String)> = Claims::new(items);
        while let Some(mut batch) = claims.claim(3) {
            batch.run(
                || true,
                |_, item| {
                    drop(item);
                    (Counted(outs.clone(), 0), String::from("x"))
                },
            );
        }
        let out = claims.into_outputs().unwrap();
        assert_eq!(ins.load(Ordering::SeqCst), 20);
        drop(out);
        assert_eq!(outs.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn a_panicking_item_leaves_a_gap_that_drop_respects() {
        let ins = Arc::new(AtomicUsize::new(0));
        let outs = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..10).map(|i| Counted(ins.clone(), i)).collect();
        let claims: Claims<Counted, Counted> = Claims::new(items);
        let mut batch = claims.claim(10).unwrap();
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch.run(
                || true,
                |i, item| {
                    drop(item);
                    if i == 4 {
                        panic!("item 4");
                    }
                    Counted(outs.clone(), 0)
                },
            )
        }));
        assert!(first.is_err());
        assert_eq!(batch.unanswered(), Some(4));
        // The rest of the batch runs on.
        batch.run(
            || true,
            |_, item| {
                drop(item);
                Counted(outs.clone(), 0)
            },
        );
        drop(batch);
        assert!(claims.into_outputs().is_none(), "index 4 has no result");
        assert_eq!(ins.load(Ordering::SeqCst), 10);
        assert_eq!(
            outs.load(Ordering::SeqCst),
            9,
            "the nine results are dropped once each"
        );
    }

    #[test]
    fn a_batch_told_to_stop_leaves_the_rest_untaken_and_dropped_once() {
        let ins = Arc::new(AtomicUsize::new(0));
        let outs = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..6).map(|i| Counted(ins.clone(), i)).collect();
        let claims: Claims<Counted, Counted> = Claims::new(items);
        let mut batch = claims.claim(6).unwrap();
        let ran = AtomicUsize::new(0);
        batch.run(
            || ran.load(Ordering::SeqCst) < 2,
            |_, item| {
                drop(item);
                ran.fetch_add(1, Ordering::SeqCst);
                Counted(outs.clone(), 0)
            },
        );
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        drop(batch); // four untaken items, dropped and recorded missing
        assert_eq!(ins.load(Ordering::SeqCst), 6);
        assert!(
            claims.into_outputs().is_none(),
            "four places have no result"
        );
        assert_eq!(
            outs.load(Ordering::SeqCst),
            2,
            "the two results dropped once"
        );
    }

    #[test]
    fn unclaimed_and_untaken_items_are_dropped_once() {
        let ins = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..10).map(|i| Counted(ins.clone(), i)).collect();
        let claims: Claims<Counted, u8> = Claims::new(items);
        let mut batch = claims.claim(4).unwrap();
        let _ = batch.take(); // taken, never answered
        drop(batch); // two untaken items dropped here
        assert_eq!(ins.load(Ordering::SeqCst), 4);
        drop(claims); // six never claimed
        assert_eq!(ins.load(Ordering::SeqCst), 10);
    }

    /// The iterator engine's path: one filler adds items while two threads
    /// claim them; every item is run once, results land in place, and a
    /// block left part empty (the input ended early) becomes a shorter
    /// output.
    #[test]
    fn a_filler_and_concurrent_claims_give_every_item_once() {
        for (capacity, n) in [(16usize, 16u64), (16, 9), (1, 1), (8, 0)] {
            let claims: Claims<u64, u64> = Claims::with_capacity(capacity);
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| loop {
                        let finished = done.load(Ordering::Acquire);
                        match claims.claim(3) {
                            Some(mut batch) => batch.run(
                                || true,
                                |i, x| {
                                    assert_eq!(x, i as u64);
                                    x * 10
                                },
                            ),
                            None if finished => return,
                            None => std::thread::yield_now(),
                        }
                    });
                }
                let mut filler = claims.filler().expect("one filler");
                assert!(claims.filler().is_none(), "only one");
                for i in 0..n {
                    filler.push(i).unwrap();
                }
                done.store(true, Ordering::Release);
            });
            let out = claims.into_outputs().expect("every item ran");
            assert_eq!(out, (0..n).map(|i| i * 10).collect::<Vec<_>>());
            assert!(out.capacity() >= out.len());
        }
    }

    #[test]
    fn a_full_filler_gives_the_item_back_and_part_filled_claims_drop_once() {
        let ins = Arc::new(AtomicUsize::new(0));
        let outs = Arc::new(AtomicUsize::new(0));
        let claims: Claims<Counted, (Counted, u8)> = Claims::with_capacity(5);
        let mut filler = claims.filler().unwrap();
        for i in 0..5 {
            assert!(filler.push(Counted(ins.clone(), i)).is_ok());
        }
        let Err(back) = filler.push(Counted(ins.clone(), 5)) else {
            panic!("a full filler takes nothing");
        };
        drop(back);
        assert_eq!(ins.load(Ordering::SeqCst), 1);
        // Two run, one taken and unanswered, two never claimed.
        let mut batch = claims.claim(2).unwrap();
        let o = outs.clone();
        batch.run(
            || true,
            move |_, c| {
                drop(c);
                (Counted(o.clone(), 0), 0)
            },
        );
        drop(batch);
        let mut batch = claims.claim(1).unwrap();
        let _ = batch.take();
        drop(batch);
        assert_eq!(ins.load(Ordering::SeqCst), 4);
        assert!(claims.into_outputs().is_none(), "items gave no result");
        assert_eq!(ins.load(Ordering::SeqCst), 6, "every item dropped once");
        assert_eq!(outs.load(Ordering::SeqCst), 2, "every result dropped once");
        // A part-filled block that never ran drops only what was filled.
        let ins = Arc::new(AtomicUsize::new(0));
        let claims: Claims<Counted, u64> = Claims::with_capacity(8);
        let mut filler = claims.filler().unwrap();
        for i in 0..3 {
            assert!(filler.push(Counted(ins.clone(), i)).is_ok());
        }
        drop(claims);
        assert_eq!(ins.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_stream_engine_borrows_and_maps_on_the_pool() {
        let pool = test_pool();
        let base = [1u64, 2, 3, 4, 5, 6, 7];
        let mut seen = vec![0u8; 7];
        let seen_ref = std::sync::Mutex::new(&mut seen);
        let ctx = crate::Context::new();
        let opts = crate::parallel::Options::new(3, &ctx);
        let out = pool
            .install(|| {
                crate::stream::run(base.iter().filter(|x| **x != 4), &opts, &|x: &u64| {
                    seen_ref.lock().unwrap()[*x as usize - 1] += 1;
                    x * 100
                })
            })
            .unwrap();
        assert_eq!(out, vec![100, 200, 300, 500, 600, 700]);
        assert_eq!(seen, [1, 1, 1, 0, 1, 1, 1]);
        assert!(pool.shared.shutdown_and_join().is_complete());
    }

    #[test]
    fn the_loop_engine_borrows_and_maps_on_the_pool() {
        let pool = test_pool();
        let factor = 3u64;
        let out = pool
            .run(move || crate::map((0..64u64).collect::<Vec<_>>(), |x| x * factor).unwrap())
            .get()
            .unwrap();
        assert_eq!(out, (0..64).map(|x| x * 3).collect::<Vec<_>>());
        let mut cells = [0u8; 16];
        pool.install(|| crate::for_each(cells.iter_mut(), 4, |c| *c = 7))
            .unwrap();
        assert!(cells.iter().all(|c| *c == 7));
        assert!(pool.shared.shutdown_and_join().is_complete());
    }
}

/// Loom model of the join latch: run with
/// `RUSTFLAGS="--cfg velocity_loom" cargo test --release --lib loom_`.
#[cfg(all(test, velocity_loom))]
mod loom_tests {
    use super::Latch;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// A job's output, written by the job and read by the joiner.
    struct Output(UnsafeCell<u32>);

    // SAFETY: the model itself checks the claim: loom fails the test if the
    // job's write and the joiner's read are not ordered by the latch.
    unsafe impl Sync for Output {}

    /// Two jobs write their outputs and count down; `wait` returns only
    /// after both, and their writes are visible to the waiter (loom reports
    /// a lost wake-up as a deadlock and an unordered access as a race).
    #[test]
    fn loom_latch_wait_sees_every_job_and_its_writes() {
        loom::model(|| {
            let latch = Arc::new(Latch::new());
            let outputs: Vec<Arc<Output>> = (0..2)
                .map(|_| Arc::new(Output(UnsafeCell::new(0))))
                .collect();
            let jobs: Vec<_> = outputs
                .iter()
                .map(|out| {
                    latch.count_up();
                    let (latch, out) = (latch.clone(), out.clone());
                    loom::thread::spawn(move || {
                        // SAFETY: only this job touches `out` before it counts down.
                        out.0.with_mut(|p| unsafe { *p = 1 });
                        latch.count_down();
                    })
                })
                .collect();
            latch.wait();
            for out in &outputs {
                // SAFETY: every job counted down; the latch orders its write
                // before this read (what loom checks).
                assert_eq!(out.0.with(|p| unsafe { *p }), 1);
            }
            for job in jobs {
                job.join().unwrap();
            }
        });
    }
}
