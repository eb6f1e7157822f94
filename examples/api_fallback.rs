//! Hedged requests: `race_with_timeout` over two local HTTP backends, one
//! slow now and then, one flaky.
//!
//! ```text
//! cargo run --release --example api_fallback
//! ```
//!
//! * `primary` answers in ~2 ms, but one request in five takes 300 ms.
//! * `replica` answers in ~8 ms, but one request in three fails with 503.
//!
//! The client asks the primary alone, then races the primary against the
//! replica (retrying the replica while the race is still open) with a
//! 100 ms deadline. The losing request's job sees its context done and
//! stops retrying; its late answer is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use velocity_async::{self as va, Context};

/// Starts a backend on a free port: `behave(n)` decides the `n`th
/// request's delay and status.
fn backend(name: &'static str, behave: fn(u64) -> (Duration, u16)) -> String {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let count = Arc::new(AtomicU64::new(0));
    // Enough threads that slow requests (which the race abandons, but the
    // backend still serves) do not queue the next ones.
    for _ in 0..64 {
        let (server, count) = (server.clone(), count.clone());
        // Detached: the backends live until the process ends.
        std::thread::spawn(move || {
            while let Ok(request) = server.recv() {
                let (delay, status) = behave(count.fetch_add(1, Ordering::Relaxed));
                std::thread::sleep(delay);
                let body = format!(r#"{{"from":"{name}"}}"#);
                let _ = request
                    .respond(tiny_http::Response::from_string(body).with_status_code(status));
            }
        });
    }
    format!("http://127.0.0.1:{port}/price")
}

fn primary(n: u64) -> (Duration, u16) {
    let slow = n % 5 == 3;
    (Duration::from_millis(if slow { 300 } else { 2 }), 200)
}

fn replica(n: u64) -> (Duration, u16) {
    if n % 3 == 1 {
        (Duration::from_millis(1), 503)
    } else {
        (Duration::from_millis(8), 200)
    }
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, ureq::Error> {
    agent.get(url).call()?.body_mut().read_to_string()
}

/// Retries `url` until it answers, or the race is over (its context done).
fn get_until_ok(agent: &ureq::Agent, url: &str) -> Option<String> {
    while !Context::current().is_done() {
        if let Ok(body) = get(agent, url) {
            return Some(body);
        }
    }
    None
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let primary_url = backend("primary", primary);
    let replica_url = backend("replica", replica);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(true)
        .build()
        .new_agent();
    const REQUESTS: usize = 100;

    let mut alone = Vec::new();
    for _ in 0..REQUESTS {
        let t = Instant::now();
        get(&agent, &primary_url).expect("the primary always answers");
        alone.push(t.elapsed());
    }

    let (mut hedged, mut wins_primary, mut wins_replica, mut timeouts) = (Vec::new(), 0, 0, 0);
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let (a, p, r) = (agent.clone(), primary_url.clone(), replica_url.clone());
        let b = a.clone();
        let outcome = va::race_with_timeout(
            Duration::from_millis(100),
            (move || get(&a, &p).ok(), move || get_until_ok(&b, &r)),
        )
        .get();
        hedged.push(t.elapsed());
        match outcome {
            Ok(Some(body)) if body.contains("primary") => wins_primary += 1,
            Ok(Some(_)) => wins_replica += 1,
            Ok(None) => unreachable!("a job returns None only after the race is over"),
            Err(e) => {
                assert!(e.is_timeout(), "{e}");
                timeouts += 1;
            }
        }
    }

    alone.sort();
    hedged.sort();
    println!("| client | p50 | p99 | max |\n|---|---|---|---|");
    for (name, v) in [
        ("primary alone", &alone),
        ("race_with_timeout(100 ms, primary, replica)", &hedged),
    ] {
        println!(
            "| {name} | {:.1?} | {:.1?} | {:.1?} |",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v[v.len() - 1]
        );
    }
    println!(
        "\nRace winners: primary {wins_primary}, replica {wins_replica}, timeouts {timeouts} (of {REQUESTS})."
    );
    let stats = va::stats();
    println!(
        "Pool: {} threads, {} jobs still running after losing (their answers will be dropped).",
        stats.threads_alive, stats.abandoned
    );
}
