//! A dashboard service on a real SQLite database: the seed's own example.
//!
//! ```text
//! cargo run --release --example dashboard            # serve, load itself, print, exit
//! cargo run --release --example dashboard -- --serve # keep serving for a browser
//! ```
//!
//! At start it seeds a database file (users, posts, notifications, daily
//! stats) and serves it over HTTP (tiny_http). `/dashboard/<user>` loads the
//! four panels of a user's dashboard with `va::all` — each panel borrows the
//! connection pool from the handler's stack and runs its query on the pool;
//! `/dashboard-seq/<user>` runs the same four queries one after another. Then it loads itself with a real HTTP client (ureq) from one and
//! from four client threads and prints p50/p99 latency and throughput for
//! both handlers.
//!
//! The queries are real SQLite work (indexed look-ups and scans of tens of
//! thousands of rows), so they use the CPU: with one client, the parallel
//! handler's latency is about the slowest panel instead of the sum; with
//! more clients than CPUs, both handlers saturate the two cores and
//! throughput is about the same — concurrency cannot make CPU work cheaper.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use velocity_async as va;

const USERS: u32 = 2_000;
const POSTS: u32 = 60_000;
const NOTIFICATIONS: u32 = 120_000;
const DAYS: u32 = 60;
const SERVER_THREADS: usize = 8;

/// A handful of SQLite connections to one database file, lent out one per
/// query (a `Connection` may move between threads but not be shared).
struct Db {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Db {
    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> rusqlite::Result<R> {
        let conn = self.idle.lock().unwrap().pop();
        let conn = match conn {
            Some(c) => c,
            None => Connection::open(&self.path)?,
        };
        let result = f(&conn);
        self.idle.lock().unwrap().push(conn);
        result
    }
}

/// Why a dashboard could not be built: a query failed, or a panel's job
/// panicked (`va::all` reports that as a `va::Error`).
enum PanelError {
    Db(rusqlite::Error),
    Job(va::Error),
}

impl std::fmt::Display for PanelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PanelError::Db(e) => write!(f, "query failed: {e}"),
            PanelError::Job(e) => write!(f, "panel failed: {e}"),
        }
    }
}

impl From<rusqlite::Error> for PanelError {
    fn from(e: rusqlite::Error) -> Self {
        PanelError::Db(e)
    }
}

impl From<va::Error> for PanelError {
    fn from(e: va::Error) -> Self {
        PanelError::Job(e)
    }
}

fn seed(path: &std::path::Path) -> rusqlite::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, joined INTEGER);
         CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER, title TEXT,
                             likes INTEGER, created INTEGER);
         CREATE INDEX posts_user ON posts(user_id);
         CREATE TABLE notifications (id INTEGER PRIMARY KEY, user_id INTEGER, kind TEXT,
                                     read INTEGER, created INTEGER);
         CREATE INDEX notifications_user ON notifications(user_id, read);
         CREATE TABLE stats (day INTEGER, user_id INTEGER, views INTEGER, clicks INTEGER);
         CREATE INDEX stats_user ON stats(user_id);",
    )?;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move |n: u32| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as i64
    };
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4)")?;
        for id in 0..USERS {
            insert.execute(params![
                id,
                format!("user{id}"),
                format!("user{id}@example.com"),
                rand(DAYS * 10)
            ])?;
        }
        let mut insert = tx.prepare("INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for id in 0..POSTS {
            insert.execute(params![
                id,
                rand(USERS),
                format!("post {id}"),
                rand(1_000),
                rand(DAYS)
            ])?;
        }
        let mut insert = tx.prepare("INSERT INTO notifications VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for id in 0..NOTIFICATIONS {
            let kind = ["like", "follow", "mention"][rand(3) as usize];
            insert.execute(params![id, rand(USERS), kind, rand(2), rand(DAYS)])?;
        }
        let mut insert = tx.prepare("INSERT INTO stats VALUES (?1, ?2, ?3, ?4)")?;
        for day in 0..DAYS {
            for user in 0..USERS {
                insert.execute(params![day, user, rand(500), rand(50)])?;
            }
        }
    }
    tx.commit()
}

// The four panels. Each is one or two real queries.

fn profile(db: &Db, user: u32) -> rusqlite::Result<String> {
    db.with(|c| {
        c.query_row(
            "SELECT name, email, joined, (SELECT COUNT(*) FROM posts WHERE user_id = ?1)
             FROM users WHERE id = ?1",
            [user],
            |r| {
                Ok(format!(
                    r#"{{"name":"{}","email":"{}","joined":{},"posts":{}}}"#,
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?
                ))
            },
        )
    })
}

fn trending(db: &Db) -> rusqlite::Result<String> {
    db.with(|c| {
        let mut q = c.prepare_cached(
            "SELECT p.title, p.likes, u.name FROM posts p JOIN users u ON u.id = p.user_id
             WHERE p.created >= ?1 ORDER BY p.likes DESC, p.id LIMIT 5",
        )?;
        let rows = q.query_map([DAYS - 7], |r| {
            Ok(format!(
                r#"{{"title":"{}","likes":{},"by":"{}"}}"#,
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?
            ))
        })?;
        Ok(format!(
            "[{}]",
            rows.collect::<rusqlite::Result<Vec<_>>>()?.join(",")
        ))
    })
}

fn notifications(db: &Db, user: u32) -> rusqlite::Result<String> {
    db.with(|c| {
        let unread: i64 = c.query_row(
            "SELECT COUNT(*) FROM notifications WHERE user_id = ?1 AND read = 0",
            [user],
            |r| r.get(0),
        )?;
        // Site-wide activity by kind over the last week: a scan.
        let mut q = c.prepare_cached(
            "SELECT kind, COUNT(*) FROM notifications WHERE created >= ?1 GROUP BY kind ORDER BY kind",
        )?;
        let kinds = q
            .query_map([DAYS - 7], |r| Ok(format!(r#""{}":{}"#, r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(format!(r#"{{"unread":{unread},"site_week":{{{}}}}}"#, kinds.join(",")))
    })
}

fn stats(db: &Db, user: u32) -> rusqlite::Result<String> {
    db.with(|c| {
        let (views, clicks): (i64, i64) = c.query_row(
            "SELECT SUM(views), SUM(clicks) FROM stats WHERE user_id = ?1 AND day >= ?2",
            params![user, DAYS - 30],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // The site average over the same days: a scan of the whole table.
        let average: f64 = c.query_row(
            "SELECT AVG(views) FROM stats WHERE day >= ?1",
            [DAYS - 30],
            |r| r.get(0),
        )?;
        Ok(format!(
            r#"{{"views":{views},"clicks":{clicks},"site_avg_views":{average:.1}}}"#
        ))
    })
}

fn render(panels: (String, String, String, String)) -> String {
    let (profile, trending, notifications, stats) = panels;
    format!(
        r#"{{"profile":{profile},"trending":{trending},"notifications":{notifications},"stats":{stats}}}"#
    )
}

/// The four panels at once with `va::all` (the seed's own example): each
/// job borrows `db` from this stack frame, and the typed tuple of their
/// results comes back in order.
fn dashboard_parallel(db: &Db, user: u32) -> Result<String, PanelError> {
    let (user_panel, trending_panel, notifications_panel, stats_panel) = va::all((
        || profile(db, user),
        || trending(db),
        || notifications(db, user),
        || stats(db, user),
    ))?; // a panel that panicked
    Ok(render((
        user_panel?,
        trending_panel?,
        notifications_panel?,
        stats_panel?,
    )))
}

/// The same four queries, one after another.
fn dashboard_sequential(db: &Db, user: u32) -> Result<String, PanelError> {
    Ok(render((
        profile(db, user)?,
        trending(db)?,
        notifications(db, user)?,
        stats(db, user)?,
    )))
}

const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>velocity-async dashboard</title>
<h1>Dashboard</h1><p>Panels loaded with <code>va::all</code>:</p><pre id="out">loading…</pre>
<script>fetch('/dashboard/'+Math.floor(Math.random()*2000)).then(r=>r.text()).then(t=>
document.getElementById('out').textContent=JSON.stringify(JSON.parse(t),null,2))</script>"#;

fn handle(db: &Db, request: tiny_http::Request) {
    let url = request.url().to_string();
    let user = |prefix: &str| url.strip_prefix(prefix).and_then(|u| u.parse::<u32>().ok());
    let (status, body, html) = if let Some(u) = user("/dashboard/") {
        match dashboard_parallel(db, u) {
            Ok(json) => (200, json, false),
            Err(e) => (500, e.to_string(), false),
        }
    } else if let Some(u) = user("/dashboard-seq/") {
        match dashboard_sequential(db, u) {
            Ok(json) => (200, json, false),
            Err(e) => (500, e.to_string(), false),
        }
    } else if url == "/" {
        (200, PAGE.to_string(), true)
    } else {
        (404, "not found".to_string(), false)
    };
    let kind = if html {
        "text/html"
    } else {
        "application/json"
    };
    let header = tiny_http::Header::from_bytes("Content-Type", kind).expect("valid header");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header);
    let _ = request.respond(response);
}

struct Load {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// `clients` threads, each sending `requests` GETs to `path<user>`.
fn load(base: &str, path: &str, clients: usize, requests: usize) -> Load {
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let agent = ureq::Agent::new_with_defaults();
                    (0..requests)
                        .map(|i| {
                            let user = (c * 7919 + i * 104_729) as u32 % USERS;
                            let t = Instant::now();
                            let body = agent
                                .get(format!("{base}{path}{user}"))
                                .call()
                                .expect("request")
                                .body_mut()
                                .read_to_string()
                                .expect("body");
                            assert!(body.starts_with(r#"{"profile":"#), "{body}");
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let wall = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Load {
        p50: at(0.50),
        p99: at(0.99),
        per_second: latencies.len() as f64 / wall.as_secs_f64(),
    }
}

fn main() {
    let serve = std::env::args().any(|a| a == "--serve");
    let path = std::env::temp_dir().join(format!("velocity-dashboard-{}.db", std::process::id()));
    let t = Instant::now();
    seed(&path).expect("seed the database");
    println!(
        "Seeded {} ({USERS} users, {POSTS} posts, {NOTIFICATIONS} notifications, {} stats rows) in {:.1?}",
        path.display(),
        DAYS * USERS,
        t.elapsed()
    );
    let db = Arc::new(Db {
        path: path.clone(),
        idle: Mutex::new(Vec::new()),
    });

    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let base = format!("http://127.0.0.1:{port}");
    let stopping = Arc::new(AtomicBool::new(false));
    let handlers: Vec<_> = (0..SERVER_THREADS)
        .map(|_| {
            let (server, db, stopping) = (server.clone(), db.clone(), stopping.clone());
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    handle(&db, request);
                }
            })
        })
        .collect();

    // One request of each kind, timed panel by panel, to show the parts.
    let mut parts = String::new();
    for (name, f) in [
        (
            "profile",
            &(|| profile(&db, 42)) as &dyn Fn() -> rusqlite::Result<String>,
        ),
        ("trending", &|| trending(&db)),
        ("notifications", &|| notifications(&db, 42)),
        ("stats", &|| stats(&db, 42)),
    ] {
        f().expect("warm-up query");
        let t = Instant::now();
        f().expect("query");
        let _ = write!(parts, "{name} {:.2?}, ", t.elapsed());
    }
    println!(
        "One panel each, sequentially: {}",
        parts.trim_end_matches(", ")
    );

    if serve {
        println!("Serving {base}/ (dashboard: {base}/dashboard/42, sequential: {base}/dashboard-seq/42). Ctrl-C stops.");
        for h in handlers {
            let _ = h.join();
        }
        return;
    }

    println!(
        "\n| handler | clients | requests | p50 | p99 | requests/s |\n|---|---|---|---|---|---|"
    );
    for clients in [1, 4] {
        let requests = if clients == 1 { 200 } else { 100 };
        for (name, route) in [
            ("va::all (parallel)", "/dashboard/"),
            ("sequential", "/dashboard-seq/"),
        ] {
            let _ = load(&base, route, clients, 10); // warm-up
            let l = load(&base, route, clients, requests);
            println!(
                "| {name} | {clients} | {} | {:.2?} | {:.2?} | {:.0} |",
                clients * requests,
                l.p50,
                l.p99,
                l.per_second
            );
        }
    }
    let stats = va::stats();
    println!(
        "\nPool: {} threads alive now (idle ones retire after the 10 s keep-alive), \
         {} jobs completed, {} panicked.",
        stats.threads_alive, stats.completed, stats.panicked
    );

    stopping.store(true, Ordering::Release);
    // `unblock` releases one thread blocked in `recv`: once per handler.
    for _ in &handlers {
        server.unblock();
    }
    for h in handlers {
        let _ = h.join();
    }
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
