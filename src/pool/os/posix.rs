//! What every Unix shares: POSIX clocks (a thread's, where the platform
//! encodes the thread in the clock id; the process's everywhere) and C
//! strings for thread names.

use std::time::Duration;

/// The calling thread's CPU-time clock. Only used where the id names the
/// thread itself (Linux, Android, FreeBSD encode its kernel id), so that
/// another thread may read it, and reading it after the thread exited is a
/// clean `EINVAL`, never another thread's time or undefined behaviour.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(super) fn thread_clock() -> Option<libc::clockid_t> {
    let mut id: libc::clockid_t = 0;
    // SAFETY: `pthread_self()` is always a valid handle for the calling
    // thread, and `id` is a valid, writable `clockid_t`.
    let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
    (rc == 0).then_some(id)
}

/// Reads a POSIX clock; `None` if the id is not (or no longer) valid.
pub(super) fn read_clock(id: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; an invalid clock id is
    // reported through the return value.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    (rc == 0).then(|| Duration::new(secs, nanos))
}

/// CPU time the whole process has used so far: the POSIX process clock,
/// which every Unix has (Linux, Android, macOS and iOS since 10.12/10.0,
/// the BSDs). It serves the saturation check everywhere, and on platforms
/// without per-thread clocks it is the fallback's evidence of blocking
/// (`monitor.rs`).
pub(crate) fn process_cpu_time() -> Option<Duration> {
    read_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `name` as a NUL-terminated C string of at most `N - 1` bytes: cut at a
/// character boundary (the kernels keep only so much: 15 bytes on Linux
/// and Android, 19 on FreeBSD, 63 on Apple's), an interior NUL shown as
/// `?` (it would end the string early).
#[cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_vendor = "apple"
    )),
    allow(
        dead_code,
        reason = "names are set where the platform has a call for it"
    )
)]
pub(super) fn c_name<const N: usize>(name: &str) -> [u8; N] {
    let mut end = name.len().min(N - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut bytes = [0u8; N];
    for (b, c) in bytes.iter_mut().zip(name[..end].bytes()) {
        *b = if c == 0 { b'?' } else { c };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::c_name;

    #[test]
    fn names_are_cut_at_a_character_boundary_and_terminated() {
        assert_eq!(&c_name::<8>("abc"), b"abc\0\0\0\0\0");
        assert_eq!(&c_name::<4>("abcdef"), b"abc\0");
        // "é" is two bytes: cutting at 3 would split the second one.
        assert_eq!(&c_name::<4>("éé"), b"\xc3\xa9\0\0");
        assert_eq!(&c_name::<4>("a\0b"), b"a?b\0");
        assert_eq!(&c_name::<4>(""), b"\0\0\0\0");
    }
}
