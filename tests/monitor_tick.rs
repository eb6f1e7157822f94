//! The monitor's first tick, in a process of its own: other tests' CPU use
//! in the same process would make the monitor see the CPUs saturated and
//! skip the tick this test is about.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, run_all_at_once, within};
use va::Pool;
use velocity_async as va;

/// A burst of blocking jobs taken by warm idle workers must be seen as
/// blocked at the monitor's first tick. The monitor used to give a worker it
/// had no earlier CPU sample of "the benefit of the doubt" (counted it as
/// computing) and grew only at its second tick; for a burst of 10 ms jobs
/// that came after the first ones had finished, so a warm pool settled at
/// ~650 threads for a 1,000-job burst. Now the kernel's count of runnable
/// threads tells at once that those workers sleep. With a 1 s tick, the
/// burst below completed after ~2 s before and ~1 s now.
#[cfg(target_os = "linux")]
#[test]
fn blocked_workers_are_seen_at_the_first_monitor_tick() {
    within(120, || {
        let tick = Duration::from_secs(1);
        // Well above the CPU count (the monitor reads the kernel's count
        // only when more workers are busy than there are CPUs).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let warm = 64.max(4 * cpus);
        let pool = Pool::builder()
            .target_running(warm) // all started at once, no monitor needed
            .monitor_interval(tick)
            .keep_alive(Duration::from_secs(3600))
            .build();
        run_all_at_once(&pool, warm);
        assert!(eventually(10, || pool.stats().threads_idle == warm));
        // Half again as many jobs, which only finish together: the idle
        // workers take `warm` of them and block; the monitor must start the
        // other threads at its first tick.
        let began = Instant::now();
        run_all_at_once(&pool, warm + warm / 2);
        let took = began.elapsed();
        assert!(
            took < tick * 8 / 5,
            "the monitor needed a second tick: {took:?} ({:?})",
            pool.stats()
        );
    });
}
