//! Go's concurrency helpers for synchronous Rust.
//!
//! `velocity_async` runs ordinary blocking closures in the background and
//! hands back typed results — no async runtime, no `.await` required, yet
//! every [`Task`] is also a [`Future`](std::future::Future). It is the Rust
//! port of Velocity's Go `async` package.
//!
//! ```
//! use std::time::Duration;
//! use velocity_async as va;
//!
//! let user = va::run(|| "ada".to_string());               // background work
//! let slow = va::run_with_timeout(Duration::from_millis(5), || {
//!     va::Context::current().wait();                      // slow work that checks
//!     0
//! });
//! assert_eq!(user.get().unwrap(), "ada");
//! assert!(slow.get().unwrap_err().is_timeout());
//! ```
//!
//! # What it cannot do
//!
//! It cannot kill a running thread: nothing can, safely. A timeout or a
//! cancellation resolves the task at once and marks the work's
//! [`Context`] done; work that never checks its context runs to its end, is
//! counted in [`Stats::abandoned`], and its result is dropped.
//!
//! # Panics
//!
//! Every closure runs under `catch_unwind`: a panic becomes
//! [`Error::Panic`] and is shown to the handler of [`set_panic_handler`].
//! Under `panic = "abort"` a panic aborts the process as usual.
//!
//! # Which helper when
//!
//! | you want to… | call |
//! |---|---|
//! | run one blocking call in the background | [`run`] → [`Task<T>`](Task) |
//! | … and give up after a deadline | [`run_with_timeout`] |
//! | … and stop when a request is cancelled | [`run_with_context`] with a [`Context`] |
//! | wait, poll, or await the result | [`Task::get`], [`Task::ready`], [`Task::wait_timeout`], `task.await` |
//! | run several and wait for all (a typed tuple; jobs may borrow) | [`all`], [`all_n`] |
//! | … and stop at the first error | [`all_with_error`], [`all_with_error_n`] |
//! | … and keep every outcome | [`all_settled`] |
//! | take the fastest, or the first success | [`race`], [`race_with_timeout`], [`first_ok`] |
//! | loop over items, N at a time (may borrow) | [`for_each`], [`try_for_each`] |
//! | transform items, keep their order | [`map`], [`map_n`] |
//! | … in the background | [`go_for_each`] |
//! | fire and forget | [`go`], [`try_go`], [`go_with_recover`] |
//! | see every recovered panic | [`set_panic_handler`] |
//! | name a task, give it a deadline, a context, a pool | [`task()`](task) → [`TaskBuilder`] |
//! | report a loop's progress | [`with_progress`] |
//! | let work stop early | [`Context::current()`](Context::current)`.is_done()` inside it |
//! | cancel everything started in a scope on leaving it | [`Context::cancel_on_drop`] (Go's `defer cancel()`) |
//! | start jobs that borrow, join some, wait for all (`std::thread::scope` on the pool) | [`scope()`] → [`Scope`], [`ScopedTask`] |
//! | start fallible jobs, the first error cancels the rest, N at a time (Go's errgroup) | [`group()`], [`group_n`] → [`Group`] |
//! | take tasks' results in the order they finish, blocking or awaited | [`TaskSet`] |
//! | cancel one task | [`Task::cancel`] |
//! | limit how many run a kind of work (connections, bytes), weighted | [`Semaphore`] |
//! | share one call among concurrent callers of the same key | [`Singleflight`] |
//! | wait for background work before exit | [`shutdown`] |
//! | isolate a workload, set its limits | [`Pool::builder`], [`Pool::install`] |
//!
//! Coming from Go? `docs/GO_TO_RUST.md` in the repository maps every
//! function of Velocity's `async` package to its call here, and says where
//! they differ.
//!
//! # From async code
//!
//! Every function here blocks its thread until its work is done, except
//! awaiting a [`Task`] or [`Context::done`]. In an `async fn`, await a task
//! instead of blocking: `va::run(|| va::all((f, g))).await` runs the
//! blocking helper on the pool while the runtime thread awaits.
//!
//! # Errors
//!
//! Every failure is an [`Error`]: a panic ([`PanicError`]: message and payload kept), a
//! timeout, a cancellation, a refused submission. Jobs of
//! [`all_with_error`] and [`try_for_each`] return your own error type `E`,
//! which needs `impl From<velocity_async::Error> for E` (a panic becomes
//! `E` through it); `std::io::Error`, `anyhow::Error` and `Box<dyn Error +
//! Send + Sync>` already have it.
//!
//! # How it works
//!
//! An elastic pool keeps about one thread per CPU computing and starts more
//! only for work that blocks (it reads each busy thread's CPU clock), so
//! blocking calls never starve and CPU work never oversubscribes.
//! `ARCHITECTURE.md` in the repository follows one task through the crate.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

mod all;
#[cfg(all(test, not(velocity_loom)))]
mod borrow_tests;
mod collections;
mod compile_fail;
mod context;
mod error;
mod group;
#[cfg(all(test, velocity_loom))]
mod loom_models;
mod observe;
mod panic;
mod parallel;
mod pool;
mod progress;
mod race;
mod run;
mod scope;
mod scoped;
mod semaphore;
mod singleflight;
mod stream;
mod sync;
mod task;
mod task_set;
mod timer;

pub use all::{all, all_n, all_settled, all_with_error, all_with_error_n, Jobs, TryJobs};
pub use collections::{for_each, go_for_each, map, map_n, try_for_each};
pub use context::{CancelGuard, Context, Done};
pub use error::{Error, SpawnError};
pub use group::{group, group_n, Group};
pub use panic::{set_panic_handler, PanicError};
pub use pool::{
    Builder, Pool, RunningTask, ShutdownReport, Stats, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_THREADS,
};
#[cfg(feature = "indicatif")]
pub use progress::progress_bar;
pub use progress::with_progress;
pub use race::{first_ok, race, race_with_timeout, RaceJobs};
pub use run::{
    go, go_with_recover, run, run_with_context, run_with_timeout, shutdown, stats, task, try_go,
    TaskBuilder,
};
pub use scoped::{scope, Scope, ScopedTask};
pub use semaphore::{Permit, Semaphore};
pub use singleflight::Singleflight;
pub use task::Task;
pub use task_set::{JoinNext, TaskSet};

/// The README's Rust examples, compiled and run with the doctests, so its
/// getting-started program stays one that compiles.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
