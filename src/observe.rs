//! What the crate tells the outside world, behind optional features:
//!
//! * `log`: a panic the crate recovers while no handler is installed (see
//!   [`set_panic_handler`](crate::set_panic_handler)) is logged as an error
//!   on target `velocity_async`, with its message.
//! * `tracing`: the same as a `tracing` error event, and every job runs
//!   inside a `velocity_async::job` span (fields `kind`: `task` or `go`,
//!   and `name`: the task's name from the task builder).
//!
//! Without the features, both are no-ops. std's panic hook prints each panic
//! to stderr as usual; these reports go to the application's logger, never a
//! second copy to stderr.

use std::fmt::Display;

/// Reports a recovered panic nobody installed a handler for: its message,
/// its task's name, and its `Display` (the panic policy's type, passed in so
/// this bottom layer imports nothing of the crate).
pub(crate) fn unhandled_panic(message: &str, task: Option<&str>, p: &dyn Display) {
    #[cfg(feature = "log")]
    log::error!(target: "velocity_async", "recovered panic: {p}");
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "velocity_async",
        message = %message,
        task = task.unwrap_or(""),
        "recovered panic"
    );
    let _ = (message, task, p);
}

/// The span a job runs in (`kind`: `task` or `go`; `name`: the task's name,
/// empty if it has none); a no-op without the `tracing` feature.
#[cfg(feature = "tracing")]
pub(crate) fn enter_job(kind: &'static str, name: Option<&str>) -> tracing::span::EnteredSpan {
    let name = name.unwrap_or("");
    tracing::debug_span!(target: "velocity_async", "velocity_async::job", kind, name).entered()
}

/// The span a job runs in; a no-op without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) fn enter_job(_kind: &'static str, _name: Option<&str>) -> NoSpan {
    NoSpan
}

/// Stands for the entered span without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) struct NoSpan;
