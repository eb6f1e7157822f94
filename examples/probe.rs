//! temp probe
use std::time::{Duration, Instant};
use velocity_async as va;
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E3779B97F4A7C15);
    for _ in 0..6 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^= z >> 31;
    }
    z
}
fn main() {
    let input: Vec<u64> = (0..1_000_000).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let s: Vec<u64> = input.iter().map(|&x| mix(x)).collect();
        let seq = t.elapsed();
        let t = Instant::now();
        let p = va::map(&input, |&x| mix(x)).unwrap();
        let par = t.elapsed();
        assert_eq!(s, p);
        let t = Instant::now();
        let p1 = va::map_n(&input, 1, |&x| mix(x)).unwrap();
        let one = t.elapsed();
        assert_eq!(s, p1);
        println!(
            "W4 seq {seq:?} map {par:?} map_n(1) {one:?} {:?}",
            va::stats()
        );
    }
    for _ in 0..3 {
        let n = 10_000;
        let t = Instant::now();
        for i in 0..n {
            let (a, b, c) = va::all((|| i + 1, || i + 2, || i + 3)).unwrap();
            assert_eq!(a + b + c, 3 * i + 6);
        }
        println!("W5 all3 {:?}/op", t.elapsed() / n as u32);
    }
    for _ in 0..3 {
        let t = Instant::now();
        let r = va::race((
            || {
                std::thread::sleep(Duration::from_millis(1));
                1
            },
            || {
                std::thread::sleep(Duration::from_millis(2));
                2
            },
            || {
                std::thread::sleep(Duration::from_millis(3));
                3
            },
        ))
        .get()
        .unwrap();
        println!("W6 race {r} {:?}", t.elapsed());
    }
    let t = Instant::now();
    va::map_n(0..1000, 100, |_| {
        std::thread::sleep(Duration::from_millis(10))
    })
    .unwrap();
    println!("map_n 1000x10ms limit 100: {:?}", t.elapsed());
    println!("{:?}", va::stats());
}
