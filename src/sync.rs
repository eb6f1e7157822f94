//! The synchronisation primitives of everything that is model-checked with
//! [loom](https://docs.rs/loom): the pool's queue, idle list and
//! retirement (`pool`), a task's outcome slot (`task::Slot`), contexts
//! (`context`), the bookkeeping of a race (`race`) and the join latch of the
//! borrowing combinators (`scope::Latch`). They are std's, or loom's when
//! the crate is built with `RUSTFLAGS="--cfg velocity_loom"` (see
//! `docs/RELIABILITY.md`).
//!
//! Only four things behave differently under loom, each because loom has no
//! clock: a timed park with a zero timeout returns at once and any other
//! parks until unparked ([`thread::park_timeout`]); waiters do not spin
//! (`spin_until`); the loop engine's chunks stay at one item (their
//! size follows measured item times); and the pool's monitor thread, which
//! samples CPU clocks over wall-clock ticks, is never started (the pool then
//! takes the path it takes when the monitor thread cannot be spawned).
//! Statics (the panic handler, the timer list, the global pool) stay std's:
//! loom objects cannot outlive one explored execution.

#[cfg(not(velocity_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

#[cfg(velocity_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

/// Threads: std's, or loom's simulated ones.
pub(crate) mod thread {
    use std::time::Duration;

    #[cfg(not(velocity_loom))]
    pub(crate) use std::thread::{current, park, Builder, Thread};

    #[cfg(velocity_loom)]
    pub(crate) use loom::thread::{current, park, Builder, Thread};

    /// Parks the current thread until unparked or `timeout` passes.
    #[cfg(not(velocity_loom))]
    pub(crate) fn park_timeout(timeout: Duration) {
        std::thread::park_timeout(timeout);
    }

    /// Under loom time does not pass: a zero timeout has expired already
    /// (so a zero keep-alive models a worker retiring), any other one never
    /// expires (the worker sleeps until unparked).
    #[cfg(velocity_loom)]
    pub(crate) fn park_timeout(timeout: Duration) {
        if !timeout.is_zero() {
            loom::thread::park();
        }
    }
}

/// `thread_local!` with a `const` initialiser: std's, or loom's per
/// simulated thread (loom runs every simulated thread on one OS thread, so
/// std's thread-locals would be shared between them).
macro_rules! thread_local_const {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(not(velocity_loom))]
        std::thread_local! {
            $(#[$attr])* static $name: $t = const { $init };
        }
        #[cfg(velocity_loom)]
        loom::thread_local! {
            $(#[$attr])* static $name: $t = $init;
        }
    };
}
pub(crate) use thread_local_const;

/// How long a waiter spins before it blocks: a hand-off between two running
/// threads takes well under a microsecond, a wake-up of a sleeping one tens.
pub(crate) const WAIT_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// Spins up to `limit` until `done()` holds; returns its last value. A
/// waiter's spin: [`spin_yielding`] every 128 checks.
pub(crate) fn spin_until(limit: std::time::Duration, done: impl Fn() -> bool) -> bool {
    spin_yielding(limit, 128, done)
}

/// Spins up to `limit` until `done()` holds, yielding the CPU every
/// `checks` checks; returns `done()`'s last value.
///
/// The yield matters: the thread being waited for may have been woken onto
/// this very CPU (the scheduler prefers the waker's), and would otherwise
/// start only when the spin ends (measured in docs/PERFORMANCE.md, #16's
/// second pass).
pub(crate) fn spin_yielding(
    limit: std::time::Duration,
    checks: u32,
    done: impl Fn() -> bool,
) -> bool {
    if cfg!(velocity_loom) {
        // Under loom, time does not pass: spinning only multiplies the
        // interleavings to explore. The blocking path is what is checked.
        let _ = (limit, checks);
        return done();
    }
    // The clock is read only once the first round of checks failed: most
    // waits end inside it, and a clock read (~30 ns on this project's VM)
    // costs more than several checks (`docs/PERFORMANCE.md`, #16's third
    // pass).
    let mut start = None;
    loop {
        for _ in 0..checks {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        let start = *start.get_or_insert_with(std::time::Instant::now);
        if start.elapsed() >= limit {
            return done();
        }
        std::thread::yield_now();
    }
}
