//! The error types: why a task did not produce a value.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::panic::PanicError;

/// Why a [`Task`](crate::Task) or a combinator produced no value.
///
/// Every outcome that is not a value is one of these variants, so
/// `match` on it tells the cause. The enum is `#[non_exhaustive]`: new causes
/// may be added in minor versions.
///
/// `Error` is cheap to clone (the largest variant holds an `Arc`), and is
/// `Send + Sync + 'static`, so it can cross threads and be boxed as
/// `Box<dyn std::error::Error + Send + Sync>`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let err = va::run(|| -> u32 { panic!("boom") }).get().unwrap_err();
/// assert!(err.is_panic());
/// assert!(err.to_string().contains("boom"));
///
/// let err = va::run_with_timeout(Duration::ZERO, || 1).get().unwrap_err();
/// assert!(err.is_timeout());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The work panicked; its message and payload are kept.
    Panic(PanicError),
    /// A deadline passed first: `run_with_timeout`, `race_with_timeout`, or a
    /// [`Context`](crate::Context) whose deadline expired.
    Timeout,
    /// The work's [`Context`](crate::Context) was cancelled explicitly (by
    /// [`Context::cancel`](crate::Context::cancel), a won race, or a failed
    /// sibling in `all_with_error`).
    Cancelled,
    /// No worker thread could be started and none was alive to take the work
    /// (the operating system refused a new thread, e.g. `EAGAIN`). The work was
    /// never called.
    Spawn(SpawnError),
    /// The pool was shut down before the work was submitted. The work was never
    /// called.
    ShutDown,
    /// A combinator that needs at least one job (`race`) was given none.
    NoJobs,
    /// A request that can never be met, refused at once rather than waited
    /// for (a [`Semaphore`](crate::Semaphore) asked for more permits than it
    /// has). The text says which.
    Invalid(&'static str),
}

impl Error {
    /// True if the work panicked.
    ///
    /// ```
    /// assert!(velocity_async::run(|| -> u8 { panic!("x") }).get().unwrap_err().is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panic(_))
    }

    /// True if a deadline passed before the work returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(velocity_async::run_with_timeout(Duration::ZERO, || 1).get().unwrap_err().is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    /// True if the work's context was cancelled explicitly.
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// ctx.cancel();
    /// assert!(velocity_async::run_with_context(&ctx, || 1).get().unwrap_err().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// The panic, if this error is one.
    ///
    /// ```
    /// let err = velocity_async::run(|| -> u8 { panic!("oops") }).get().unwrap_err();
    /// assert_eq!(err.as_panic().map(|p| p.message()), Some("oops"));
    /// ```
    pub fn as_panic(&self) -> Option<&PanicError> {
        match self {
            Error::Panic(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Panic(p) => fmt::Display::fmt(p, f),
            Error::Timeout => f.write_str("the deadline passed before the work returned"),
            Error::Cancelled => f.write_str("the work was cancelled"),
            Error::Spawn(e) => fmt::Display::fmt(e, f),
            Error::ShutDown => f.write_str("the pool is shut down and accepts no new work"),
            Error::NoJobs => f.write_str("no jobs were given"),
            Error::Invalid(what) => write!(f, "invalid request: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PanicError> for Error {
    fn from(p: PanicError) -> Self {
        Error::Panic(p)
    }
}

/// So that jobs returning `std::io::Result` work with `all_with_error`,
/// `try_for_each` and `first_ok` as they are, and `?` converts: blocking
/// code (files, sockets, drivers) mostly speaks `io::Error`.
///
/// The kind is [`TimedOut`](std::io::ErrorKind::TimedOut) for
/// [`Error::Timeout`], [`InvalidInput`](std::io::ErrorKind::InvalidInput)
/// for [`Error::NoJobs`] and [`Error::Invalid`], the operating system's for [`Error::Spawn`], and
/// [`Other`](std::io::ErrorKind::Other) otherwise — not `Interrupted` for a
/// cancellation, which std's I/O loops retry. The `Error` itself is kept as
/// the source (`get_ref`, `into_inner`, `downcast`).
///
/// # Example
///
/// ```
/// use std::io;
/// use velocity_async as va;
///
/// let r: Result<(u8, u8), io::Error> = va::all_with_error((
///     || Ok(1),
///     || -> io::Result<u8> { panic!("disk on fire") },
/// ));
/// let err = r.unwrap_err();
/// assert_eq!(err.kind(), io::ErrorKind::Other);
/// let inner = err.get_ref().unwrap().downcast_ref::<va::Error>().unwrap();
/// assert!(inner.is_panic());
/// ```
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Timeout => std::io::ErrorKind::TimedOut,
            Error::NoJobs | Error::Invalid(_) => std::io::ErrorKind::InvalidInput,
            Error::Spawn(s) => s.io_error().kind(),
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// The operating system refused to start a worker thread.
///
/// Carried by [`Error::Spawn`]. The underlying `io::Error` is kept as the
/// error's `source()`.
///
/// # Example
///
/// ```
/// fn explain(err: &velocity_async::Error) -> String {
///     match err {
///         velocity_async::Error::Spawn(e) => format!("out of threads: {}", e.io_error()),
///         other => other.to_string(),
///     }
/// }
/// assert_eq!(explain(&velocity_async::Error::Timeout), "the deadline passed before the work returned");
/// ```
#[derive(Clone, Debug)]
pub struct SpawnError {
    io: Arc<io::Error>,
}

impl SpawnError {
    pub(crate) fn new(io: io::Error) -> Self {
        SpawnError { io: Arc::new(io) }
    }

    /// The operating system's error.
    ///
    /// ```
    /// # fn f(e: &velocity_async::SpawnError) -> std::io::ErrorKind {
    /// e.io_error().kind()
    /// # }
    /// ```
    pub fn io_error(&self) -> &io::Error {
        &self.io
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not start a worker thread: {}", self.io)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.io)
    }
}
