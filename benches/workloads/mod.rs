//! The workloads of issue #4 (W1–W6) and of the streaming loops (W7, #14),
//! each with velocity-async and its peers as "contenders": one closure per
//! contender that runs one iteration.
//!
//! Both the criterion bench (`benches/pool.rs`) and the side-by-side report
//! (`examples/benchmark.rs`) run exactly these closures, so the two can
//! never measure different things.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use velocity_async as va;

/// One iteration of one contender. What it returns is dropped outside the
/// measured time (a cold pool's teardown).
pub(crate) type Iteration = Box<dyn FnMut() -> Teardown>;

/// Work done after an iteration, outside the measured time.
pub(crate) struct Teardown(Option<Box<dyn FnOnce()>>);

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A number from this process's `/proc/self/status` (`"Threads:"`,
/// `"VmRSS:"`, …): Linux only, `None` elsewhere.
pub(crate) fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The threads of this process as the OS counts them.
fn os_threads() -> Option<u64> {
    status_field("Threads:")
}

/// Waits (up to 10 s) until the OS counts no more threads than `before`: a
/// cold-pool sample must not start while the last one's ~600 threads are
/// still exiting (unmapping their stacks). A pool counts a thread gone, and
/// a runtime's drop returns, before the kernel is done with it (the effect
/// on the next sample is in docs/PERFORMANCE.md).
fn wait_for_os_threads(before: Option<u64>) {
    let Some(before) = before else { return };
    let start = std::time::Instant::now();
    while os_threads().is_some_and(|n| n > before) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// An iteration with nothing to tear down.
fn timed(mut f: impl FnMut() + 'static) -> Iteration {
    Box::new(move || {
        f();
        Teardown(None)
    })
}

pub(crate) struct Contender {
    pub(crate) name: &'static str,
    /// Set up lazily (a runtime, a pool, 1,000 parked threads), so that
    /// benchmarking one workload does not keep every peer's threads alive.
    pub(crate) make: Box<dyn Fn() -> Iteration>,
}

pub(crate) struct Workload {
    /// `w1_run_get`, …: the criterion group name.
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// Operations per iteration: reported times are per operation.
    pub(crate) ops: u64,
    pub(crate) unit: Unit,
    /// The contender that is velocity-async (the first one).
    pub(crate) contenders: Vec<Contender>,
    /// Issue #4's bars: (peer, largest allowed ours ÷ peer).
    pub(crate) bars: Vec<(&'static str, f64)>,
    /// Criterion sample size (slow workloads take fewer samples).
    pub(crate) samples: usize,
}

#[derive(Clone, Copy)]
pub(crate) enum Unit {
    Micros,
    Millis,
}

fn contender(name: &'static str, make: impl Fn() -> Iteration + 'static) -> Contender {
    Contender {
        name,
        make: Box::new(make),
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().build().unwrap()
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().build().unwrap()
}

fn threadpool() -> threadpool::ThreadPool {
    threadpool::ThreadPool::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
}

pub(crate) const W1_OPS: u64 = 1_000;
pub(crate) const W2_TINY: u64 = 100_000;
pub(crate) const W3_FANOUT: usize = 1_000;
pub(crate) const W3_SLEEP: Duration = Duration::from_millis(10);
pub(crate) const W4_ITEMS: u64 = 1_000_000;
pub(crate) const W5_OPS: u64 = 1_000;

/// An iteration of `n` sequential calls of `one`.
fn repeat(n: u64, mut one: impl FnMut() -> u64 + 'static) -> Iteration {
    timed(move || {
        for _ in 0..n {
            black_box(one());
        }
    })
}

/// W1: sequential `run(f).get()` on a warm pool.
pub(crate) fn w1() -> Workload {
    Workload {
        id: "w1_run_get",
        title: "W1 run(f).get() on a warm pool (per call)",
        ops: W1_OPS,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async", || {
                repeat(W1_OPS, || va::run(|| black_box(1u64)).get().unwrap())
            }),
            contender("std_thread_spawn", || {
                repeat(W1_OPS, || {
                    std::thread::spawn(|| black_box(1u64)).join().unwrap()
                })
            }),
            contender("tokio_spawn_blocking", || {
                let rt = tokio_runtime();
                repeat(W1_OPS, move || {
                    rt.block_on(rt.spawn_blocking(|| black_box(1u64))).unwrap()
                })
            }),
            contender("blocking_unblock", || {
                repeat(W1_OPS, || {
                    futures_lite::future::block_on(blocking::unblock(|| black_box(1u64)))
                })
            }),
            contender("rayon_spawn_channel", || {
                let pool = rayon_pool();
                repeat(W1_OPS, move || {
                    let (tx, rx) = std::sync::mpsc::channel();
                    pool.spawn(move || tx.send(black_box(1u64)).unwrap());
                    rx.recv().unwrap()
                })
            }),
            contender("threadpool_channel", || {
                let pool = threadpool();
                repeat(W1_OPS, move || {
                    let (tx, rx) = std::sync::mpsc::channel();
                    pool.execute(move || tx.send(black_box(1u64)).unwrap());
                    rx.recv().unwrap()
                })
            }),
        ],
        bars: vec![
            ("tokio_spawn_blocking", 1.0 / 30.0),
            ("rayon_spawn_channel", 1.0 / 15.0),
        ],
        samples: 30,
    }
}

/// W2: submit 100,000 tiny closures, then collect every result in order.
/// Submits `n` tiny closures through `submit`, each answering on its own
/// channel, and collects them in order (W2, W8).
fn collect_channels(n: u64, submit: impl Fn(u64, std::sync::mpsc::SyncSender<u64>)) -> u64 {
    let rxs: Vec<_> = (0..n)
        .map(|i| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            submit(i, tx);
            rx
        })
        .collect();
    rxs.into_iter().map(|rx| rx.recv().unwrap()).sum()
}

/// `n` tiny `tokio::spawn`s, awaited in order (W2, W8).
async fn tokio_spawn_tiny(n: u64) -> u64 {
    let hs: Vec<_> = (0..n)
        .map(|i| tokio::spawn(async move { black_box(i) * 2 }))
        .collect();
    let mut sum = 0;
    for h in hs {
        sum += h.await.unwrap();
    }
    sum
}

pub(crate) fn w2() -> Workload {
    Workload {
        id: "w2_submit_collect",
        title: "W2 submit 100,000 tiny closures, collect in order (per closure)",
        ops: W2_TINY,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async", || {
                timed(|| {
                    let tasks: Vec<_> = (0..W2_TINY)
                        .map(|i| va::run(move || black_box(i) * 2))
                        .collect();
                    black_box(tasks.into_iter().map(|t| t.get().unwrap()).sum::<u64>());
                })
            }),
            contender("tokio_spawn_async", || {
                let rt = tokio_runtime();
                timed(move || {
                    black_box(rt.block_on(tokio_spawn_tiny(W2_TINY)));
                })
            }),
            contender("tokio_spawn_blocking", || {
                let rt = tokio_runtime();
                timed(move || {
                    let hs: Vec<_> = (0..W2_TINY)
                        .map(|i| rt.spawn_blocking(move || black_box(i) * 2))
                        .collect();
                    black_box(rt.block_on(async {
                        let mut sum = 0;
                        for h in hs {
                            sum += h.await.unwrap();
                        }
                        sum
                    }));
                })
            }),
            contender("blocking_unblock", || {
                timed(|| {
                    let ts: Vec<_> = (0..W2_TINY)
                        .map(|i| blocking::unblock(move || black_box(i) * 2))
                        .collect();
                    black_box(futures_lite::future::block_on(async {
                        let mut sum = 0;
                        for t in ts {
                            sum += t.await;
                        }
                        sum
                    }));
                })
            }),
            contender("rayon_spawn_channel", || {
                let pool = rayon_pool();
                timed(move || {
                    black_box(collect_channels(W2_TINY, |i, tx| {
                        pool.spawn(move || tx.send(black_box(i) * 2).unwrap())
                    }));
                })
            }),
            contender("threadpool_channel", || {
                let pool = threadpool();
                timed(move || {
                    black_box(collect_channels(W2_TINY, |i, tx| {
                        pool.execute(move || tx.send(black_box(i) * 2).unwrap())
                    }));
                })
            }),
        ],
        bars: vec![
            ("tokio_spawn_blocking", 1.0 / 12.0),
            ("tokio_spawn_async", 1.5),
        ],
        samples: 10,
    }
}

fn w3_job() {
    std::thread::sleep(W3_SLEEP);
}

fn w3_velocity(pool: &va::Pool) {
    let tasks: Vec<_> = (0..W3_FANOUT).map(|_| pool.run(w3_job)).collect();
    tasks.into_iter().for_each(|t| t.get().unwrap());
}

fn w3_tokio(rt: &tokio::runtime::Runtime) {
    let hs: Vec<_> = (0..W3_FANOUT).map(|_| rt.spawn_blocking(w3_job)).collect();
    rt.block_on(async {
        for h in hs {
            h.await.unwrap();
        }
    })
}

/// 1,000 threads spawned up front, each parked until it is handed one
/// sleep: what W3 costs on this machine with no pool at all (the floor).
/// With `tree`, the wake-ups fan out as a binary tree (thread `i` wakes
/// `2i + 1` and `2i + 2` before it sleeps), as a pool's workers do; without,
/// the caller unparks all 1,000 itself. Only the last thread to finish
/// wakes the caller.
struct ParkedThreads {
    threads: Arc<OnceLock<Vec<std::thread::Thread>>>,
    go: Arc<Vec<AtomicBool>>,
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tree: bool,
}

impl ParkedThreads {
    fn new(n: usize, tree: bool) -> ParkedThreads {
        let go: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Arc<OnceLock<Vec<std::thread::Thread>>> = Arc::new(OnceLock::new());
        let main = std::thread::current();
        let handles = (0..n)
            .map(|i| {
                let (go, done, stop) = (go.clone(), done.clone(), stop.clone());
                let (all, main) = (threads.clone(), main.clone());
                std::thread::spawn(move || loop {
                    while !go[i].swap(false, Ordering::AcqRel) {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        std::thread::park();
                    }
                    if tree {
                        let all = all.get().expect("set before the first run");
                        for child in [2 * i + 1, 2 * i + 2] {
                            if child < n {
                                go[child].store(true, Ordering::Release);
                                all[child].unpark();
                            }
                        }
                    }
                    w3_job();
                    if done.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        main.unpark();
                    }
                })
                .thread()
                .clone()
            })
            .collect();
        let _ = threads.set(handles);
        ParkedThreads {
            threads,
            go,
            done,
            stop,
            tree,
        }
    }

    fn run(&self) {
        self.done.store(0, Ordering::Release);
        let threads = self.threads.get().expect("set in new");
        let first = if self.tree { 1 } else { threads.len() };
        for (flag, t) in self.go.iter().zip(threads).take(first) {
            flag.store(true, Ordering::Release);
            t.unpark();
        }
        while self.done.load(Ordering::Acquire) < threads.len() {
            std::thread::park();
        }
    }
}

impl Drop for ParkedThreads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(threads) = self.threads.get() {
            threads.iter().for_each(|t| t.unpark());
        }
    }
}

/// W3 warm: 1,000 closures that each sleep 10 ms, on pools that already ran
/// the same burst (their threads exist).
pub(crate) fn w3_warm() -> Workload {
    Workload {
        id: "w3_blocking_fanout",
        title: "W3 1,000 closures sleeping 10 ms, warm pool (per burst)",
        ops: 1,
        unit: Unit::Millis,
        contenders: vec![
            contender("velocity_async", || {
                timed(|| w3_velocity(va::Pool::global()))
            }),
            contender("tokio_spawn_blocking", || {
                let rt = tokio_runtime();
                timed(move || w3_tokio(&rt))
            }),
            contender("blocking_unblock", || {
                timed(|| {
                    let ts: Vec<_> = (0..W3_FANOUT).map(|_| blocking::unblock(w3_job)).collect();
                    futures_lite::future::block_on(async {
                        for t in ts {
                            t.await;
                        }
                    })
                })
            }),
            contender("std_thread_spawn", || {
                timed(|| {
                    let hs: Vec<_> = (0..W3_FANOUT).map(|_| std::thread::spawn(w3_job)).collect();
                    hs.into_iter().for_each(|h| h.join().unwrap());
                })
            }),
            contender("floor_1000_parked_threads", || {
                let threads = ParkedThreads::new(W3_FANOUT, false);
                timed(move || threads.run())
            }),
            contender("floor_parked_tree_wake", || {
                let threads = ParkedThreads::new(W3_FANOUT, true);
                timed(move || threads.run())
            }),
        ],
        bars: vec![("tokio_spawn_blocking", 0.65)],
        samples: 10,
    }
}

/// W3 cold: the same burst on a pool created for it (and shut down after).
pub(crate) fn w3_cold() -> Workload {
    Workload {
        id: "w3_blocking_fanout_cold",
        title: "W3 1,000 closures sleeping 10 ms, new pool each time (per burst)",
        ops: 1,
        unit: Unit::Millis,
        contenders: vec![
            contender("velocity_async", || {
                Box::new(|| {
                    let before = os_threads();
                    let pool = va::Pool::builder().build();
                    w3_velocity(&pool);
                    Teardown(Some(Box::new(move || {
                        // Wait for the threads to retire, as dropping a
                        // tokio runtime joins its threads.
                        pool.shutdown(Duration::from_secs(60));
                        while pool.stats().threads_alive > 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        wait_for_os_threads(before);
                    })))
                })
            }),
            contender("tokio_spawn_blocking", || {
                Box::new(|| {
                    let before = os_threads();
                    let rt = tokio_runtime();
                    w3_tokio(&rt);
                    Teardown(Some(Box::new(move || {
                        drop(rt);
                        wait_for_os_threads(before);
                    })))
                })
            }),
        ],
        bars: vec![("tokio_spawn_blocking", 0.7)],
        samples: 10,
    }
}

/// A ~50 ns integer mixing function (splitmix64 rounds), as issue #4 asks.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for _ in 0..18 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// W4: an ordered map over 1,000,000 `u64`, default arguments.
pub(crate) fn w4() -> Workload {
    let input: Arc<Vec<u64>> = Arc::new((0..W4_ITEMS).collect());
    let (a, b, c) = (input.clone(), input.clone(), input);
    Workload {
        id: "w4_cpu_map",
        title: "W4 ordered map over 1,000,000 u64, ~50 ns each (per map)",
        ops: 1,
        unit: Unit::Millis,
        contenders: vec![
            contender("velocity_async_map", move || {
                let input = a.clone();
                timed(move || {
                    black_box(va::map(&*input, |&x| mix(x)).unwrap());
                })
            }),
            contender("rayon_par_iter", move || {
                use rayon::prelude::*;
                let input = b.clone();
                timed(move || {
                    black_box(input.par_iter().map(|&x| mix(x)).collect::<Vec<u64>>());
                })
            }),
            contender("sequential", move || {
                let input = c.clone();
                timed(move || {
                    black_box(input.iter().map(|&x| mix(x)).collect::<Vec<u64>>());
                })
            }),
        ],
        bars: vec![("rayon_par_iter", 1.1)],
        samples: 20,
    }
}

/// `va::all` of three trivial closures: W5's contender, and G1's baseline.
fn all3() -> u64 {
    let (a, b, c) = va::all((|| black_box(1u64), || black_box(2u64), || black_box(3u64))).unwrap();
    a + b + c
}

/// W5: `all` of three trivial closures.
pub(crate) fn w5() -> Workload {
    Workload {
        id: "w5_all3",
        title: "W5 all of 3 trivial closures (per all)",
        ops: W5_OPS,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async_all", || repeat(W5_OPS, all3)),
            contender("rayon_join_outside_pool", || {
                repeat(W5_OPS, || {
                    let (a, (b, c)) = rayon::join(
                        || black_box(1u64),
                        || rayon::join(|| black_box(2u64), || black_box(3u64)),
                    );
                    a + b + c
                })
            }),
            contender("std_thread_scope", || {
                repeat(W5_OPS, || {
                    std::thread::scope(|s| {
                        let a = s.spawn(|| black_box(1u64));
                        let b = s.spawn(|| black_box(2u64));
                        black_box(3u64) + a.join().unwrap() + b.join().unwrap()
                    })
                })
            }),
            contender("tokio_spawn_blocking_x3", || {
                let rt = tokio_runtime();
                repeat(W5_OPS, move || {
                    let hs = [
                        rt.spawn_blocking(|| black_box(1u64)),
                        rt.spawn_blocking(|| black_box(2u64)),
                        rt.spawn_blocking(|| black_box(3u64)),
                    ];
                    rt.block_on(async {
                        let mut v = 0;
                        for h in hs {
                            v += h.await.unwrap();
                        }
                        v
                    })
                })
            }),
        ],
        bars: vec![("rayon_join_outside_pool", 0.1)],
        samples: 30,
    }
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// W6: a race of closures sleeping 1, 2 and 3 ms.
pub(crate) fn w6() -> Workload {
    Workload {
        id: "w6_race",
        title: "W6 race of closures sleeping 1, 2, 3 ms (per race)",
        ops: 1,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async_race", || {
                timed(|| {
                    black_box(
                        va::race((|| sleep_ms(1), || sleep_ms(2), || sleep_ms(3)))
                            .get()
                            .unwrap(),
                    );
                })
            }),
            contender("bare_sleep_1ms", || {
                timed(|| {
                    black_box(sleep_ms(1));
                })
            }),
            contender("std_threads_channel", || {
                timed(|| {
                    let (tx, rx) = std::sync::mpsc::channel();
                    for ms in [1, 2, 3] {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            let _ = tx.send(sleep_ms(ms));
                        });
                    }
                    black_box(rx.recv().unwrap());
                })
            }),
            contender("tokio_spawn_blocking_select", || {
                let rt = tokio_runtime();
                timed(move || {
                    black_box(rt.block_on(async {
                        tokio::select! {
                            r = rt.spawn_blocking(|| sleep_ms(1)) => r.unwrap(),
                            r = rt.spawn_blocking(|| sleep_ms(2)) => r.unwrap(),
                            r = rt.spawn_blocking(|| sleep_ms(3)) => r.unwrap(),
                        }
                    }));
                })
            }),
            contender("rayon_spawn_channel", || {
                let pool = rayon_pool();
                timed(move || {
                    let (tx, rx) = std::sync::mpsc::channel();
                    for ms in [1, 2, 3] {
                        let tx = tx.clone();
                        pool.spawn(move || {
                            let _ = tx.send(sleep_ms(ms));
                        });
                    }
                    black_box(rx.recv().unwrap());
                })
            }),
        ],
        bars: vec![
            ("tokio_spawn_blocking_select", 1.0),
            ("std_threads_channel", 1.0),
        ],
        samples: 30,
    }
}

pub(crate) const W7_ITEMS: u64 = 10_000_000;
pub(crate) const W7_BLOCKING_ITEMS: u64 = 640;

/// A lazily made item: a few nanoseconds of mixing.
fn make_item(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// W7: `for_each` over a lazy iterator of 10,000,000 small items (made as
/// they are pulled), ~50 ns of work each. The report also gives each
/// contender's peak RSS: collecting the input first would hold 80 MB.
pub(crate) fn w7() -> Workload {
    let body = |x: u64| {
        black_box(mix(x));
    };
    Workload {
        id: "w7_stream_for_each",
        title: "W7 for_each over a lazy iterator of 10,000,000 items, ~50 ns each (per loop)",
        ops: 1,
        unit: Unit::Millis,
        contenders: vec![
            contender("velocity_async_for_each", move || {
                timed(move || {
                    va::for_each((0..W7_ITEMS).map(make_item), 0, body).unwrap();
                })
            }),
            contender("rayon_par_bridge", move || {
                use rayon::prelude::*;
                timed(move || {
                    (0..W7_ITEMS).map(make_item).par_bridge().for_each(body);
                })
            }),
            contender("sequential", move || {
                timed(move || {
                    (0..W7_ITEMS).map(make_item).for_each(body);
                })
            }),
        ],
        // No bar of issue #4: measured, not judged.
        bars: vec![],
        samples: 10,
    }
}

/// W7b: a blocking stream: 640 items that each sleep 1 ms, at most 64 at
/// once (10 ms if the limit is reached at once), against rayon's
/// `par_bridge` on a 64-thread pool.
pub(crate) fn w7_blocking() -> Workload {
    let body = |_: u64| std::thread::sleep(Duration::from_millis(1));
    Workload {
        id: "w7b_stream_blocking",
        title: "W7b blocking stream: 640 items sleeping 1 ms, limit 64 (per loop)",
        ops: 1,
        unit: Unit::Millis,
        contenders: vec![
            contender("velocity_async_for_each", move || {
                timed(move || {
                    va::for_each(0..W7_BLOCKING_ITEMS, 64, body).unwrap();
                })
            }),
            contender("rayon_par_bridge_64_threads", move || {
                use rayon::prelude::*;
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(64)
                    .build()
                    .unwrap();
                timed(move || {
                    pool.install(|| (0..W7_BLOCKING_ITEMS).par_bridge().for_each(body));
                })
            }),
            contender("sequential", move || {
                timed(move || (0..W7_BLOCKING_ITEMS).for_each(body))
            }),
        ],
        // No bar of issue #4: measured, not judged.
        bars: vec![],
        samples: 10,
    }
}

/// A plain semaphore on a `Mutex` and a `Condvar`, the usual hand-written
/// peer (not weighted-FIFO, not cancellable).
struct CondvarSemaphore {
    free: std::sync::Mutex<usize>,
    changed: std::sync::Condvar,
}

impl CondvarSemaphore {
    fn new(n: usize) -> Self {
        CondvarSemaphore {
            free: std::sync::Mutex::new(n),
            changed: std::sync::Condvar::new(),
        }
    }
    fn acquire(&self, n: usize) {
        let mut free = self.free.lock().unwrap();
        while *free < n {
            free = self.changed.wait(free).unwrap();
        }
        *free -= n;
    }
    fn release(&self, n: usize) {
        *self.free.lock().unwrap() += n;
        self.changed.notify_all();
    }
}

pub(crate) const S_OPS: u64 = 1_000;
pub(crate) const S_THREADS: u64 = 8;

/// S1: `Semaphore::acquire(1)` and its release, uncontended.
pub(crate) fn s1() -> Workload {
    Workload {
        id: "s1_semaphore_uncontended",
        title: "S1 semaphore acquire + release, uncontended (per pair)",
        ops: S_OPS,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async_semaphore", || {
                let s = va::Semaphore::new(4);
                timed(move || {
                    for _ in 0..S_OPS {
                        drop(black_box(s.acquire(1).unwrap()));
                    }
                })
            }),
            contender("mutex_condvar_semaphore", || {
                let s = CondvarSemaphore::new(4);
                timed(move || {
                    for _ in 0..S_OPS {
                        s.acquire(1);
                        s.release(1);
                    }
                })
            }),
        ],
        // No bar of issue #4: measured, not judged.
        bars: vec![],
        samples: 30,
    }
}

/// S2: 8 threads each take and give back 1 of 2 permits 1,000 times.
pub(crate) fn s2() -> Workload {
    Workload {
        id: "s2_semaphore_8_threads",
        title: "S2 semaphore of 2 permits, 8 threads acquiring + releasing (per pair)",
        ops: S_OPS * S_THREADS,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async_semaphore", || {
                let s = Arc::new(va::Semaphore::new(2));
                timed(move || {
                    std::thread::scope(|scope| {
                        for _ in 0..S_THREADS {
                            let s = &s;
                            scope.spawn(move || {
                                for _ in 0..S_OPS {
                                    drop(black_box(s.acquire(1).unwrap()));
                                }
                            });
                        }
                    });
                })
            }),
            contender("mutex_condvar_semaphore", || {
                let s = Arc::new(CondvarSemaphore::new(2));
                timed(move || {
                    std::thread::scope(|scope| {
                        for _ in 0..S_THREADS {
                            let s = &s;
                            scope.spawn(move || {
                                for _ in 0..S_OPS {
                                    s.acquire(1);
                                    s.release(1);
                                }
                            });
                        }
                    });
                })
            }),
        ],
        // No bar of issue #4: measured, not judged.
        bars: vec![],
        samples: 20,
    }
}

/// Submitting threads of W8.
pub(crate) const W8_SUBMITTERS: u64 = 8;

/// W8: W2 from 8 threads at once, each submitting its share of the
/// 100,000 tiny closures and collecting them in order; beside the same from
/// one thread, in the same run, so the ratio shows what contention costs.
pub(crate) fn w8() -> Workload {
    /// Runs `each(share)` on `W8_SUBMITTERS` threads at once.
    fn submitters(each: impl Fn(u64) -> u64 + Sync) -> u64 {
        let share = W2_TINY / W8_SUBMITTERS;
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..W8_SUBMITTERS)
                .map(|_| s.spawn(|| each(share)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        })
    }
    fn velocity(n: u64) -> u64 {
        let tasks: Vec<_> = (0..n).map(|i| va::run(move || black_box(i) * 2)).collect();
        tasks.into_iter().map(|t| t.get().unwrap()).sum()
    }
    Workload {
        id: "w8_eight_submitters",
        title: "W8 100,000 tiny closures from 8 submitting threads, each collecting in order (per closure)",
        ops: W2_TINY,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async", || {
                timed(|| {
                    black_box(submitters(velocity));
                })
            }),
            contender("velocity_async_one_submitter", || {
                timed(|| {
                    black_box(velocity(W2_TINY));
                })
            }),
            contender("tokio_spawn_async", || {
                let rt = tokio_runtime();
                let handle = rt.handle().clone();
                timed(move || {
                    let _rt = &rt;
                    black_box(submitters(|n| handle.block_on(tokio_spawn_tiny(n))));
                })
            }),
            contender("rayon_spawn_channel", || {
                let pool = rayon_pool();
                timed(move || {
                    black_box(submitters(|n| {
                        collect_channels(n, |i, tx| {
                            pool.spawn(move || tx.send(black_box(i) * 2).unwrap())
                        })
                    }));
                })
            }),
        ],
        // Issue #16: within 1.5x of the single submitter's cost.
        bars: vec![("velocity_async_one_submitter", 1.5)],
        samples: 12,
    }
}

/// G1: a group of 3 trivial jobs, beside W5's `all` of the same three and
/// `scope` with 3 spawns, in the same run.
pub(crate) fn g1() -> Workload {
    Workload {
        id: "g1_group3",
        title: "G1 group of 3 trivial jobs (per group)",
        ops: W5_OPS,
        unit: Unit::Micros,
        contenders: vec![
            contender("velocity_async_group", || {
                repeat(W5_OPS, || {
                    let mut v = [0u64; 3];
                    let r: Result<(), va::Error> = va::group(|g| {
                        for (i, slot) in v.iter_mut().enumerate() {
                            g.go(move || {
                                *slot = black_box(i as u64 + 1);
                                Ok(())
                            });
                        }
                        Ok(())
                    });
                    r.unwrap();
                    v.iter().sum()
                })
            }),
            contender("velocity_async_all", || repeat(W5_OPS, all3)),
            contender("velocity_async_scope", || {
                repeat(W5_OPS, || {
                    va::scope(|s| {
                        let a = s.spawn(|| black_box(1u64));
                        let b = s.spawn(|| black_box(2u64));
                        let c = s.spawn(|| black_box(3u64));
                        a.join().unwrap() + b.join().unwrap() + c.join().unwrap()
                    })
                })
            }),
            contender("std_thread_scope", || {
                repeat(W5_OPS, || {
                    std::thread::scope(|s| {
                        let a = s.spawn(|| black_box(1u64));
                        let b = s.spawn(|| black_box(2u64));
                        let c = s.spawn(|| black_box(3u64));
                        a.join().unwrap() + b.join().unwrap() + c.join().unwrap()
                    })
                })
            }),
        ],
        // No bar of issue #4: measured, not judged.
        bars: vec![],
        samples: 30,
    }
}

/// Every workload, in issue #4's order, then the streaming loops', then the
/// semaphore's and the group's.
pub(crate) fn all() -> Vec<Workload> {
    vec![
        w1(),
        w2(),
        w3_warm(),
        w3_cold(),
        w4(),
        w5(),
        w6(),
        w7(),
        w7_blocking(),
        s1(),
        s2(),
        g1(),
        w8(),
    ]
}
