//! One lazily started thread that fires context deadlines on time.
//!
//! Deadlines are also checked lazily wherever they are observed
//! ([`Context::is_done`](crate::Context::is_done), `Task::ready`, blocking
//! waits time out at the deadline themselves), so the timer thread is needed
//! only for wake-ups nobody polls for: a `Future` awaiting a timed task, and
//! the cancellation a running job sees through `Context::current()`.
//!
//! Entries are removed when their context finishes or is dropped, so a million
//! short tasks with one-hour timeouts leave nothing behind.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, Weak};
use std::time::Instant;

use crate::context::{Inner, Reason};

/// An entry's identity in the timer: its deadline and a unique sequence number.
pub(crate) type TimerKey = (Instant, u64);

struct Timers {
    entries: BTreeMap<TimerKey, Weak<Inner>>,
    next_seq: u64,
    /// Whether the thread is running; `false` after a failed spawn, so the
    /// next registration tries again.
    started: bool,
}

static TIMERS: Mutex<Timers> = Mutex::new(Timers {
    entries: BTreeMap::new(),
    next_seq: 0,
    started: false,
});
static CHANGED: Condvar = Condvar::new();

/// Registers `ctx` to be fired with [`Reason::Deadline`] at `deadline`.
pub(crate) fn register(deadline: Instant, ctx: Weak<Inner>) -> TimerKey {
    let mut t = TIMERS.lock().unwrap_or_else(|e| e.into_inner());
    let key = (deadline, t.next_seq);
    t.next_seq += 1;
    let earliest = t.entries.keys().next().map_or(true, |first| key < *first);
    t.entries.insert(key, ctx);
    if !t.started {
        // If the thread cannot be started, deadlines are still enforced
        // wherever they are observed; a later registration retries.
        t.started = std::thread::Builder::new()
            .name("velocity-async-timer".into())
            .spawn(timer_loop)
            .is_ok();
    } else if earliest {
        CHANGED.notify_one();
    }
    key
}

/// Removes an entry; a no-op if it already fired.
pub(crate) fn cancel(key: TimerKey) {
    let removed = TIMERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entries
        .remove(&key);
    // The Weak is dropped outside the lock.
    drop(removed);
}

fn timer_loop() {
    let mut due: Vec<Weak<Inner>> = Vec::new();
    let mut t = TIMERS.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        while let Some(entry) = t.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(t);
            for ctx in due.drain(..) {
                // Firing runs no user code unguarded (wakers are woken under
                // `catch_unwind`), but this thread serves every deadline in
                // the process: nothing may unwind out of it.
                let _ = crate::panic::catch(move || {
                    if let Some(ctx) = ctx.upgrade() {
                        ctx.fire(Reason::Deadline);
                    }
                });
            }
            t = TIMERS.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        t = match t.entries.keys().next() {
            Some(&(deadline, _)) => {
                let wait = deadline.saturating_duration_since(now);
                CHANGED
                    .wait_timeout(t, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => CHANGED.wait(t).unwrap_or_else(|e| e.into_inner()),
        };
    }
}
