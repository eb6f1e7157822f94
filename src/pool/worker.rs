//! A worker thread's life: take a job, run it, spin briefly, sleep, retire.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::os::ThreadProbe;
use super::{MonitorCall, Shared, Sleeper, WorkerInfo, WORKER};
use crate::sync::{thread, AtomicBool};

/// The body of every worker thread. `alive` already counts this thread.
pub(super) fn main_loop(shared: Arc<Shared>) {
    // Taken before the lock: on some platforms it is a system call.
    let probe = ThreadProbe::current();
    let info = {
        let mut st = shared.lock();
        let info = Arc::new(WorkerInfo {
            id: st.next_id,
            probe,
            born: Instant::now(),
            busy: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            idle_in_job: AtomicBool::new(false),
            waited_for_lock: AtomicBool::new(false),
            jobs: Default::default(),
            has_idled: AtomicBool::new(false),
            scope: Default::default(),
            caller_of: Default::default(),
        });
        st.next_id += 1;
        st.workers.push(info.clone());
        info
    };
    let _ = WORKER.try_with(|w| *w.borrow_mut() = Some((shared.clone(), info.clone())));
    shared.pass_on_growth();
    let sleeper = Arc::new(Sleeper {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });

    let mut st = shared.lock();
    // Counted in `waking` since it was reserved (`State::reserve_thread`):
    // from here on it is idle or running.
    st.waking -= 1;
    loop {
        if let Some(job) = shared.take_job(&mut st) {
            shared.queued.store(st.queue.len(), Ordering::Release);
            st.running += 1;
            // More work waits than threads are on their way: pass the wake-up
            // on to up to two sleepers, so a burst fans out as a tree (Go's
            // spinning-thread hand-off) instead of one syscall per submit.
            let wake = super::policy::fan_out(&shared.counts(&st));
            let mut next: [Option<Arc<Sleeper>>; 2] = [None, None];
            for slot in next.iter_mut().take(wake) {
                *slot = st.pop_idle();
            }
            // Still more work than threads on their way, and nobody left to
            // wake: the submitter may have stopped waking (a woken worker was
            // in flight), so this worker makes sure the monitor looks.
            let monitor = if shared.starving(&st) {
                Shared::call_monitor(&mut st)
            } else {
                MonitorCall::Nothing
            };
            drop(st);
            shared.finish_monitor_call(monitor);
            for s in next.iter().flatten() {
                s.unpark();
            }
            info.jobs.fetch_add(1, Ordering::Relaxed);
            info.scope.store(job.scope_id(), Ordering::Relaxed);
            info.busy.store(true, Ordering::Relaxed);
            // Every job wraps user code in the panic policy; this is defence
            // in depth, so the bookkeeping below always runs.
            if let Err(payload) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&shared)))
            {
                crate::panic::recover(payload);
            }
            info.busy.store(false, Ordering::Relaxed);
            st = shared.lock_between_jobs(&info);
            st.running -= 1;
            st.outstanding -= 1;
            if st.outstanding == 0 && st.closed {
                shared.drained.notify_all();
                // The monitor, woken by the shutdown while work still ran,
                // went back to sleep: now it can exit.
                if std::mem::replace(&mut st.monitor_sleeping, false) {
                    shared.monitor_wake.notify_one();
                }
            }
            continue;
        }
        if st.closed {
            break;
        }
        info.has_idled.store(true, Ordering::Relaxed);
        // Spin only while the CPUs have room (`policy::may_spin`); else
        // straight to sleep, still under the lock that found no job.
        if super::policy::may_spin(&shared.counts(&st)) {
            drop(st);
            spin_for_work(&shared);
            st = shared.lock();
            if shared.can_take(&st) {
                continue;
            }
            if st.closed {
                break;
            }
        }
        // Sleep until woken or the keep-alive passes.
        sleeper.notified.store(false, Ordering::Relaxed);
        st.idle.push(sleeper.clone());
        drop(st);
        let deadline = Instant::now().checked_add(shared.config.keep_alive);
        loop {
            match deadline {
                Some(d) => thread::park_timeout(d.saturating_duration_since(Instant::now())),
                None => thread::park(),
            }
            if sleeper.notified.load(Ordering::Relaxed) {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        st = shared.lock();
        if sleeper.notified.load(Ordering::Relaxed) {
            st.waking -= 1;
        } else {
            // Keep-alive passed and nobody popped us (checked under the lock,
            // so this is exact): leave the idle list.
            if let Some(i) = st.idle.iter().rposition(|s| Arc::ptr_eq(s, &sleeper)) {
                st.idle.remove(i);
            }
            if st.queue.is_empty() {
                break;
            }
        }
    }
    // Retire.
    st.alive -= 1;
    if let Some(i) = st.workers.iter().position(|w| Arc::ptr_eq(w, &info)) {
        st.workers.swap_remove(i);
    }
    drop(st);
    shared.drained.notify_all();
    let _ = WORKER.try_with(|w| w.borrow_mut().take());
}

/// Spins for up to the configured time while the queue is empty, so a job
/// submitted right after this worker finished its last one is taken in
/// nanoseconds instead of a ~25 µs wake-up. At most half the target threads
/// (at least one) spin at once, and only while the CPUs have room (the
/// caller asks `policy::may_spin`).
fn spin_for_work(shared: &Shared) {
    let max_spinners = (shared.config.target_running / 2).max(1);
    if shared.config.spin.is_zero() {
        return;
    }
    if shared.spinners.fetch_add(1, Ordering::SeqCst) >= max_spinners {
        shared.spinners.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    // Every 64 checks it yields: a thread woken onto this CPU (a waiter its
    // last job resolved) runs now instead of after the spin.
    crate::sync::spin_yielding(shared.config.spin, 64, || {
        shared.queued.load(Ordering::Acquire) > 0
    });
    // Decremented before the caller takes the lock and checks the queue, so a
    // submitter that counted on this spinner is always seen (README.md).
    shared.spinners.fetch_sub(1, Ordering::SeqCst);
}
