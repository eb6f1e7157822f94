//! Compile-time guarantees, proved by `compile_fail` doctests (run with
//! `cargo test --doc`). Each block below must *not* compile.
//!
//! A background task cannot borrow from the stack that spawned it (`run`
//! returns before the work ends, so the work must be `'static`):
//!
//! ```compile_fail,E0373
//! let name = String::from("ada");
//! let task = velocity_async::run(|| name.len()); // `name` does not live long enough
//! drop(name);
//! task.get().unwrap();
//! ```
//!
//! Nor can a race's jobs, which outlive the call:
//!
//! ```compile_fail,E0373
//! let local = vec![1, 2, 3];
//! let _ = velocity_async::race((|| local.len(),));
//! ```
//!
//! `all` may borrow, but what it returns cannot outlive what it borrowed:
//!
//! ```compile_fail,E0597
//! let out;
//! {
//!     let local = String::from("short-lived");
//!     out = velocity_async::all((|| local.as_str(),)).unwrap().0;
//! }
//! println!("{out}");
//! ```
//!
//! A closure that is not `Send` is refused, by every entry point:
//!
//! ```compile_fail,E0277
//! let rc = std::rc::Rc::new(1);
//! let _ = velocity_async::run(move || *rc);
//! ```
//!
//! ```compile_fail,E0277
//! let rc = std::rc::Rc::new(1);
//! let _ = velocity_async::all((move || *rc, || 2));
//! ```
//!
//! ```compile_fail,E0277
//! let rc = std::rc::Rc::new(1);
//! velocity_async::go(move || drop(rc));
//! ```
//!
//! Items that are not `Send` cannot cross to other threads:
//!
//! ```compile_fail,E0277
//! let items = vec![std::rc::Rc::new(1), std::rc::Rc::new(2)];
//! let _ = velocity_async::map(items, |x| *x);
//! ```
//!
//! A shared `f` must be `Sync` (it runs on many threads at once):
//!
//! ```compile_fail,E0277
//! let cell = std::cell::Cell::new(0);
//! velocity_async::for_each(0..10, 2, |i| cell.set(i)).unwrap();
//! ```
//!
//! A `Task<T>` is `Send` only if `T` is (it hands its `T` to whoever holds
//! it), and `Sync` only if `T` is `Send`:
//!
//! ```compile_fail,E0277
//! fn send<S: Send>() {}
//! send::<velocity_async::Task<std::rc::Rc<u8>>>();
//! ```
//!
//! ```compile_fail,E0277
//! fn sync<S: Sync>() {}
//! sync::<velocity_async::Task<std::rc::Rc<u8>>>();
//! ```
//!
//! ```
//! fn both<S: Send + Sync + Unpin>() {}
//! both::<velocity_async::Task<std::cell::Cell<u8>>>(); // Cell is Send, not Sync
//! ```
//!
//! A `scope`'s or `group`'s job may borrow only what outlives the call, not
//! a local of the closure, which ends before the jobs are waited for:
//!
//! ```compile_fail,E0597
//! velocity_async::scope(|s| {
//!     let local = vec![1, 2, 3];
//!     s.spawn(|| local.len());
//! });
//! ```
//!
//! ```compile_fail,E0597
//! let _: Result<(), velocity_async::Error> = velocity_async::group(|g| {
//!     let local = vec![1, 2, 3];
//!     g.go(|| {
//!         let _ = local.len();
//!         Ok(())
//!     });
//!     Ok(())
//! });
//! ```
//!
//! A `ScopedTask` (and the `Scope` itself) cannot leave the closure:
//!
//! ```compile_fail
//! let task = velocity_async::scope(|s| s.spawn(|| 1));
//! task.join().unwrap();
//! ```
//!
//! Two jobs cannot both borrow the same data mutably:
//!
//! ```compile_fail,E0499
//! let mut n = 0;
//! velocity_async::scope(|s| {
//!     s.spawn(|| n += 1);
//!     s.spawn(|| n += 1);
//! });
//! ```
//!
//! `group` needs an error type the crate's errors convert into:
//!
//! ```compile_fail,E0277
//! struct Mine;
//! let _: Result<(), Mine> = velocity_async::group(|_| Ok(()));
//! ```
//!
//! A `TaskSet`'s tasks are `'static` like `run`'s:
//!
//! ```compile_fail,E0373
//! let name = String::from("ada");
//! let mut set = velocity_async::TaskSet::new();
//! set.spawn(|| name.len());
//! drop(name);
//! ```
//!
//! And, for contrast, the borrowing forms that are sound do compile:
//!
//! ```
//! let mut total = 0;
//! let words = vec!["a", "bb"];
//! let (n, ()) = velocity_async::all((|| words.len(), || total += 1)).unwrap();
//! assert_eq!((n, total), (2, 1));
//! let lens = velocity_async::map(&words, |w| w.len()).unwrap();
//! assert_eq!(lens, [1, 2]);
//! ```
