//! The loop engine for iterators, behind `for_each`, `map`, `map_n`,
//! `try_for_each` and `go_for_each`: the input is pulled lazily, as the
//! loop runs, so the first item starts as soon as it exists, an endless
//! input ends at a stop, and memory holds what is in flight, not the input.
//!
//! * The caller's thread is the feeder: it alone calls the iterator's
//!   `next` (so the iterator need not be `Send`), outside every lock, and
//!   writes each item into a block (`scope::Claims` with its `Filler`),
//!   where it is claimable at once: no item waits in the feeder's hands
//!   while `next` runs, so an iterator whose next item waits for an earlier
//!   one to run cannot deadlock the loop. The cost per item is a store and
//!   two loads (the stop, and `attention`: the one flag through which
//!   helpers ask the feeder to start a helper or wake an idle one).
//! * Helpers claim chunks from the blocks as `parallel.rs` does (one
//!   compare-and-swap each; chunks grow while items are fast, shrink near
//!   the end of a known length). A helper waits up to 10 µs for a full
//!   chunk before it takes fewer: claiming right behind a fast feeder
//!   costs both threads a cache-line transfer per claim.
//! * The feeder starts a helper at the first item and whenever none is on
//!   its way; a starting helper that finds more waiting starts up to two
//!   more (a tree). At most `limit - 1` helpers, so with the caller at most
//!   `limit` items run at once. They are loop helpers of the pool
//!   (`scope::Join`): taken while the CPUs have room, promoted by the
//!   monitor when the loop blocks (a slow `next` blocks the caller).
//! * A helper that finds nothing to claim ends, except the last one while
//!   the input goes on: it spins 20 µs, then parks (holding its pool
//!   thread), woken by the feeder's next item — or, should that wake-up race its
//!   parking, by a timeout of 1 ms, doubling to 16 ms while nothing comes.
//! * Items in flight (pulled, not finished) are capped at `limit` (at most
//!   `MAX_RUNNING`) plus four chunks; at the cap the feeder runs a chunk
//!   itself, or waits for one to finish. With `limit == 1` no block is
//!   made: the caller pulls and runs one item at a time.
//! * A block of a `map` whose input's length is known (`size_hint`) holds
//!   the whole input, and its results become the output in place, as the
//!   `Vec` engine's do. Otherwise blocks are small (at most 1 MiB of items)
//!   and each finished one is turned into its results, freeing its items'
//!   memory; the results are joined in order at the end. A wrong
//!   `size_hint` changes only the block sizes.
//! * Item panics and stops behave as in `parallel.rs`. A panic of the
//!   iterator's `next` ends the input there and counts as a panic of the
//!   item it would have made.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::Error;
use crate::panic;
use crate::parallel::{self, FirstPanic, Options, MAX_CHUNK};
use crate::pool;
use crate::progress::{self, Reporter};
use crate::scope::{self, Claims, Join};
use crate::sync::{thread, AtomicBool, AtomicUsize, Condvar, Mutex};

/// Beyond this many items running at once, more in flight buys nothing but
/// memory (no pool runs so many threads by default).
const MAX_RUNNING: usize = 4096;

/// The most bytes of items one small block holds.
const BLOCK_BYTES: usize = 1 << 20;

/// The largest block made for a known length (more is joined from blocks).
const MAX_BLOCK: usize = 1 << 24;

/// How long the last helper spins for items before it parks (the pool's
/// workers spin as long for jobs).
const SPIN: Duration = Duration::from_micros(20);

/// How long a helper waits for a full chunk before it takes fewer, and
/// how often it looks meanwhile.
const STALL: Duration = Duration::from_micros(10);
const POLL: Duration = Duration::from_micros(2);

/// How long the last helper parks before it looks for items again, should
/// the feeder's wake-up have raced its parking (a Relaxed load per item on
/// the feeder's side, so it can); doubled while nothing comes, up to
/// `MAX_IDLE_POLL`.
const IDLE_POLL: Duration = Duration::from_millis(1);
const MAX_IDLE_POLL: Duration = Duration::from_millis(16);

/// A run of consecutive items: the input's items from `start` on.
struct Block<T, R> {
    start: usize,
    claims: Claims<T, R>,
    /// The feeder has moved on to a later block: no item is added.
    sealed: AtomicBool,
}

/// The blocks helpers claim from, oldest first.
type OpenBlocks<T, R> = Mutex<VecDeque<Arc<Block<T, R>>>>;

struct Shared<'a, T, R, B> {
    /// The blocks that may still have items to claim, oldest first. (The
    /// padded fields are written per chunk; the rest, which the feeder reads
    /// per item, rarely.)
    open: CachePadded<OpenBlocks<T, R>>,
    /// Items finished (run, or dropped unrun). ORDERING: SeqCst, with
    /// `feeder_waiting` (a store-buffer pattern: a finish must wake a
    /// feeder that is about to wait for one).
    finished: CachePadded<AtomicUsize>,
    feeder_waiting: AtomicBool,
    wake_feeder: (Mutex<()>, Condvar),
    /// Helpers spawned and not ended; of those, the ones not started yet
    /// and the ones running.
    helpers: AtomicUsize,
    starting: AtomicUsize,
    running: AtomicUsize,
    /// The last helper, parked until an item arrives (see `idle`).
    parked: Mutex<Option<thread::Thread>>,
    /// Whether `parked` holds a helper.
    idle: AtomicBool,
    /// Set when the feeder has something to do beside pulling: wake an idle
    /// helper, or start one (none is on its way and the limit allows). The
    /// feeder reads it per item, so it is the one flag it reads.
    attention: AtomicBool,
    /// No more items will be added (the input ended, or a stop).
    input_done: AtomicBool,
    progress: Option<Reporter>,
    /// The input's length is not known up front: the progress total
    /// follows the items pulled.
    open_ended: bool,
    max_helpers: usize,
    body: &'a B,
    opts: &'a Options<'a>,
    panic: FirstPanic,
}

impl<T, R, B> Shared<'_, T, R, B> {
    /// The most items in flight before the feeder stops pulling.
    fn cap(&self) -> usize {
        self.opts.limit.min(MAX_RUNNING) + 4 * MAX_CHUNK
    }
}

/// Runs `body(item)` for every item `items` yields and returns the results
/// in input order; or, once every started item is done, the lowest-index
/// panic ([`Error::Panic`]), else the context's error if it ended the loop
/// before the input did (or the stop flag did: its setter knows why).
pub(crate) fn run<I, R, B>(mut items: I, opts: &Options<'_>, body: &B) -> Result<Vec<R>, Error>
where
    I: Iterator,
    I::Item: Send,
    R: Send,
    B: Fn(I::Item) -> R + Sync,
{
    let (low, high) = items.size_hint();
    let open_ended = high != Some(low);
    let (progress, _no_nested_progress) = progress::start_loop(if open_ended { 0 } else { low });
    let max_helpers = opts.limit.saturating_sub(1);
    let shared = Shared {
        open: CachePadded::new(Mutex::new(VecDeque::new())),
        finished: CachePadded::new(AtomicUsize::new(0)),
        feeder_waiting: AtomicBool::new(false),
        wake_feeder: (Mutex::new(()), Condvar::new()),
        helpers: AtomicUsize::new(0),
        starting: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        parked: Mutex::new(None),
        idle: AtomicBool::new(false),
        // The first item starts the first helper.
        attention: AtomicBool::new(max_helpers > 0),
        input_done: AtomicBool::new(false),
        progress,
        open_ended,
        max_helpers,
        body,
        opts,
        panic: FirstPanic::new(),
    };
    let outcome = if max_helpers == 0 || high == Some(0) {
        // Nothing to hand out: run here, without touching the pool.
        one_at_a_time(&shared, &mut items)
    } else {
        let pool = pool::current();
        let fed = scope::scope(pool.clone(), |join| {
            // The caller pulls and works too: it takes one of the pool's CPU
            // slots, and the monitor samples it like a worker (a slow
            // iterator blocks it, which is blocking work).
            let _caller = pool.enter_external(join.id());
            feed(&shared, &mut items, join)
        });
        // The scope waited for every helper: nobody else holds a block.
        fed.finish(&shared)
    };
    // The iterator's own drop is user code: a panic in it is reported.
    panic::drop_quietly(items);
    let first_panic = shared.panic.into_inner();
    match (first_panic, outcome) {
        (Some(p), outcome) => {
            panic::drop_quietly(outcome);
            Err(Error::Panic(p))
        }
        (None, Some(outputs)) => Ok(outputs),
        (None, None) => Err(opts.cut_short_error()),
    }
}

/// `limit == 1`: pull an item, run it, and so on. The results, or `None`
/// if the loop ended before the input did or an item gave no result.
fn one_at_a_time<I, R, B>(shared: &Shared<'_, I::Item, R, B>, items: &mut I) -> Option<Vec<R>>
where
    I: Iterator,
    B: Fn(I::Item) -> R + Sync,
{
    let _current = shared.opts.ctx.enter();
    // Not `size_hint`'s bound: an endless input says `usize::MAX`.
    let mut outputs = Vec::with_capacity(items.size_hint().0.min(MAX_CHUNK));
    let mut complete = true;
    let mut index = 0;
    // Progress is reported per chunk, sized as a helper sizes its chunks,
    // not per item.
    let mut report = (1usize, 0usize, Instant::now());
    let check = shared.opts.stop_check();
    let ended = loop {
        if check.stopped() {
            // As in `feed`: an input that says it is empty has ended.
            break items.size_hint().1 == Some(0);
        }
        let item = match panic::catch(|| items.next()) {
            Ok(Some(item)) => item,
            Ok(None) => break true,
            Err(p) => {
                shared.panic.record(shared.opts, index, p);
                break true;
            }
        };
        if shared.open_ended {
            if let Some(progress) = &shared.progress {
                progress.grow_total(index + 1);
            }
        }
        match panic::catch(|| (shared.body)(item)) {
            Ok(r) => outputs.push(r),
            Err(p) => {
                shared.panic.record(shared.opts, index, p);
                complete = false;
            }
        }
        index += 1;
        if let Some(progress) = &shared.progress {
            let (chunk, pending, since) = &mut report;
            *pending += 1;
            if *pending == *chunk {
                progress.advance(*pending);
                *chunk = parallel::next_chunk(*chunk, *pending, since.elapsed());
                (*pending, *since) = (0, Instant::now());
            }
        }
    };
    if let Some(progress) = &shared.progress {
        if report.1 > 0 {
            progress.advance(report.1);
        }
    }
    if !ended {
        return None;
    }
    complete.then_some(outputs)
}

/// What the feeder leaves once the input ended or a stop came.
struct Fed<T, R> {
    /// Blocks not yet turned into results (still shared when gathered).
    blocks: Vec<Arc<Block<T, R>>>,
    /// Each gathered block's results (`None`: some item gave none).
    results: Vec<(usize, Option<Vec<R>>)>,
    input_ended: bool,
}

impl<T, R> Fed<T, R> {
    /// The results in input order, once no helper holds a block; `None` if
    /// the loop ended before the input or an item gave no result.
    fn finish<B>(mut self, shared: &Shared<'_, T, R, B>) -> Option<Vec<R>> {
        shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Every block, drained or not (a stop may leave items unclaimed,
        // which their claims drop here).
        let mut shared_still = false;
        for block in std::mem::take(&mut self.blocks) {
            match Arc::try_unwrap(block) {
                Ok(block) => {
                    let outputs = panic::catch(|| block.claims.into_outputs()).ok().flatten();
                    self.results.push((block.start, outputs));
                }
                // Cannot happen (the scope waited for every helper); kept
                // incomplete rather than read while shared.
                Err(_) => shared_still = true,
            }
        }
        let complete =
            self.input_ended && !shared_still && self.results.iter().all(|(_, r)| r.is_some());
        if !complete {
            panic::drop_quietly(self);
            return None;
        }
        Some(join_in_order(self.results))
    }
}

/// The feeder: pulls every item into blocks, starts helpers, and helps.
fn feed<'scope, 'env, I, R, B>(
    shared: &'env Shared<'env, I::Item, R, B>,
    items: &mut I,
    join: &'scope Join<'scope, 'env>,
) -> Fed<I::Item, R>
where
    I: Iterator,
    I::Item: Send,
    R: Send,
    B: Fn(I::Item) -> R + Sync,
{
    let mut fed = Fed {
        blocks: Vec::new(),
        results: Vec::new(),
        input_ended: false,
    };
    let mut pulled = 0;
    // The feeder's own chunk size when it runs items, grown as a helper's.
    let mut chunk = 1;
    // An item is pulled before a block is made for it, so the end of an
    // input needs no block, and a known length sizes the block exactly.
    let mut next = pull_first(shared, items, pulled, &mut chunk);
    while let Pulled::Item(first) = next {
        // The items left, counting `first`.
        let (low, high) = items.size_hint();
        let left = (low.saturating_add(1), high.and_then(|h| h.checked_add(1)));
        let capacity = block_capacity::<I::Item, R>(left, shared.open_ended, pulled);
        let block = Arc::new(Block {
            start: pulled,
            claims: Claims::with_capacity(capacity),
            sealed: AtomicBool::new(false),
        });
        shared
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(block.clone());
        let Some(mut filler) = block.claims.filler() else {
            unreachable!("a new block's filler is taken once")
        };
        // Hoisted: the loop below runs per item.
        let grow_total = shared.progress.as_ref().filter(|_| shared.open_ended);
        let mut place = |item, pulled: &mut usize| {
            if let Some(progress) = grow_total {
                progress.grow_total(*pulled + 1);
            }
            filler.push(item)?;
            *pulled += 1;
            // One load per item: an idle helper is woken, a helper is
            // started if none is on its way (see `attention`).
            if shared.attention.load(Ordering::Relaxed) {
                attend(shared, join);
            }
            Ok(())
        };
        next = match place(first, &mut pulled) {
            Ok(()) => pull_into(shared, items, &mut pulled, &mut chunk, &mut place),
            Err(_) => unreachable!("a new block has room for one item"),
        };
        block.sealed.store(true, Ordering::Release);
        fed.blocks.push(block);
        gather(shared, &mut fed.blocks, &mut fed.results);
    }
    // A stop after the last item still lets a loop whose every item ran end
    // well, if the input says it is empty (`next` is not called again: it
    // may have effects).
    fed.input_ended = match next {
        Pulled::Ended => true,
        _ => items.size_hint().1 == Some(0),
    };
    // No more items: help with what is left; the scope then waits for the
    // helpers, which end once nothing is left to claim.
    shared.input_done.store(true, Ordering::SeqCst);
    wake_idle(shared);
    while help(shared, &mut chunk) {}
    fed
}

/// What the feeder's next pull gave.
enum Pulled<T> {
    Item(T),
    /// The input is exhausted, or its `next` panicked (recorded).
    Ended,
    /// The loop is stopped: no further item is pulled.
    Stopped,
}

/// Waits for room: once fewer than the cap are in flight (at the cap the
/// feeder helps or waits first); `false` if the loop is stopped.
#[inline]
fn room<T, R, B>(shared: &Shared<'_, T, R, B>, pulled: usize, chunk: &mut usize) -> bool
where
    B: Fn(T) -> R + Sync,
{
    loop {
        if shared.opts.stopped() {
            return false;
        }
        if pulled - shared.finished.load(Ordering::SeqCst) < shared.cap() {
            return true;
        }
        help_or_wait(shared, pulled, chunk);
    }
}

/// The first item of a block (`pulled` came before it).
fn pull_first<I, R, B>(
    shared: &Shared<'_, I::Item, R, B>,
    items: &mut I,
    pulled: usize,
    chunk: &mut usize,
) -> Pulled<I::Item>
where
    I: Iterator,
    B: Fn(I::Item) -> R + Sync,
{
    if !room(shared, pulled, chunk) {
        return Pulled::Stopped;
    }
    match panic::catch(|| items.next()) {
        Ok(Some(item)) => Pulled::Item(item),
        Ok(None) => Pulled::Ended,
        Err(p) => {
            shared.panic.record(shared.opts, pulled, p);
            Pulled::Ended
        }
    }
}

/// Pulls items and `place`s each (which publishes it before the next pull)
/// until the input ends, the loop stops, or `place` gives an item back (the
/// block is full: it is returned, to open the next one). Up to 64 pulls run
/// under one `catch_unwind` (it keeps `next` from being inlined).
fn pull_into<I, R, B>(
    shared: &Shared<'_, I::Item, R, B>,
    items: &mut I,
    pulled: &mut usize,
    chunk: &mut usize,
    place: &mut impl FnMut(I::Item, &mut usize) -> Result<(), I::Item>,
) -> Pulled<I::Item>
where
    I: Iterator,
    B: Fn(I::Item) -> R + Sync,
{
    let check = shared.opts.stop_check();
    loop {
        // The cap is checked per 64 pulls (it reads a counter the helpers
        // write), the stop per pull.
        if !room(shared, *pulled, chunk) {
            return Pulled::Stopped;
        }
        let ran = panic::catch(|| {
            for _ in 0..64 {
                if check.stopped() {
                    return Some(Pulled::Stopped);
                }
                let Some(item) = items.next() else {
                    return Some(Pulled::Ended);
                };
                if let Err(item) = place(item, pulled) {
                    return Some(Pulled::Item(item));
                }
            }
            None
        });
        match ran {
            Ok(None) => continue,
            Ok(Some(end)) => return end,
            Err(p) => {
                // `place` is ours and does not panic: `next` did.
                shared.panic.record(shared.opts, *pulled, p);
                return Pulled::Ended;
            }
        }
    }
}

/// How many items the next block holds: the whole known length for a
/// `map` (its results are the output, in place), else at most 1 MiB of
/// items (at least 64, at most one chunk-cap's worth).
fn block_capacity<T, R>(
    size_hint: (usize, Option<usize>),
    open_ended: bool,
    pulled: usize,
) -> usize {
    let slot = std::mem::size_of::<T>()
        .max(std::mem::size_of::<R>())
        .max(1);
    let small = (BLOCK_BYTES / slot).clamp(64, 4 * MAX_CHUNK);
    let keeps_results = std::mem::size_of::<R>() != 0;
    if keeps_results && !open_ended && pulled == 0 {
        size_hint.0.clamp(1, MAX_BLOCK)
    } else {
        small
    }
}

/// Turns every finished block nobody else holds into its results (freeing
/// its items' memory). A block is finished once it is sealed and every item
/// claimed (then it leaves the open list) and no helper holds it.
fn gather<T, R, B>(
    shared: &Shared<'_, T, R, B>,
    blocks: &mut Vec<Arc<Block<T, R>>>,
    results: &mut Vec<(usize, Option<Vec<R>>)>,
) {
    {
        let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
        while open.front().is_some_and(|b| b.is_drained()) {
            open.pop_front();
        }
    }
    let mut i = 0;
    while i < blocks.len() {
        if !(blocks[i].is_drained() && Arc::strong_count(&blocks[i]) == 1) {
            i += 1;
            continue;
        }
        match Arc::try_unwrap(blocks.remove(i)) {
            Ok(block) => {
                // Incomplete claims drop their items here: user code.
                let outputs = panic::catch(|| block.claims.into_outputs()).ok().flatten();
                results.push((block.start, outputs));
            }
            Err(block) => {
                blocks.insert(i, block);
                i += 1;
            }
        }
    }
}

impl<T, R> Block<T, R> {
    /// Sealed, and every item claimed.
    fn is_drained(&self) -> bool {
        self.sealed.load(Ordering::Acquire) && self.claims.claimed() == self.claims.filled()
    }
}

/// The feeder's slow path per item, taken when `attention` is set: clears
/// the flag first (a request that comes meanwhile sets it again), wakes an
/// idle helper, and starts one if none is on its way.
#[cold]
fn attend<'scope, 'env, T, R, B>(
    shared: &'env Shared<'env, T, R, B>,
    join: &'scope Join<'scope, 'env>,
) where
    T: Send,
    R: Send,
    B: Fn(T) -> R + Sync,
{
    shared.attention.store(false, Ordering::SeqCst);
    if shared.idle.load(Ordering::SeqCst) {
        wake_idle(shared);
    }
    maybe_start_helper(shared, join);
}

/// Asks the feeder to `attend`.
fn call_feeder<T, R, B>(shared: &Shared<'_, T, R, B>) {
    shared.attention.store(true, Ordering::SeqCst);
}

/// Starts a helper if no started helper is on its way and the limit allows
/// (called when an item has just been placed, so one waits).
#[inline]
fn maybe_start_helper<'scope, 'env, T, R, B>(
    shared: &'env Shared<'env, T, R, B>,
    join: &'scope Join<'scope, 'env>,
) where
    T: Send,
    R: Send,
    B: Fn(T) -> R + Sync,
{
    if shared.starting.load(Ordering::Relaxed) != 0
        || shared.helpers.load(Ordering::Relaxed) >= shared.max_helpers
    {
        return;
    }
    start_helper(shared, join);
}

#[cold]
fn start_helper<'scope, 'env, T, R, B>(
    shared: &'env Shared<'env, T, R, B>,
    join: &'scope Join<'scope, 'env>,
) where
    T: Send,
    R: Send,
    B: Fn(T) -> R + Sync,
{
    let counted = shared
        .helpers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
            (h < shared.max_helpers).then_some(h + 1)
        });
    if counted.is_ok() {
        shared.starting.fetch_add(1, Ordering::SeqCst);
        join.spawn(move || helper(shared, join));
    }
}

/// A helper: claims and runs chunks until there is nothing left.
fn helper<'scope, 'env, T, R, B>(
    shared: &'env Shared<'env, T, R, B>,
    join: &'scope Join<'scope, 'env>,
) where
    T: Send,
    R: Send,
    B: Fn(T) -> R + Sync,
{
    shared.running.fetch_add(1, Ordering::SeqCst);
    if shared.starting.fetch_sub(1, Ordering::SeqCst) == 1 {
        // None is on its way now: the feeder may start another.
        call_feeder(shared);
    }
    let _current = shared.opts.ctx.enter();
    let mut chunk = 1;
    let mut first = true;
    // Since when fewer items wait than this helper's chunk: it waits up to
    // `STALL` for the feeder to fill a chunk (claiming items one by one
    // right behind a fast feeder costs both a cache-line transfer per
    // claim), then takes what there is (a slow or blocked `next`).
    let mut too_few_since: Option<Instant> = None;
    let mut idle_timeout = IDLE_POLL;
    loop {
        // (Under loom, no waiting on the clock: take what there is.)
        let min_wait = match too_few_since {
            _ if cfg!(velocity_loom) => 1,
            Some(since) if since.elapsed() >= STALL => 1,
            _ => chunk,
        };
        // More waiting than this helper takes first: it starts up to two
        // more before running its chunk (a tree: blocking items reach
        // `limit` helpers in log2 steps).
        let took = run_one_chunk(shared, &mut chunk, min_wait, |waiting| {
            if first {
                for _ in 0..waiting.min(2) {
                    start_helper(shared, join);
                }
            }
        });
        match took {
            Took::Ran => {
                first = false;
                too_few_since = None;
                idle_timeout = IDLE_POLL;
                continue;
            }
            Took::TooFew => {
                too_few_since.get_or_insert_with(Instant::now);
                // Look again in ~2 µs: each look reads the line the feeder
                // writes per item, which then costs its next write a miss.
                let began = Instant::now();
                while began.elapsed() < POLL {
                    for _ in 0..16 {
                        std::hint::spin_loop();
                    }
                }
                continue;
            }
            Took::Nothing => too_few_since = None,
        }
        if shared.input_done.load(Ordering::SeqCst) {
            shared.running.fetch_sub(1, Ordering::SeqCst);
            break;
        }
        // Nothing to claim while the input goes on: the last running
        // helper stays, so an item never waits for a helper to start while
        // the feeder is inside `next`; any other ends.
        let left = shared
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                (r > 1).then(|| r - 1)
            });
        if left.is_ok() {
            break;
        }
        park_as_last(shared, &mut idle_timeout);
    }
    shared.helpers.fetch_sub(1, Ordering::SeqCst);
    call_feeder(shared);
}

/// The last running helper waits for an item (or the end): it spins a
/// little first (a feeder just behind its helpers should not pay a wake-up
/// per item), then parks, woken by the feeder or, should that wake-up race
/// the parking, after `IDLE_POLL`.
fn park_as_last<T, R, B>(shared: &Shared<'_, T, R, B>, timeout: &mut Duration) {
    // (Under loom, no spinning: the model explores the parked path.)
    if !cfg!(velocity_loom) {
        let began = Instant::now();
        while began.elapsed() < SPIN {
            if has_claimable(shared) || shared.input_done.load(Ordering::SeqCst) {
                return;
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
    *shared.parked.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread::current());
    shared.idle.store(true, Ordering::SeqCst);
    call_feeder(shared);
    // Items, or the end, may have come meanwhile.
    if !has_claimable(shared) && !shared.input_done.load(Ordering::SeqCst) {
        // Idle, not blocked: counted as blocked, it would grow the pool
        // and promote this loop's helpers, which would find nothing to do.
        // (While a slow input trickles, it holds its pool thread.)
        let _idle = pool::IdleGuard::enter();
        thread::park_timeout(*timeout);
        // A slow input wakes it per item; the timeout only covers a race
        // of the two, so it grows while nothing comes.
        *timeout = (*timeout * 2).min(MAX_IDLE_POLL);
    }
    shared.idle.store(false, Ordering::SeqCst);
    *shared.parked.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

#[cold]
fn wake_idle<T, R, B>(shared: &Shared<'_, T, R, B>) {
    if let Some(t) = shared
        .parked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        t.unpark();
    }
}

/// Whether some block has an item to claim.
fn has_claimable<T, R, B>(shared: &Shared<'_, T, R, B>) -> bool {
    let open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
    open.iter().any(|b| b.claims.claimed() < b.claims.filled())
}

/// The feeder at the cap (`pulled` items so far): runs a chunk of up to
/// `chunk` items itself, or waits for one to finish.
fn help_or_wait<T, R, B>(shared: &Shared<'_, T, R, B>, pulled: usize, chunk: &mut usize)
where
    B: Fn(T) -> R + Sync,
{
    if help(shared, chunk) {
        return;
    }
    // Every item in flight is held by a running helper: one finishes soon
    // and wakes this thread (see `run_one_chunk`). ORDERING: the flag and
    // `finished` are SeqCst on both sides, and the waker notifies under the
    // lock held here from the flag to the wait, so a finish is either seen
    // below or wakes the wait. (The timeout is only a second line.)
    let (lock, cvar) = &shared.wake_feeder;
    let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    shared.feeder_waiting.store(true, Ordering::SeqCst);
    let at_cap = pulled - shared.finished.load(Ordering::SeqCst) >= shared.cap();
    if at_cap && !has_claimable(shared) && !shared.opts.stopped() {
        let _idle = pool::IdleGuard::enter();
        let _ = cvar
            .wait_timeout(guard, IDLE_POLL)
            .unwrap_or_else(|e| e.into_inner());
    }
    shared.feeder_waiting.store(false, Ordering::SeqCst);
}

/// Runs one chunk of up to `chunk` items on the calling thread (the
/// feeder); whether there was one.
fn help<T, R, B>(shared: &Shared<'_, T, R, B>, chunk: &mut usize) -> bool
where
    B: Fn(T) -> R + Sync,
{
    let _current = shared.opts.ctx.enter();
    run_one_chunk(shared, chunk, 1, |_| {}) == Took::Ran
}

/// What `run_one_chunk` did.
#[derive(Clone, Copy, PartialEq)]
enum Took {
    Ran,
    /// Fewer than asked for wait (and more may come).
    TooFew,
    Nothing,
}

/// Claims a chunk of up to `chunk` items from the oldest block that has
/// any — if at least `min_wait` wait there, or the block is sealed —, calls
/// `before(waiting)` with how many more items wait beside it, runs it,
/// books it, and adapts `chunk`.
fn run_one_chunk<T, R, B>(
    shared: &Shared<'_, T, R, B>,
    chunk: &mut usize,
    min_wait: usize,
    before: impl FnOnce(usize),
) -> Took
where
    B: Fn(T) -> R + Sync,
{
    let (block, waiting) = {
        let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
        // Drained blocks at the front are done with; a later block exists
        // only once the one before it is sealed.
        while open.front().is_some_and(|b| b.is_drained()) {
            open.pop_front();
        }
        let Some(front) = open.front() else {
            return Took::Nothing;
        };
        let waiting = front.claims.filled().saturating_sub(front.claims.claimed());
        if waiting == 0 {
            return Took::Nothing;
        }
        if waiting < min_wait && !front.sealed.load(Ordering::Acquire) {
            return Took::TooFew;
        }
        (front.clone(), waiting)
    };
    // Near the end of what the block will hold (all of a known-length
    // input), the guided bound.
    let claimed = block.claims.claimed();
    let left = if block.sealed.load(Ordering::Acquire) {
        block.claims.filled()
    } else {
        block.claims.capacity()
    }
    .saturating_sub(claimed);
    let threads = shared.running.load(Ordering::Relaxed) + 1;
    let size = (*chunk).min(parallel::guided_bound(left, threads));
    let Some(batch) = block.claims.claim(size) else {
        // Another thread claimed it first: the caller looks again.
        return Took::Ran;
    };
    let n = batch.len();
    before(waiting.saturating_sub(n));
    let began = Instant::now();
    parallel::run_batch(shared.opts, &shared.panic, block.start, batch, |_, item| {
        (shared.body)(item)
    });
    *chunk = parallel::next_chunk(*chunk, n, began.elapsed());
    drop(block);
    if let Some(progress) = &shared.progress {
        progress.advance(n);
    }
    shared.finished.fetch_add(n, Ordering::SeqCst);
    if shared.feeder_waiting.load(Ordering::SeqCst) {
        let _guard = shared
            .wake_feeder
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shared.wake_feeder.1.notify_one();
    }
    Took::Ran
}

/// The blocks' results, in input order.
fn join_in_order<R>(mut parts: Vec<(usize, Option<Vec<R>>)>) -> Vec<R> {
    parts.sort_unstable_by_key(|(start, _)| *start);
    if parts.len() == 1 {
        return parts.pop().and_then(|(_, v)| v).unwrap_or_default();
    }
    let mut out = Vec::with_capacity(
        parts
            .iter()
            .map(|(_, v)| v.as_ref().map_or(0, Vec::len))
            .sum(),
    );
    for (_, v) in parts {
        out.extend(v.into_iter().flatten());
    }
    out
}
