//! The loop engine behind `all`, `map` and `for_each`: workers *pull* items,
//! never one task per item.
//!
//! * The caller's thread is the first helper. Each helper, when it starts,
//!   launches up to two more (a tree), until `limit` helpers exist or there
//!   are as many helpers as items. So CPU-bound loops keep about one helper
//!   per CPU busy (the pool does not grow for them), while blocking items
//!   make the pool grow and more helpers start — one default serves both.
//! * A helper takes items in chunks under one lock. A chunk starts at one
//!   item and doubles while items are fast (under 20 µs each), up to 4,096,
//!   so a million tiny items cost a few hundred lock acquisitions, while
//!   slow (blocking) items are taken one at a time and spread over helpers.
//! * Each item runs under `catch_unwind`. A panicking item does not stop the
//!   others; the lowest-index panic is reported after all items are done.
//! * Results are collected per chunk with their start index and put back in
//!   input order at the end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::PanicError;
use crate::panic;
use crate::pool;
use crate::scope::{self, Join};

/// The cap used when a caller passes a limit of 0.
pub(crate) const DEFAULT_LIMIT: usize = 1024;

const MAX_CHUNK: usize = 4096;
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

struct Source<T> {
    items: std::vec::IntoIter<T>,
    next: usize,
}

struct Shared<'a, T, R, B> {
    source: Mutex<Source<T>>,
    len: usize,
    taken: AtomicUsize,
    launched: AtomicUsize,
    body: &'a B,
    opts: &'a Options<'a>,
    chunks: Mutex<Vec<(usize, Vec<R>)>>,
    panic: Mutex<Option<(usize, PanicError)>>,
    failed: AtomicBool,
}

/// Runs `body(index, item)` for every item and returns the results in input
/// order, or the lowest-index panic once every item is done.
pub(crate) fn run<T, R, B>(
    items: Vec<T>,
    opts: &Options<'_>,
    body: &B,
) -> Result<Vec<R>, PanicError>
where
    T: Send,
    R: Send,
    B: Fn(usize, T) -> R + Sync,
{
    let len = items.len();
    if len == 0 {
        return Ok(Vec::new());
    }
    let shared = Shared {
        source: Mutex::new(Source {
            items: items.into_iter(),
            next: 0,
        }),
        len,
        taken: AtomicUsize::new(0),
        launched: AtomicUsize::new(1), // the caller
        body,
        opts,
        chunks: Mutex::new(Vec::new()),
        panic: Mutex::new(None),
        failed: AtomicBool::new(false),
    };
    if opts.limit <= 1 || len == 1 {
        // Nothing to hand out: run here, without touching the pool.
        helper_loop(&shared);
    } else {
        scope::scope(pool::current(), |join| helper(&shared, join));
    }
    let Shared {
        chunks,
        panic: first_panic,
        ..
    } = shared;
    if let Some((_, p)) = first_panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        panic::drop_quietly(chunks);
        return Err(p);
    }
    let mut chunks = chunks.into_inner().unwrap_or_else(|e| e.into_inner());
    chunks.sort_unstable_by_key(|(start, _)| *start);
    let mut out = Vec::with_capacity(len);
    for (_, rs) in chunks {
        out.extend(rs);
    }
    Ok(out)
}

fn helper<'scope, 'env, T, R, B>(
    shared: &'env Shared<'env, T, R, B>,
    join: &'scope Join<'scope, 'env>,
) where
    T: Send,
    R: Send,
    B: Fn(usize, T) -> R + Sync,
{
    // Start up to two more helpers before working: a tree, so a burst of
    // blocking items reaches `limit` helpers in log2(limit) hand-offs.
    for _ in 0..2 {
        let launched = shared.launched.load(Ordering::Relaxed);
        let want = shared.opts.limit.min(shared.len);
        if launched >= want || shared.taken.load(Ordering::Relaxed) >= shared.len {
            break;
        }
        if shared
            .launched
            .compare_exchange(launched, launched + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            join.spawn(move || helper(shared, join));
        }
    }
    helper_loop(shared);
}

fn helper_loop<T, R, B>(shared: &Shared<'_, T, R, B>)
where
    T: Send,
    R: Send,
    B: Fn(usize, T) -> R + Sync,
{
    let _current = shared.opts.ctx.enter();
    let mut chunk = 1usize;
    let mut batch: Vec<T> = Vec::new();
    loop {
        if shared.opts.stop.is_some_and(|s| s.load(Ordering::Acquire)) {
            break;
        }
        let start = {
            let mut src = shared.source.lock().unwrap_or_else(|e| e.into_inner());
            batch.extend(src.items.by_ref().take(chunk));
            let start = src.next;
            src.next += batch.len();
            shared.taken.store(src.next, Ordering::Relaxed);
            start
        };
        if batch.is_empty() {
            break;
        }
        let n = batch.len();
        let began = Instant::now();
        let mut results = Vec::with_capacity(n);
        // One `catch_unwind` per chunk, not per item: after a panic, the
        // remaining items of the chunk are still in `items` and run next.
        let mut items = batch.drain(..);
        let mut index = start;
        loop {
            let ran = panic::catch(None, || {
                for item in items.by_ref() {
                    results.push((shared.body)(index, item));
                    index += 1;
                }
            });
            match ran {
                Ok(()) => break,
                Err(p) => {
                    record_panic(shared, index, p);
                    index += 1;
                }
            }
        }
        drop(items);
        if shared.failed.load(Ordering::Relaxed) {
            panic::drop_quietly(results);
        } else {
            shared
                .chunks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((start, results));
        }
        // Grow the chunk while items are fast; back to one when they are slow.
        let elapsed = began.elapsed();
        if elapsed < FAST_ITEM * n as u32 {
            chunk = (chunk * 2).min(MAX_CHUNK);
        } else {
            chunk = 1;
        }
    }
}

#[cold]
fn record_panic<T, R, B>(shared: &Shared<'_, T, R, B>, index: usize, p: PanicError) {
    shared.failed.store(true, Ordering::Relaxed);
    if let Some(hook) = shared.opts.on_panic {
        hook(index, &p);
    }
    let mut first = shared.panic.lock().unwrap_or_else(|e| e.into_inner());
    if first.as_ref().map_or(true, |(i, _)| index < *i) {
        *first = Some((index, p));
    }
}

/// Maps a user's limit: 0 means the default cap, never unbounded.
pub(crate) fn limit_or_default(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit
    }
}
