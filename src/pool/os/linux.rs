//! Linux and Android: the POSIX thread clock; run state and the machine's
//! runnable count from `/proc`; names through `pthread_setname_np`.

use std::time::Duration;

use super::posix;
pub(crate) use super::posix::process_cpu_time;

#[derive(Debug)]
pub(super) struct Probe {
    clock: Option<libc::clockid_t>,
    /// The kernel's id of the thread (0 if unknown); its state is read
    /// from `/proc/self/task/<tid>/stat`. Only the id is taken when the
    /// thread starts (one cheap system call): resolving the path up front
    /// cost a `readlink` and a `stat` per new thread, ~5 % of a cold pool's
    /// start-up CPU time, for a file the monitor rarely reads.
    tid: i64,
}

impl Probe {
    pub(super) fn current() -> Option<Probe> {
        // SAFETY: `gettid` takes no arguments, cannot fail and touches no
        // memory of ours. (Through `syscall`, not the libc wrapper, which
        // glibc only has since 2.30.)
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        #[allow(
            clippy::useless_conversion,
            reason = "`c_long` is `i64` here but `i32` on 32-bit targets"
        )]
        let tid = i64::from(tid).max(0);
        Some(Probe {
            clock: posix::thread_clock(),
            tid,
        })
    }

    pub(super) fn has_clock(&self) -> bool {
        self.clock.is_some()
    }

    pub(super) fn cpu_time(&self) -> Option<Duration> {
        posix::read_clock(self.clock?)
    }

    pub(super) fn has_state(&self) -> bool {
        self.tid > 0
    }

    /// State `R` (running or waiting for a CPU); `None` if the file could
    /// not be read (the thread exited).
    pub(super) fn is_runnable(&self) -> Option<bool> {
        if self.tid <= 0 {
            return None;
        }
        let text = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        // "tid (name) S ...": the name may hold spaces and parentheses.
        let after_name = &text[text.rfind(')')? + 1..];
        let state = after_name.split_whitespace().next()?;
        Some(state == "R")
    }
}

/// The fourth field of `/proc/loadavg`, before its `/`.
pub(super) fn runnable_threads() -> Option<usize> {
    parse_runnable(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The runnable count in a `/proc/loadavg` line ("0.30 1.26 1.53 1/77
/// 30682"). The thread reading it is running, so a true count is at least
/// 1: a 0 comes from an emulated `/proc` (some sandboxes print zeros) and
/// is taken as unknown, or every busy worker would look blocked.
fn parse_runnable(loadavg: &str) -> Option<usize> {
    let field = loadavg.split_whitespace().nth(3)?;
    let n: usize = field.split('/').next()?.parse().ok()?;
    (n >= 1).then_some(n)
}

/// Sets the calling thread's name as the kernel shows it (15 bytes kept).
/// std's own record of the name (`thread::current().name()`) does not
/// change.
pub(crate) fn set_thread_name(name: &str) {
    let bytes = posix::c_name::<16>(name);
    // SAFETY: `bytes` is NUL-terminated and outlives the call;
    // `pthread_self()` is always a valid handle for the calling thread. A
    // failure is only reported through the return value, which is ignored:
    // a name is diagnostics.
    unsafe {
        libc::pthread_setname_np(libc::pthread_self(), bytes.as_ptr().cast());
    }
}

#[cfg(test)]
mod tests {
    use super::parse_runnable;

    #[test]
    fn loadavg_lines_parse_and_implausible_ones_are_unknown() {
        assert_eq!(parse_runnable("0.30 1.26 1.53 1/77 30682\n"), Some(1));
        assert_eq!(parse_runnable("9.10 8.00 7.00 1003/2600 4242"), Some(1003));
        assert_eq!(parse_runnable("0.00 0.00 0.00 0/0 0"), None);
        assert_eq!(parse_runnable("0.00 0.00 0.00"), None);
        assert_eq!(parse_runnable("a b c x/y z"), None);
        assert_eq!(parse_runnable(""), None);
    }
}
