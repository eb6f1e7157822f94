//! Leaks: live heap bytes stay flat over a million tasks. A counting global
//! allocator (this test binary's only one) tracks the bytes allocated and
//! not yet freed; after a warm-up, a million `run`/`go`/`all`/`map` calls
//! must leave it where it was, give or take a small allowance for the
//! pool's bookkeeping. Full size in release (CI runs it with `--release`); a tenth
//! under plain `cargo test`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use velocity_async as va;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
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
