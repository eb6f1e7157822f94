//! Smoke timing.
use std::time::{Duration, Instant};
use velocity_async as va;
fn main() {
    // W1
    for _ in 0..3 {
        let n = 10_000;
        let t = Instant::now();
        for i in 0..n {
            let v = va::run(move || i + 1).get().unwrap();
            assert_eq!(v, i + 1);
        }
        println!("W1 {:?}/op", t.elapsed() / n as u32);
    }
    println!("{:?}", va::stats());
    // W2
    for _ in 0..3 {
        let n = 100_000;
        let t = Instant::now();
        let tasks: Vec<_> = (0..n).map(|i| va::run(move || i * 2)).collect();
        let s: u64 = tasks.into_iter().map(|t| t.get().unwrap()).sum();
        println!("W2 {:?}/op sum {s}", t.elapsed() / n as u32);
    }
    println!("{:?}", va::stats());
    // W3
    for _ in 0..6 {
        let t = Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|_| va::run(|| std::thread::sleep(Duration::from_millis(10))))
            .collect();
        for t in tasks {
            t.get().unwrap();
        }
        println!("W3 {:?}", t.elapsed());
        println!("{:?}", va::stats());
    }
}
