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
//! # Modules
//!
//! * `task` — the [`Task`] handle and its one-time outcome slot.
//! * `context` — [`Context`]: cancellation and deadlines; `timer` fires them.
//! * `pool` — the adaptive elastic pool ([`Pool`], [`Builder`], [`Stats`]).
//! * `run` — [`run`], [`run_with_timeout`], [`run_with_context`], [`go`],
//!   [`go_with_recover`].
//! * `panic` — the panic policy and [`set_panic_handler`]; `observe` — the
//!   optional `log`/`tracing` reports.
//! * `error` — [`Error`], [`PanicError`], [`SpawnError`].
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

mod all;
#[cfg(all(test, not(velocity_loom)))]
mod borrow_tests;
mod collections;
mod compile_fail;
mod context;
mod error;
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
mod sync;
mod task;
mod timer;

pub use all::{all, all_n, all_settled, all_with_error, all_with_error_n, Jobs, TryJobs};
pub use collections::{for_each, go_for_each, map, map_n, try_for_each};
pub use context::{Context, Done};
pub use error::{Error, PanicError, SpawnError};
pub use panic::set_panic_handler;
pub use pool::{
    Builder, Pool, RunningTask, ShutdownReport, Stats, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_THREADS,
};
#[cfg(feature = "indicatif")]
pub use progress::progress_bar;
pub use progress::with_progress;
pub use race::{first_ok, race, race_with_timeout, RaceJobs};
pub use run::{
    go, go_with_recover, run, run_with_context, run_with_timeout, shutdown, stats, task,
    TaskBuilder,
};
pub use task::Task;
