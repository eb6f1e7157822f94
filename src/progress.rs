//! Progress of long loops: [`with_progress`] installs a callback that the
//! `for_each`/`map`/`all` loops started inside it report to.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::panic;

type Callback = Arc<dyn Fn(usize, usize) + Send + Sync + 'static>;

thread_local! {
    /// The callback for loops this thread starts (see `with_progress`).
    static CURRENT: RefCell<Option<Callback>> = const { RefCell::new(None) };
}

/// Runs `f`; each loop — [`for_each`](crate::for_each), [`map`](crate::map),
/// [`map_n`](crate::map_n), [`try_for_each`](crate::try_for_each),
/// [`all`](crate::all) and their kin — that `f` starts *on this thread*
/// reports its progress to `on_progress(done, total)`.
///
/// * It is called after each batch of items finishes, from whichever thread
///   finished it (a worker or this one), one call at a time, with `done`
///   strictly increasing; when every item ran, the last call has
///   `done == total`. Loops of 0 items report nothing.
/// * Batches are one item while items are slow (over 20 µs) and grow to
///   4,096 while they are fast, so a million tiny items make a few hundred
///   calls, not a million.
/// * For an input whose length is not known up front (its `size_hint` is
///   not exact: a filter, `lines()`, `0..`), `total` is the number of items
///   pulled so far; it grows, stays at least `done`, and equals it at the
///   end.
/// * Loops started by the items themselves (nested loops) do not report.
/// * A panicking callback is caught and shown to the panic handler; the
///   loop goes on. After a `try_for_each` stops early, `done` stays below
///   `total`.
///
/// With the `indicatif` feature, `progress_bar` adapts a
/// `indicatif::ProgressBar`.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use velocity_async as va;
///
/// let last = Arc::new(AtomicUsize::new(0));
/// let seen = last.clone();
/// let squares = va::with_progress(
///     move |done, total| {
///         assert!(done <= total);
///         seen.store(done, Ordering::SeqCst);
///     },
///     || va::map(1..=1000u64, |x| x * x),
/// )
/// .unwrap();
/// assert_eq!(squares[999], 1_000_000);
/// assert_eq!(last.load(Ordering::SeqCst), 1000);
/// ```
pub fn with_progress<R>(
    on_progress: impl Fn(usize, usize) + Send + Sync + 'static,
    f: impl FnOnce() -> R,
) -> R {
    let previous = CURRENT.with(|c| c.replace(Some(Arc::new(on_progress))));
    let _restore = Restore(previous);
    f()
}

/// Puts back the callback that was installed before (on unwind too).
struct Restore(Option<Callback>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|c| c.replace(previous));
    }
}

/// One loop's progress: the callback of `with_progress`, if any.
pub(crate) struct Reporter {
    callback: Callback,
    /// The loop's length; for an input of unknown length, the items pulled
    /// so far (`grow_total`).
    total: AtomicUsize,
    done: AtomicUsize,
    /// The last `done` reported. Written only by the reporter.
    reported: AtomicUsize,
    /// Set while one thread calls the callback: calls stay one at a time and
    /// strictly increasing, without the callback ever running under a lock
    /// (a slow callback holds up no helper: they leave their count for the
    /// reporter to pick up).
    reporting: AtomicBool,
}

/// A loop is starting on this thread: its reporter, if a callback is
/// installed. Loops its items start on this thread see none until the
/// returned guard drops.
pub(crate) fn start_loop(total: usize) -> (Option<Reporter>, impl Drop) {
    let callback = CURRENT.try_with(|c| c.borrow_mut().take()).ok().flatten();
    let reporter = callback.clone().map(|callback| Reporter {
        callback,
        total: AtomicUsize::new(total),
        done: AtomicUsize::new(0),
        reported: AtomicUsize::new(0),
        reporting: AtomicBool::new(false),
    });
    (reporter, Restore(callback))
}

impl Reporter {
    /// At least `total` items are known (called before they can finish, so
    /// `done <= total` holds in every report).
    pub(crate) fn grow_total(&self, total: usize) {
        self.total.fetch_max(total, Ordering::SeqCst);
    }

    /// `n` more items finished.
    pub(crate) fn advance(&self, n: usize) {
        // ORDERING: SeqCst on `done` and `reporting` alike: a helper's add
        // followed by its swap that finds `reporting` set must be seen by the
        // reporter's load after it clears the flag (a store-buffer pattern).
        self.done.fetch_add(n, Ordering::SeqCst);
        // Whoever sets `reporting` reports the latest count, then looks again
        // after clearing it: a count added while it was calling, by a helper
        // that found `reporting` set, is reported by one of the two. Every
        // helper calls this before its scope's latch counts it down, so the
        // final count is reported before the loop returns.
        while !self.reporting.swap(true, Ordering::SeqCst) {
            let done = self.done.load(Ordering::SeqCst);
            let fresh = done > self.reported.load(Ordering::Relaxed);
            if fresh {
                self.reported.store(done, Ordering::Relaxed);
                let total = self.total.load(Ordering::SeqCst);
                let _ = panic::catch(|| (self.callback)(done, total));
            }
            self.reporting.store(false, Ordering::SeqCst);
            if self.done.load(Ordering::SeqCst) <= self.reported.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

/// Adapts an `indicatif` progress bar for [`with_progress`]: sets its
/// length to the loop's total and its position to the items done (needs the
/// `indicatif` feature).
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let bar = indicatif::ProgressBar::hidden();
/// va::with_progress(va::progress_bar(bar.clone()), || {
///     va::for_each(0..500, 8, |_| {}).unwrap();
/// });
/// assert_eq!(bar.position(), 500);
/// assert_eq!(bar.length(), Some(500));
/// ```
#[cfg(feature = "indicatif")]
pub fn progress_bar(bar: indicatif::ProgressBar) -> impl Fn(usize, usize) + Send + Sync + 'static {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}
