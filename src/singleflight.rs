//! Duplicate calls suppressed: Go's `golang.org/x/sync/singleflight`.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use crate::context::Context;
use crate::error::Error;
use crate::panic;
use crate::sync::{thread, Mutex, MutexGuard};

/// Concurrent calls with the same key share one call: the first caller runs
/// `f`, the others wait for it and get a clone of its value (Go:
/// `singleflight.Group`). Once that call has ended, the next `run` with the
/// key calls afresh — it is deduplication of calls in flight, not a cache.
///
/// * **Panics.** A panic in `f` is caught: the caller that ran it and every
///   caller waiting for it get `Err(Error::Panic(…))`, and the key is free
///   again at once (nothing is poisoned). The panic is shown to the panic
///   handler once.
/// * **Cancellation.** A caller *waiting* for another's call stops waiting
///   with its own [`Context::current`]'s error once that context is done;
///   the call goes on for the others. The caller running `f` runs it to the
///   end (no thread can be stopped from outside; `f` can watch
///   `Context::current()` itself).
/// * `f` runs on the calling thread, outside every lock of this type. A
///   `run` of the same key from inside `f` on that thread would wait for
///   itself: it is refused at once with [`Error::Invalid`]. From work on
///   another thread that `f` waits for, it deadlocks, as Go's does.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use velocity_async as va;
///
/// let fetches = AtomicUsize::new(0);
/// let flights = va::Singleflight::new();
/// let pages = va::map_n(0..8, 8, |_| {
///     flights.run(&"/index.html", || {
///         fetches.fetch_add(1, Ordering::SeqCst);
///         std::thread::sleep(std::time::Duration::from_millis(20));
///         String::from("<html>…</html>")
///     })
/// })
/// .unwrap();
/// assert!(pages.iter().all(|p| p.as_deref().is_ok_and(|p| p == "<html>…</html>")));
/// // The eight calls overlapped, so fewer fetches than calls were made
/// // (usually one).
/// assert!(fetches.load(Ordering::SeqCst) < 8);
/// ```
pub struct Singleflight<K, V> {
    calls: Mutex<HashMap<K, Arc<Call<V>>>>,
}

/// One call in flight: its outcome once known, and who waits for it.
struct Call<V> {
    state: Mutex<CallState<V>>,
    /// The thread running `f` (a recursive `run` from it is refused).
    runner: std::thread::ThreadId,
}

struct CallState<V> {
    outcome: Option<Result<V, Error>>,
    waiting: Vec<thread::Thread>,
}

impl<V> Call<V> {
    fn lock(&self) -> MutexGuard<'_, CallState<V>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Singleflight<K, V> {
    /// An empty group.
    pub fn new() -> Singleflight<K, V> {
        Singleflight {
            calls: Mutex::new(HashMap::new()),
        }
    }

    fn calls(&self) -> MutexGuard<'_, HashMap<K, Arc<Call<V>>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` for `key`, or, if a call for `key` is in flight, waits for
    /// it and returns a clone of its value.
    ///
    /// # Errors
    ///
    /// [`Error::Panic`] if `f` (this caller's or the shared one) panicked;
    /// the error of [`Context::current`] if this caller was waiting and its
    /// context finished; [`Error::Invalid`] for a `run` of a key from inside
    /// that key's own `f`.
    ///
    /// # Example
    ///
    /// ```
    /// let flights = velocity_async::Singleflight::new();
    /// assert_eq!(flights.run(&1, || "one").unwrap(), "one");
    /// // Not a cache: the call above ended, so this one calls afresh.
    /// assert_eq!(flights.run(&1, || "uno").unwrap(), "uno");
    /// let err = flights.run(&2, || -> &str { panic!("backend down") }).unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(flights.run(&2, || "back").unwrap(), "back");
    /// ```
    pub fn run<F: FnOnce() -> V>(&self, key: &K, f: F) -> Result<V, Error> {
        let mut calls = self.calls();
        if let Some(call) = calls.get(key).cloned() {
            drop(calls);
            if call.runner == std::thread::current().id() {
                return Err(Error::Invalid(
                    "a singleflight call waited for itself (a recursive run of its own key)",
                ));
            }
            return wait_for(&call);
        }
        let call = Arc::new(Call {
            state: Mutex::new(CallState {
                outcome: None,
                waiting: Vec::new(),
            }),
            runner: std::thread::current().id(),
        });
        calls.insert(key.clone(), call.clone());
        drop(calls);
        let outcome = panic::catch(f).map_err(Error::Panic);
        // The key is free again before anyone is told: a `run` after this
        // one returned calls afresh.
        {
            let mut calls = self.calls();
            if calls.get(key).is_some_and(|c| Arc::ptr_eq(c, &call)) {
                calls.remove(key);
            }
        }
        let waiting = {
            let mut st = call.lock();
            st.outcome = Some(outcome.clone());
            std::mem::take(&mut st.waiting)
        };
        for t in waiting {
            t.unpark();
        }
        outcome
    }
}

/// Waits for another caller's `call` to end, or for this caller's context.
fn wait_for<V: Clone>(call: &Call<V>) -> Result<V, Error> {
    let ctx = Context::current();
    let _blocked = crate::pool::BlockedGuard::enter();
    let _wake = ctx.unpark_when_done();
    let mut registered = false;
    loop {
        {
            let mut st = call.lock();
            if let Some(outcome) = &st.outcome {
                return outcome.clone();
            }
            if let Some(e) = ctx.error() {
                return Err(e);
            }
            if !registered {
                st.waiting.push(thread::current());
                registered = true;
            }
        }
        match ctx.deadline() {
            Some(d) => thread::park_timeout(d.saturating_duration_since(std::time::Instant::now())),
            None => thread::park(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Singleflight<K, V> {
    fn default() -> Self {
        Singleflight::new()
    }
}

impl<K, V> fmt::Debug for Singleflight<K, V> {
    /// The calls in flight, and how many callers wait for them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls: Vec<Arc<Call<V>>> = self.calls.lock().map_or_else(
            |e| e.into_inner().values().cloned().collect(),
            |c| c.values().cloned().collect(),
        );
        let waiting: usize = calls.iter().map(|c| c.lock().waiting.len()).sum();
        f.debug_struct("Singleflight")
            .field("in_flight", &calls.len())
            .field("waiting", &waiting)
            .finish()
    }
}
