//! What the crate tells the outside world, behind optional features:
//!
//! * `log`: a panic the crate recovers while no handler is installed (see
//!   [`set_panic_handler`](crate::set_panic_handler)) is logged as an error
//!   on target `velocity_async`, with its message.
//! * `tracing`: the same as a `tracing` error event, and every job runs
//!   inside a `velocity_async::job` span (field `kind`: `task`, `go`).
//!
//! Without the features, both are no-ops. std's panic hook prints each panic
//! to stderr as usual; these reports go to the application's logger, never a
//! second copy to stderr.

use crate::error::PanicError;

/// Reports a recovered panic nobody installed a handler for.
pub(crate) fn unhandled_panic(p: &PanicError) {
    #[cfg(feature = "log")]
    log::error!(target: "velocity_async", "recovered panic: {}", p.message());
    #[cfg(feature = "tracing")]
    tracing::error!(target: "velocity_async", message = %p.message(), "recovered panic");
    let _ = p;
}

/// The span a job runs in (`kind`: `task` or `go`); a no-op without the
/// `tracing` feature.
#[cfg(feature = "tracing")]
pub(crate) fn enter_job(kind: &'static str) -> tracing::span::EnteredSpan {
    tracing::debug_span!(target: "velocity_async", "velocity_async::job", kind).entered()
}

/// The span a job runs in; a no-op without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) fn enter_job(_kind: &'static str) -> NoSpan {
    NoSpan
}

/// Stands for the entered span without the `tracing` feature.
#[cfg(not(feature = "tracing"))]
pub(crate) struct NoSpan;
