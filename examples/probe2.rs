//! temp probe
use std::time::{Duration, Instant};
use velocity_async as va;
fn main() {
    let pool = va::Pool::builder().build();
    for round in 0..5 {
        let t0 = Instant::now();
        let task = pool.run(move || t0.elapsed());
        // busy main
        let mut x = 0u64;
        while t0.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x + 1);
        }
        let started = task.get().unwrap();
        println!(
            "round {round}: job started after {started:?} stats {:?}",
            pool.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
