//! What the pool asks the operating system: another thread's CPU clock and
//! run state, and how many threads the machine has runnable — how the
//! monitor tells a worker that computes from one that is blocked (Go's
//! sysmon uses the scheduler's own knowledge; a library only has the
//! kernel's) — and the calling thread's name, which a named task shows while
//! it runs (`top -H`, `perf`, debuggers).
//!
//! Miri cannot run these foreign calls, so under Miri the pool falls back to
//! the progress-based rule of platforms without thread clocks, and names are
//! not shown.
//!
//! Five libc calls, each in an `unsafe` block: the only unsafe code outside
//! the lifetime-erasure module, kept here because the clocks buy the pool's
//! central property (grow for blocking work, not for CPU work) and the name
//! is the diagnostics the task builder promises.
#![allow(unsafe_code)]

use std::time::Duration;

/// The CPU-time clock of one thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThreadClock {
    #[cfg(all(target_os = "linux", not(miri), not(velocity_no_os_probes)))]
    id: libc::clockid_t,
}

impl ThreadClock {
    /// The calling thread's clock, if the platform has one.
    #[cfg(all(target_os = "linux", not(miri), not(velocity_no_os_probes)))]
    pub(crate) fn current() -> Option<ThreadClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` is always a valid handle for the calling
        // thread, and `id` is a valid, writable `clockid_t`.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(ThreadClock { id })
    }

    /// The calling thread's clock, if the platform has one.
    #[cfg(not(all(target_os = "linux", not(miri), not(velocity_no_os_probes))))]
    pub(crate) fn current() -> Option<ThreadClock> {
        None
    }

    /// CPU time the thread has used so far; `None` if it has exited.
    ///
    /// On Linux the clock id encodes the thread id, so reading the clock of a
    /// thread that has exited is a clean `EINVAL`, never undefined behaviour.
    #[cfg(all(target_os = "linux", not(miri), not(velocity_no_os_probes)))]
    pub(crate) fn read(self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable `timespec`; an invalid clock id is
        // reported through the return value.
        let rc = unsafe { libc::clock_gettime(self.id, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// CPU time the thread has used so far; `None` if it has exited.
    #[cfg(not(all(target_os = "linux", not(miri), not(velocity_no_os_probes))))]
    pub(crate) fn read(self) -> Option<Duration> {
        None
    }
}

/// CPU time the whole process has used so far, if the platform tells: the
/// POSIX process clock on every Unix (Linux, Android, macOS and iOS since
/// 10.12/10.0, the BSDs), `GetProcessTimes` on Windows. It serves the
/// saturation check everywhere, and on platforms without per-thread
/// probes it is the fallback's evidence of blocking (`monitor.rs`).
#[cfg(all(unix, not(miri)))]
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; CLOCK_PROCESS_CPUTIME_ID
    // is a clock id of every Unix libc defines it for, and an unsupported
    // one is reported through the return value.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (rc == 0 && ts.tv_sec >= 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// CPU time the whole process has used so far (user and kernel time from
/// `GetProcessTimes`, in 100 ns units; Windows updates it at the clock
/// tick, ~15.6 ms by default, so over a 500 µs tick it reads 0 or a whole
/// tick: the fallback averages it over longer windows, see `monitor.rs`).
#[cfg(all(windows, not(miri)))]
pub(crate) fn process_cpu_time() -> Option<Duration> {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessTimes};
    let zero = || FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero(), zero(), zero(), zero());
    // SAFETY: `GetCurrentProcess` returns a pseudo-handle that is always
    // valid and needs no closing; the four out-pointers are valid, writable
    // `FILETIME`s that outlive the call. Failure is reported by a zero
    // return value.
    let ok = unsafe {
        GetProcessTimes(
            GetCurrentProcess(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    let ticks = |t: FILETIME| (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
    (ok != 0).then(|| Duration::from_nanos((ticks(kernel) + ticks(user)).saturating_mul(100)))
}

/// CPU time the whole process has used so far; unknown on this platform.
#[cfg(any(miri, not(any(unix, windows))))]
pub(crate) fn process_cpu_time() -> Option<Duration> {
    None
}

/// How many threads the whole machine has runnable right now (running or
/// waiting for a CPU): the fourth field of `/proc/loadavg`, before its `/`.
/// `None` where unknown.
///
/// One small read for the whole pool. Every busy worker that is not among
/// them is asleep in the kernel, so `busy - runnable` is a lower bound on the
/// busy workers that are blocked, good even while the CPUs are saturated
/// (when per-thread CPU clocks cannot tell blocked from descheduled) and for
/// workers the monitor sees for the first time (when it has no earlier
/// clock sample to compare with). Other processes' runnable threads only make
/// the bound lower, never wrong.
#[cfg(all(target_os = "linux", not(miri), not(velocity_no_os_probes)))]
pub(crate) fn runnable_threads() -> Option<usize> {
    parse_runnable(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The runnable count in a `/proc/loadavg` line ("0.30 1.26 1.53 1/77
/// 30682"). The thread reading it is running, so a true count is at least
/// 1: a 0 comes from an emulated `/proc` (some sandboxes print zeros) and
/// is taken as unknown, or every busy worker would look blocked.
#[cfg_attr(
    not(all(target_os = "linux", not(miri), not(velocity_no_os_probes))),
    allow(dead_code, reason = "Linux only")
)]
fn parse_runnable(loadavg: &str) -> Option<usize> {
    let field = loadavg.split_whitespace().nth(3)?;
    let n: usize = field.split('/').next()?.parse().ok()?;
    (n >= 1).then_some(n)
}

/// How many threads the whole machine has runnable right now; `None` where
/// unknown.
#[cfg(not(all(target_os = "linux", not(miri), not(velocity_no_os_probes))))]
pub(crate) fn runnable_threads() -> Option<usize> {
    None
}

/// Where to read whether one thread is runnable right now (the state field
/// of `/proc/self/task/<tid>/stat`).
///
/// A thread that used little CPU may be blocked — or runnable but waiting for
/// a CPU (a busy machine, a hypervisor's steal). Only the first calls for more
/// threads; this tells them apart.
#[derive(Debug)]
pub(crate) struct ThreadState {
    #[cfg_attr(
        not(all(target_os = "linux", not(miri), not(velocity_no_os_probes))),
        allow(dead_code, reason = "Linux only")
    )]
    /// The kernel's id of the thread; its state is read from
    /// `/proc/self/task/<tid>/stat`. Only the id is taken when the worker
    /// starts (one cheap system call): resolving the path up front cost
    /// a `readlink` and a `stat` per new thread, ~5 % of a cold pool's
    /// start-up CPU time, for a file the monitor rarely reads.
    tid: i64,
}

impl ThreadState {
    /// The calling thread's, if the platform reports it.
    #[cfg(all(target_os = "linux", not(miri), not(velocity_no_os_probes)))]
    pub(crate) fn current() -> Option<ThreadState> {
        // SAFETY: `gettid` takes no arguments, cannot fail and touches no
        // memory of ours. (Through `syscall`, not the libc wrapper, which
        // glibc only has since 2.30.)
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        #[allow(
            clippy::useless_conversion,
            reason = "`c_long` is `i64` here but `i32` on 32-bit Linux"
        )]
        let tid = i64::from(tid);
        (tid > 0).then_some(ThreadState { tid })
    }

    /// The calling thread's, if the platform reports it.
    #[cfg(not(all(target_os = "linux", not(miri), not(velocity_no_os_probes))))]
    pub(crate) fn current() -> Option<ThreadState> {
        None
    }

    /// Whether the thread is running or waiting for a CPU (state `R`);
    /// `None` if unknown (it exited, or the file could not be read).
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        let text = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        // "tid (name) S ...": the name may hold spaces and parentheses.
        let after_name = &text[text.rfind(')')? + 1..];
        let state = after_name.split_whitespace().next()?;
        Some(state == "R")
    }
}

/// Sets the calling thread's name as the kernel shows it (Linux keeps 15
/// bytes: longer names are cut at a character boundary). Elsewhere, and
/// under Miri, it does nothing. std's own record of the name
/// (`thread::current().name()`) does not change.
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) fn set_thread_name(name: &str) {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; 16];
    for (b, c) in bytes.iter_mut().zip(name[..end].bytes()) {
        // An interior NUL would end the C string early: show it as '?'.
        *b = if c == 0 { b'?' } else { c };
    }
    // SAFETY: `bytes` is NUL-terminated (at most 15 bytes are copied into 16
    // zeroed ones) and outlives the call; `pthread_self()` is always a valid
    // handle for the calling thread. A failure is only reported through the
    // return value, which is ignored: a name is diagnostics.
    unsafe {
        libc::pthread_setname_np(libc::pthread_self(), bytes.as_ptr().cast());
    }
}

/// Sets the calling thread's name; a no-op on this platform.
#[cfg(not(all(target_os = "linux", not(miri))))]
pub(crate) fn set_thread_name(_name: &str) {}

#[cfg(all(
    test,
    target_os = "linux",
    not(miri),
    not(velocity_loom),
    not(velocity_no_os_probes)
))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_thread_reads_itself_runnable_and_a_blocked_one_not() {
        let me = ThreadState::current().expect("Linux reports thread ids");
        assert_eq!(me.is_runnable(), Some(true));

        let (state_tx, state_rx) = mpsc::channel();
        let (release, blocked) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            state_tx.send(ThreadState::current().unwrap()).unwrap();
            blocked.recv().unwrap();
        });
        let other = state_rx.recv().unwrap();
        // It goes to sleep in `recv` shortly after sending; poll until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while other.is_runnable() != Some(false) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(other.is_runnable(), Some(false));
        release.send(()).unwrap();
        t.join().unwrap();
        // An exited thread's state is unknown, not "blocked". (`join` may
        // return a moment before the kernel removes its /proc entry.)
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while other.is_runnable().is_some() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(other.is_runnable(), None);
    }

    #[test]
    fn the_machine_counts_the_calling_thread_as_runnable() {
        let n = runnable_threads().expect("/proc/loadavg is readable");
        assert!(n >= 1, "{n}");
    }

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
