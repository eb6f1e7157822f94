//! macOS, iOS and the other Apple platforms: one Mach call,
//! `thread_info(THREAD_BASIC_INFO)`, gives a thread's user and system time
//! (microseconds) and its run state; names through the one-argument
//! `pthread_setname_np`, which names the calling thread.

use std::time::Duration;

use super::posix;
pub(crate) use super::posix::process_cpu_time;

#[derive(Debug)]
pub(super) struct Probe {
    /// The thread's Mach port, as `pthread_mach_thread_np` names it. No
    /// send right of ours is taken (it would need `mach_port_deallocate`,
    /// which neither `libc` nor std offer): the name stays valid while the
    /// thread lives, and the pool reads only the threads it knows to be
    /// alive and busy. After the thread exited the call fails (a dead or
    /// unused name) or, if the name was reused for a new thread, reads
    /// that one: an odd sample for one tick, never memory of ours.
    port: libc::mach_port_t,
}

impl Probe {
    pub(super) fn current() -> Option<Probe> {
        // SAFETY: `pthread_self()` is always a valid handle for the calling
        // thread; the call only looks it up.
        let port = unsafe { libc::pthread_mach_thread_np(libc::pthread_self()) };
        (port != 0).then_some(Probe { port })
    }

    /// `THREAD_BASIC_INFO`, or `None` if the call failed.
    fn basic_info(&self) -> Option<libc::thread_basic_info> {
        // SAFETY: `thread_basic_info` is plain integers, for which all
        // zeroes is a valid value.
        let mut info: libc::thread_basic_info = unsafe { std::mem::zeroed() };
        let mut count = libc::THREAD_BASIC_INFO_COUNT;
        // SAFETY: `info` is writable and `count` says how many `integer_t`
        // it holds, so the kernel writes no further; an invalid port is
        // reported through the return value.
        let kr = unsafe {
            libc::thread_info(
                self.port,
                libc::THREAD_BASIC_INFO as libc::thread_flavor_t,
                std::ptr::addr_of_mut!(info).cast(),
                &mut count,
            )
        };
        (kr == libc::KERN_SUCCESS).then_some(info)
    }

    pub(super) fn has_clock(&self) -> bool {
        true
    }

    pub(super) fn cpu_time(&self) -> Option<Duration> {
        let info = self.basic_info()?;
        let time = |t: libc::time_value_t| {
            let secs = u64::try_from(t.seconds).unwrap_or(0);
            let micros = u64::try_from(t.microseconds).unwrap_or(0);
            Duration::from_secs(secs) + Duration::from_micros(micros)
        };
        Some(time(info.user_time) + time(info.system_time))
    }

    pub(super) fn has_state(&self) -> bool {
        true
    }

    /// `TH_STATE_RUNNING` (on a CPU or waiting for one: the kernel's
    /// `TH_RUN`); waiting, stopped or halted threads are not runnable.
    pub(super) fn is_runnable(&self) -> Option<bool> {
        Some(self.basic_info()?.run_state == libc::TH_STATE_RUNNING)
    }
}

pub(super) fn runnable_threads() -> Option<usize> {
    None
}

/// Sets the calling thread's name (Apple keeps 63 bytes).
pub(crate) fn set_thread_name(name: &str) {
    let bytes = posix::c_name::<64>(name);
    // SAFETY: `bytes` is NUL-terminated and outlives the call, which names
    // the calling thread. A failure is only reported through the return
    // value, which is ignored: a name is diagnostics.
    unsafe {
        libc::pthread_setname_np(bytes.as_ptr().cast());
    }
}
