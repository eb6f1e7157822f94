//! Fan out and join: `all`, `all_with_error`, `all_settled` and their bounded
//! forms. Jobs are a tuple of 1 to 12 closures (a typed tuple comes back), a
//! `Vec<F>` (a `Vec<T>` in input order) or an array `[F; N]` (`[T; N]`).

use crate::context::{Context, FirstError};
use crate::error::Error;
use crate::panic::PanicError;
use crate::parallel::{self, Options};

/// A set of jobs [`all`] can run: a tuple of 1 to 12 closures, a `Vec` of
/// closures, or an array of closures. Each closure is `FnOnce() -> T + Send`
/// and may borrow from the caller's stack.
///
/// This trait is sealed: it is implemented here for those shapes only.
///
/// # Example
///
/// ```
/// // Each shape `all` accepts:
/// let t: (u8, &str) = velocity_async::all((|| 1, || "two")).unwrap();
/// let v: Vec<u8> = velocity_async::all(vec![|| 1, || 2]).unwrap();
/// let a: [u8; 2] = velocity_async::all([|| 1, || 2]).unwrap();
/// assert_eq!((t.0, v.len(), a[1]), (1, 2, 2));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a set of jobs that `all` can run",
    label = "expected a tuple of 1 to 12 closures, a `Vec` of closures or an array of closures",
    note = "each job is a closure with no arguments, e.g. `|| load_user(id)`: wrap a call or a value in `|| …`",
    note = "for more than 12 jobs of one type, collect them into a `Vec`"
)]
pub trait Jobs: sealed::Sealed {
    /// What `all` returns: a tuple of each job's type, a `Vec<T>` or `[T; N]`.
    type Output;
    /// Every job's outcome: a tuple/`Vec`/array of `Result<T, Error>`.
    type Settled;

    #[doc(hidden)]
    fn run_all(self, limit: usize) -> Result<Self::Output, Error>;

    #[doc(hidden)]
    fn run_settled(self, limit: usize) -> Self::Settled;
}

/// A set of fallible jobs [`all_with_error`] can run: like [`Jobs`], but each
/// closure returns `Result<T, E>` with one error type `E`.
///
/// # Example
///
/// ```
/// let ok: (u8, u16) = velocity_async::all_with_error((
///     || Ok::<_, velocity_async::Error>(1),
///     || Ok(2),
/// )).unwrap();
/// assert_eq!(ok, (1, 2));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a set of jobs that `all_with_error` can run with the error type `{E}`",
    label = "expected a tuple, `Vec` or array of closures that each return `Result<_, {E}>`",
    note = "every job returns `Result<T, E>` with the same `E`, and `E` must implement `From<velocity_async::Error>` (a panic becomes your error through it)",
    note = "for your own error type add `impl From<velocity_async::Error> for MyError`; `velocity_async::Error`, `std::io::Error`, `anyhow::Error` and `Box<dyn std::error::Error + Send + Sync>` already work"
)]
pub trait TryJobs<E>: sealed::Sealed {
    /// The successful values: a tuple of each job's `T`, a `Vec<T>` or `[T; N]`.
    type Output;

    #[doc(hidden)]
    fn run_try_all(self, limit: usize) -> Result<Self::Output, E>;
}

mod sealed {
    pub trait Sealed {}
}

/// A job for [`run_each`]: its closure is taken out and called on the
/// first call, so each job runs once. The caller keeps the jobs on its own
/// stack and hands out `&mut` references (no box per job: the loop engine
/// gives each item to exactly one helper).
type Each<'a> = &'a mut (dyn FnMut() + Send);

/// Makes a job for [`run_each`] that calls `f` once and passes its value to
/// `done` (both run on the helper that takes the job).
fn each<T>(f: impl FnOnce() -> T + Send, done: impl FnOnce(T) + Send) -> impl FnMut() + Send {
    let mut job = Some((f, done));
    move || {
        if let Some((f, done)) = job.take() {
            done(f());
        }
    }
}

/// Runs erased jobs, each writing its own result slot.
fn run_each(
    jobs: Vec<Each<'_>>,
    limit: usize,
    ctx: &Context,
    on_panic: Option<parallel::PanicHook<'_>>,
) -> Result<(), Error> {
    let opts = Options {
        on_panic,
        ..Options::new(limit, ctx)
    };
    parallel::run(jobs, &opts, &|_, job: Each<'_>| job()).map(|_| ())
}

impl<F, T> sealed::Sealed for Vec<F> where F: FnOnce() -> T + Send {}

impl<F, T> Jobs for Vec<F>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    type Output = Vec<T>;
    type Settled = Vec<Result<T, Error>>;

    fn run_all(self, limit: usize) -> Result<Vec<T>, Error> {
        let ctx = parallel::call_context();
        let opts = Options::new(limit, &ctx);
        parallel::run(self, &opts, &|_, f: F| f())
    }

    fn run_settled(self, limit: usize) -> Vec<Result<T, Error>> {
        // Each job writes its own place, so that a job the context kept from
        // starting still gets an outcome: the context's error.
        let mut settled: Vec<Option<Result<T, Error>>> = (0..self.len()).map(|_| None).collect();
        let ctx = parallel::call_context();
        // Each job catches its own panic: only the context can end the loop.
        let jobs: Vec<_> = self.into_iter().zip(settled.iter_mut()).collect();
        let opts = Options::new(limit, &ctx);
        let ended = parallel::run(jobs, &opts, &|_, (f, place): (F, &mut Option<_>)| {
            *place = Some(crate::panic::catch(f).map_err(Error::Panic));
        })
        .err();
        settled
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ended.clone().unwrap_or(Error::Cancelled))))
            .collect()
    }
}

impl<F, T, E> TryJobs<E> for Vec<F>
where
    F: FnOnce() -> Result<T, E> + Send,
    T: Send,
    E: From<Error> + Send,
{
    type Output = Vec<T>;

    fn run_try_all(self, limit: usize) -> Result<Vec<T>, E> {
        let ctx = parallel::call_context();
        let errors = FirstError::new();
        let on_panic =
            |_: usize, p: &PanicError| errors.fail(&ctx, E::from(Error::Panic(p.clone())));
        let opts = Options {
            on_panic: Some(&on_panic),
            ..Options::new(limit, &ctx)
        };
        let values = parallel::run(self, &opts, &|_, f: F| match f() {
            Ok(v) => Some(v),
            Err(e) => {
                errors.fail(&ctx, e);
                None
            }
        });
        if let Some(e) = errors.take() {
            crate::panic::drop_quietly(values);
            return Err(e);
        }
        match values {
            Ok(values) => Ok(values.into_iter().flatten().collect()),
            // A panic is always recorded by `on_panic` first; this is the
            // caller's context ending the call.
            Err(e) => Err(E::from(e)),
        }
    }
}

impl<F, T, const N: usize> sealed::Sealed for [F; N] where F: FnOnce() -> T + Send {}

impl<F, T, const N: usize> Jobs for [F; N]
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    type Output = [T; N];
    type Settled = [Result<T, Error>; N];

    fn run_all(self, limit: usize) -> Result<[T; N], Error> {
        let values = Vec::from(self).run_all(limit)?;
        Ok(into_array(values))
    }

    fn run_settled(self, limit: usize) -> [Result<T, Error>; N] {
        into_array(Vec::from(self).run_settled(limit))
    }
}

impl<F, T, E, const N: usize> TryJobs<E> for [F; N]
where
    F: FnOnce() -> Result<T, E> + Send,
    T: Send,
    E: From<Error> + Send,
{
    type Output = [T; N];

    fn run_try_all(self, limit: usize) -> Result<[T; N], E> {
        Ok(into_array(Vec::from(self).run_try_all(limit)?))
    }
}

/// A `Vec` of exactly `N` values into an array.
fn into_array<T, const N: usize>(v: Vec<T>) -> [T; N] {
    match v.try_into() {
        Ok(a) => a,
        // The loop returns one value per job, in order.
        Err(_) => unreachable!("one result per job"),
    }
}

macro_rules! tuple_jobs {
    ($(($f:ident, $t:ident, $slot:ident, $idx:tt)),+) => {
        impl<$($f, $t),+> sealed::Sealed for ($($f,)+) where $($f: FnOnce() -> $t + Send),+ {}

        impl<$($f, $t),+> Jobs for ($($f,)+)
        where
            $($f: FnOnce() -> $t + Send, $t: Send,)+
        {
            type Output = ($($t,)+);
            type Settled = ($(Result<$t, Error>,)+);

            fn run_all(self, limit: usize) -> Result<Self::Output, Error> {
                $(let mut $slot: Option<$t> = None;)+
                {
                    $(let $slot = &mut $slot;)+
                    // Each job, named after the slot it fills (shadowing the
                    // `&mut` its closure moves in).
                    $(let mut $slot = each(self.$idx, move |v| *$slot = Some(v));)+
                    run_each(vec![$(&mut $slot as Each<'_>,)+], limit, &parallel::call_context(), None)?;
                }
                // Without a panic or a done context every slot was written.
                Ok(($(match $slot { Some(v) => v, None => unreachable!("every job ran") },)+))
            }

            fn run_settled(self, limit: usize) -> Self::Settled {
                $(let mut $slot: Option<Result<$t, Error>> = None;)+
                let ended;
                {
                    $(let $slot = &mut $slot;)+
                    $(
                        let f = self.$idx;
                        let mut $slot = each(
                            move || crate::panic::catch(f).map_err(Error::Panic),
                            move |r| *$slot = Some(r),
                        );
                    )+
                    // Each job catches its own panic: only the context can
                    // end the call, and a job it kept from starting gets its
                    // error.
                    ended = run_each(vec![$(&mut $slot as Each<'_>,)+], limit, &parallel::call_context(), None).err();
                }
                let ended = ended.unwrap_or(Error::Cancelled);
                ($(match $slot { Some(r) => r, None => Err(ended.clone()) },)+)
            }
        }

        impl<E, $($f, $t),+> TryJobs<E> for ($($f,)+)
        where
            E: From<Error> + Send,
            $($f: FnOnce() -> Result<$t, E> + Send, $t: Send,)+
        {
            type Output = ($($t,)+);

            fn run_try_all(self, limit: usize) -> Result<Self::Output, E> {
                let ctx = parallel::call_context();
                let errors = FirstError::new();
                $(let mut $slot: Option<$t> = None;)+
                let ended;
                {
                    $(let $slot = &mut $slot;)+
                    let (errors, ctx) = (&errors, &ctx);
                    $(
                        let mut $slot = each(self.$idx, move |r| match r {
                            Ok(v) => *$slot = Some(v),
                            Err(e) => errors.fail(ctx, e),
                        });
                    )+
                    let on_panic = |_: usize, p: &PanicError| errors.fail(ctx, E::from(Error::Panic(p.clone())));
                    ended = run_each(vec![$(&mut $slot as Each<'_>,)+], limit, ctx, Some(&on_panic)).err();
                }
                if let Some(e) = errors.take().or_else(|| ended.map(E::from)) {
                    $(crate::panic::drop_quietly($slot);)+
                    return Err(e);
                }
                Ok(($(match $slot { Some(v) => v, None => unreachable!("every job succeeded") },)+))
            }
        }
    };
}

/// Invokes `tuple_jobs!` for every prefix of its list: tuples of 1 to 12.
macro_rules! tuple_jobs_prefixes {
    ([$($done:tt)*]) => {};
    ([$($done:tt)*] $next:tt $($rest:tt)*) => {
        tuple_jobs!($($done,)* $next);
        tuple_jobs_prefixes!([$($done)* $next] $($rest)*);
    };
}

tuple_jobs_prefixes! {
    []
    (F0, T0, s0, 0) (F1, T1, s1, 1) (F2, T2, s2, 2) (F3, T3, s3, 3)
    (F4, T4, s4, 4) (F5, T5, s5, 5) (F6, T6, s6, 6) (F7, T7, s7, 7)
    (F8, T8, s8, 8) (F9, T9, s9, 9) (F10, T10, s10, 10) (F11, T11, s11, 11)
}

/// Runs every job concurrently and returns all their results once every job
/// has finished (Go: `async.All`).
///
/// `jobs` is a tuple of 1 to 12 closures — the result is a typed tuple, no
/// downcasting — a `Vec` of closures (a `Vec` in input order), or an array
/// (an array). Because `all` blocks until every job is done, the closures may
/// borrow from the caller's stack, `&mut` included.
///
/// The calling thread runs jobs too, so `all` of N jobs costs at most N − 1
/// hand-offs; with jobs that block, the pool grows so they all run at once.
///
/// # Errors
///
/// If jobs panic, every other job still runs to completion, and the panic of
/// the lowest-index job is returned as [`Error::Panic`].
///
/// # Cancellation
///
/// The jobs share one context, a child of the caller's
/// [`Context::current`]: cancelling the caller's context (or its deadline)
/// reaches the running jobs, and a job not yet started by then is never
/// started. `all` still waits for the jobs that run; it returns their values
/// if every job ran, else the context's error ([`Error::Cancelled`] or
/// [`Error::Timeout`]; a panic takes precedence).
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let user_id = 7;
/// let mut log = Vec::new();
/// let (name, posts, ()) = va::all((
///     || format!("user-{user_id}"),        // borrows `user_id`
///     || vec!["hello", "world"],
///     || log.push("loaded"),               // borrows `log` mutably
/// ))
/// .unwrap();
/// assert_eq!(name, "user-7");
/// assert_eq!(posts.len(), 2);
/// assert_eq!(log, ["loaded"]);
///
/// let squares = va::all((1..=4).map(|i| move || i * i).collect::<Vec<_>>()).unwrap();
/// assert_eq!(squares, vec![1, 4, 9, 16]);
/// ```
pub fn all<J: Jobs>(jobs: J) -> Result<J::Output, Error> {
    jobs.run_all(usize::MAX)
}

/// Like [`all`], with at most `limit` jobs running at once (Go:
/// `async.AllN`). `limit == 0` means the default cap of 1,024.
///
/// # Example
///
/// ```
/// let jobs: Vec<_> = (0..100).map(|i| move || i).collect();
/// let out = velocity_async::all_n(jobs, 8).unwrap();
/// assert_eq!(out, (0..100).collect::<Vec<_>>());
/// ```
pub fn all_n<J: Jobs>(jobs: J, limit: usize) -> Result<J::Output, Error> {
    jobs.run_all(parallel::limit_or_default(limit))
}

/// Runs every job concurrently; returns their values, or the first error
/// (Go: `async.AllWithError`).
///
/// Each job returns `Result<T_i, E>`. The first job to fail — in time — wins:
/// its error is returned, and the jobs' shared context is cancelled at once so
/// the siblings can stop early (they see
/// [`Context::current().is_done()`](Context::is_done)). A panic counts as a
/// failure and becomes `E` through `From<Error>`. A job not yet started when
/// the first fails is never started (likewise once the caller's context is
/// done: its error is returned, through `From<Error>`). `all_with_error`
/// still waits for every running job before returning, so jobs may borrow.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// #[derive(Debug)]
/// enum AppError { NotFound, Async(va::Error) }
/// impl From<va::Error> for AppError {
///     fn from(e: va::Error) -> Self { AppError::Async(e) }
/// }
///
/// let ok = va::all_with_error((|| Ok::<_, AppError>(1), || Ok("two")));
/// assert_eq!(ok.unwrap(), (1, "two"));
///
/// let failed = va::all_with_error((
///     || Err::<u32, _>(AppError::NotFound),
///     || {
///         // A slow sibling that notices the failure and gives up.
///         va::Context::current().wait();
///         Ok("cancelled early")
///     },
/// ));
/// assert!(matches!(failed, Err(AppError::NotFound)));
/// ```
pub fn all_with_error<J, E>(jobs: J) -> Result<J::Output, E>
where
    J: TryJobs<E>,
    // Implied by `TryJobs<E>`; stated so it shows here, in the signature:
    // your error type needs `impl From<velocity_async::Error> for E`.
    E: From<Error>,
{
    jobs.run_try_all(usize::MAX)
}

/// Like [`all_with_error`], with at most `limit` jobs running at once (Go:
/// `async.AllWithErrorN`). `limit == 0` means the default cap of 1,024.
///
/// # Example
///
/// ```
/// let jobs: Vec<_> = (0..10).map(|i| move || if i == 3 { Err(velocity_async::Error::NoJobs) } else { Ok(i) }).collect();
/// assert!(velocity_async::all_with_error_n(jobs, 2).is_err());
/// ```
pub fn all_with_error_n<J, E>(jobs: J, limit: usize) -> Result<J::Output, E>
where
    J: TryJobs<E>,
    E: From<Error>,
{
    jobs.run_try_all(parallel::limit_or_default(limit))
}

/// Runs every job concurrently and returns every outcome in input order,
/// panics included (JavaScript's `Promise.allSettled`). A job that the
/// caller's context kept from starting (it was cancelled, or its deadline
/// passed) has that error as its outcome.
///
/// # Example
///
/// ```
/// use velocity_async as va;
///
/// let (a, b) = va::all_settled((|| 1, || -> u8 { panic!("no") }));
/// assert_eq!(a.unwrap(), 1);
/// assert!(b.unwrap_err().is_panic());
/// ```
pub fn all_settled<J: Jobs>(jobs: J) -> J::Settled {
    jobs.run_settled(usize::MAX)
}
