//! A weighted, FIFO semaphore that honours cancellation: Go's
//! `golang.org/x/sync/semaphore` for synchronous Rust.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::context::Context;
use crate::error::Error;
use crate::sync::{thread, AtomicBool, Mutex, MutexGuard};

/// A weighted semaphore: `acquire(n)` takes `n` of its permits, blocking
/// until they are free, and the returned [`Permit`] gives them back when it
/// is dropped (Go: `semaphore.Weighted`).
///
/// * **FIFO.** Requests are served in the order they came: a large request
///   at the front is not starved by smaller ones behind it, which wait for
///   it (as Go's does).
/// * **Cancellation.** `acquire` fails with the error of the calling work's
///   [`Context::current`] as soon as that context is done (a timeout, a
///   cancel, a failed sibling): the request leaves the queue, and requests
///   it held up are served. Should the permits be granted at the moment the
///   context finishes, `acquire` returns them (as Go's does).
/// * **Bad input.** `acquire(0)` and `try_acquire(0)` succeed at once with an
///   empty permit. A request for more permits than the semaphore has can
///   never be met: `acquire` fails at once with [`Error::Invalid`] and
///   `try_acquire` returns `None`, rather than wait forever.
/// * A permit that is leaked (`mem::forget`) keeps its permits taken; nothing
///   else goes wrong. No user code runs under the semaphore's lock.
/// * A pool worker waiting in `acquire` counts as blocked: the pool may run
///   other work in its place, as for `Task::get`.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// // At most 3 concurrent downloads, and a big one counts for 2.
/// let downloads = va::Semaphore::new(3);
/// va::for_each([1usize, 2, 1, 1, 2], 0, |weight| {
///     let _permit = downloads.acquire(weight).unwrap();
///     // … download while holding `weight` permits …
/// })
/// .unwrap();
/// assert!(downloads.acquire(4).unwrap_err().to_string().contains("more permits"));
/// ```
pub struct Semaphore {
    total: usize,
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// The requests that wait, oldest first.
    queue: VecDeque<Arc<Waiter>>,
}

struct Waiter {
    n: usize,
    /// Set (under the lock) once its permits are its.
    granted: AtomicBool,
    thread: thread::Thread,
}

/// Permits taken from a [`Semaphore`]; dropping it gives them back.
#[must_use = "dropping a Permit gives its permits back at once"]
pub struct Permit<'a> {
    semaphore: &'a Semaphore,
    n: usize,
}

impl Semaphore {
    /// A semaphore of `permits` permits, all free. `Semaphore::new(0)` grants
    /// only empty requests.
    ///
    /// ```
    /// let s = velocity_async::Semaphore::new(2);
    /// assert_eq!(s.available(), 2);
    /// ```
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            total: permits,
            state: Mutex::new(State {
                free: permits,
                queue: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many permits are free right now (a snapshot).
    pub fn available(&self) -> usize {
        self.lock().free
    }

    /// Takes `n` permits, blocking until they are free and every earlier
    /// request was served.
    ///
    /// # Errors
    ///
    /// The error of [`Context::current`] ([`Error::Timeout`],
    /// [`Error::Cancelled`]) once it is done, also if it is done already;
    /// [`Error::Invalid`] at once if `n` exceeds the semaphore's permits.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use velocity_async as va;
    ///
    /// let s = Arc::new(va::Semaphore::new(1));
    /// let held = s.acquire(1).unwrap();
    /// // A job waiting for the permit gives up at its deadline: its
    /// // `acquire` returns `Err(Timeout)`, and so does the task.
    /// let s2 = s.clone();
    /// let job = va::run_with_timeout(Duration::from_millis(20), move || s2.acquire(1).is_err());
    /// assert!(job.get().unwrap_err().is_timeout());
    /// drop(held);
    /// assert_eq!(s.acquire(1).unwrap().permits(), 1);
    /// ```
    pub fn acquire(&self, n: usize) -> Result<Permit<'_>, Error> {
        if n == 0 {
            return Ok(self.permit(0));
        }
        if n > self.total {
            return Err(Error::Invalid(
                "a semaphore was asked for more permits than it has",
            ));
        }
        let ctx = Context::current();
        if let Some(e) = ctx.error() {
            return Err(e);
        }
        let waiter = {
            let mut st = self.lock();
            if st.queue.is_empty() && st.free >= n {
                st.free -= n;
                return Ok(self.permit(n));
            }
            let waiter = Arc::new(Waiter {
                n,
                granted: AtomicBool::new(false),
                thread: thread::current(),
            });
            st.queue.push_back(waiter.clone());
            waiter
        };
        self.wait(&ctx, &waiter)
    }

    /// Waits until `waiter` is granted or `ctx` is done.
    fn wait(&self, ctx: &Context, waiter: &Arc<Waiter>) -> Result<Permit<'_>, Error> {
        let _blocked = crate::pool::BlockedGuard::enter();
        let _wake = ctx.unpark_when_done();
        loop {
            if waiter.granted.load(Ordering::Acquire) {
                return Ok(self.permit(waiter.n));
            }
            if let Some(e) = ctx.error() {
                let mut st = self.lock();
                if waiter.granted.load(Ordering::Acquire) {
                    // Granted as the context finished: keep the permits.
                    return Ok(self.permit(waiter.n));
                }
                if let Some(i) = st.queue.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                    st.queue.remove(i);
                }
                // It may have held up smaller requests behind it.
                let woken = grant(&mut st);
                drop(st);
                wake(woken);
                return Err(e);
            }
            match ctx.deadline() {
                Some(d) => {
                    thread::park_timeout(d.saturating_duration_since(std::time::Instant::now()))
                }
                None => thread::park(),
            }
        }
    }

    /// Takes `n` permits if they are free and nobody waits before; never
    /// blocks. `None` also if `n` exceeds the semaphore's permits.
    ///
    /// ```
    /// let s = velocity_async::Semaphore::new(2);
    /// let a = s.try_acquire(2).unwrap();
    /// assert!(s.try_acquire(1).is_none());
    /// drop(a);
    /// assert!(s.try_acquire(1).is_some());
    /// ```
    pub fn try_acquire(&self, n: usize) -> Option<Permit<'_>> {
        if n == 0 {
            return Some(self.permit(0));
        }
        let mut st = self.lock();
        if st.queue.is_empty() && st.free >= n {
            st.free -= n;
            return Some(self.permit(n));
        }
        None
    }

    fn permit(&self, n: usize) -> Permit<'_> {
        Permit { semaphore: self, n }
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let woken = {
            let mut st = self.lock();
            st.free += n;
            grant(&mut st)
        };
        wake(woken);
    }
}

/// Serves the queue from the front while its first request fits; returns
/// the threads to wake (woken outside the lock).
fn grant(st: &mut State) -> Vec<thread::Thread> {
    let mut woken = Vec::new();
    while let Some(front) = st.queue.front() {
        if front.n > st.free {
            break;
        }
        st.free -= front.n;
        front.granted.store(true, Ordering::Release);
        woken.push(front.thread.clone());
        st.queue.pop_front();
    }
    woken
}

fn wake(threads: Vec<thread::Thread>) {
    for t in threads {
        t.unpark();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Semaphore")
            .field("permits", &self.total)
            .field("free", &st.free)
            .field("waiting", &st.queue.len())
            .finish()
    }
}

impl Permit<'_> {
    /// How many permits this holds.
    pub fn permits(&self) -> usize {
        self.n
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.semaphore.release(self.n);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("permits", &self.n).finish()
    }
}
