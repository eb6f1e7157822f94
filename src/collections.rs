//! Bounded parallel loops: `for_each`, `map`, `map_n`, `try_for_each`,
//! `go_for_each`. The engine is `stream.rs`: the caller pulls the input
//! lazily and helpers take it in chunks, never one task per item.

use std::sync::atomic::Ordering;

use crate::error::Error;
use crate::panic::PanicError;
use crate::parallel::{self, Options};
use crate::stream;
use crate::sync::{AtomicBool, Mutex};

/// Calls `f` on every item, at most `limit` at once, and returns when all are
/// done (Go: `async.ForEach`).
///
/// `limit == 0` means the default cap of 1,024 — never unbounded — and a huge
/// limit allocates nothing in proportion to it. The calling thread works too.
/// Because `for_each` blocks until every item is done, `f` and the items may
/// borrow from the caller's stack.
///
/// Items are handed out in input order to whichever thread is free; fast
/// items are taken in growing chunks, slow ones one at a time, so CPU-bound
/// loops keep the CPUs busy without extra threads and blocking loops get up
/// to `limit` threads.
///
/// # Streams
///
/// The input is pulled lazily, on the calling thread (so the iterator need
/// not be `Send`, only its items), while earlier items run: an item starts
/// as soon as it exists — `reader.lines()`, database rows, pages of an API,
/// `0..` all work — and memory holds the items in flight (up to `limit` plus
/// a few chunks, at most ~20,000 items), not the input. Each item is
/// handed out before the next is pulled, so an iterator may wait for an
/// earlier item to have run (a work queue fed by the items). The iterator's
/// `next` runs in the caller's context, the items in the loop's. A panic in
/// `next` ends the input there and is reported like a panicking item (the
/// iterator is not called again).
///
/// # Errors
///
/// A panicking item does not stop the others; once all items are done, the
/// lowest-index panic is returned as [`Error::Panic`].
///
/// # Cancellation
///
/// Items see one shared context, a child of the caller's
/// [`Context::current`](crate::Context::current). Once it is done (the
/// caller's cancel or deadline), no further item starts: `for_each` waits for
/// the running ones and returns [`Error::Cancelled`] or [`Error::Timeout`]
/// (a panic takes precedence). The same holds for [`map`], [`map_n`] and
/// [`try_for_each`] (whose error then comes through `From<Error>`).
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use velocity_async as va;
///
/// let users = vec![1u64, 2, 3, 4, 5];
/// let notified = AtomicU64::new(0);
/// va::for_each(&users, 3, |id| {
///     notified.fetch_add(*id, Ordering::Relaxed); // stands for sending a notification
/// })
/// .unwrap();
/// assert_eq!(notified.load(Ordering::Relaxed), 15);
/// ```
pub fn for_each<I, F>(items: I, limit: usize, f: F) -> Result<(), Error>
where
    I: IntoIterator,
    I::Item: Send,
    F: Fn(I::Item) + Sync,
{
    // A map to `()`: the outputs are zero-sized and cost nothing.
    map_n(items, limit, f).map(|_| ())
}

/// Maps every item through `f` concurrently and returns the results in input
/// order (Go: `async.Map`). At most 1,024 items run at once; see [`map_n`] to
/// choose.
///
/// # Errors
///
/// A panicking item does not stop the others; once all are done, the
/// lowest-index panic is returned as [`Error::Panic`] and the other results
/// are dropped. For per-item errors, return a `Result` from `f`: the output
/// is then a `Vec<Result<_, _>>`.
///
/// # Example
///
/// ```
/// let lengths = velocity_async::map(vec!["a", "bb", "ccc"], |s| s.len()).unwrap();
/// assert_eq!(lengths, vec![1, 2, 3]);
/// ```
pub fn map<I, R, F>(items: I, f: F) -> Result<Vec<R>, Error>
where
    I: IntoIterator,
    I::Item: Send,
    F: Fn(I::Item) -> R + Sync,
    R: Send,
{
    map_n(items, parallel::DEFAULT_LIMIT, f)
}

/// Like [`map`], with at most `limit` items running at once (Go:
/// `async.MapN`). `limit == 0` means the default cap of 1,024.
///
/// # Example
///
/// ```
/// let doubled = velocity_async::map_n(0..1000, 4, |i| i * 2).unwrap();
/// assert_eq!(doubled[999], 1998);
/// ```
pub fn map_n<I, R, F>(items: I, limit: usize, f: F) -> Result<Vec<R>, Error>
where
    I: IntoIterator,
    I::Item: Send,
    F: Fn(I::Item) -> R + Sync,
    R: Send,
{
    let ctx = parallel::call_context();
    let opts = Options::new(parallel::limit_or_default(limit), &ctx);
    stream::run(items.into_iter(), &opts, &f)
}

/// Like [`for_each`] for a fallible `f`: once the first error is recorded, no
/// further item starts (the ones not started are dropped unrun; with
/// `limit == 1` that is exactly every item after the failing one), no
/// further item is pulled (so an endless input works), and the items'
/// shared context is cancelled, so those running can stop early.
/// Returns the first error (in time); a panic counts as one and becomes `E`
/// through `From<Error>`. Waits for the running items before returning.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let r = va::try_for_each(1..=100, 4, |i| if i == 10 { Err(va::Error::Cancelled) } else { Ok(()) });
/// assert!(r.unwrap_err().is_cancelled());
/// ```
pub fn try_for_each<I, F, E>(items: I, limit: usize, f: F) -> Result<(), E>
where
    I: IntoIterator,
    I::Item: Send,
    F: Fn(I::Item) -> Result<(), E> + Sync,
    E: From<Error> + Send,
{
    let ctx = parallel::call_context();
    let stop = AtomicBool::new(false);
    let first: Mutex<Option<E>> = Mutex::new(None);
    let fail = |e: E| {
        let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
            stop.store(true, Ordering::Release);
            drop(first);
            // Outside the lock: cancelling runs wakers (user code).
            ctx.cancel();
        } else {
            drop(first);
            crate::panic::drop_quietly(e);
        }
    };
    let on_panic = |_: usize, p: &PanicError| fail(E::from(Error::Panic(p.clone())));
    let opts = Options {
        stop: Some(&stop),
        on_panic: Some(&on_panic),
        ..Options::new(parallel::limit_or_default(limit), &ctx)
    };
    // The engine checks the stop flag before every item: an item already
    // pulled but not yet started when another fails is dropped unrun, and
    // no further item is pulled.
    let ended = stream::run(items.into_iter(), &opts, &|item| {
        if let Err(e) = f(item) {
            fail(e);
        }
    });
    match first.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        // No item failed, yet the loop ended early: the caller's context.
        None => ended.map(|_| ()).map_err(E::from),
    }
}

/// Fire-and-forget [`for_each`] (Go: `async.GoForEach`): returns at once and
/// processes the items in the background, at most `limit` at once. The
/// input is pulled in the background too — the call returns before the
/// first item is made — so the iterator must be `Send + 'static`.
///
/// Panics are shown to the handler of
/// [`set_panic_handler`](crate::set_panic_handler); a panicking item does not
/// stop the others. Use [`shutdown`](crate::shutdown) to wait for it before
/// the process exits.
///
/// # Example
///
/// ```
/// use std::sync::mpsc;
/// let (tx, rx) = mpsc::channel();
/// velocity_async::go_for_each(0..10, 2, move |i| tx.send(i).unwrap());
/// let mut got: Vec<i32> = rx.iter().take(10).collect();
/// got.sort();
/// assert_eq!(got, (0..10).collect::<Vec<_>>());
/// ```
pub fn go_for_each<I, F>(items: I, limit: usize, f: F)
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
    F: Fn(I::Item) + Send + Sync + 'static,
{
    // The input is pulled in the background too (hence `Send`): the call
    // returns before its first item exists.
    let items = items.into_iter();
    crate::run::go(move || {
        // Panics were already reported item by item.
        let _ = for_each(items, limit, f);
    });
}
