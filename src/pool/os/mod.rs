//! What the pool asks the operating system: another thread's CPU time and
//! run state, and how many threads the machine has runnable — how the
//! monitor tells a worker that computes from one that is blocked (Go's
//! sysmon uses the scheduler's own knowledge; a library only has the
//! kernel's) — the process's CPU time, and the calling thread's name, which
//! a named task shows while it runs (`top -H`, `perf`, debuggers).
//!
//! One file per platform family, each giving the same few items:
//!
//! | file | platforms | thread CPU time | run state | runnable count |
//! |---|---|---|---|---|
//! | `linux.rs` | Linux, Android | `pthread_getcpuclockid` | `/proc/self/task/<tid>/stat` | `/proc/loadavg` |
//! | `apple.rs` | macOS, iOS, tvOS, watchOS, visionOS | `thread_info(THREAD_BASIC_INFO)` | the same call | — |
//! | `freebsd.rs` | FreeBSD | `pthread_getcpuclockid` | — | — |
//! | `windows.rs` | Windows | `QueryThreadCycleTime`, calibrated | — | — |
//! | `none.rs` | the rest (other BSDs, wasm, …), Miri | — | — | — |
//!
//! Where a thread has no CPU time, the monitor uses its fallback (the
//! process's CPU time, `monitor.rs`); `--cfg velocity_no_os_probes` forces
//! that fallback everywhere (so it is tested on Linux), and Miri, which
//! cannot run foreign calls, gets `none.rs` whole.
//!
//! The foreign calls, each in an `unsafe` block, are the only unsafe code
//! outside the lifetime-erasure module, kept here because the probes buy
//! the pool's central property (grow for blocking work, not for CPU work)
//! and the name is the diagnostics the task builder promises.
#![allow(unsafe_code)]

use std::time::Duration;

#[cfg(all(unix, not(miri)))]
mod posix;

#[cfg_attr(
    all(any(target_os = "linux", target_os = "android"), not(miri)),
    path = "linux.rs"
)]
#[cfg_attr(all(target_vendor = "apple", not(miri)), path = "apple.rs")]
#[cfg_attr(all(target_os = "freebsd", not(miri)), path = "freebsd.rs")]
#[cfg_attr(all(windows, not(miri)), path = "windows.rs")]
#[cfg_attr(
    any(
        miri,
        not(any(
            target_os = "linux",
            target_os = "android",
            target_vendor = "apple",
            target_os = "freebsd",
            windows
        ))
    ),
    path = "none.rs"
)]
mod platform;

pub(crate) use platform::{process_cpu_time, set_thread_name};

/// What the monitor can learn about one thread, taken on that thread when
/// it starts (a worker, or a loop caller).
#[derive(Debug)]
pub(crate) struct ThreadProbe(Option<platform::Probe>);

impl ThreadProbe {
    /// The calling thread's, with whatever the platform reports.
    pub(crate) fn current() -> ThreadProbe {
        if cfg!(velocity_no_os_probes) {
            ThreadProbe(None)
        } else {
            ThreadProbe(platform::Probe::current())
        }
    }

    /// Whether `cpu_time` can answer while the thread lives. Threads
    /// without a clock are counted by the monitor's fallback instead.
    pub(crate) fn has_clock(&self) -> bool {
        self.0.as_ref().is_some_and(platform::Probe::has_clock)
    }

    /// CPU time the thread has used so far; `None` if unknown (no clock on
    /// this platform, or the thread exited).
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        self.0.as_ref()?.cpu_time()
    }

    /// Whether the thread is running or waiting for a CPU right now; `None`
    /// if unknown (the platform does not tell, or the thread exited).
    ///
    /// A thread that used little CPU may be blocked — or runnable but
    /// waiting for a CPU (a busy machine, a hypervisor's steal). Only the
    /// first calls for more threads; this tells them apart.
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        self.0.as_ref()?.is_runnable()
    }

    /// Whether `is_runnable` can answer (reading it costs a system call or
    /// a small file read, so the monitor counts its reads).
    pub(crate) fn has_state(&self) -> bool {
        self.0.as_ref().is_some_and(platform::Probe::has_state)
    }
}

/// How many threads the whole machine has runnable right now (running or
/// waiting for a CPU), where the platform tells cheaply (Linux and Android:
/// `/proc/loadavg`); `None` where unknown.
///
/// One small read for the whole pool. Every busy worker that is not among
/// them is asleep in the kernel, so `busy - runnable` is a lower bound on the
/// busy workers that are blocked, good even while the CPUs are saturated
/// (when per-thread CPU clocks cannot tell blocked from descheduled) and for
/// workers the monitor sees for the first time (when it has no earlier
/// clock sample to compare with). Other processes' runnable threads only make
/// the bound lower, never wrong.
pub(crate) fn runnable_threads() -> Option<usize> {
    if cfg!(velocity_no_os_probes) {
        None
    } else {
        platform::runnable_threads()
    }
}

#[cfg(all(test, not(miri), not(velocity_loom), not(velocity_no_os_probes)))]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Polls `f` until it holds or 30 s pass (a thread goes to sleep, or
    /// its kernel record goes, a moment after the event that causes it).
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// A thread that computes gains CPU time; one blocked in `recv` gains
    /// (almost) none and, where the platform tells, is not runnable.
    #[test]
    fn a_computing_thread_gains_cpu_time_and_a_blocked_one_does_not() {
        let me = ThreadProbe::current();
        if !me.has_clock() {
            return; // a platform without thread clocks: the fallback's case
        }
        let before = me.cpu_time().expect("own clock");
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(0u64);
        }
        let used = me.cpu_time().expect("own clock").saturating_sub(before);
        // Generous: a busy machine may deschedule us for most of the spin.
        assert!(used > Duration::ZERO, "{used:?}");
        if me.has_state() {
            assert_eq!(me.is_runnable(), Some(true));
        }

        let (probe_tx, probe_rx) = mpsc::channel();
        let (release, blocked) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            probe_tx.send(ThreadProbe::current()).unwrap();
            blocked.recv().unwrap();
        });
        let other = probe_rx.recv().unwrap();
        if other.has_state() {
            assert!(eventually(|| other.is_runnable() == Some(false)));
        }
        let a = other.cpu_time().expect("a live thread's clock");
        std::thread::sleep(Duration::from_millis(50));
        let b = other.cpu_time().expect("a live thread's clock");
        // Asleep for 50 ms: far below the monitor's 1/8 share.
        assert!(
            b.saturating_sub(a) < Duration::from_millis(6),
            "{a:?} {b:?}"
        );
        release.send(()).unwrap();
        t.join().unwrap();
        // An exited thread's state is unknown, not "blocked".
        if other.has_state() {
            assert!(eventually(|| other.is_runnable().is_none()));
        }
    }

    #[test]
    fn the_process_clock_counts_this_threads_work() {
        let Some(before) = process_cpu_time() else {
            return; // wasm and the platforms without one
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(0u64);
        }
        assert!(process_cpu_time().expect("still readable") > before);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_machine_counts_the_calling_thread_as_runnable() {
        let n = runnable_threads().expect("/proc/loadavg is readable");
        assert!(n >= 1, "{n}");
    }

    #[test]
    fn thread_names_of_any_length_and_content_are_accepted() {
        std::thread::spawn(|| {
            set_thread_name("");
            set_thread_name("short");
            set_thread_name("nul\0inside");
            set_thread_name(&"é".repeat(100)); // cut at a character boundary
        })
        .join()
        .unwrap();
    }
}
