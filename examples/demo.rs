//! A tour of velocity-async: Go's concurrency helpers, from synchronous Rust.
//!
//! Run it with `cargo run --release --example demo`.
//!
//! The "database" and "HTTP" calls are simulated with sleeps so the demo runs
//! anywhere; what matters is how the waiting overlaps.

use std::sync::atomic::{AtomicUsize, Ordering};
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
    let id = 7;

    // 1. Sequential: the waits add up.
    let start = Instant::now();
    let (user, posts, stats) = (fetch_user(id), fetch_posts(id), fetch_stats(id));
    let sequential = start.elapsed();
    println!(
        "sequential     {} with {} posts, stats {stats:?} in {sequential:?}",
        user.name,
        posts.len()
    );

    // 2. all: the waits overlap; a typed tuple comes back; the closures borrow `id`.
    let start = Instant::now();
    let (user, posts, stats) =
        va::all((|| fetch_user(id), || fetch_posts(id), || fetch_stats(id))).unwrap();
    let concurrent = start.elapsed();
    println!(
        "va::all        {} with {} posts, stats {stats:?} in {concurrent:?}",
        user.name,
        posts.len()
    );

    // 3. run + get: one call in the background while this thread works.
    let task = va::run(move || fetch_user(id));
    let local_work: u64 = (1..=1_000u64).sum();
    println!(
        "va::run        {} (and {local_work} computed meanwhile)",
        task.get().unwrap().name
    );

    // 4. race_with_timeout: the fastest source wins; a slow one is told to stop.
    let answer = va::race_with_timeout(
        Duration::from_millis(200),
        (
            || {
                std::thread::sleep(Duration::from_millis(5));
                "from the cache"
            },
            || {
                // A slow source that checks its context and gives up once it lost.
                va::Context::current().wait_timeout(Duration::from_secs(5));
                "from the database"
            },
        ),
    );
    println!("va::race       {}", answer.get().unwrap());

    // 5. run_with_timeout: resolve on time, whatever the work does.
    let slow = va::run_with_timeout(Duration::from_millis(20), || {
        va::Context::current().wait_timeout(Duration::from_secs(5));
        "slow answer"
    });
    slow.wait();
    let timed_out = slow.timed_out();
    println!(
        "timeout        {:?} (timed out: {timed_out})",
        slow.get_or("fallback")
    );

    // 6. A panic becomes an error, not a crash.
    match va::run(|| -> u32 { panic!("connection reset") }).get() {
        Ok(v) => println!("unexpected: {v}"),
        Err(e) => println!("recovered      {e}"),
    }

    // 7. map and for_each: bounded parallel loops that keep input order.
    let start = Instant::now();
    let pages = va::map_n(1..=20, 10, |n| {
        std::thread::sleep(Duration::from_millis(10)); // one HTTP request per page
        format!("page {n}")
    })
    .unwrap();
    println!(
        "va::map_n      {} pages, 10 at a time, in {:?} (sequential: ~200 ms)",
        pages.len(),
        start.elapsed()
    );
    let sent = AtomicUsize::new(0);
    va::for_each(&pages, 5, |_| {
        sent.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    println!(
        "va::for_each   {} notifications sent",
        sent.load(Ordering::Relaxed)
    );

    // 8. Fire and forget, then shut down without losing the work.
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
        "shutdown       complete: {}, background jobs done: {}",
        report.is_complete(),
        rx.iter().count()
    );

    let s = va::stats();
    println!(
        "pool           {} jobs completed, {} panicked, {} threads started",
        s.completed, s.panicked, s.threads_spawned
    );
    println!(
        "speed-up from overlapping the waits: {:.1}x",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );
}
