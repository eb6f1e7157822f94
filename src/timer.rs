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
use std::time::{Duration, Instant};

/// What the timer fires when an entry's deadline passes: a context,
/// marked done by its deadline (`context.rs` implements it). The timer owns
/// this trait so that it depends on nothing above it.
pub(crate) trait Expire: Send + Sync {
    fn expire(self: std::sync::Arc<Self>);
}

/// An entry's identity in the timer: its deadline and a unique sequence number.
pub(crate) type TimerKey = (Instant, u64);

/// Whether the timer thread runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Thread {
    NotStarted,
    /// A registration is spawning it, outside the lock.
    Starting,
    Running,
    /// The last spawn failed at this instant: the next try waits
    /// `RETRY_AFTER`, so a process out of threads does not pay a failing
    /// spawn per registration.
    Failed(Instant),
}

/// How long after a failed spawn the next registration tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Whether this target can start threads at all: not wasm without the
/// `atomics` feature (`wasm32-unknown-unknown`, `wasm32-wasip1`), where
/// every spawn fails; deadlines are then observed lazily only.
const HAS_THREADS: bool = !cfg!(all(target_family = "wasm", not(target_feature = "atomics")));

struct Timers {
    entries: BTreeMap<TimerKey, Weak<dyn Expire>>,
    next_seq: u64,
    thread: Thread,
}

/// The timer: its entries, and the condition variable its thread waits on.
struct Wheel {
    timers: Mutex<Timers>,
    changed: Condvar,
}

static WHEEL: Wheel = Wheel::new();

impl Wheel {
    const fn new() -> Wheel {
        Wheel {
            timers: Mutex::new(Timers {
                entries: BTreeMap::new(),
                next_seq: 0,
                thread: Thread::NotStarted,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an entry, starting the thread (through `spawn`, outside the
    /// lock) if it does not run yet and may be tried.
    fn register(
        &'static self,
        deadline: Instant,
        ctx: Weak<dyn Expire>,
        spawn: fn(&'static Wheel) -> bool,
    ) -> TimerKey {
        let (key, start) = {
            let mut t = self.lock();
            let key = (deadline, t.next_seq);
            t.next_seq += 1;
            let earliest = t.entries.keys().next().map_or(true, |first| key < *first);
            t.entries.insert(key, ctx);
            let start = match t.thread {
                Thread::Running => {
                    if earliest {
                        self.changed.notify_one();
                    }
                    false
                }
                // It reads the entries when it starts.
                Thread::Starting => false,
                Thread::NotStarted => HAS_THREADS,
                Thread::Failed(at) => at.elapsed() >= RETRY_AFTER,
            };
            if start {
                t.thread = Thread::Starting;
            }
            (key, start)
        };
        if start {
            // If the thread cannot be started, deadlines are still enforced
            // wherever they are observed.
            let started = spawn(self);
            self.lock().thread = if started {
                Thread::Running
            } else {
                Thread::Failed(Instant::now())
            };
            if started {
                // Entries added while it started did not notify it (it may
                // already wait for a later one): it looks again.
                self.changed.notify_one();
            }
        }
        key
    }

    fn cancel(&self, key: TimerKey) {
        let removed = self.lock().entries.remove(&key);
        // The Weak is dropped outside the lock.
        drop(removed);
    }
}

fn spawn_thread(wheel: &'static Wheel) -> bool {
    std::thread::Builder::new()
        .name("velocity-async-timer".into())
        .spawn(move || timer_loop(wheel))
        .is_ok()
}

/// Registers `ctx` to be fired with [`Reason::Deadline`] at `deadline`.
pub(crate) fn register(deadline: Instant, ctx: Weak<dyn Expire>) -> TimerKey {
    WHEEL.register(deadline, ctx, spawn_thread)
}

/// Removes an entry; a no-op if it already fired.
pub(crate) fn cancel(key: TimerKey) {
    WHEEL.cancel(key);
}

fn timer_loop(wheel: &'static Wheel) {
    let mut due: Vec<Weak<dyn Expire>> = Vec::new();
    let mut t = wheel.lock();
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
                        ctx.expire();
                    }
                });
            }
            t = wheel.lock();
            continue;
        }
        t = match t.entries.keys().next() {
            Some(&(deadline, _)) => {
                let wait = deadline.saturating_duration_since(now);
                wheel
                    .changed
                    .wait_timeout(t, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => wheel.changed.wait(t).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(all(test, not(velocity_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An entry that is never due in these tests.
    struct Never;

    impl Expire for Never {
        fn expire(self: std::sync::Arc<Self>) {}
    }

    fn nobody() -> Weak<dyn Expire> {
        Weak::<Never>::new()
    }

    static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);

    fn refuse(_: &'static Wheel) -> bool {
        ATTEMPTS.fetch_add(1, Ordering::SeqCst);
        false
    }

    /// A process out of threads pays one failing spawn per `RETRY_AFTER`,
    /// not one per registration; a registration after it tries again.
    #[test]
    fn a_failed_spawn_is_retried_after_a_pause_not_per_registration() {
        let wheel: &'static Wheel = Box::leak(Box::new(Wheel::new()));
        let deadline = Instant::now() + Duration::from_secs(3600);
        let start = Instant::now();
        for _ in 0..1000 {
            wheel.register(deadline, nobody(), refuse);
        }
        // One try, and one more per pause that passed (Miri's clock runs
        // fast: 1,000 registrations take it seconds).
        let pauses = start.elapsed().as_secs_f64() / RETRY_AFTER.as_secs_f64();
        let tries = ATTEMPTS.load(Ordering::SeqCst);
        assert!(HAS_THREADS && tries >= 1, "{tries}");
        assert!(
            tries as f64 <= 1.0 + pauses,
            "{tries} tries in {pauses:.1} pauses"
        );
        assert_eq!(wheel.lock().entries.len(), 1000, "entries are kept");
        // Pretend the failure was long ago.
        if let Some(past) = Instant::now().checked_sub(RETRY_AFTER) {
            wheel.lock().thread = Thread::Failed(past);
            wheel.register(deadline, nobody(), refuse);
            assert!(ATTEMPTS.load(Ordering::SeqCst) > tries);
        }
    }
}
