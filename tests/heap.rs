//! Leaks: live heap bytes stay flat over a million tasks. A counting global
//! allocator (this test binary's only one) tracks the bytes allocated and
//! not yet freed; after a warm-up, a million `run`/`go`/`all`/`map` calls
//! must leave it where it was, give or take a small allowance for the
//! pool's bookkeeping. Full size in release (CI runs it with `--release`); a tenth
//! under plain `cargo test`. And a lazy input is held only while in flight:
//! the peak of live bytes over a `for_each` of 256 MiB of lazily made items
//! stays far below their total.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use velocity_async as va;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The highest `LIVE` since it was last reset.
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The tests measure the one global count: one at a time.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn note_peak() {
    PEAK.fetch_max(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            note_peak();
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            note_peak();
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            note_peak();
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One round of every kind of call, `n` tasks' worth.
fn churn(pool: &va::Pool, n: usize) {
    pool.install(|| {
        let gone = Arc::new(AtomicUsize::new(0));
        let mut sent = 0;
        let mut i = 0;
        while i < n {
            assert_eq!(va::run(move || i + 1).get().unwrap(), i + 1);
            let g = gone.clone();
            va::go(move || {
                g.fetch_add(1, Ordering::Relaxed);
            });
            sent += 1;
            let (a, b, c) = va::all((|| 1, || 2, || 3)).unwrap();
            assert_eq!(a + b + c, 6);
            let doubled = va::map([1u32, 2, 3, 4], |x| x * 2).unwrap();
            assert_eq!(doubled[3], 8);
            let ctx = va::Context::new();
            let cancelled = va::run_with_context(&ctx, || ());
            ctx.cancel();
            let _ = cancelled.get();
            i += 4;
        }
        // Every `go` job has run (and dropped its closure) before measuring.
        assert!(common::eventually(60, || gone.load(Ordering::Relaxed) == sent));
    });
}

#[test]
fn live_heap_is_flat_over_a_million_tasks() {
    common::within(600, || {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let n = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        // A fixed set of threads (they allocate when they start), no retiring.
        let pool = va::Pool::builder()
            .max_threads(4)
            .keep_alive(Duration::from_secs(3600))
            .build();
        churn(&pool, 20_000);
        let before = LIVE.load(Ordering::Relaxed);
        churn(&pool, n);
        let after = LIVE.load(Ordering::Relaxed);
        let growth = after - before;
        // Measured here: -236 to +1,202 bytes. 16 KiB leaves room for the
        // queue's capacity and thread-local caches to settle; a leak of one
        // byte per round (n / 4 rounds) would exceed it, in debug too.
        assert!(
            growth < 16 * 1024,
            "live heap grew by {growth} bytes over {n} tasks ({before} -> {after})"
        );
        assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
    });
}

/// Regression (#14): the loops collected their input first, so this held
/// all 256 MiB at once.
#[test]
fn a_lazy_input_is_held_only_while_in_flight() {
    common::within(600, || {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        const ITEM: usize = 1024;
        const ITEMS: usize = 256 * 1024; // 256 MiB in all
        let pool = va::Pool::builder().max_threads(4).build();
        let seen = AtomicUsize::new(0);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        pool.install(|| {
            va::for_each((0..ITEMS).map(|k| vec![k as u8; ITEM]), 4, |item| {
                seen.fetch_add(usize::from(item[0] == item[ITEM - 1]), Ordering::Relaxed);
            })
        })
        .unwrap();
        let peak = PEAK.load(Ordering::Relaxed) - before;
        assert_eq!(seen.load(Ordering::Relaxed), ITEMS);
        println!(
            "peak while looping over 256 MiB of lazy items: {} KiB",
            peak / 1024
        );
        // In flight: a few chunks per helper (the chunks hold up to 4,096
        // items while items are fast) — a few tens of MiB at most.
        assert!(
            peak < 64 << 20,
            "peak live heap {} MiB over a lazy 256 MiB input",
            peak >> 20
        );
        assert!(pool.shutdown(Duration::from_secs(60)).is_complete());
    });
}
