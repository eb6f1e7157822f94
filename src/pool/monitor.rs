//! The monitor: Go's `sysmon` for a library. It wakes only while work waits
//! and no worker is free, and decides whether the busy workers are computing
//! (leave them be: more threads would only oversubscribe the CPUs) or blocked
//! (start more threads, or the queue starves).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{os, Shared, WorkerInfo};

/// A worker counts as blocked over a tick if it used less than this share of
/// the tick's wall time on a CPU (1/8: a computing worker keeps well above it
/// even when 4 threads share each core).
const BLOCKED_SHARE: u32 = 8;

struct Sample {
    cpu: Duration,
    at: Instant,
    jobs: u64,
}

/// At most this many thread states are read per tick (each is a small file
/// read); low workers past it are taken as blocked.
const MAX_STATE_READS: usize = 64;

/// The process counts as saturating the CPUs when it used at least this
/// share (3/4) of all of them over a tick: more threads would only contend.
const SATURATED_NUM: u32 = 3;
const SATURATED_DEN: u32 = 4;

pub(super) fn main_loop(pool: Weak<Shared>) {
    let mut samples: HashMap<u64, Sample> = HashMap::new();
    let mut fallback = Fallback::default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    loop {
        let Some(shared) = pool.upgrade() else { return };
        let interval = shared.config.monitor_interval;
        {
            let mut st = shared.lock();
            while !shared.starving(&st) {
                fallback = Fallback::default(); // a window spans work, not idle time
                if st.closed && st.outstanding == 0 {
                    st.monitor = false;
                    return;
                }
                st.monitor_sleeping = true;
                let (guard, timeout) = shared
                    .monitor_wake
                    .wait_timeout(st, shared.config.keep_alive.min(Duration::from_secs(3600)))
                    .unwrap_or_else(|e| e.into_inner());
                st = guard;
                st.monitor_sleeping = false;
                if timeout.timed_out() && !shared.starving(&st) {
                    st.monitor = false;
                    return;
                }
            }
        }
        drop(shared);
        let process_before = (os::process_cpu_time(), Instant::now());
        std::thread::sleep(interval);
        let Some(shared) = pool.upgrade() else { return };
        let (busy, workers_busy, on_the_way, queued, eager, room) = {
            let st = shared.lock();
            // After a shutdown too: queued work may be what running work
            // waits for (it was submitted before, so it runs).
            let counts = shared.counts(&st);
            if !super::policy::monitor_should_look(&counts) {
                continue;
            }
            // A worker idle inside its job (a loop helper waiting for its
            // input) is neither computing nor blocked: left out.
            let working = |w: &Arc<WorkerInfo>| !w.idle_in_job.load(Ordering::Relaxed);
            // One pass: the busy workers to sample, and how many are flagged
            // busy at all.
            let mut busy: Vec<Arc<WorkerInfo>> = Vec::new();
            let mut flagged = 0;
            for w in st.workers.iter().filter(|w| w.busy.load(Ordering::Relaxed)) {
                flagged += 1;
                if working(w) {
                    busy.push(w.clone());
                }
            }
            let workers_busy = busy.len();
            // Counted running by the pool but not flagged busy: between two
            // jobs (on its way to the lock to take the next). Woken,
            // starting and spinning workers take work unwoken too.
            let on_the_way = st.running.saturating_sub(flagged) + counts.coming();
            // Loop callers outside the pool are sampled the same way.
            busy.extend(shared.callers().into_iter().filter(working));
            (
                busy,
                workers_busy,
                on_the_way,
                st.queue.len(),
                st.eager_queued,
                shared.cap().saturating_sub(st.alive) + st.idle.len(),
            )
        };
        // Workers descheduled because the CPUs are full look "blocked" by
        // their own clocks; the process clock tells when that may be so.
        // Then only threads known to block count (see `classify`): a
        // blocked thread needs no CPU, so a busy CPU is no reason to leave
        // blocked work waiting, but more threads for CPU work would only
        // contend.
        let saturated = match (process_before.0, os::process_cpu_time()) {
            (Some(before), Some(after)) => {
                let wall = process_before.1.elapsed();
                after.saturating_sub(before) * SATURATED_DEN >= wall * SATURATED_NUM * cpus
            }
            _ => false,
        };
        // Busy workers that the kernel does not count as runnable are asleep
        // in it: blocked for sure. Unlike the clocks, this needs no earlier
        // sample, so a burst that wakes many idle workers into blocking jobs
        // is seen at the first tick after it, not the second, when those jobs
        // may already be finishing. Read only when more workers are busy
        // than there are CPUs: with fewer, their clocks are few and cheap,
        // and a CPU-bound loop (which keeps the monitor ticking while its
        // helpers queue) would pay a file read every tick for nothing.
        // Not on a saturated tick: then workers churning through short jobs
        // are often caught waiting for the pool's own lock, and the
        // machine-wide count would call them asleep (W2 grew to ~45-70
        // threads); `classify` demands a stuck worker there instead.
        let asleep = if busy.len() > cpus as usize && !saturated {
            os::runnable_threads().map_or(0, |r| busy.len().saturating_sub(r))
        } else {
            0
        };
        let mut blocked_loops = Vec::new();
        let mut stalled = Vec::new();
        let blocked = if asleep >= queued.min(room) && eager == queued {
            // Enough sleepers to cover a queue of eager jobs: reading every
            // busy worker's clock (a system call each, ~1,000 of them in a
            // big burst, every tick) would not change what is started. (Loop
            // helpers are promoted by who blocks, so they need the reads.)
            // The samples would go stale: start afresh next time.
            samples.clear();
            asleep
        } else {
            let found = classify(
                &busy,
                &mut samples,
                interval,
                saturated,
                &mut blocked_loops,
                &mut stalled,
            );
            // Workers without a CPU clock (other platforms, Miri,
            // `--cfg velocity_no_os_probes`): the process clock's count.
            let unclocked = busy
                .iter()
                .filter(|w| !w.probe.has_clock() && !w.blocked.load(Ordering::Relaxed))
                .count();
            let guessed = fallback.blocked(unclocked, &stalled, &mut blocked_loops);
            (found + guessed).max(asleep)
        };
        // A loop with a blocked helper is blocking work: its queued helpers
        // become eager, so the threads started below take them (loop helpers
        // are otherwise taken only while the CPUs have room).
        let mut eager = eager;
        if !blocked_loops.is_empty() {
            eager += shared.lock().promote(&blocked_loops);
        }
        let want = super::policy::monitor_growth(&super::policy::Tick {
            queued,
            eager,
            busy: busy.len(),
            workers_busy,
            on_the_way,
            blocked,
            external: shared.external.load(Ordering::Relaxed),
            target_running: shared.config.target_running,
            room,
            saturated,
        });
        // Idle workers first; new threads start as a tree (each new worker
        // starts up to two more before taking work), so 1,000 threads take
        // ~10 spawn latencies, not 1,000.
        if want > 0 {
            shared.add_workers(want);
        }
    }
}

/// The process clock over a window of at least `Self::WINDOW`: how the pool
/// tells blocked from computing workers where no per-thread clock is used.
///
/// If the busy workers without a clock number `n`, and the CPU time the whole
/// process used over the window could keep at most `c` threads computing at
/// the share `classify` demands of a computing thread (1/8), at least
/// `n - c` of them are not computing: blocked. Everything else the process runs
/// (loop callers, the monitor, the application's own threads) only makes
/// `c` larger, so the count errs low: CPU-bound work never looks blocked
/// and never grows the pool past `target_running`; blocking work is seen
/// two windows late (the price of the fallback). CPU-bound work elsewhere
/// in the process hides blocked workers (each thread's worth of CPU, up to
/// eight of them). The loops whose helpers are
/// promoted are those of stalled workers (no new job since the last tick),
/// up to the count. Without a process clock
/// (wasm) only workers blocked in a wait of ours count.
#[derive(Default)]
struct Fallback {
    /// When the window began, and the process clock then.
    since: Option<(Instant, Duration)>,
    /// The previous window's count: a count stands only if two windows in
    /// a row agree (the smaller wins), so one odd window (threads starting,
    /// a loop ending) grows nothing.
    last: usize,
}

impl Fallback {
    /// Long enough for the process clock to read true — Windows updates it
    /// at the timer tick, ~15.6 ms by default, so four ticks there; POSIX
    /// process clocks count nanoseconds — and short enough for blocking work
    /// to grow the pool soon (the pool doubles per window).
    #[cfg(windows)]
    const WINDOW: Duration = Duration::from_millis(64);
    #[cfg(not(windows))]
    const WINDOW: Duration = Duration::from_millis(4);

    /// How many of the `unclocked` busy workers are blocked, once a window
    /// has passed (0 before); adds the loops to promote to `loops`.
    fn blocked(&mut self, unclocked: usize, stalled: &[u64], loops: &mut Vec<u64>) -> usize {
        if unclocked == 0 {
            self.since = None;
            return 0;
        }
        let (now, Some(cpu)) = (Instant::now(), os::process_cpu_time()) else {
            return 0;
        };
        let Some((since, cpu_then)) = self.since else {
            self.since = Some((now, cpu));
            return 0;
        };
        let wall = now.duration_since(since);
        if wall < Self::WINDOW {
            return 0;
        }
        self.since = Some((now, cpu));
        // A computing thread uses at least 1/BLOCKED_SHARE of the window (the
        // rule of `classify`), so `used` accounts for at most this many.
        let used = cpu.saturating_sub(cpu_then).as_nanos();
        let computing = used * u128::from(BLOCKED_SHARE) / wall.as_nanos().max(1);
        let now_blocked =
            unclocked.saturating_sub(usize::try_from(computing).unwrap_or(usize::MAX));
        let blocked = now_blocked.min(self.last);
        self.last = now_blocked;
        for &scope in stalled.iter().take(blocked) {
            if scope != 0 && !loops.contains(&scope) {
                loops.push(scope);
            }
        }
        blocked
    }
}

/// Counts the busy workers that are blocked (the rest compute) by how much
/// CPU time each used since the last sample, and keeps a fresh sample of
/// each busy worker (only theirs) for the next tick.
///
/// With `saturated` (the process used most of every CPU this tick), a low
/// worker counts as blocked only if its run state was read and it is not
/// runnable: low CPU time then also means "waiting for a CPU".
///
/// The loops whose helpers are blocked are added to `blocked_loops`.
fn classify(
    busy: &[Arc<WorkerInfo>],
    samples: &mut HashMap<u64, Sample>,
    interval: Duration,
    saturated: bool,
    blocked_loops: &mut Vec<u64>,
    stalled: &mut Vec<u64>,
) -> usize {
    let now = Instant::now();
    let mut blocked = 0;
    let mut state_reads = 0;
    for w in busy {
        let scope = w.scope.load(Ordering::Relaxed);
        let mut note_loop = || {
            if scope != 0 && !blocked_loops.contains(&scope) {
                blocked_loops.push(scope);
            }
        };
        if w.blocked.load(Ordering::Relaxed) {
            blocked += 1;
            note_loop();
            continue;
        }
        let jobs = w.jobs.load(Ordering::Relaxed);
        let cpu = w.probe.cpu_time();
        // A worker seen for the first time is measured from its birth if it
        // has been busy ever since (it was started for work and took it at
        // once); otherwise it is given the benefit of the doubt this tick.
        let fresh =
            now.duration_since(w.born) <= interval * 4 && !w.has_idled.load(Ordering::Relaxed);
        let previous = samples
            .get(&w.id)
            .map(|s| (s.cpu, s.at, Some(s.jobs)))
            .or_else(|| fresh.then_some((Duration::ZERO, w.born, None)));
        let mut low = match (cpu, previous) {
            (Some(cpu), Some((prev_cpu, prev_at, _))) => {
                let used = cpu.saturating_sub(prev_cpu);
                used * BLOCKED_SHARE < now.duration_since(prev_at)
            }
            // No CPU clock on this platform: a worker still on the same job a
            // whole tick later is only *stalled*; whether it blocks is for
            // the process clock to say (see `Fallback`).
            (None, Some((_, _, Some(prev_jobs)))) => {
                if prev_jobs == jobs {
                    stalled.push(w.scope.load(Ordering::Relaxed));
                }
                false
            }
            _ => false,
        };
        // Low CPU, but runnable right now? Then it is waiting for a CPU (a
        // busy machine, a hypervisor's steal): computing, not blocked.
        if low {
            let mut asleep = None;
            if state_reads < MAX_STATE_READS && w.probe.has_state() {
                state_reads += 1;
                asleep = w.probe.is_runnable().map(|r| !r);
            }
            // On a saturated tick, "asleep" must also be "stuck": a worker
            // that started a new job since the last sample is churning
            // through short jobs, and the snapshot caught it between two,
            // waiting for the pool's own lock. (Counting those grew the pool
            // to 60 threads for 100,000 tiny jobs under ThreadSanitizer, and
            // W2 to 36 threads instead of ~20.)
            let stuck = previous.is_some_and(|(_, _, prev_jobs)| prev_jobs == Some(jobs));
            // Likewise, whatever the CPUs, a worker that started a new job
            // and found the pool's lock held on its way is churning: its
            // sleep was on our lock (docs/PERFORMANCE.md, #16's second
            // pass, has the thread counts with and without this rule).
            let churning = !stuck && w.waited_for_lock.load(Ordering::Relaxed);
            low = !churning
                && match asleep {
                    Some(asleep) => asleep && (stuck || !saturated),
                    None => !saturated,
                };
        }
        if low {
            blocked += 1;
            note_loop();
        }
        w.waited_for_lock.store(false, Ordering::Relaxed);
        samples.insert(
            w.id,
            Sample {
                cpu: cpu.unwrap_or_default(),
                at: now,
                jobs,
            },
        );
    }
    // Every busy worker was sampled at `now` above; drop the rest (one pass,
    // not a search of `busy` per sample: bursts have ~1,000 of each).
    samples.retain(|_, s| s.at == now);
    blocked
}
