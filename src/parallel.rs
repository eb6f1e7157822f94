//! The loop engine behind `all` and its kin, whose jobs come as a `Vec`:
//! workers *pull* them, never one task per job. (The loops over iterators,
//! `for_each` and `map`, use `stream.rs`, which shares this file's options,
//! chunk sizes and panic record.)
//!
//! * The caller's thread is the first helper. It launches one more; each
//!   launched helper, when it starts, launches up to two more (a tree),
//!   until `limit` helpers exist or there are as many helpers as items. (The
//!   caller launches only one because it runs items at once: a small `all`
//!   of fast items is often done before a second helper could start, and
//!   every helper launched costs a submit and usually a wake-up.) So
//!   CPU-bound loops keep about one helper per CPU busy (the pool does not
//!   grow for them), while blocking items make the pool grow and more
//!   helpers start — one default serves both.
//! * A helper takes items in chunks under one lock. A chunk starts at one
//!   item and doubles while items are fast (under 20 µs each), up to 4,096,
//!   so a million tiny items cost a few hundred lock acquisitions, while
//!   slow (blocking) items are taken one at a time and spread over helpers.
//! * Each item runs under `catch_unwind`. A panicking item does not stop the
//!   others; the lowest-index panic is reported after all items are done.
//! * Once the loop's context is done (the caller's deadline or cancel, a
//!   sibling's failure), no further item starts: one atomic load before each
//!   item, and the loop returns the context's error.
//! * Helpers are queued as loop helpers (`Wake::Elastic`: optional
//!   parallelism, taken only while fewer than `target_running` threads
//!   compute). Once the pool's monitor finds one of the loop's threads
//!   blocked — a helper, or the caller, whose CPU clock it samples too —
//!   it turns the loop's queued helpers into eager jobs, so blocking items
//!   beside CPU-bound work get their threads.
//! * Items are claimed by index with one atomic add, and each result is
//!   written straight into its place in the output (`scope::Claims`): no
//!   lock per chunk, no final copy.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::context::{Context, DoneFlag};
use crate::error::Error;
use crate::panic;
use crate::panic::PanicError;
use crate::pool;
use crate::progress::{self, Reporter};
use crate::scope::{self, Batch, Claims, Join};
use crate::sync::{AtomicBool, AtomicUsize, Mutex};

/// The cap used when a caller passes a limit of 0.
pub(crate) const DEFAULT_LIMIT: usize = 1024;

/// The largest chunk of items a helper takes at once.
pub(crate) const MAX_CHUNK: usize = 4096;
/// Items faster than this are taken in growing chunks; slower ones one at a
/// time.
const FAST_ITEM: Duration = Duration::from_micros(20);

/// How a loop reacts to a panicking item.
pub(crate) type PanicHook<'a> = &'a (dyn Fn(usize, &PanicError) + Sync);

/// What the caller of [`run`] chooses.
pub(crate) struct Options<'a> {
    /// At most this many items run at once (already mapped from 0).
    pub(crate) limit: usize,
    /// The context every item sees as `Context::current()`.
    pub(crate) ctx: &'a Context,
    /// Once set, no further items are handed out.
    pub(crate) stop: Option<&'a AtomicBool>,
    /// Told about each panic as it happens (to cancel siblings early).
    pub(crate) on_panic: Option<PanicHook<'a>>,
}

impl<'a> Options<'a> {
    /// At most `limit` at once, every item in `ctx`; no stop, no panic hook.
    pub(crate) fn new(limit: usize, ctx: &'a Context) -> Options<'a> {
        Options {
            limit,
            ctx,
            stop: None,
            on_panic: None,
        }
    }
}

struct Shared<'a, T, R, B> {
    source: Claims<T, R>,
    progress: Option<Reporter>,
    len: usize,
    /// Helpers handed to the pool, and the caller.
    launched: AtomicUsize,
    body: &'a B,
    opts: &'a Options<'a>,
    panic: FirstPanic,
}

/// Runs `body(index, item)` for every item and returns the results in input
/// order; or, once every started item is done, the lowest-index panic
/// ([`Error::Panic`]), else the context's error if it ended the loop before
/// every item ran (or the stop flag did: its setter knows why).
pub(crate) fn run<T, R, B>(items: Vec<T>, opts: &Options<'_>, body: &B) -> Result<Vec<R>, Error>
where
    T: Send,
    R: Send,
    B: Fn(usize, T) -> R + Sync,
{
    let len = items.len();
    if len == 0 {
        return Ok(Vec::new());
    }
    let (progress, _no_nested_progress) = progress::start_loop(len);
    let shared = Shared {
        source: Claims::new(items),
        progress,
        len,
        launched: AtomicUsize::new(1), // the caller
        body,
        opts,
        panic: FirstPanic::new(),
    };
    if opts.limit <= 1 || len == 1 {
        // Nothing to hand out: run here, without touching the pool.
        helper_loop(&shared);
    } else {
        let pool = pool::current();
        scope::scope(pool.clone(), |join| {
            // The caller works too: it takes one of the pool's CPU slots, so
            // a CPU-bound loop wakes one helper fewer (as rayon's caller
            // sleeps instead, this keeps exactly `target_running` threads
            // computing), and the monitor samples it like a worker.
            let _caller = pool.enter_external(join.id());
            helper(&shared, join, 1);
        });
    }
    let Shared {
        source,
        panic: first_panic,
        ..
    } = shared;
    let outputs = source.into_outputs();
    match (first_panic.into_inner(), outputs) {
        (Some(p), outputs) => {
            panic::drop_quietly(outputs);
            Err(Error::Panic(p))
        }
        (None, Some(outputs)) => Ok(outputs),
        // Items were left unrun: the context ended the loop (or the stop
        // flag did, whose setter reports its own error).
        (None, None) => Err(opts.cut_short_error()),
    }
}

fn helper<'scope, 'env, T, R, B>(
    shared: &'env Shared<'env, T, R, B>,
    join: &'scope Join<'scope, 'env>,
    fan_out: usize,
) where
    T: Send,
    R: Send,
    B: Fn(usize, T) -> R + Sync,
{
    // Start up to `fan_out` more helpers before working (the module docs):
    // a tree, so a burst of blocking items reaches `limit` helpers in about
    // log2(limit) hand-offs.
    for _ in 0..fan_out {
        let launched = shared.launched.load(Ordering::Relaxed);
        let want = shared.opts.limit.min(shared.len);
        if launched >= want || shared.source.claimed() >= shared.len || stopped(shared) {
            break;
        }
        if shared
            .launched
            .compare_exchange(launched, launched + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            join.spawn(move || helper(shared, join, 2));
        }
    }
    helper_loop(shared);
}

/// Whether no further item may start: the stop flag is set or the loop's
/// context is done (one atomic load each; a deadline is marked by the timer).
#[inline]
fn stopped<T, R, B>(shared: &Shared<'_, T, R, B>) -> bool {
    shared.opts.stopped()
}

impl Options<'_> {
    /// Whether no further item may start (see `stopped`).
    #[inline]
    pub(crate) fn stopped(&self) -> bool {
        self.stop_check().stopped()
    }

    /// What [`stopped`](Self::stopped) reads, borrowed once for a loop
    /// that checks it per item.
    #[inline]
    pub(crate) fn stop_check(&self) -> StopCheck<'_> {
        StopCheck {
            stop: self.stop,
            done: self.ctx.done_flag(),
        }
    }

    /// The error of a loop that ended before every item ran: the context's
    /// (or, with the stop flag, whatever its setter reports instead).
    pub(crate) fn cut_short_error(&self) -> Error {
        self.ctx.reason().map_or(Error::Cancelled, |r| r.to_error())
    }
}

/// The stop flag and the context's done state, borrowed
/// ([`Options::stop_check`]).
#[derive(Clone, Copy)]
pub(crate) struct StopCheck<'a> {
    stop: Option<&'a AtomicBool>,
    done: DoneFlag<'a>,
}

impl StopCheck<'_> {
    /// Whether no further item may start (see `Options::stopped`).
    #[inline]
    pub(crate) fn stopped(self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Acquire)) || self.done.is_set()
    }
}

/// The lowest-index panic of a loop so far.
pub(crate) struct FirstPanic(Mutex<Option<(usize, PanicError)>>);

impl FirstPanic {
    pub(crate) fn new() -> FirstPanic {
        FirstPanic(Mutex::new(None))
    }

    /// Tells the loop's hook, and keeps `p` if its index is the lowest yet.
    #[cold]
    pub(crate) fn record(&self, opts: &Options<'_>, index: usize, p: PanicError) {
        if let Some(hook) = opts.on_panic {
            hook(index, &p);
        }
        let mut first = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if first.as_ref().map_or(true, |(i, _)| index < *i) {
            *first = Some((index, p));
        }
    }

    pub(crate) fn into_inner(self) -> Option<PanicError> {
        self.0
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(_, p)| p)
    }
}

fn helper_loop<T, R, B>(shared: &Shared<'_, T, R, B>)
where
    B: Fn(usize, T) -> R + Sync,
{
    let _current = shared.opts.ctx.enter();
    let mut chunk = 1usize;
    // The last chunk's start and end, if it was timed: its end is the next
    // one's start (one clock read per chunk).
    let mut timed: Option<(Instant, Instant)> = None;
    loop {
        // Between chunks, the full check: it also reads the clock against
        // the context's deadline.
        if stopped(shared) || shared.opts.ctx.is_done() {
            return;
        }
        let Some(batch) = shared.source.claim(chunk) else {
            return;
        };
        let n = batch.len();
        // If the guided bound is already 1 now, it is 1 after the batch too
        // (fewer items left, no fewer helpers), so the next chunk is 1
        // whatever the batch takes: no clock reads (they cost more than a
        // small `all`'s items).
        let began = (bound(shared) > 1).then(|| timed.map_or_else(Instant::now, |(_, end)| end));
        run_batch(shared.opts, &shared.panic, 0, batch, |index, item| {
            (shared.body)(index, item)
        });
        if let Some(progress) = &shared.progress {
            progress.advance(n);
        }
        timed = began.map(|began| (began, Instant::now()));
        chunk = match timed {
            Some((began, end)) => next_chunk(chunk, n, end - began).min(bound(shared)),
            None => 1,
        };
    }
}

/// The guided bound of a slice loop's next chunk (`guided_bound` over the
/// items not yet claimed and the helpers launched).
fn bound<T, R, B>(shared: &Shared<'_, T, R, B>) -> usize {
    let left = shared.len.saturating_sub(shared.source.claimed());
    guided_bound(left, shared.launched.load(Ordering::Relaxed))
}

/// Near the end of a loop, a chunk holds at most half an equal share of
/// the `left` items per thread (and at least one), so the threads run out
/// of items together instead of one finishing a last big chunk alone
/// (OpenMP's "guided" schedule). Both loop engines bound their chunks so.
pub(crate) fn guided_bound(left: usize, threads: usize) -> usize {
    (left / threads.max(1).saturating_mul(2)).max(1)
}

/// Runs one claimed batch; a panicking item does not stop the rest. Panics
/// are recorded in `first` at `offset` plus their index in the claims (the
/// iterator engine's blocks start past 0).
pub(crate) fn run_batch<T, R>(
    opts: &Options<'_>,
    first: &FirstPanic,
    offset: usize,
    mut batch: Batch<'_, T, R>,
    body: impl Fn(usize, T) -> R,
) {
    // One `catch_unwind` per batch, not per item: after a panic, the rest of
    // the batch is still in `batch` and runs next.
    let check = opts.stop_check();
    let go_on = || !check.stopped();
    loop {
        match panic::catch(|| batch.run(go_on, &body)) {
            Ok(()) => return,
            Err(p) => {
                let index = batch.unanswered().unwrap_or_else(|| batch.start());
                first.record(opts, offset + index, p);
            }
        }
    }
}

/// The next chunk size after `n` items took `took`: doubled while items
/// are fast, up to `MAX_CHUNK`; back to one when they are slow. (Under loom
/// the clock must not steer the model: one at a time.)
pub(crate) fn next_chunk(chunk: usize, n: usize, took: Duration) -> usize {
    if !cfg!(velocity_loom) && took < FAST_ITEM * n as u32 {
        (chunk * 2).min(MAX_CHUNK)
    } else {
        1
    }
}

/// A loop call's own context, a child of the caller's: the context every
/// item or job of one call sees.
pub(crate) fn call_context() -> Context {
    Context::current().make_child(None, true, None)
}

/// Maps a user's limit: 0 means the default cap, never unbounded.
pub(crate) fn limit_or_default(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit
    }
}

#[cfg(all(test, not(velocity_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_at_most_half_an_equal_share_of_what_is_left() {
        assert_eq!(guided_bound(100, 5), 10);
        assert_eq!(guided_bound(19, 2), 4);
        // Never zero, whatever is left or however many threads.
        assert_eq!(guided_bound(0, 3), 1);
        assert_eq!(guided_bound(3, 8), 1);
        assert_eq!(guided_bound(7, 0), 3, "no helper counted yet is one");
        assert_eq!(guided_bound(usize::MAX, usize::MAX), 1, "no overflow");
    }

    #[test]
    fn chunks_double_while_items_are_fast_and_fall_back_to_one() {
        let fast = FAST_ITEM / 2;
        assert_eq!(next_chunk(4, 4, fast * 4), 8);
        assert_eq!(next_chunk(MAX_CHUNK, MAX_CHUNK, fast), MAX_CHUNK);
        assert_eq!(next_chunk(8, 8, FAST_ITEM * 8), 1, "as slow as the limit");
    }

    /// A loop takes its `StopCheck` before a run of items: it must see a
    /// stop or a cancel that comes after it was taken, not a snapshot.
    #[test]
    fn a_stop_check_sees_a_stop_or_a_cancel_that_comes_after_it() {
        let ctx = Context::new();
        let stop = AtomicBool::new(false);
        let opts = Options {
            stop: Some(&stop),
            ..Options::new(2, &ctx)
        };
        let check = opts.stop_check();
        assert!(!check.stopped());
        stop.store(true, Ordering::Release);
        assert!(
            check.stopped(),
            "the stop flag, set after the check was taken"
        );

        let opts = Options::new(2, &ctx);
        let check = opts.stop_check();
        assert!(!check.stopped());
        ctx.cancel();
        assert!(check.stopped(), "the cancel, after the check was taken");

        let background = Context::background();
        assert!(!Options::new(2, &background).stop_check().stopped());
    }
}
