//! `group` and `group_n`: Go's `errgroup` (with `WithContext`, `SetLimit`
//! and `TryGo`) for synchronous Rust. The group itself, and the lifetime
//! reasoning that lets its jobs borrow, are in `scope.rs`.

use std::fmt;
use std::panic::resume_unwind;

use crate::context::Context;
use crate::error::Error;
use crate::panic;
use crate::parallel::{call_context, limit_or_default};
use crate::pool::{self, Wake};
use crate::scope::open_group;
use crate::semaphore::{Permit, Semaphore};

pub use crate::scope::Group;

/// Runs `f` with a [`Group`] of fallible jobs that may borrow from the
/// caller's stack, and returns after every job has ended: the first error
/// (in time) of a job or of `f`, else `f`'s value. Go's `errgroup` with
/// `WithContext`.
///
/// * **Jobs.** [`Group::go`] starts a job beside the caller, never on it, as
///   [`run`](crate::run) does: jobs that block (I/O, locks) make the pool
///   grow. The group has no limit; [`group_n`] has one. Once `f` has
///   returned, the calling thread runs any job nobody has started yet while
///   it waits (it would only sleep otherwise).
/// * **First error.** The first job to return `Err` (or panic), or `f`
///   returning `Err`, cancels the group's context ([`Group::context`], every
///   job's [`Context::current`], a child of the caller's), so siblings that
///   check it can stop. That error is returned once every job has ended;
///   later errors are dropped.
/// * **Cancelled jobs are not called.** A job that has not started when the
///   group's context is done is dropped uncalled. If that context ended by
///   the caller's (a timeout or cancel from outside) rather than by an
///   error, that error (`E::from(Error::Timeout)` or
///   `E::from(Error::Cancelled)`) is returned, so a skipped job never goes
///   unnoticed.
/// * The context is cancelled when `group` returns.
///
/// # Panics
///
/// A panicking job counts as its error, `E::from(Error::Panic(…))`, and
/// cancels the siblings like any error; it is also shown to the panic
/// handler. If `f` itself panics, the context is cancelled, every job is
/// waited for, and the panic is resumed.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// #[derive(Debug)]
/// enum FetchError { NotFound(&'static str), Pool(va::Error) }
/// impl From<va::Error> for FetchError {
///     fn from(e: va::Error) -> Self { FetchError::Pool(e) }
/// }
///
/// let pages = ["/", "/about", "/missing"];
/// let mut sizes = vec![0usize; pages.len()];
/// let r = va::group(|g| {
///     for (page, size) in pages.iter().zip(sizes.iter_mut()) {
///         g.go(move || {
///             if *page == "/missing" {
///                 return Err(FetchError::NotFound(page));
///             }
///             *size = page.len();
///             Ok(())
///         });
///     }
///     Ok(())
/// });
/// assert!(matches!(r, Err(FetchError::NotFound("/missing"))));
/// ```
pub fn group<'env, T, E, F>(f: F) -> Result<T, E>
where
    F: for<'scope> FnOnce(&'scope Group<'scope, 'env, E>) -> Result<T, E>,
    E: From<Error> + Send,
{
    run_group(None, f)
}

/// [`group`] with at most `limit` jobs running at once: [`Group::go`] blocks
/// while `limit` jobs run, [`Group::try_go`] refuses. Go's
/// `errgroup.SetLimit`.
///
/// `limit` 0 means the default cap (1024), as everywhere in the crate;
/// `usize::MAX` means no limit.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use velocity_async as va;
///
/// let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
/// va::group_n(2, |g| {
///     for _ in 0..8 {
///         g.go(|| {
///             let now = running.fetch_add(1, Ordering::SeqCst) + 1;
///             most.fetch_max(now, Ordering::SeqCst);
///             std::thread::sleep(std::time::Duration::from_millis(2));
///             running.fetch_sub(1, Ordering::SeqCst);
///             Ok::<(), va::Error>(())
///         });
///     }
///     Ok(())
/// })
/// .unwrap();
/// assert!(most.load(Ordering::SeqCst) <= 2);
/// ```
pub fn group_n<'env, T, E, F>(limit: usize, f: F) -> Result<T, E>
where
    F: for<'scope> FnOnce(&'scope Group<'scope, 'env, E>) -> Result<T, E>,
    E: From<Error> + Send,
{
    let limit = limit_or_default(limit);
    run_group((limit != usize::MAX).then(|| Semaphore::new(limit)), f)
}

fn run_group<'env, T, E, F>(limit: Option<Semaphore>, f: F) -> Result<T, E>
where
    F: for<'scope> FnOnce(&'scope Group<'scope, 'env, E>) -> Result<T, E>,
    E: From<Error> + Send,
{
    let ctx = call_context();
    let (result, first) = open_group(pool::current(), ctx.clone(), limit, move |g| match f(g) {
        Ok(value) => Some(value),
        Err(e) => {
            // The body's own error counts, in time, like a job's.
            g.first.fail(&g.ctx, e);
            None
        }
    });
    ctx.cancel();
    match (result, first) {
        (Err(payload), first) => {
            panic::drop_quietly(first);
            resume_unwind(payload)
        }
        (Ok(value), Some(e)) => {
            panic::drop_quietly(value);
            Err(e)
        }
        (Ok(Some(value)), None) => Ok(value),
        // The body erred, so an error was recorded; kept total all the same.
        (Ok(None), None) => Err(E::from(Error::Cancelled)),
    }
}

impl<'scope, E> Group<'scope, '_, E>
where
    E: From<Error> + Send,
{
    /// Starts `f` as a job of the group, beside the caller (never on it).
    /// With a limit ([`group_n`]), blocks while `limit` jobs run.
    ///
    /// Once the group's context is done (an error, a cancel), `go` returns at
    /// once and `f` is dropped uncalled. A job calling `go` on its own
    /// group at the limit waits for a sibling to end (as in Go, if every
    /// running job does so, they wait forever: use
    /// [`try_go`](Group::try_go) inside jobs).
    ///
    /// # Example
    ///
    /// ```
    /// let mut hits = [0u32; 4];
    /// velocity_async::group(|g| {
    ///     for h in hits.iter_mut() {
    ///         g.go(move || {
    ///             *h += 1;
    ///             Ok::<(), velocity_async::Error>(())
    ///         });
    ///     }
    ///     Ok(())
    /// })
    /// .unwrap();
    /// assert_eq!(hits, [1, 1, 1, 1]);
    /// ```
    pub fn go<F>(&'scope self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'scope,
    {
        let permit = match &self.limit {
            None => None,
            Some(limit) => {
                // Waits in the group's context: its first error ends the wait.
                let acquired = {
                    let _group = self.ctx.enter();
                    limit.acquire(1)
                };
                match acquired {
                    Ok(permit) => Some(permit),
                    Err(_) => return self.skip(f),
                }
            }
        };
        self.start(permit, f);
    }

    /// Like [`go`](Group::go), but never blocks: at the limit, returns false
    /// and drops `f` uncalled (Go's `TryGo`). True if the group took the job
    /// (a job taken after the group's context is done is dropped uncalled,
    /// as for `go`).
    ///
    /// A panic in the `Drop` of a refused `f` does not unwind into the
    /// caller: it counts as an error of the group, as a panicking job does.
    ///
    /// # Example
    ///
    /// ```
    /// let gate = std::sync::Barrier::new(2);
    /// velocity_async::group_n(1, |g| {
    ///     g.go(|| {
    ///         gate.wait();
    ///         Ok::<(), velocity_async::Error>(())
    ///     });
    ///     assert!(!g.try_go(|| Ok(()))); // the one slot is taken
    ///     gate.wait();
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn try_go<F>(&'scope self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'scope,
    {
        let permit = match &self.limit {
            None => None,
            Some(limit) => match limit.try_acquire(1) {
                Some(permit) => Some(permit),
                None => {
                    if let Err(p) = panic::catch(move || drop(f)) {
                        self.first.fail(&self.ctx, E::from(Error::Panic(p)));
                    }
                    return false;
                }
            },
        };
        self.start(permit, f);
        true
    }

    /// The group's context: every job's [`Context::current`], a child of the
    /// caller's, cancelled at the first error and when the group returns.
    ///
    /// # Example
    ///
    /// ```
    /// use velocity_async as va;
    ///
    /// let r: Result<(), va::Error> = va::group(|g| {
    ///     g.go(|| {
    ///         va::Context::current().wait(); // until a sibling fails
    ///         Ok(())
    ///     });
    ///     g.go(|| Err(va::Error::Cancelled));
    ///     Ok(())
    /// });
    /// assert!(r.unwrap_err().is_cancelled());
    /// ```
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Queues `f`, holding `permit` (if limited) until it has ended.
    fn start<F>(&'scope self, permit: Option<Permit<'scope>>, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'scope,
    {
        self.join.spawn_with(Wake::Eager, move || {
            let _permit = permit;
            if self.ctx.is_done() {
                return self.skip(f);
            }
            let error = {
                let _current = self.ctx.enter();
                match panic::catch(f) {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(p) => E::from(Error::Panic(p)),
                }
            };
            self.first.fail(&self.ctx, error);
        });
    }

    /// Drops `f` uncalled because the group's context is done; if no error
    /// of the group ended it, the context's own error is the group's.
    fn skip<F>(&self, f: F) {
        panic::drop_quietly(f);
        if let Some(e) = self.ctx.error() {
            self.first.fail(&self.ctx, E::from(e));
        }
    }
}

impl<E> fmt::Debug for Group<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("limit", &self.limit)
            .field("context", &self.ctx)
            .finish_non_exhaustive()
    }
}
