//! The wake policy, in one place: pure functions over a snapshot of the
//! pool's counters ([`Counts`]), unit-tested without threads. The pool
//! (`mod.rs`, `worker.rs`, `monitor.rs`) takes the snapshot under its lock
//! and does what these functions say.
//!
//! The policy, in words:
//!
//! * **Eager** jobs (`run`, `go`, race jobs) get a thread at once: a
//!   spinning worker, a woken sleeper, or a new thread, up to
//!   `target_running` computing threads plus one per thread blocked in a
//!   wait of ours. Past that, the monitor decides whether the busy threads
//!   are blocked (then it adds threads) or computing (then the job waits).
//! * **Loop helpers** (`Wake::Elastic`) are optional parallelism: their
//!   loop's caller runs the items itself if nobody helps. A helper is taken
//!   or woken for only while fewer than `target_running` threads compute.
//! * A worker that takes a job passes the wake-up on to at most two
//!   sleepers while more work waits than threads are on their way, so a
//!   burst fans out as a tree instead of one wake-up per submit.
//! * The monitor grows the pool by one thread per blocked worker, and up to
//!   the target when the CPUs have room, never past what may be taken.

/// How eagerly a queued job gets a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A thread of its own at once, if one is idle (`run`, `go`, race jobs:
    /// Go starts a goroutine for each). The pool still grows past the CPU
    /// count only for blocked work.
    Eager,
    /// A helper of a loop (`all`, `map`, `for_each`): woken only while fewer
    /// than `target_running` workers compute, or when the monitor finds the
    /// busy ones blocked. A CPU-bound loop therefore keeps about one helper
    /// per CPU busy, however many threads sit idle.
    Elastic,
}

/// The pool's counters at one moment, read under its lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Jobs in the queue, and how many of them are eager.
    pub(crate) queued: usize,
    pub(crate) eager_queued: usize,
    /// Whether the oldest queued job was already run by its loop's caller
    /// (a no-op to pop).
    pub(crate) front_claimed: bool,
    /// Workers running a job.
    pub(crate) running: usize,
    /// Workers woken or starting, not yet running or idle.
    pub(crate) waking: usize,
    /// Workers spinning for work (they take it without a wake-up).
    pub(crate) spinners: usize,
    /// Workers parked on the idle list.
    pub(crate) idle: usize,
    /// Threads alive.
    pub(crate) alive: usize,
    /// Callers outside the pool running a loop's items themselves.
    pub(crate) external: usize,
    /// Threads (workers or callers) blocked in a wait of ours.
    pub(crate) blocked: usize,
    pub(crate) target_running: usize,
    pub(crate) max_threads: usize,
    /// Shut down: queued work still runs, whatever the CPUs.
    pub(crate) closed: bool,
}

impl Counts {
    /// The thread cap: `max_threads`, plus one per thread blocked in a wait
    /// of ours (it lends its slot to the work it waits for).
    pub(crate) fn cap(&self) -> usize {
        cap(self.max_threads, self.blocked)
    }

    /// Threads running a job or a loop's items and not blocked in a wait of
    /// ours. Workers on their way are not counted (they are the ones that
    /// ask, in [`take`]).
    pub(crate) fn computing(&self) -> usize {
        (self.running + self.external).saturating_sub(self.blocked)
    }

    /// Threads computing or about to: [`computing`](Counts::computing)
    /// and the workers on their way.
    pub(crate) fn active(&self) -> usize {
        (self.running + self.waking + self.external).saturating_sub(self.blocked)
    }

    /// Threads that will look at the queue without being woken.
    pub(crate) fn coming(&self) -> usize {
        self.waking + self.spinners
    }

    /// How many more threads may compute before the CPUs are full.
    fn room_to_target(&self) -> usize {
        self.target_running.saturating_sub(self.active())
    }
}

/// The thread cap: `max_threads`, plus one per thread blocked in a wait of
/// ours.
pub(crate) fn cap(max_threads: usize, blocked: usize) -> usize {
    max_threads.saturating_add(blocked)
}

/// Which job a worker may take now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// The oldest job, whatever its kind.
    Oldest,
    /// The oldest eager job (loop helpers wait: the CPUs are full).
    OldestEager,
}

/// Whether (and which) a worker may take a job:
///
/// * none while `cap` jobs run (after a lent slot is given back, the extra
///   thread finishes its job and then waits: the cap holds again);
/// * the oldest while fewer than `target_running` threads compute, after a
///   shutdown (everything queued drains), or if it is a helper its loop's
///   caller already ran (a no-op to pop; left queued, it would keep the
///   queue looking busy and turn spinning workers away);
/// * else only the oldest eager job: a thread started for blocked work
///   never takes a CPU-bound loop's helper and leaves the blocked work
///   starving (the monitor promotes the helpers of a loop it finds blocked).
pub(crate) fn take(c: &Counts) -> Option<Take> {
    if c.queued == 0 || c.running >= c.cap() {
        None
    } else if c.closed || c.computing() < c.target_running || c.front_claimed {
        Some(Take::Oldest)
    } else if c.eager_queued > 0 {
        Some(Take::OldestEager)
    } else {
        None
    }
}

/// What a submit does after queueing its job (`c` counts the job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnSubmit {
    /// A spinning or woken worker will take it.
    Nothing,
    /// Wake an idle worker, else start a thread while fewer than `cap`
    /// live; if neither is possible, call the monitor.
    WakeOrStart { cap: usize },
    /// Call the monitor (it decides whether the busy threads are blocked).
    Monitor,
}

/// What a submit of a `wake` job does.
pub(crate) fn on_submit(c: &Counts, wake: Wake) -> OnSubmit {
    if c.queued <= c.spinners {
        return OnSubmit::Nothing;
    }
    // A loop helper is optional parallelism: its caller runs it itself if
    // nobody takes it. So it wakes nobody while a spinner is around (the
    // spinner takes one, the caller the rest) or enough run.
    let helper_wakes = c.active() < c.target_running && c.spinners == 0;
    match wake {
        Wake::Eager if c.waking > 0 && c.idle > 0 => OnSubmit::Nothing,
        Wake::Eager => OnSubmit::WakeOrStart { cap: eager_cap(c) },
        Wake::Elastic if helper_wakes => OnSubmit::WakeOrStart { cap: eager_cap(c) },
        Wake::Elastic => OnSubmit::Monitor,
    }
}

/// How many threads a submit may start up to: the CPU target, plus one per
/// thread blocked in a wait of ours (Go hands a blocked thread's P to a new
/// one), within the cap.
fn eager_cap(c: &Counts) -> usize {
    c.target_running.saturating_add(c.blocked).min(c.cap())
}

/// Work waits that no thread is on its way to take: nobody is idle, or only
/// loop helpers wait while enough threads already compute. The monitor then
/// decides whether the running ones are blocked.
pub(crate) fn starving(c: &Counts) -> bool {
    c.queued > 0 && (c.idle == 0 || (c.eager_queued == 0 && c.active() >= c.target_running))
}

/// Whether the monitor should look at the busy threads this tick: work
/// starves ([`starving`]) and more of it waits than threads are on their
/// way.
pub(crate) fn monitor_should_look(c: &Counts) -> bool {
    starving(c) && c.queued > c.coming()
}

/// How many sleepers a worker that just took a job wakes (at most two):
/// while more jobs wait than threads are on their way, counting loop
/// helpers only while the CPUs have room.
pub(crate) fn fan_out(c: &Counts) -> usize {
    let helpers = c.queued - c.eager_queued.min(c.queued);
    let wanted = c.eager_queued + helpers.min(c.room_to_target());
    wanted.saturating_sub(c.coming()).min(2).min(c.idle)
}

/// Whether a worker that found no job may spin for the next one: only
/// while fewer threads run jobs than there are CPUs to run them (Go spins
/// only while a P is idle). Else the CPUs are believed busy, and the spin
/// would take one from a running job — or, if the running jobs are
/// blocked, from the thread woken for the next job, which then waits for
/// the spinner to yield.
pub(crate) fn may_spin(c: &Counts) -> bool {
    c.computing() < c.target_running
}

/// What the monitor saw in one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Jobs queued, and how many are eager (after promoting blocked loops).
    pub(crate) queued: usize,
    pub(crate) eager: usize,
    /// Busy threads sampled (workers and loop callers), and of them the
    /// pool's workers.
    pub(crate) busy: usize,
    pub(crate) workers_busy: usize,
    /// Workers not flagged busy that take work without being woken: between
    /// two jobs (counted running by the pool, not yet flagged busy with the
    /// next), woken or starting, or spinning. They compute, or are about
    /// to. Without them a burst of tiny jobs, whose workers the snapshot
    /// mostly catches between jobs, looks like idle CPUs and grows the pool
    /// by the target every tick.
    pub(crate) on_the_way: usize,
    /// Of the busy ones, how many are blocked.
    pub(crate) blocked: usize,
    /// Loop callers outside the pool (sampled or not).
    pub(crate) external: usize,
    pub(crate) target_running: usize,
    /// Threads that may still be started, plus idle ones.
    pub(crate) room: usize,
    /// The process already used the CPUs over the tick.
    pub(crate) saturated: bool,
}

/// How many threads the monitor adds: one per blocked worker (every blocked
/// worker is evidence of blocking work, so the pool doubles per tick), and
/// up to the target while the CPUs have room (not on a saturated tick, where
/// short jobs are rarely caught in flight) — never more than there are jobs
/// they may take, nor than there is room for.
pub(crate) fn monitor_growth(t: &Tick) -> usize {
    let running = t.busy.saturating_sub(t.blocked);
    // Callers running loop items compute too; those not sampled (no record)
    // count as computing.
    let sampled_callers = t.busy - t.workers_busy.min(t.busy);
    let running = running + t.external.saturating_sub(sampled_callers) + t.on_the_way;
    // Loop helpers may be taken only while fewer than `target` compute
    // (`take`). `eager` may exceed `queued` once helpers were promoted.
    let takeable = t.eager
        + t.queued
            .saturating_sub(t.eager)
            .min(t.target_running.saturating_sub(running));
    let to_target = if t.saturated {
        0
    } else {
        t.target_running.saturating_sub(running)
    };
    to_target.max(t.blocked).min(takeable).min(t.room)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> Counts {
        Counts {
            target_running: 2,
            max_threads: 8,
            ..Counts::default()
        }
    }

    #[test]
    fn computing_and_active_leave_out_blocked_threads() {
        let c = Counts {
            running: 3,
            external: 1,
            waking: 2,
            blocked: 1,
            ..counts()
        };
        assert_eq!(c.computing(), 3);
        assert_eq!(c.active(), 5);
        // More blocked than running (callers blocked outside a job): never
        // below zero, and the workers on their way still count.
        let c = Counts {
            running: 0,
            waking: 2,
            blocked: 3,
            ..counts()
        };
        assert_eq!((c.computing(), c.active()), (0, 0));
        let c = Counts {
            running: 1,
            waking: 2,
            blocked: 1,
            ..counts()
        };
        assert_eq!((c.computing(), c.active()), (0, 2));
        assert_eq!(
            Counts {
                blocked: 3,
                ..counts()
            }
            .cap(),
            11
        );
    }

    #[test]
    fn a_worker_takes_any_job_below_target_and_only_eager_ones_above() {
        let mut c = Counts {
            queued: 2,
            eager_queued: 1,
            running: 1,
            ..counts()
        };
        assert_eq!(take(&c), Some(Take::Oldest));
        c.running = 2;
        assert_eq!(take(&c), Some(Take::OldestEager));
        c.eager_queued = 0;
        assert_eq!(take(&c), None, "only helpers wait and the CPUs are full");
        c.front_claimed = true;
        assert_eq!(
            take(&c),
            Some(Take::Oldest),
            "a claimed helper costs nothing"
        );
        c.front_claimed = false;
        c.closed = true;
        assert_eq!(take(&c), Some(Take::Oldest), "a closed pool drains");
        c.running = 8;
        assert_eq!(take(&c), None, "at the cap");
        c.blocked = 1;
        assert_eq!(
            take(&c),
            Some(Take::Oldest),
            "a blocked thread lends its slot"
        );
        assert_eq!(
            take(&Counts {
                queued: 0,
                ..counts()
            }),
            None
        );
    }

    #[test]
    fn a_worker_spins_only_while_the_cpus_have_room() {
        assert!(may_spin(&counts()));
        assert!(may_spin(&Counts {
            running: 1,
            ..counts()
        }));
        // Two jobs run on two CPUs (say two sleeping racers): a spin would
        // hold a CPU the next woken worker needs.
        assert!(!may_spin(&Counts {
            running: 2,
            ..counts()
        }));
        assert!(!may_spin(&Counts {
            running: 1,
            external: 1,
            ..counts()
        }));
        // A worker blocked in a wait of ours lends its CPU.
        assert!(may_spin(&Counts {
            running: 2,
            blocked: 1,
            ..counts()
        }));
    }

    #[test]
    fn a_submit_leaves_jobs_to_spinners_and_wakes_for_eager_ones() {
        let c = Counts {
            queued: 1,
            spinners: 1,
            ..counts()
        };
        assert_eq!(on_submit(&c, Wake::Eager), OnSubmit::Nothing);
        assert_eq!(on_submit(&c, Wake::Elastic), OnSubmit::Nothing);
        let c = Counts {
            queued: 1,
            ..counts()
        };
        assert_eq!(on_submit(&c, Wake::Eager), OnSubmit::WakeOrStart { cap: 2 });
        assert_eq!(
            on_submit(&c, Wake::Elastic),
            OnSubmit::WakeOrStart { cap: 2 }
        );
        // A worker already on its way wakes more if needed.
        let c = Counts {
            queued: 2,
            waking: 1,
            idle: 1,
            ..counts()
        };
        assert_eq!(on_submit(&c, Wake::Eager), OnSubmit::Nothing);
        // CPUs full: a helper leaves it to the monitor, an eager job may
        // start threads for blocked ones.
        let c = Counts {
            queued: 1,
            running: 2,
            blocked: 2,
            ..counts()
        };
        assert_eq!(on_submit(&c, Wake::Eager), OnSubmit::WakeOrStart { cap: 4 });
        let c = Counts {
            queued: 1,
            running: 2,
            ..counts()
        };
        assert_eq!(on_submit(&c, Wake::Elastic), OnSubmit::Monitor);
        assert_eq!(
            on_submit(
                &Counts {
                    queued: 1,
                    running: 1,
                    spinners: 0,
                    ..counts()
                },
                Wake::Elastic
            ),
            OnSubmit::WakeOrStart { cap: 2 }
        );
    }

    #[test]
    fn starving_means_work_no_thread_is_on_its_way_to() {
        assert!(!starving(&counts()));
        assert!(
            starving(&Counts {
                queued: 1,
                ..counts()
            }),
            "nobody idle"
        );
        let c = Counts {
            queued: 1,
            idle: 1,
            ..counts()
        };
        assert!(!starving(&c), "an idle worker can take it");
        let c = Counts {
            queued: 1,
            idle: 1,
            running: 2,
            ..counts()
        };
        assert!(starving(&c), "only a helper waits and the CPUs are full");
        assert!(
            !starving(&Counts {
                eager_queued: 1,
                ..c
            }),
            "eager work wakes the idle"
        );
    }

    #[test]
    fn the_fan_out_wakes_at_most_two_and_only_for_work_nobody_covers() {
        let c = Counts {
            queued: 10,
            eager_queued: 10,
            idle: 5,
            running: 1,
            ..counts()
        };
        assert_eq!(fan_out(&c), 2);
        assert_eq!(fan_out(&Counts { waking: 9, ..c }), 1);
        assert_eq!(fan_out(&Counts { spinners: 10, ..c }), 0);
        assert_eq!(fan_out(&Counts { idle: 1, ..c }), 1);
        // Helpers only while the CPUs have room.
        let c = Counts {
            queued: 10,
            idle: 5,
            running: 1,
            ..counts()
        };
        assert_eq!(fan_out(&c), 1);
        assert_eq!(fan_out(&Counts { running: 2, ..c }), 0);
    }

    #[test]
    fn the_monitor_adds_a_thread_per_blocked_worker_and_fills_the_target() {
        let t = Tick {
            queued: 100,
            eager: 100,
            busy: 8,
            workers_busy: 8,
            blocked: 8,
            target_running: 2,
            room: 1000,
            ..Tick::default()
        };
        assert_eq!(monitor_growth(&t), 8, "doubles per tick");
        assert_eq!(monitor_growth(&Tick { room: 3, ..t }), 3, "within the room");
        assert_eq!(
            monitor_growth(&Tick {
                queued: 5,
                eager: 5,
                ..t
            }),
            5,
            "only jobs to take"
        );
        // Computing workers at the target: nothing to add.
        let t = Tick {
            queued: 10,
            eager: 10,
            busy: 2,
            workers_busy: 2,
            target_running: 2,
            room: 1000,
            ..Tick::default()
        };
        assert_eq!(monitor_growth(&t), 0);
        // Below target: fill it, unless the tick was saturated.
        let t = Tick {
            busy: 1,
            workers_busy: 1,
            ..t
        };
        assert_eq!(monitor_growth(&t), 1);
        assert_eq!(
            monitor_growth(&Tick {
                saturated: true,
                ..t
            }),
            0
        );
        // Loop helpers queued while the target computes: none to take.
        let t = Tick {
            queued: 10,
            eager: 0,
            busy: 2,
            workers_busy: 2,
            blocked: 1,
            target_running: 2,
            room: 1000,
            ..Tick::default()
        };
        assert_eq!(
            monitor_growth(&t),
            1,
            "one blocked: one helper may be taken"
        );
        // A loop caller outside the pool that was not sampled computes.
        let t = Tick {
            queued: 10,
            eager: 0,
            busy: 1,
            workers_busy: 1,
            external: 1,
            target_running: 2,
            room: 1000,
            ..Tick::default()
        };
        assert_eq!(monitor_growth(&t), 0);
        // Workers caught between two jobs, or woken, compute: the CPUs are
        // full.
        let t = Tick {
            queued: 1000,
            eager: 1000,
            on_the_way: 2,
            target_running: 2,
            room: 1000,
            ..Tick::default()
        };
        assert_eq!(monitor_growth(&t), 0);
        assert_eq!(monitor_growth(&Tick { on_the_way: 1, ..t }), 1);
    }
}
