//! The side-by-side report: every workload of `benches/workloads/mod.rs`
//! (W1–W6) for velocity-async and each peer, in one process and one run,
//! printed as a markdown table of medians and ratios, plus a chart.
//!
//! ```text
//! cargo run --release --example benchmark             # ~2 minutes
//! cargo run --release --example benchmark -- --quick  # ~40 seconds, noisier
//! cargo run --release --example benchmark -- --docs   # also rewrite docs/benchmark.{md,png}
//! ```
//!
//! The contenders of a workload take turns in three blocks each (A B C A B C
//! A B C), so a slow spell of a shared machine does not land on one of
//! them. Each block runs one warm-up iteration (which also grows the pools
//! the "warm" workloads need), then iterations until a third of the time
//! budget is spent. Reported: the median time per operation, and
//! "ours ÷ peer" (below 1: velocity-async is faster) beside issue #4's bar.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use workloads::{Unit, Workload};

/// Each contender's samples are taken in this many blocks, in turn.
const ROUNDS: usize = 3;

struct Measured {
    name: &'static str,
    /// Median per operation, in nanoseconds.
    median_ns: f64,
    samples: usize,
}

struct Report {
    workload: Workload,
    results: Vec<Measured>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let docs = args.iter().any(|a| a == "--docs");
    let only: Option<&String> = args.iter().find(|a| !a.starts_with("--"));
    let budget = Duration::from_millis(if quick { 300 } else { 1500 });

    let machine = machine();
    println!("# velocity-async side-by-side benchmark\n\n{machine}\n");
    let mut memory = String::new();
    let mut reports = Vec::new();
    for workload in workloads::all() {
        if only.is_some_and(|o| !workload.id.contains(o.as_str())) {
            continue;
        }
        // Contenders take turns in ROUNDS blocks (A B C A B C A B C), so a
        // slow spell of this shared machine hits every contender alike
        // instead of whichever one ran during it.
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); workload.contenders.len()];
        for round in 0..ROUNDS {
            for (c, contender) in workload.contenders.iter().enumerate() {
                let threads_before = process_threads();
                let rss_before = rss_kib();
                // W7: the peak RSS over this contender's iterations
                // (`clear_refs` 5 resets the high-water mark to now).
                let peak_rss = workload.id.starts_with("w7_");
                if peak_rss {
                    let _ = std::fs::write("/proc/self/clear_refs", "5");
                }
                let spawned_before = velocity_async::stats().threads_spawned;
                let mut iteration = (contender.make)();
                let min_samples = if quick { 5 } else { workload.samples.min(10) };
                samples[c].extend(measure(
                    &mut iteration,
                    budget / ROUNDS as u32,
                    min_samples.div_ceil(ROUNDS),
                ));
                let first_round = round == 0;
                if first_round && peak_rss {
                    let _ = writeln!(
                        memory,
                        "- {} / {}: peak RSS {:+.1} MiB over the process's RSS before it",
                        workload.id,
                        contender.name,
                        (status_field("VmHWM:") as f64 - rss_before as f64) / 1024.0,
                    );
                }
                if first_round && (workload.id.starts_with("w2") || workload.id.starts_with("w3")) {
                    let pool = if c == 0 {
                        let stats = velocity_async::stats();
                        format!(
                            " (velocity-async spawned {} threads, {} alive afterwards)",
                            stats.threads_spawned - spawned_before,
                            stats.threads_alive
                        )
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        memory,
                        "- {} / {}: process threads {} → {}, RSS {:+.1} MiB{pool}",
                        workload.id,
                        contender.name,
                        threads_before,
                        process_threads(),
                        (rss_kib() as f64 - rss_before as f64) / 1024.0,
                    );
                }
                // Measured above while the contender's pool still exists.
                drop(iteration);
            }
        }
        let mut results = Vec::new();
        for (contender, samples) in workload.contenders.iter().zip(&samples) {
            let median_ns = median(samples) / workload.ops as f64;
            eprintln!(
                "  {:<28} {:<28} {:>12} ({} samples)",
                workload.id,
                contender.name,
                show(median_ns, workload.unit),
                samples.len()
            );
            results.push(Measured {
                name: contender.name,
                median_ns,
                samples: samples.len(),
            });
        }
        reports.push(Report { workload, results });
    }

    let table = table(&reports);
    println!("{table}");
    println!("## Memory and threads (M1)\n\n{memory}");

    let chart_path = if docs {
        "docs/benchmark.png"
    } else {
        "target/benchmark.png"
    };
    match chart(&reports, chart_path, &machine) {
        Ok(()) => println!("Chart written to {chart_path}"),
        Err(e) => println!("No chart: {e}"),
    }
    if docs {
        let md = format!(
            "# Benchmark results\n\nWritten by `cargo run --release --example benchmark -- --docs`.\n\n\
             {machine}\n\n{table}\n## Memory and threads (M1)\n\n{memory}"
        );
        std::fs::write("docs/BENCHMARK_RESULTS.md", md).expect("write docs/BENCHMARK_RESULTS.md");
        println!("Table written to docs/BENCHMARK_RESULTS.md");
    }
}

/// Runs one warm-up iteration, then iterations until `budget` is spent
/// (at least `min`, at most 1,000); returns each iteration's time in ns.
fn measure(iteration: &mut workloads::Iteration, budget: Duration, min: usize) -> Vec<f64> {
    drop(iteration());
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min || (start.elapsed() < budget && samples.len() < 1000) {
        let t = Instant::now();
        let teardown = iteration();
        samples.push(t.elapsed().as_nanos() as f64);
        drop(teardown);
    }
    samples
}

fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn show(ns: f64, unit: Unit) -> String {
    match unit {
        Unit::Micros => format!("{:.2} µs", ns / 1e3),
        Unit::Millis => format!("{:.2} ms", ns / 1e6),
    }
}

fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | contender | median | samples | ours ÷ this | issue #4 bar |\n|---|---|---|---|---|---|"
    );
    for r in reports {
        let ours = r.results[0].median_ns;
        for m in &r.results {
            let ratio = ours / m.median_ns;
            let bar = r
                .workload
                .bars
                .iter()
                .find(|(peer, _)| *peer == m.name)
                .map(|(_, max)| {
                    let verdict = if ratio <= *max { "met" } else { "**missed**" };
                    format!("≤ {max:.3}: {verdict}")
                })
                .unwrap_or_default();
            let ratio = if std::ptr::eq(m, &r.results[0]) {
                "—".to_string()
            } else {
                format!("{ratio:.3}")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.workload.title,
                m.name,
                show(m.median_ns, r.workload.unit),
                m.samples,
                ratio,
                bar
            );
        }
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.into());
    format!(
        "Machine: {cpus} CPUs ({cpu}), kernel {kernel}, {} build.",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    )
}

fn status_field(name: &str) -> u64 {
    workloads::status_field(name).unwrap_or(0)
}

fn process_threads() -> u64 {
    status_field("Threads:")
}

fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

/// Fonts tried for the chart's labels (plotters' pure-Rust text rendering
/// needs a TrueType file; without one the chart is skipped, the table is not).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// One panel per workload: horizontal bars of the median per operation, on
/// a log scale, velocity-async first and highlighted.
fn chart(reports: &[Report], path: &str, machine: &str) -> Result<(), String> {
    use plotters::prelude::*;

    let font = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "the font could not be parsed")?;

    let cols = 2;
    let rows = reports.len().div_ceil(cols);
    let root = BitMapBackend::new(path, (1400, 330 * rows as u32 + 60)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (title, body) = root.split_vertically(60);
    title
        .titled(
            &format!("velocity-async vs peers — median per operation, log scale — {machine}"),
            ("sans-serif", 18),
        )
        .map_err(e)?;
    for (panel, r) in body.split_evenly((rows, cols)).iter().zip(reports) {
        let values: Vec<f64> = r
            .results
            .iter()
            .map(|m| match r.workload.unit {
                Unit::Micros => m.median_ns / 1e3,
                Unit::Millis => m.median_ns / 1e6,
            })
            .collect();
        let unit = match r.workload.unit {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
        };
        let lo = values.iter().copied().fold(f64::MAX, f64::min) / 2.0;
        let hi = values.iter().copied().fold(0.0, f64::max) * 1.8;
        let n = values.len();
        let mut chart = ChartBuilder::on(panel)
            .caption(r.workload.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(10)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..n as f64)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc(unit)
            .x_labels(6)
            .x_label_style(("sans-serif", 12))
            .draw()
            .map_err(e)?;
        for (i, (m, v)) in r.results.iter().zip(&values).enumerate() {
            let y = (n - 1 - i) as f64;
            let color = if i == 0 {
                RGBColor(214, 39, 40)
            } else {
                RGBColor(120, 144, 176)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(lo, y + 0.15), (*v, y + 0.85)],
                    color.filled(),
                )))
                .map_err(e)?;
            let label = format!("{}  {:.2} {unit}", m.name, v);
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (lo * 1.05, y + 0.62),
                    ("sans-serif", 13).into_font().color(&BLACK),
                )))
                .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}
