//! Platforms without thread probes (the other BSDs, wasm, Solaris, …) and
//! Miri: no per-thread answers, so the monitor uses its fallback. The
//! process's CPU time where the platform has the POSIX clock.

use std::time::Duration;

#[cfg(all(unix, not(miri)))]
pub(crate) use super::posix::process_cpu_time;

/// Never made: `current` answers `None`.
#[derive(Debug)]
pub(super) enum Probe {}

impl Probe {
    pub(super) fn current() -> Option<Probe> {
        None
    }

    pub(super) fn has_clock(&self) -> bool {
        match *self {}
    }

    pub(super) fn cpu_time(&self) -> Option<Duration> {
        match *self {}
    }

    pub(super) fn has_state(&self) -> bool {
        match *self {}
    }

    pub(super) fn is_runnable(&self) -> Option<bool> {
        match *self {}
    }
}

/// Unknown here.
#[cfg(not(all(unix, not(miri))))]
pub(crate) fn process_cpu_time() -> Option<Duration> {
    None
}

pub(super) fn runnable_threads() -> Option<usize> {
    None
}

/// A no-op here.
pub(crate) fn set_thread_name(_name: &str) {}
