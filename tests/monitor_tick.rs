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
        let pool = Pool::builder()
            .target_running(64) // 64 threads started at once, no monitor needed
            .monitor_interval(tick)
            .keep_alive(Duration::from_secs(3600))
            .build();
        run_all_at_once(&pool, 64);
        assert!(eventually(10, || pool.stats().threads_idle == 64));
        // 96 jobs that only finish together: the 64 idle workers take 64 and
        // block; the monitor must start 32 more threads at its first tick.
        let began = Instant::now();
        run_all_at_once(&pool, 96);
        let took = began.elapsed();
        assert!(
            took < tick * 8 / 5,
            "the monitor needed a second tick: {took:?} ({:?})",
            pool.stats()
        );
    });
}
