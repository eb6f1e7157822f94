//! A bounded concurrent crawler of a small site served locally, with the
//! structured-concurrency helpers:
//!
//! * `va::group_n` fans out over each level of links (at most 16 jobs at
//!   once), and its first fatal error cancels the rest;
//! * a `va::Semaphore` keeps at most 4 requests in flight to the host,
//!   whatever the fan-out;
//! * a `va::Singleflight` shares one fetch between the jobs that follow
//!   links to the same page at the same time.
//!
//! The site is served by `tiny_http` on a local port (each request takes
//! 2 ms), and fetched with `ureq`. The example crawls it twice: once whole,
//! and once with a page that answers 500, which is fatal and stops the
//! crawl. It checks what it reports (the host limit held, every page was
//! crawled once) and exits non-zero if not.
//!
//! Run: `cargo run --release --example crawler`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use velocity_async as va;

/// Pages on the site.
const PAGES: usize = 60;
/// Jobs of one level running at once.
const FAN_OUT: usize = 16;
/// Requests in flight to the host at once.
const PER_HOST: usize = 4;
/// What each request costs the server.
const LATENCY: Duration = Duration::from_millis(2);
const SERVER_THREADS: usize = 8;

/// Page `i` links to three others; every page is reachable from page 0.
fn links_of(i: usize) -> [usize; 3] {
    [(i + 1) % PAGES, (i * 7 + 3) % PAGES, (i * 13 + 5) % PAGES]
}

/// What the server saw.
#[derive(Default)]
struct Hits {
    per_path: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// Serves the site; `broken` answers 500.
fn serve(request: tiny_http::Request, hits: &Hits, broken: Option<usize>) {
    let now = hits.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    hits.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let path = request.url().to_string();
    *hits
        .per_path
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default() += 1;
    std::thread::sleep(LATENCY);
    let page = path
        .strip_prefix("/page/")
        .and_then(|n| n.parse::<usize>().ok());
    let (status, body) = match page {
        Some(i) if Some(i) == broken => (500, "internal error".to_string()),
        Some(i) if i < PAGES => {
            let links: String = links_of(i)
                .iter()
                .map(|l| format!("<a href=\"/page/{l}\">{l}</a> "))
                .collect();
            (200, format!("<h1>page {i}</h1>{links}"))
        }
        _ => (404, "not found".to_string()),
    };
    hits.in_flight.fetch_sub(1, Ordering::SeqCst);
    let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(status));
}

/// A local site: its base URL, what it saw, and how to stop it.
struct Site {
    base: String,
    hits: Arc<Hits>,
    server: Arc<tiny_http::Server>,
    handlers: Vec<std::thread::JoinHandle<()>>,
}

impl Site {
    fn start(broken: Option<usize>) -> Site {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind a local port"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let hits = Arc::new(Hits::default());
        let handlers = (0..SERVER_THREADS)
            .map(|_| {
                let (server, hits) = (server.clone(), hits.clone());
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        serve(request, &hits, broken);
                    }
                })
            })
            .collect();
        Site {
            base: format!("http://127.0.0.1:{port}"),
            hits,
            server,
            handlers,
        }
    }

    fn stop(self) {
        // `unblock` releases one thread blocked in `recv`: once per handler.
        for _ in &self.handlers {
            self.server.unblock();
        }
        for h in self.handlers {
            let _ = h.join();
        }
    }
}

/// Why a crawl stopped. `Clone`: a shared fetch hands its outcome to every
/// job that asked.
#[derive(Clone, Debug)]
enum CrawlError {
    /// The server failed: fatal, the crawl stops.
    Fatal { path: String, status: u16 },
    /// The network or the body failed.
    Io(String),
    /// The crate's own: a panic in a job, or a cancelled wait.
    Va(va::Error),
}

impl From<va::Error> for CrawlError {
    fn from(e: va::Error) -> Self {
        CrawlError::Va(e)
    }
}

impl std::fmt::Display for CrawlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrawlError::Fatal { path, status } => write!(f, "HTTP {status} at {path}"),
            CrawlError::Io(e) => write!(f, "I/O: {e}"),
            CrawlError::Va(e) => write!(f, "{e}"),
        }
    }
}

/// What a crawl found.
struct Report {
    crawled: HashSet<String>,
    /// Links followed: jobs started, duplicates included.
    followed: usize,
    /// Jobs whose fetch another job's call answered.
    shared: usize,
    levels: usize,
    took: Duration,
}

struct Crawler {
    base: String,
    agent: ureq::Agent,
    per_host: va::Semaphore,
    fetches: va::Singleflight<String, Result<Arc<str>, CrawlError>>,
    crawled: Mutex<HashSet<String>>,
    followed: AtomicUsize,
    called: AtomicUsize,
}

impl Crawler {
    fn new(base: &str) -> Crawler {
        Crawler {
            base: base.to_string(),
            agent: ureq::Agent::new_with_defaults(),
            per_host: va::Semaphore::new(PER_HOST),
            fetches: va::Singleflight::new(),
            crawled: Mutex::new(HashSet::new()),
            followed: AtomicUsize::new(0),
            called: AtomicUsize::new(0),
        }
    }

    /// One GET, holding one of the host's permits. Waiting for a permit
    /// ends with the group's error once a sibling failed.
    fn get(&self, path: &str) -> Result<Arc<str>, CrawlError> {
        self.called.fetch_add(1, Ordering::Relaxed);
        let _permit = self.per_host.acquire(1)?;
        match self.agent.get(format!("{}{path}", self.base)).call() {
            Ok(mut response) => {
                let body = response
                    .body_mut()
                    .read_to_string()
                    .map_err(|e| CrawlError::Io(e.to_string()))?;
                Ok(Arc::from(body))
            }
            Err(ureq::Error::StatusCode(status)) => Err(CrawlError::Fatal {
                path: path.to_string(),
                status,
            }),
            Err(e) => Err(CrawlError::Io(e.to_string())),
        }
    }

    /// Follows one link: fetches the page (shared with any job fetching it
    /// now) and, if this is the first time the page was crawled, returns its
    /// links.
    fn follow(&self, path: &str) -> Result<Vec<String>, CrawlError> {
        self.followed.fetch_add(1, Ordering::Relaxed);
        let body = self.fetches.run(&path.to_string(), || self.get(path))??;
        if !self.crawled.lock().unwrap().insert(path.to_string()) {
            return Ok(Vec::new());
        }
        Ok(body
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_string)
            .collect())
    }

    /// Crawls from `start`, level by level: each level's links are followed
    /// by a `group_n`; the first error ends the crawl. The report, and the
    /// error that ended it early, if one did.
    fn crawl(self, start: &str) -> (Report, Result<(), CrawlError>) {
        let began = Instant::now();
        let mut frontier = vec![start.to_string()];
        let mut levels = 0;
        while !frontier.is_empty() {
            levels += 1;
            let next = Mutex::new(Vec::new());
            let outcome = va::group_n(FAN_OUT, |g| {
                for path in &frontier {
                    let (me, next) = (&self, &next);
                    g.go(move || {
                        let links = me.follow(path)?;
                        next.lock().unwrap().extend(links);
                        Ok(())
                    });
                }
                Ok(())
            });
            let crawled = self.crawled.lock().unwrap().clone();
            frontier = next
                .into_inner()
                .unwrap()
                .into_iter()
                .filter(|p| !crawled.contains(p))
                .collect();
            if outcome.is_err() {
                return (self.report(levels, began), outcome);
            }
        }
        (self.report(levels, began), Ok(()))
    }

    fn report(&self, levels: usize, began: Instant) -> Report {
        let followed = self.followed.load(Ordering::Relaxed);
        Report {
            crawled: self.crawled.lock().unwrap().clone(),
            followed,
            shared: followed.saturating_sub(self.called.load(Ordering::Relaxed)),
            levels,
            took: began.elapsed(),
        }
    }
}

fn fail(why: String) -> ! {
    eprintln!("crawler example: {why}");
    std::process::exit(1);
}

fn main() {
    println!(
        "A site of {PAGES} pages (each links to 3; {} ms per request), crawled with \
         group_n({FAN_OUT}), a Semaphore({PER_HOST}) for the host and a Singleflight per URL.\n",
        LATENCY.as_millis()
    );

    // 1. The whole site.
    let site = Site::start(None);
    let (report, outcome) = Crawler::new(&site.base).crawl("/page/0");
    if let Err(e) = outcome {
        fail(format!("the healthy site failed: {e}"));
    }
    let hits = &site.hits;
    let requests: usize = hits.per_path.lock().unwrap().values().sum();
    let most = hits.most_in_flight.load(Ordering::SeqCst);
    println!(
        "whole site: {} pages in {} levels, {:.1?}",
        report.crawled.len(),
        report.levels,
        report.took
    );
    println!(
        "  links followed: {}, requests the server saw: {requests}, fetches shared by Singleflight: {}",
        report.followed, report.shared
    );
    println!("  most requests in flight at once: {most} (the host's limit: {PER_HOST})");
    if report.crawled.len() != PAGES {
        fail(format!("crawled {} of {PAGES} pages", report.crawled.len()));
    }
    if most > PER_HOST {
        fail(format!(
            "{most} requests in flight, above the limit of {PER_HOST}"
        ));
    }
    if requests > report.followed {
        fail(format!(
            "{requests} requests for {} links followed",
            report.followed
        ));
    }
    site.stop();

    // 2. A page that answers 500: the first fatal error cancels the crawl.
    let broken = 17;
    let site = Site::start(Some(broken));
    match Crawler::new(&site.base).crawl("/page/0") {
        (r, Ok(())) => fail(format!(
            "the broken site was crawled whole ({} pages)",
            r.crawled.len()
        )),
        (report, Err(e)) => {
            println!(
                "\nsite with /page/{broken} broken: stopped at the first fatal error ({e}) \
                 after {} pages in {} levels, {:.1?}",
                report.crawled.len(),
                report.levels,
                report.took
            );
            if !matches!(&e, CrawlError::Fatal { status: 500, path } if *path == format!("/page/{broken}"))
            {
                fail(format!("stopped by {e}, not by the broken page"));
            }
            if report.crawled.len() >= PAGES {
                fail("the crawl went on after the fatal error".to_string());
            }
        }
    }
    site.stop();
}
