//! The optional features: `crossbeam-channel` (`Context::done_receiver`),
//! `log` and `tracing` (panics recovered without a handler; job spans).
//! Run with `cargo test --all-features --test features` (in `.ci/run`).

#![cfg(any(feature = "crossbeam-channel", feature = "log", feature = "tracing"))]

mod common;

#[cfg(feature = "crossbeam-channel")]
mod done_receiver {
    use std::time::Duration;

    use super::common::within;
    use crossbeam_channel::{select, RecvTimeoutError};
    use velocity_async::{self as va, Context};

    #[test]
    fn closes_when_cancelled_and_wakes_a_blocked_receiver() {
        within(60, || {
            let ctx = Context::new();
            let done = ctx.done_receiver();
            let blocked = std::thread::spawn(move || done.recv());
            ctx.cancel();
            assert!(blocked.join().unwrap().is_err(), "closed, nothing sent");
        });
    }

    #[test]
    fn closes_at_the_deadline_inside_select() {
        within(60, || {
            let ctx = Context::with_timeout(Duration::from_millis(10));
            let (_tx, never_sent) = crossbeam_channel::bounded::<u32>(0);
            let which = select! {
                recv(never_sent) -> _ => "work",
                recv(ctx.done_receiver()) -> _ => "done",
            };
            assert_eq!(which, "done");
            assert!(ctx.error().unwrap().is_timeout());
        });
    }

    #[test]
    fn a_done_context_gives_a_closed_receiver_and_clones_close_together() {
        within(60, || {
            let ctx = Context::new();
            ctx.cancel();
            assert!(ctx.done_receiver().try_recv().is_err());

            let ctx = Context::new();
            let a = ctx.done_receiver();
            let b = a.clone();
            assert_eq!(a.try_recv(), Err(crossbeam_channel::TryRecvError::Empty));
            ctx.cancel();
            assert_eq!(a.recv(), Err(crossbeam_channel::RecvError));
            assert_eq!(b.recv(), Err(crossbeam_channel::RecvError));
        });
    }

    #[test]
    fn a_context_that_is_never_done_never_closes() {
        within(60, || {
            let background = Context::current();
            let rx = background.done_receiver();
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(20)),
                Err(RecvTimeoutError::Timeout)
            );
        });
    }

    #[test]
    fn a_task_sees_its_timeout_through_the_receiver() {
        within(60, || {
            let task = va::run_with_timeout(Duration::from_millis(10), || {
                Context::current().done_receiver().recv().is_err()
            });
            assert!(task.get().unwrap_err().is_timeout());
        });
    }
}

#[cfg(feature = "log")]
mod log_feature {
    use std::sync::Mutex;

    use super::common::{eventually, within};
    use velocity_async as va;

    static RECORDS: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let message = record.args().to_string();
            let panics = message.contains(LOGGER_PANICS);
            RECORDS
                .lock()
                .unwrap()
                .push((record.level(), record.target().to_string(), message));
            // A logger is user code too: this one panics on cue.
            assert!(!panics, "the logger panics");
        }
        fn flush(&self) {}
    }

    /// A recovered panic with this message makes the logger panic.
    const LOGGER_PANICS: &str = "make the logger panic";

    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            log::set_logger(&Capture).unwrap();
            log::set_max_level(log::LevelFilter::Trace);
        });
    }

    /// Regression (#11): the report ran outside `catch_unwind`, so a
    /// panicking logger unwound through the worker; inside a loop's helper
    /// the count-down was skipped and the caller of `map` hung.
    #[test]
    fn a_panicking_logger_kills_no_worker_and_hangs_no_loop() {
        within(60, || {
            install();
            let pool = va::Pool::builder().max_threads(2).build();
            let r = pool.install(|| {
                va::map(0..8, |i| {
                    if i % 2 == 1 {
                        panic!("{LOGGER_PANICS}");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    i
                })
            });
            assert!(r.unwrap_err().is_panic());
            pool.go(|| panic!("{LOGGER_PANICS}"));
            // Both threads are still there and still run jobs.
            super::common::run_all_at_once(&pool, 2);
            assert!(eventually(20, || pool.stats().threads_running == 0));
        });
    }

    #[test]
    fn a_recovered_panic_without_a_handler_is_logged_once() {
        within(60, || {
            install();
            va::go(|| panic!("logged boom"));
            let logged = || {
                RECORDS
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(level, target, msg)| {
                        *level == log::Level::Error
                            && target == "velocity_async"
                            && msg.contains("logged boom")
                    })
                    .count()
            };
            assert!(eventually(30, || logged() > 0));
            assert_eq!(logged(), 1);
        });
    }
}

#[cfg(feature = "tracing")]
mod tracing_feature {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use super::common::{eventually, within};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};
    use velocity_async as va;

    static SPANS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// A minimal subscriber that records span names with their `kind`, and
    /// error events' messages.
    struct Capture(AtomicU64);

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={:?} ", field.name(), value));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut fields = Fields(format!("{} ", span.metadata().name()));
            span.record(&mut fields);
            SPANS.lock().unwrap().push(fields.0);
            Id::from_u64(self.0.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() == tracing::Level::ERROR {
                let mut fields = Fields(String::new());
                event.record(&mut fields);
                EVENTS.lock().unwrap().push(fields.0);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn jobs_run_in_spans_and_unhandled_panics_are_error_events() {
        within(60, || {
            tracing::subscriber::set_global_default(Capture(AtomicU64::new(0))).unwrap();
            va::run(|| ()).get().unwrap();
            va::task().name("traced.job").run(|| ()).get().unwrap();
            va::go(|| panic!("traced boom"));
            let saw = |log: &Mutex<Vec<String>>, needle: &str| {
                log.lock().unwrap().iter().any(|s| s.contains(needle))
            };
            assert!(saw(&SPANS, "velocity_async::job kind=\"task\""));
            assert!(saw(&SPANS, "name=\"traced.job\""));
            assert!(eventually(30, || saw(&SPANS, "kind=\"go\"")));
            assert!(eventually(30, || saw(&EVENTS, "traced boom")));
        });
    }
}
