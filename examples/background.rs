//! Fire-and-forget work with a graceful shutdown that loses no job.
//!
//! ```text
//! cargo run --release --example background
//! ```
//!
//! A "web handler" records 2,000 audit events with `va::go` (named
//! `audit.write` with the task builder) (each a small
//! blocking write to a file, a few of them panicking), and returns at once.
//! Before exit, `va::shutdown` waits for every queued and running job; the
//! example then counts the lines in the file: none lost, and the panics
//! went to the panic handler instead of killing a thread.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use velocity_async as va;

const EVENTS: usize = 2_000;

fn main() {
    let path = std::env::temp_dir().join(format!("velocity-audit-{}.log", std::process::id()));
    let file = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .expect("open the audit log"),
    ));
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    va::set_panic_handler(move |p| {
        if seen.fetch_add(1, Ordering::Relaxed) < 2 {
            eprintln!("(panic handler) {p}");
        }
    });

    let t = Instant::now();
    for i in 0..EVENTS {
        let file = file.clone();
        va::task().name("audit.write").go(move || {
            if i % 500 == 499 {
                panic!("audit event {i} is malformed");
            }
            let mut f = file.lock().unwrap();
            writeln!(f, "event {i}").expect("write");
        });
    }
    println!(
        "Handed off {EVENTS} events in {:.1?}; the handler returned at once.",
        t.elapsed()
    );

    let report = va::shutdown(Duration::from_secs(60));
    println!("Shutdown after {:.1?}: {report:?}", t.elapsed());
    assert!(report.is_complete(), "every job finished");

    file.lock().unwrap().flush().expect("flush");
    let lines = std::fs::read_to_string(&path)
        .expect("read")
        .lines()
        .count();
    let panicked = panics.load(Ordering::Relaxed);
    println!(
        "Audit lines written: {lines}; jobs that panicked: {panicked}; lost: {}",
        EVENTS - lines - panicked
    );
    assert_eq!(lines + panicked, EVENTS);
    let refused = va::run(|| ()).get().unwrap_err();
    println!("After shutdown, new work is refused: {refused}");
    let _ = std::fs::remove_file(&path);
}
