//! FreeBSD: the POSIX thread clock (libthr encodes the thread's kernel id
//! in it, `clock_getcpuclockid2(tid, CPUCLOCK_WHICH_TID)`); no run state
//! (the kernel has it, but only through a `sysctl` of the whole process, too
//! dear for every tick); names through `pthread_set_name_np`.

use std::time::Duration;

use super::posix;
pub(crate) use super::posix::process_cpu_time;

#[derive(Debug)]
pub(super) struct Probe {
    clock: libc::clockid_t,
}

impl Probe {
    pub(super) fn current() -> Option<Probe> {
        posix::thread_clock().map(|clock| Probe { clock })
    }

    pub(super) fn has_clock(&self) -> bool {
        true
    }

    pub(super) fn cpu_time(&self) -> Option<Duration> {
        posix::read_clock(self.clock)
    }

    pub(super) fn has_state(&self) -> bool {
        false
    }

    pub(super) fn is_runnable(&self) -> Option<bool> {
        None
    }
}

pub(super) fn runnable_threads() -> Option<usize> {
    None
}

/// Sets the calling thread's name as the kernel shows it (`MAXCOMLEN`, 19
/// bytes, kept). `pthread_set_name_np` rather than `pthread_setname_np`,
/// which FreeBSD only has since 12.2.
pub(crate) fn set_thread_name(name: &str) {
    let bytes = posix::c_name::<20>(name);
    // SAFETY: `bytes` is NUL-terminated and outlives the call;
    // `pthread_self()` is always a valid handle for the calling thread.
    unsafe {
        libc::pthread_set_name_np(libc::pthread_self(), bytes.as_ptr().cast());
    }
}
