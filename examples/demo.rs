//! A tour of velocity-async: the Go helpers, from synchronous Rust.
//!
//! Run it with `cargo run --release --example demo`.
//!
//! The "database" and "HTTP" calls are simulated with sleeps so the demo runs
//! anywhere; the point is how the waiting overlaps.

use std::time::{Duration, Instant};

use velocity_async as va;

#[derive(Debug)]
struct User {
    name: String,
}

fn fetch_user(id: u32) -> User {
    std::thread::sleep(Duration::from_millis(40)); // a blocking query
    User {
        name: format!("user-{id}"),
    }
}

fn fetch_posts(id: u32) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(60));
    (1..=3).map(|n| format!("post {n} by user-{id}")).collect()
}

fn fetch_stats(_id: u32) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(50));
    (120, 7)
}

fn main() {
    // 1. Sequential: the waits add up.
    let start = Instant::now();
    let (user, posts, stats) = (fetch_user(7), fetch_posts(7), fetch_stats(7));
    let sequential = start.elapsed();
    println!(
        "sequential: {} with {} posts, stats {stats:?} in {sequential:?}",
        user.name,
        posts.len()
    );

    // 2. run + get: the waits overlap, the results stay typed.
    let start = Instant::now();
    let user = va::run(|| fetch_user(7));
    let posts = va::run(|| fetch_posts(7));
    let stats = va::run(|| fetch_stats(7));
    let (user, posts, stats) = (
        user.get().unwrap(),
        posts.get().unwrap(),
        stats.get().unwrap(),
    );
    let concurrent = start.elapsed();
    println!(
        "concurrent: {} with {} posts, stats {stats:?} in {concurrent:?}",
        user.name,
        posts.len()
    );

    // 3. A timeout resolves the task on time; the slow call is told to stop.
    let slow = va::run_with_timeout(Duration::from_millis(20), || {
        let ctx = va::Context::current();
        // Slow work that checks its context: it stops once nobody wants it.
        ctx.wait_timeout(Duration::from_secs(5));
        "slow answer"
    });
    slow.wait();
    let timed_out = slow.timed_out();
    println!(
        "with a 20 ms timeout: {:?} (timed out: {timed_out})",
        slow.get_or("fallback")
    );

    // 4. A panic becomes an error, not a crash.
    let broken = va::run(|| -> u32 { panic!("connection reset") });
    match broken.get() {
        Ok(v) => println!("unexpected: {v}"),
        Err(e) => println!("recovered: {e}"),
    }

    // 5. Fire and forget, then shut down without losing the work.
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..5 {
        let tx = tx.clone();
        va::go(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.send(i).unwrap();
        });
    }
    drop(tx);
    let report = va::shutdown(Duration::from_secs(10));
    println!(
        "shutdown complete: {}, background jobs done: {}",
        report.is_complete(),
        rx.iter().count()
    );

    let s = va::stats();
    println!(
        "pool: {} jobs completed, {} panicked, {} threads started",
        s.completed, s.panicked, s.threads_spawned
    );
    println!(
        "speed-up from overlapping the waits: {:.1}x",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
}
