//! The panic policy, written once.
//!
//! * Every piece of user code the crate calls (jobs, `Drop` of results nobody
//!   collected, `go_with_recover` callbacks) runs under [`catch`] or
//!   [`drop_quietly`]: a worker never unwinds because of user code.
//! * A recovered panic becomes a [`PanicError`] that keeps the payload's
//!   message and the payload itself (for [`PanicError::into_panic`]). The
//!   payload is dropped with the last clone of its error, under
//!   `catch_unwind`; if *its* `Drop` panics, that panic is reported too and
//!   its payload leaked (`mem::forget`) rather than risk an endless chain.
//! * Every recovered panic is shown once to the process-wide handler installed
//!   with [`set_panic_handler`], and, where there is one, delivered to the task
//!   that owns it (API contract: "the handler sees every panic the crate
//!   recovers").
//! * The handler runs under `catch_unwind` too; a panicking handler is ignored
//!   (std's hook has already printed it). So do `log`/`tracing` subscribers
//!   and `Waker`s ([`wake`]): no thread of the crate dies from user code.
//! * The process-wide panic hook is never replaced and nothing is printed by
//!   default: std's hook already printed the panic once. Without a handler,
//!   the `log`/`tracing` features report it to the application's logger.
//!
//! Under `panic = "abort"` none of this applies: the first panic in user code
//! aborts the process, as it would without this crate.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, RwLock};

/// A panic recovered from user code.
///
/// It keeps the panic's message ([`message`](PanicError::message): a `&str`
/// or `String` payload verbatim, `"Box<dyn Any>"` for any other payload, as
/// std's panic hook prints it), the task's name if it had one, and the
/// payload itself, which [`into_panic`](PanicError::into_panic) hands back.
///
/// # Clones
///
/// `Error` and `PanicError` are `Clone` (a [`Singleflight`](crate::Singleflight)
/// hands one panic to every caller). Clones share one payload: the first
/// `into_panic` among them takes it, every later one gets a `String` of the
/// message instead. The payload is dropped with the last clone; if its `Drop`
/// panics, that panic is caught and reported to the panic handler, never
/// propagated.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let err = va::run(|| -> () { panic!("disk {} full", 3) }).get().unwrap_err();
/// assert_eq!(err.as_panic().unwrap().message(), "disk 3 full");
/// ```
#[derive(Clone)]
pub struct PanicError {
    message: Arc<str>,
    task: Option<Arc<str>>,
    payload: Arc<Payload>,
}

/// The payload of a recovered panic, shared by the clones of its error.
/// A std `Mutex` (also under loom): errors outlive any one model execution,
/// and it is taken only by `into_panic` and the last clone's drop.
struct Payload(Mutex<Option<Box<dyn Any + Send>>>);

impl Payload {
    fn take(&self) -> Option<Box<dyn Any + Send>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Some(payload) = self.0.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            drop_payload(payload);
        }
    }
}

impl PanicError {
    fn new(
        message: Arc<str>,
        task: Option<Arc<str>>,
        payload: Option<Box<dyn Any + Send>>,
    ) -> Self {
        PanicError {
            message,
            task,
            payload: Arc::new(Payload(Mutex::new(payload))),
        }
    }

    /// The name of the task that panicked, if it was given one with
    /// [`task`](crate::task)`().name(…)`.
    ///
    /// ```
    /// let err = velocity_async::task()
    ///     .name("billing.charge")
    ///     .run(|| -> u8 { panic!("card declined") })
    ///     .get()
    ///     .unwrap_err();
    /// let p = err.as_panic().unwrap();
    /// assert_eq!(p.task_name(), Some("billing.charge"));
    /// assert_eq!(p.to_string(), "task 'billing.charge' panicked: card declined");
    /// ```
    pub fn task_name(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The panic's `&str` or `String` payload, verbatim.
    ///
    /// ```
    /// let err = velocity_async::run(|| -> u8 { panic!("{} + {}", 1, 1) }).get().unwrap_err();
    /// assert_eq!(err.as_panic().unwrap().message(), "1 + 1");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original payload, as `catch_unwind` caught it: rethrow it with
    /// [`std::panic::resume_unwind`], or downcast it back to what was given
    /// to [`std::panic::panic_any`].
    ///
    /// Clones of one error share the payload (see the type's docs): if a
    /// clone already took it, this returns the message as a `String`.
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// struct Declined(u32);
    ///
    /// let err = velocity_async::run(|| -> () { std::panic::panic_any(Declined(402)) })
    ///     .get()
    ///     .unwrap_err();
    /// let velocity_async::Error::Panic(p) = err else { unreachable!() };
    /// assert_eq!(p.message(), "Box<dyn Any>");
    /// let payload = p.into_panic();
    /// assert_eq!(payload.downcast_ref::<Declined>(), Some(&Declined(402)));
    /// ```
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.payload.take() {
            Some(payload) => payload,
            None => Box::new(self.message.to_string()),
        }
    }
}

impl fmt::Debug for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicError")
            .field("message", &self.message)
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.task {
            Some(name) => write!(f, "task '{name}' panicked: {}", self.message),
            None => write!(f, "task panicked: {}", self.message),
        }
    }
}

impl std::error::Error for PanicError {}

type Handler = Arc<dyn Fn(&PanicError) + Send + Sync + 'static>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);

/// Installs the process-wide handler that sees every panic the crate recovers.
///
/// The handler replaces the previous one. It is called on the thread that
/// recovered the panic (usually a worker), once per panic: panics in `run`
/// tasks (also delivered to `get`), in `go` and `go_with_recover` jobs, in
/// combinator jobs, in `go_with_recover`'s own callback, and in the `Drop` of a
/// result nobody collected.
///
/// The default is no handler: std's panic hook has already printed the panic
/// to stderr, and printing it again would only double the output. This crate
/// never replaces std's hook. With the `log` or `tracing` feature, panics
/// recovered while no handler is installed are also reported through them
/// (an error on target `velocity_async`).
///
/// # Panics
///
/// A handler that panics takes nothing down: its panic is caught and ignored
/// (std's hook prints it).
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use velocity_async as va;
///
/// static SEEN: AtomicUsize = AtomicUsize::new(0);
/// va::set_panic_handler(|p| {
///     eprintln!("recovered: {}", p.message());
///     SEEN.fetch_add(1, Ordering::SeqCst);
/// });
/// let _ = va::run(|| -> () { panic!("boom") }).get();
/// assert!(SEEN.load(Ordering::SeqCst) >= 1);
/// ```
pub fn set_panic_handler<H>(handler: H)
where
    H: Fn(&PanicError) + Send + Sync + 'static,
{
    let handler: Handler = Arc::new(handler);
    let old = {
        let mut slot = HANDLER.write().unwrap_or_else(|e| e.into_inner());
        slot.replace(handler)
    };
    // The old handler's captured state is dropped outside the lock.
    drop_quietly(old);
}

/// Shows `p` to the installed handler, if any.
pub(crate) fn report(p: &PanicError) {
    let handler = HANDLER.read().unwrap_or_else(|e| e.into_inner()).clone();
    match handler {
        Some(h) => {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h(p))) {
                drop_payload(payload);
            }
        }
        // A `log`/`tracing` subscriber is user code too.
        None => {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
                crate::observe::unhandled_panic(p.message(), p.task_name(), p)
            })) {
                drop_payload(payload);
            }
        }
    }
}

/// Wakes `waker`; a panic in its `wake` (user code: an executor's waker) is
/// recovered and reported, never propagated into the thread that resolved
/// a task or fired a context (a worker, the timer, a canceller).
pub(crate) fn wake(waker: std::task::Waker) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || waker.wake())) {
        recover(payload);
    }
}

/// Runs `f`, turning a panic into a reported [`PanicError`].
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, PanicError> {
    catch_in(None, f)
}

/// Runs the job of the task named `task` (if named), turning a panic into a
/// reported [`PanicError`] that carries the name.
pub(crate) fn catch_in<R>(task: Option<&Arc<str>>, f: impl FnOnce() -> R) -> Result<R, PanicError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(payload) => Err(recover_in(task, payload)),
    }
}

/// Turns a caught payload into a reported [`PanicError`] that keeps it.
#[cold]
pub(crate) fn recover(payload: Box<dyn Any + Send>) -> PanicError {
    recover_in(None, payload)
}

#[cold]
fn recover_in(task: Option<&Arc<str>>, payload: Box<dyn Any + Send>) -> PanicError {
    let p = PanicError::new(payload_message(&*payload), task.cloned(), Some(payload));
    report(&p);
    p
}

/// Drops `value`; a panic in its `Drop` is recovered and reported, never
/// propagated.
pub(crate) fn drop_quietly<T>(value: T) {
    if std::mem::needs_drop::<T>() {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
            recover(payload);
        }
    }
}

/// Drops a panic payload. If its own `Drop` panics, that panic is reported
/// too, and its payload is leaked rather than dropped: a chain of panicking
/// payloads ends there.
fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        let message = payload_message(&*again);
        std::mem::forget(again);
        report(&PanicError::new(message, None, None));
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("Box<dyn Any>")
    }
}

/// Panics the crate's own unit tests and loom models raise on purpose.
#[cfg(test)]
pub(crate) mod planned {
    use std::sync::Once;

    /// The payload of every planned panic.
    pub(crate) const PLANNED: &str = "planned panic in a unit test";

    /// Installs, once per test binary, a hook that stays quiet for planned
    /// panics (thousands of explored executions would flood the output) and
    /// hands every other panic to the previous hook.
    pub(crate) fn quiet() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if info.payload().downcast_ref::<&str>() != Some(&PLANNED) {
                    default(info);
                }
            }));
        });
    }
}
