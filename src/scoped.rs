//! `scope`: `std::thread::scope`'s shape on the pool. The scope itself, and
//! the lifetime reasoning that lets its jobs borrow, are in `scope.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::panic::resume_unwind;
use std::sync::Arc;

use crate::context::Context;
use crate::error::Error;
use crate::panic::{self, PanicError};
use crate::parallel::call_context;
use crate::pool::{self, Wake};
use crate::scope::{open_scope, ScopedRef};
use crate::sync::Mutex;
use crate::task::Slot;

pub use crate::scope::Scope;

/// Runs `f` with a [`Scope`] whose jobs may borrow from the caller's stack,
/// and returns only after every job spawned on it has finished — joined or
/// not: `std::thread::scope` on the pool.
///
/// * **Parallel.** Each [`Scope::spawn`] is a job of the current pool, woken
///   as [`run`](crate::run) is: it gets an idle worker at once, and jobs that
///   block (I/O, locks) make the pool grow, so a scope of 100 blocking jobs
///   runs them all at once. Jobs that nobody has started when `f` returns are
///   run by the calling thread itself while it waits.
/// * **Context.** Every job's [`Context::current`] is the scope's context
///   ([`Scope::context`]), a child of the caller's, cancelled when `scope`
///   returns. A job that has not started when that context is done (the
///   caller's context was cancelled or timed out) is never called; its
///   [`join`](ScopedTask::join) returns the context's error.
///
/// # Panics
///
/// * A panicking job never unwinds into the pool: [`ScopedTask::join`]
///   returns it as [`Error::Panic`].
/// * **A panic nobody joined is resumed by `scope`**, after every job has
///   ended, with its original payload (the first such panic; later ones are
///   only reported to the panic handler). This is std's rule, for std's
///   reason: a job whose handle was dropped has no other way to report that
///   it failed, and `scope` returning as if all went well would lose that.
///   Join the handle to handle the panic yourself.
/// * If `f` itself panics, the scope's context is cancelled at once (the
///   jobs are told to stop), every job is still waited for, and then `f`'s
///   panic is resumed.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let mut totals = vec![0u64; 3];
/// let words = ["alpha", "beta", "gamma"];
/// va::scope(|s| {
///     for (total, word) in totals.iter_mut().zip(&words) {
///         s.spawn(move || *total = word.len() as u64); // borrows `totals`, `words`
///     }
///     let longest = s.spawn(|| words.iter().map(|w| w.len()).max());
///     assert_eq!(longest.join().unwrap(), Some(5));
/// });
/// assert_eq!(totals, [5, 4, 5]);
/// ```
pub fn scope<'env, R, F>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let ctx = call_context();
    let (result, unjoined) = open_scope(pool::current(), ctx.clone(), f);
    ctx.cancel();
    match (result, unjoined) {
        (Err(payload), unjoined) => {
            panic::drop_quietly(unjoined);
            resume_unwind(payload)
        }
        (Ok(value), Some(p)) => {
            // Its `Drop` must not run while the panic unwinds (an abort).
            panic::drop_quietly(value);
            resume_unwind(p.into_panic())
        }
        (Ok(r), None) => r,
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Starts `f` on the pool and returns its handle. `f` may borrow anything
    /// that outlives the scope.
    ///
    /// The job runs as [`run`](crate::run)'s do (see [`scope`]); its
    /// [`Context::current`] is the scope's context. Dropping the handle
    /// detaches the job: it still runs, `scope` still waits for it, and if it
    /// panics, `scope` resumes the panic.
    ///
    /// # Example
    ///
    /// ```
    /// let data = vec![1, 2, 3];
    /// let sum = velocity_async::scope(|s| {
    ///     let evens = s.spawn(|| data.iter().filter(|x| *x % 2 == 0).count());
    ///     let sum = s.spawn(|| data.iter().sum::<i32>());
    ///     assert_eq!(evens.join().unwrap(), 1);
    ///     sum.join().unwrap()
    /// });
    /// assert_eq!(sum, 6);
    /// ```
    pub fn spawn<T, F>(&'scope self, f: F) -> ScopedTask<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let packet = Arc::new(Packet {
            slot: Slot::new(),
            unjoined: &self.unjoined,
        });
        let (out, ctx) = (packet.clone(), self.ctx.clone());
        let job = self.join.spawn_with(Wake::Eager, move || {
            let outcome = match ctx.reason() {
                Some(reason) => {
                    // The caller's context ended first: never called.
                    panic::drop_quietly(f);
                    Err(reason.to_error())
                }
                None => {
                    let _current = ctx.enter();
                    panic::catch(f).map_err(Error::Panic)
                }
            };
            if let Err(late) = out.slot.resolve(outcome) {
                panic::drop_quietly(late);
            }
            // `out` goes here: if the handle was dropped, so is the packet,
            // and with it the outcome (an unjoined panic goes to the scope).
        });
        ScopedTask {
            packet,
            job,
            _scope: PhantomData,
        }
    }

    /// The scope's context: every job's [`Context::current`], a child of the
    /// caller's. Cancel it to tell every job to stop; it is cancelled when
    /// [`scope`] returns.
    ///
    /// # Example
    ///
    /// ```
    /// use velocity_async as va;
    ///
    /// let seen = va::scope(|s| {
    ///     let (started, has_started) = std::sync::mpsc::channel();
    ///     let waiter = s.spawn(move || {
    ///         started.send(()).unwrap();
    ///         va::Context::current().wait(); // stops when told
    ///         va::Context::current().error()
    ///     });
    ///     has_started.recv().unwrap(); // (a job not started by then is never called)
    ///     s.context().cancel();
    ///     waiter.join().unwrap()
    /// });
    /// assert!(seen.unwrap().is_cancelled());
    /// ```
    pub fn context(&self) -> &Context {
        &self.ctx
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("context", &self.ctx)
            .finish_non_exhaustive()
    }
}

/// Where a scoped job's outcome lands; shared by the job and its handle.
struct Packet<'scope, T> {
    slot: Slot<T>,
    unjoined: &'scope Mutex<Option<PanicError>>,
}

impl<T> Drop for Packet<'_, T> {
    fn drop(&mut self) {
        // Dropped by the job (after it ran) once the handle is gone, or by
        // the handle: either way before the scope's wait ends.
        match self.slot.take() {
            Some(Err(Error::Panic(p))) => {
                let mut first = self.unjoined.lock().unwrap_or_else(|e| e.into_inner());
                let later = match &*first {
                    None => {
                        *first = Some(p);
                        None
                    }
                    Some(_) => Some(p),
                };
                drop(first);
                panic::drop_quietly(later);
            }
            other => panic::drop_quietly(other),
        }
    }
}

/// The handle of a job started by [`Scope::spawn`].
///
/// [`join`](ScopedTask::join) waits for the outcome; dropping the handle
/// detaches the job (the scope still waits for it, and resumes its panic).
pub struct ScopedTask<'scope, T> {
    packet: Arc<Packet<'scope, T>>,
    job: ScopedRef,
    /// Hands a `T` to whoever joins, like `Task<T>`: `Send` only if `T` is.
    _scope: PhantomData<std::sync::Mutex<T>>,
}

impl<T> ScopedTask<'_, T> {
    /// Waits for the job and returns its value. If nobody has started the
    /// job yet, this thread runs it.
    ///
    /// # Errors
    ///
    /// [`Error::Panic`] if the job panicked (a joined panic is not resumed by
    /// [`scope`]); [`Error::Cancelled`] or [`Error::Timeout`] if the scope's
    /// context was done before the job started, which was then never called.
    ///
    /// # Example
    ///
    /// ```
    /// let err = velocity_async::scope(|s| s.spawn(|| -> u8 { panic!("no") }).join());
    /// assert_eq!(err.unwrap_err().as_panic().unwrap().message(), "no");
    /// ```
    pub fn join(self) -> Result<T, Error> {
        let slot = &self.packet.slot;
        if !slot.is_resolved() {
            self.job.run_queued();
        }
        slot.wait();
        // Only `join`, which consumes the handle, takes the outcome.
        slot.take().unwrap_or(Err(Error::Cancelled))
    }

    /// Non-blocking: true once the job has ended (or was skipped).
    ///
    /// # Example
    ///
    /// ```
    /// velocity_async::scope(|s| {
    ///     let t = s.spawn(|| 1);
    ///     while !t.ready() {
    ///         std::thread::yield_now();
    ///     }
    ///     assert_eq!(t.join().unwrap(), 1);
    /// });
    /// ```
    pub fn ready(&self) -> bool {
        self.packet.slot.is_resolved()
    }
}

impl<T> fmt::Debug for ScopedTask<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedTask")
            .field("ready", &self.ready())
            .finish()
    }
}
