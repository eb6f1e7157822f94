//! Windows: a thread's CPU time from `QueryThreadCycleTime`, calibrated; the
//! process's from `GetProcessTimes`; names through `SetThreadDescription`
//! where Windows has it.
//! No run state and no machine-wide runnable count (Windows has them only
//! through undocumented `NtQuerySystemInformation` classes).
//!
//! Why cycles, not `GetThreadTimes`: the thread times are charged at the
//! clock interrupt, ~15.6 ms by default, so over the monitor's 500 µs tick a
//! computing thread reads 0 most ticks and looks blocked. The cycle count is
//! exact. Microsoft warns that cycles are not time, since the counter's rate
//! is the CPU's and may vary with its frequency; the monitor only asks
//! whether a thread used an eighth of a tick, so the rate is measured once
//! (a 2 ms spin of the monitor, on its first question). A rate measured low
//! (the spin was descheduled) makes threads look busier, never blocked
//! ones computing; a counter that slows with the CPU makes computing
//! threads look idle only if it slows eightfold.

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{FILETIME, HANDLE};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentThread, GetCurrentThreadId, GetProcessTimes, OpenThread,
    THREAD_QUERY_LIMITED_INFORMATION,
};
use windows_sys::Win32::System::WindowsProgramming::QueryThreadCycleTime;

#[derive(Debug)]
pub(super) struct Probe {
    /// A real handle to the thread (`GetCurrentThread` gives a pseudo-handle
    /// that means "the caller" wherever it is used), with the one right
    /// `QueryThreadCycleTime` needs. Closed when the probe is dropped; a
    /// probe that is never dropped leaks a handle, nothing worse. While it
    /// is open the thread's id and object cannot be reused, so a read after
    /// the thread exited is of the exited thread, never another one.
    handle: OwnedHandle,
}

/// The calling thread's or another's cycle count.
fn cycles(handle: HANDLE) -> Option<u64> {
    let mut cycles = 0u64;
    // SAFETY: `handle` is a live thread handle (the pseudo-handle, or one
    // the caller owns) with query rights; `cycles` is a valid, writable
    // `u64`. Failure is reported by a zero return value.
    let ok = unsafe { QueryThreadCycleTime(handle, &mut cycles) };
    (ok != 0).then_some(cycles)
}

/// Cycles per microsecond, measured once by spinning the calling thread for
/// 2 ms; `None` if the counter does not move.
fn cycles_per_micro() -> Option<u64> {
    static RATE: OnceLock<Option<u64>> = OnceLock::new();
    *RATE.get_or_init(|| {
        // SAFETY: the pseudo-handle of the calling thread is always valid
        // and needs no closing.
        let me = unsafe { GetCurrentThread() };
        let (start, at) = (cycles(me)?, Instant::now());
        while at.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let (end, wall) = (cycles(me)?, at.elapsed());
        let micros = u64::try_from(wall.as_micros()).ok()?.max(1);
        let rate = end.saturating_sub(start) / micros;
        (rate > 0).then_some(rate)
    })
}

impl Probe {
    pub(super) fn current() -> Option<Probe> {
        // SAFETY: no pointers; a failure is a null return value.
        let raw = unsafe { OpenThread(THREAD_QUERY_LIMITED_INFORMATION, 0, GetCurrentThreadId()) };
        if raw.is_null() {
            return None;
        }
        // SAFETY: `raw` is a fresh, open handle that nothing else owns.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
        Some(Probe { handle })
    }

    pub(super) fn has_clock(&self) -> bool {
        cycles_per_micro().is_some()
    }

    pub(super) fn cpu_time(&self) -> Option<Duration> {
        let rate = cycles_per_micro()?;
        let used = cycles(self.handle.as_raw_handle())?;
        let nanos = u128::from(used) * 1000 / u128::from(rate);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
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

/// CPU time the whole process has used so far (user and kernel time from
/// `GetProcessTimes`, in 100 ns units; charged at the clock interrupt,
/// ~15.6 ms by default, so over a 500 µs tick it reads 0 or a whole tick:
/// the fallback averages it over longer windows, see `monitor.rs`).
pub(crate) fn process_cpu_time() -> Option<Duration> {
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

/// `SetThreadDescription`, looked up once: Windows 10 has it since 1607,
/// and a direct import would keep programs from starting on older builds
/// (std looks it up the same way for `thread::Builder::name`).
type SetDescription = unsafe extern "system" fn(HANDLE, *const u16) -> i32;

fn set_description() -> Option<SetDescription> {
    static FOUND: OnceLock<Option<SetDescription>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let kernel32: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
        // SAFETY: the name is NUL-terminated UTF-16 that outlives the call;
        // kernel32 is loaded in every process, and the handle is not
        // reference-counted (no `FreeLibrary` is due).
        let module = unsafe { GetModuleHandleW(kernel32.as_ptr()) };
        if module.is_null() {
            return None;
        }
        // SAFETY: `module` is a loaded module and the name a NUL-terminated
        // C string; a missing export is a `None` return.
        let found = unsafe { GetProcAddress(module, c"SetThreadDescription".as_ptr().cast()) }?;
        // SAFETY: the export of that name has this signature
        // (`HRESULT SetThreadDescription(HANDLE, PCWSTR)`, documented by
        // Microsoft); only the pointer's type changes.
        Some(unsafe {
            std::mem::transmute::<unsafe extern "system" fn() -> isize, SetDescription>(found)
        })
    })
}

/// Sets the calling thread's description, which debuggers and the
/// Performance Monitor show; a no-op on Windows builds without it.
pub(crate) fn set_thread_name(name: &str) {
    let Some(set) = set_description() else {
        return;
    };
    let wide: Vec<u16> = name
        .encode_utf16()
        .map(|c| if c == 0 { u16::from(b'?') } else { c })
        .chain(std::iter::once(0))
        .collect();
    // SAFETY: `wide` is NUL-terminated UTF-16 that outlives the call; the
    // pseudo-handle names the calling thread. A failure is only reported
    // through the returned `HRESULT`, which is ignored: a name is
    // diagnostics.
    unsafe {
        set(GetCurrentThread(), wide.as_ptr());
    }
}
