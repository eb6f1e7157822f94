//! The task builder (`va::task()`, `Pool::task()`): names in panic reports,
//! thread names, `Pool::running_tasks`; timeout, context and pool options.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, within, Gate};
use velocity_async::{self as va, Context, Pool};

/// What the panic handler saw: the task's name, the message.
type Report = (Option<String>, String);

#[test]
fn a_named_panic_carries_the_name_to_get_and_to_the_handler() {
    within(60, || {
        let seen: Arc<Mutex<Vec<Report>>> = Arc::default();
        let s = seen.clone();
        va::set_panic_handler(move |p| {
            s.lock()
                .unwrap()
                .push((p.task_name().map(String::from), p.message().to_string()));
        });
        let err = va::task()
            .name("billing.charge")
            .run(|| -> u8 { panic!("card declined") })
            .get()
            .unwrap_err();
        let p = err.as_panic().unwrap();
        assert_eq!(p.task_name(), Some("billing.charge"));
        assert_eq!(p.message(), "card declined");
        assert_eq!(
            err.to_string(),
            "task 'billing.charge' panicked: card declined"
        );

        va::task().name("mailer.send").go(|| panic!("smtp down"));
        assert!(eventually(30, || seen
            .lock()
            .unwrap()
            .contains(&(Some("mailer.send".into()), "smtp down".into()))));
        assert!(seen
            .lock()
            .unwrap()
            .contains(&(Some("billing.charge".into()), "card declined".into())));

        // Unnamed work keeps the plain report.
        let err = va::run(|| -> u8 { panic!("plain") }).get().unwrap_err();
        assert_eq!(err.as_panic().unwrap().task_name(), None);
        assert_eq!(err.to_string(), "task panicked: plain");
    });
}

#[test]
fn running_tasks_lists_named_work_while_it_runs_even_after_a_timeout() {
    within(60, || {
        let pool = Pool::builder().build();
        let gate = Gate::new();
        let (started_tx, started) = mpsc::channel();
        let g = gate.clone();
        let before = Instant::now();
        let task = pool
            .task()
            .name("report.nightly")
            .timeout(Duration::from_millis(10))
            .run(move || {
                started_tx.send(()).unwrap();
                g.wait();
            });
        let _unnamed = pool.run({
            let g = gate.clone();
            move || g.wait()
        });
        started.recv().unwrap();
        assert!(task.get().unwrap_err().is_timeout());
        // The task timed out; its work goes on, listed by name.
        let running = pool.running_tasks();
        assert_eq!(running.len(), 1, "only named work is listed");
        assert_eq!(running[0].name(), "report.nightly");
        // Started after `before`, still running now.
        assert!(running[0].running_for() <= before.elapsed());
        gate.open();
        assert!(pool.shutdown(Duration::from_secs(30)).is_complete());
        assert!(pool.running_tasks().is_empty());
    });
}

#[cfg(target_os = "linux")]
fn kernel_thread_name() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_shows_the_task_name_while_it_runs_then_its_own() {
    within(60, || {
        let pool = Pool::builder().thread_name("va-named").build();
        let during = pool
            .task()
            .name("import.customers.2026")
            .run(kernel_thread_name)
            .get()
            .unwrap();
        assert_eq!(during, "import.customer", "Linux keeps the first 15 bytes");
        // Every worker is back to the pool's name once named work ends.
        let after = pool.run(kernel_thread_name).get().unwrap();
        assert_eq!(after, "va-named");
    });
}

#[test]
fn options_combine_timeout_context_and_pool() {
    within(60, || {
        let pool = Pool::builder().thread_name("opts").build();
        let ctx = Context::new();
        let gate = Gate::new();
        let g = gate.clone();
        let task = va::task()
            .pool(&pool)
            .context(&ctx)
            .timeout(Duration::from_secs(60))
            .name("opts.job")
            .run(move || {
                g.wait();
                std::thread::current().name().map(String::from)
            });
        ctx.cancel();
        assert!(task.get().unwrap_err().is_cancelled());
        gate.open();

        let on_pool = va::task()
            .pool(&pool)
            .run(|| std::thread::current().name().map(String::from));
        assert_eq!(on_pool.get().unwrap().as_deref(), Some("opts"));

        // Zero and huge timeouts, as run_with_timeout.
        let never = va::task().timeout(Duration::ZERO).run(|| unreachable!());
        assert!(never.get().unwrap_err().is_timeout());
        let huge = va::task().timeout(Duration::MAX).run(|| 5);
        assert_eq!(huge.get().unwrap(), 5);
    });
}

#[test]
fn a_named_go_job_sees_its_deadline() {
    within(60, || {
        let (tx, rx) = mpsc::channel();
        va::task()
            .name("sweeper")
            .timeout(Duration::from_millis(5))
            .go(move || {
                Context::current().wait();
                tx.send(Context::current().error().unwrap().is_timeout())
                    .unwrap();
            });
        assert!(rx.recv().unwrap());
    });
}
