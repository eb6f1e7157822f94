//! Cancellation and deadlines: Go's `context.Context`, for threads.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::sync::{AtomicU8, Condvar, Mutex, MutexGuard};
use crate::timer::{self, Expire, TimerKey};

/// The first failure (in time) of a call whose failures cancel its
/// context (`all_with_error`, `group`): the first is kept and cancels the
/// context, so the siblings can stop early; later ones are dropped.
pub(crate) struct FirstError<E>(Mutex<Option<E>>);

impl<E> FirstError<E> {
    pub(crate) fn new() -> Self {
        FirstError(Mutex::new(None))
    }

    /// Records `e` if it is the first, then cancels `ctx`; else drops it
    /// (its `Drop` is user code: never under the lock, never unwinding).
    pub(crate) fn fail(&self, ctx: &Context, e: E) {
        let mut first = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
            drop(first);
            ctx.cancel();
        } else {
            drop(first);
            crate::panic::drop_quietly(e);
        }
    }

    pub(crate) fn take(&self) -> Option<E> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Why a context is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// [`Context::cancel`] (or a combinator) cancelled it.
    Cancelled,
    /// Its deadline passed.
    Deadline,
}

impl Reason {
    pub(crate) fn to_error(self) -> Error {
        match self {
            Reason::Cancelled => Error::Cancelled,
            Reason::Deadline => Error::Timeout,
        }
    }
}

// The context's state. ORDERING: written once, LIVE -> CANCELLED or DEADLINE,
// with a Release CAS; read with Acquire, so whoever sees "done" also sees what
// the canceller wrote before cancelling.
const LIVE: u8 = 0;
const CANCELLED: u8 = 1;
const DEADLINE: u8 = 2;

fn encode(reason: Reason) -> u8 {
    match reason {
        Reason::Cancelled => CANCELLED,
        Reason::Deadline => DEADLINE,
    }
}

fn decode(state: u8) -> Option<Reason> {
    match state {
        LIVE => None,
        CANCELLED => Some(Reason::Cancelled),
        _ => Some(Reason::Deadline),
    }
}

/// Something to tell when a context is done (a task that resolves itself).
pub(crate) trait CancelHook: Send + Sync {
    fn on_cancel(&self, reason: Reason);
}

enum Listener {
    Child(Weak<Inner>),
    Waker(std::task::Waker),
}

#[derive(Default)]
struct Links {
    /// Children and wakers to tell when this context is done. A `None` is a
    /// free place (its index is in `free`).
    listeners: Vec<Option<Listener>>,
    free: Vec<usize>,
    /// Threads blocked in `wait*`.
    sleepers: usize,
    /// The parent (kept alive by its children, so cancellation still flows
    /// through a context nobody else holds) and this context's place in its
    /// listeners, to leave on drop.
    in_parent: Option<(Arc<Inner>, usize)>,
    timer: Option<TimerKey>,
}

impl Links {
    fn insert(&mut self, l: Listener) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.listeners[i] = Some(l);
                i
            }
            None => {
                self.listeners.push(Some(l));
                self.listeners.len() - 1
            }
        }
    }

    /// Frees place `key` and hands back what it held, for the caller to
    /// drop once the lock is released (a waker's `Drop` is user code).
    #[must_use = "drop the listener outside the lock"]
    fn remove(&mut self, key: usize) -> Option<Listener> {
        let taken = self.listeners.get_mut(key)?.take();
        if taken.is_some() {
            self.free.push(key);
        }
        taken
    }
}

pub(crate) struct Inner {
    state: AtomicU8,
    deadline: Option<Instant>,
    /// Whether something other than the work itself can cancel this context:
    /// a user-made context, a deadline, or a combinator. Waiters never run such
    /// a task inline, since they must return the moment it is cancelled.
    external: bool,
    links: Mutex<Links>,
    cond: Condvar,
    hook: Option<Weak<dyn CancelHook>>,
}

impl Expire for Inner {
    fn expire(self: Arc<Self>) {
        self.fire(Reason::Deadline);
    }
}

impl Inner {
    fn links(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reason(self: &Arc<Self>) -> Option<Reason> {
        if let Some(r) = decode(self.state.load(Ordering::Acquire)) {
            return Some(r);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => {
                self.fire(Reason::Deadline);
                decode(self.state.load(Ordering::Acquire))
            }
            _ => None,
        }
    }

    /// Marks this context and all its descendants done, wakes their waiters
    /// and tells their hooks. Iterative, so a deep chain cannot overflow the
    /// stack. Only the first call has an effect.
    pub(crate) fn fire(self: &Arc<Self>, reason: Reason) {
        let code = encode(reason);
        let mut work = vec![self.clone()];
        while let Some(ctx) = work.pop() {
            if ctx
                .state
                .compare_exchange(LIVE, code, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let (listeners, timer_key, in_parent, sleepers) = {
                let mut links = ctx.links();
                links.free.clear();
                (
                    std::mem::take(&mut links.listeners),
                    links.timer.take(),
                    links.in_parent.take(),
                    links.sleepers,
                )
            };
            // The hook first: a task resolves as timed out or cancelled before
            // its own work, woken below, can return a value.
            if let Some(hook) = ctx.hook.as_ref().and_then(Weak::upgrade) {
                hook.on_cancel(reason);
            }
            if sleepers > 0 {
                ctx.cond.notify_all();
            }
            if let Some(key) = timer_key {
                timer::cancel(key);
            }
            if let Some((parent, key)) = in_parent {
                let left = parent.links().remove(key);
                drop(left);
            }
            for l in listeners.into_iter().flatten() {
                match l {
                    Listener::Child(c) => {
                        if let Some(c) = c.upgrade() {
                            work.push(c);
                        }
                    }
                    Listener::Waker(w) => crate::panic::wake(w),
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let links = self.links.get_mut().unwrap_or_else(|e| e.into_inner());
        // Wakers nobody woke: their `Drop` is user code.
        crate::panic::drop_quietly(std::mem::take(&mut links.listeners));
        if let Some(key) = links.timer.take() {
            timer::cancel(key);
        }
        // Leave the parent; if this was the parent's last holder, it drops
        // too. Walked as a loop, so dropping the leaf of a chain 100,000 deep
        // does not recurse 100,000 times.
        let mut next = links.in_parent.take();
        while let Some((parent, key)) = next {
            let left = parent.links().remove(key);
            drop(left);
            next = Arc::into_inner(parent).and_then(|mut p| {
                p.links
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner())
                    .in_parent
                    .take()
            });
        }
    }
}

/// A cancellation signal with an optional deadline, shared by clones and
/// inherited by children: Go's `context.Context`, for threads.
///
/// A context is *done* once it is cancelled ([`cancel`](Context::cancel)), its
/// deadline passes, or its parent is done. Done is final. Cancellation flows
/// down the tree — a child is done when its parent is — never up.
///
/// Every function this crate runs gets its own context, a child of the
/// submitter's, available as [`Context::current`]. Checking it is the only way
/// to stop work early: Rust cannot kill a running thread, so a timeout or a
/// cancellation resolves the [`Task`](crate::Task) at once and *asks* the work
/// to stop; work that never checks runs to its end and its result is dropped.
///
/// Not to be confused with [`std::task::Context`].
///
/// # Cost
///
/// A context is one allocation. Registering a child with a parent takes the
/// parent's lock once; children of the never-cancelled background context
/// (what `Context::current()` returns outside any task) register nowhere.
/// Entries leave their parent and the timer when dropped, so long-lived
/// parents do not accumulate dead children.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let ctx = va::Context::new();
/// let task = va::run_with_context(&ctx, || {
///     // Long work that checks its own context now and then.
///     while !va::Context::current().is_done() {
///         std::thread::sleep(Duration::from_millis(1));
///     }
///     "stopped early"
/// });
/// ctx.cancel();
/// assert!(task.get().unwrap_err().is_cancelled());
/// ```
#[derive(Clone)]
pub struct Context {
    /// `None` is the background context: never done, cancel is a no-op.
    inner: Option<Arc<Inner>>,
}

/// A job's context that is made only when first asked for
/// ([`Context::current`], a cancel): most jobs never ask, and then cost no
/// allocation for it (`TaskCell` is the one implementor).
pub(crate) trait LazyContext: Send + Sync {
    /// The context, made now if nobody asked before; the same one every time.
    fn context(&self) -> Context;
}

/// What [`Context::current`] returns on this thread.
enum Current {
    Made(Context),
    Lazy(Arc<dyn LazyContext>),
    /// A new child of the background context, made on first ask and then
    /// kept here as `Made`: the context of a job that nothing outside it
    /// can reach (a `go` job with neither a parent nor a deadline), so this
    /// thread is the only one that could ever ask for it.
    Fresh,
}

crate::sync::thread_local_const! {
    static CURRENT: RefCell<Current> = RefCell::new(Current::Made(Context { inner: None }));
}

/// Restores the previous current context on drop.
pub(crate) struct CurrentGuard {
    previous: Current,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = std::mem::replace(&mut self.previous, Current::Made(Context::background()));
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// Makes `current` the thread's current context until the guard drops.
fn enter_current(current: Current) -> CurrentGuard {
    let previous = CURRENT
        .try_with(|c| std::mem::replace(&mut *c.borrow_mut(), current))
        .unwrap_or(Current::Made(Context::background()));
    CurrentGuard { previous }
}

impl Context {
    /// A new cancellable context with no deadline and no parent.
    ///
    /// # Example
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// assert!(!ctx.is_done());
    /// ctx.cancel();
    /// assert!(ctx.is_done());
    /// ```
    pub fn new() -> Context {
        Context::background().make_child(None, true, None)
    }

    /// A new context that is done automatically once `d` has passed.
    ///
    /// `Duration::ZERO` gives a context that is already done; a duration too
    /// large to add to `Instant::now()` (such as `Duration::MAX`) gives one
    /// with no deadline. Neither panics.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = velocity_async::Context::with_timeout(Duration::from_millis(10));
    /// assert!(!ctx.wait_timeout(Duration::ZERO));
    /// assert!(ctx.wait_timeout(Duration::from_secs(60)));
    /// assert!(ctx.error().unwrap().is_timeout());
    /// ```
    pub fn with_timeout(d: Duration) -> Context {
        Context::background().child_with_timeout(d)
    }

    /// A child of this context: done when this one is, or when cancelled
    /// itself. Cancelling the child never affects its parent.
    ///
    /// # Example
    ///
    /// ```
    /// let parent = velocity_async::Context::new();
    /// let child = parent.child();
    /// child.cancel();
    /// assert!(!parent.is_done());
    /// let child = parent.child();
    /// parent.cancel();
    /// assert!(child.is_done());
    /// ```
    pub fn child(&self) -> Context {
        self.make_child(None, true, None)
    }

    /// A child of this context that is also done once `d` has passed. Its
    /// deadline is the earlier of its own and its parent's.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let parent = velocity_async::Context::new();
    /// let child = parent.child_with_timeout(Duration::ZERO);
    /// assert!(child.is_done() && !parent.is_done());
    /// ```
    pub fn child_with_timeout(&self, d: Duration) -> Context {
        self.make_child(Instant::now().checked_add(d), true, None)
    }

    /// Cancels this context and all its descendants; wakes everything waiting
    /// on them at once. A no-op if it is already done, and on the background
    /// context.
    ///
    /// # Example
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// ctx.cancel();
    /// ctx.cancel(); // a second cancel changes nothing
    /// assert!(ctx.error().unwrap().is_cancelled());
    /// ```
    pub fn cancel(&self) {
        if let Some(inner) = &self.inner {
            inner.fire(Reason::Cancelled);
        }
    }

    /// A guard that cancels this context when it is dropped: Go's
    /// `defer cancel()` in one line.
    ///
    /// Dropping a `Context` itself never cancels it — its clones (held by
    /// tasks, children, other threads) share it — so the guard is how a
    /// scope says "everything I started under this context stops when I
    /// leave", also when it leaves by `?` or a panic. [`CancelGuard::disarm`]
    /// keeps the context alive after all.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use velocity_async as va;
    ///
    /// let ctx = va::Context::new();
    /// let task = {
    ///     let _cancel = ctx.cancel_on_drop(); // Go: defer cancel()
    ///     va::run_with_context(&ctx, || {
    ///         va::Context::current().wait(); // work that stops when told
    ///     })
    /// }; // the guard drops here: the work is told to stop
    /// assert!(task.get().unwrap_err().is_cancelled());
    /// assert!(ctx.is_done());
    /// ```
    #[must_use = "the context is cancelled when the guard drops: bind it with `let _guard = …`"]
    pub fn cancel_on_drop(&self) -> CancelGuard {
        CancelGuard {
            ctx: Some(self.clone()),
        }
    }

    /// True once cancelled, past its deadline, or its parent is done.
    ///
    /// # Example
    ///
    /// ```
    /// assert!(!velocity_async::Context::current().is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.reason().is_some()
    }

    /// Why it is done: [`Error::Cancelled`] or [`Error::Timeout`]; `None`
    /// while it is not done (Go's `ctx.Err()`).
    ///
    /// # Example
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// assert!(ctx.error().is_none());
    /// ctx.cancel();
    /// assert!(ctx.error().unwrap().is_cancelled());
    /// ```
    pub fn error(&self) -> Option<Error> {
        self.reason().map(Reason::to_error)
    }

    /// The deadline, if it has one (its own or inherited).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(velocity_async::Context::new().deadline().is_none());
    /// assert!(velocity_async::Context::with_timeout(Duration::from_secs(1)).deadline().is_some());
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.as_ref().and_then(|i| i.deadline)
    }

    /// Blocks until this context is done.
    ///
    /// On the background context (never done) this blocks forever, as
    /// `<-ctx.Done()` on Go's `context.Background()` would.
    ///
    /// # Example
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// let c = ctx.clone();
    /// std::thread::spawn(move || c.cancel());
    /// ctx.wait();
    /// assert!(ctx.is_done());
    /// ```
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Blocks until this context is done or `d` has passed; true if done.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// let ctx = velocity_async::Context::new();
    /// assert!(!ctx.wait_timeout(Duration::from_millis(1)));
    /// ```
    pub fn wait_timeout(&self, d: Duration) -> bool {
        match Instant::now().checked_add(d) {
            Some(until) => self.wait_until(Some(until)),
            None => {
                self.wait_until(None);
                true
            }
        }
    }

    /// The context of the work running on this thread.
    ///
    /// Inside any function this crate runs (`run*`, `go*`, and every
    /// combinator's jobs) it is that work's own context, which is cancelled
    /// when nobody wants the result any more: a timeout passed, a race was won
    /// by another job, a sibling in `all_with_error` failed, or the parent
    /// context was cancelled. Outside such work it is the background context,
    /// which is never done. Work started from inside other work gets a child of
    /// this context.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use velocity_async as va;
    ///
    /// let task = va::run_with_timeout(Duration::from_millis(5), || {
    ///     va::Context::current().wait(); // returns when the timeout passes
    ///     va::Context::current().is_done()
    /// });
    /// assert!(task.get().unwrap_err().is_timeout());
    /// ```
    pub fn current() -> Context {
        let current = CURRENT.try_with(|c| match &*c.borrow() {
            Current::Made(ctx) => Current::Made(ctx.clone()),
            Current::Lazy(source) => Current::Lazy(source.clone()),
            Current::Fresh => Current::Fresh,
        });
        // Made outside the borrow of `CURRENT`.
        match current {
            Ok(Current::Made(ctx)) => ctx,
            Ok(Current::Lazy(source)) => source.context(),
            Ok(Current::Fresh) => {
                let ctx = Context::deferred_child(None);
                let _ = CURRENT.try_with(|c| *c.borrow_mut() = Current::Made(ctx.clone()));
                ctx
            }
            Err(_) => Context::background(),
        }
    }

    // ----- crate internals -------------------------------------------------

    pub(crate) fn background() -> Context {
        Context { inner: None }
    }

    /// Makes this context the thread's current one until the guard drops.
    pub(crate) fn enter(&self) -> CurrentGuard {
        enter_current(Current::Made(self.clone()))
    }

    /// Makes the context `source` will make on first use the thread's
    /// current one until the guard drops.
    pub(crate) fn enter_lazy(source: Arc<dyn LazyContext>) -> CurrentGuard {
        enter_current(Current::Lazy(source))
    }

    /// Makes a context made on first ask (`Current::Fresh`) the thread's
    /// current one until the guard drops.
    pub(crate) fn enter_fresh() -> CurrentGuard {
        enter_current(Current::Fresh)
    }

    /// Whether this is the background context (no parent to link to, never
    /// done).
    pub(crate) fn is_background(&self) -> bool {
        self.inner.is_none()
    }

    pub(crate) fn reason(&self) -> Option<Reason> {
        self.inner.as_ref().and_then(|i| i.reason())
    }

    /// Whether this context was marked done (cancelled, or its deadline
    /// fired by the timer or an observer), as a flag borrowed once: a loop
    /// that checks it before every item then loads one atomic, no clock,
    /// instead of following the context to it again after every item (the
    /// compiler cannot hoist that chain past the user's code). `is_done`
    /// also reads the clock against the deadline.
    #[inline]
    pub(crate) fn done_flag(&self) -> DoneFlag<'_> {
        DoneFlag(self.inner.as_ref().map(|i| &i.state))
    }

    /// Whether something besides the work itself may cancel this context.
    pub(crate) fn is_external(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.external)
    }

    /// Whether a job's child of `parent` with `deadline` may wait to be
    /// made until first asked for ([`Context::deferred_child`]): with
    /// neither a parent nor a deadline, nothing but the job itself can end
    /// it. (Under loom it is always made at once: `OnceLock` is not
    /// modelled, and the eager path is the one the models check.)
    pub(crate) fn child_can_wait(parent: &Context, deadline: Option<Instant>) -> bool {
        parent.is_background() && deadline.is_none() && !cfg!(velocity_loom)
    }

    /// The child a job makes on first ask when [`Context::child_can_wait`]
    /// said it could wait: a plain child of the background context.
    pub(crate) fn deferred_child(hook: Option<Weak<dyn CancelHook>>) -> Context {
        Context::background().make_child(None, false, hook)
    }

    /// A child for a task. `external` marks contexts a combinator or a timeout
    /// may cancel; `hook` is told when the child is done. The hook is *not*
    /// called if the child is born done (its parent was done, or the deadline
    /// already passed): the creator checks [`Context::reason`] afterwards.
    pub(crate) fn make_child(
        &self,
        deadline: Option<Instant>,
        external: bool,
        hook: Option<Weak<dyn CancelHook>>,
    ) -> Context {
        let parent = self.inner.as_ref();
        let deadline = match (deadline, parent.and_then(|p| p.deadline)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let external = external || deadline.is_some() || parent.is_some_and(|p| p.external);
        let inner = Arc::new(Inner {
            state: AtomicU8::new(LIVE),
            deadline,
            external,
            links: Mutex::new(Links::default()),
            cond: Condvar::new(),
            hook,
        });
        let mut born_done = None;
        if let Some(parent) = parent {
            let mut links = parent.links();
            match decode(parent.state.load(Ordering::Acquire)) {
                Some(r) => born_done = Some(r),
                None => {
                    let key = links.insert(Listener::Child(Arc::downgrade(&inner)));
                    drop(links);
                    inner.links().in_parent = Some((parent.clone(), key));
                }
            }
        }
        if born_done.is_none() {
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    born_done = Some(Reason::Deadline);
                } else {
                    let key = timer::register(d, Arc::downgrade(&inner) as Weak<dyn Expire>);
                    inner.links().timer = Some(key);
                }
            }
        }
        if let Some(r) = born_done {
            // ORDERING: nobody else can see `inner` yet; Release for form.
            inner.state.store(encode(r), Ordering::Release);
            // It may have been registered with its parent before the parent's
            // deadline turned out to have passed; leave cleanly.
            let links = std::mem::take(&mut *inner.links());
            if let Some((p, key)) = links.in_parent {
                let left = p.links().remove(key);
                drop(left); // its own place: a `Weak`, no user code
            }
        }
        Context { inner: Some(inner) }
    }

    /// Registers a waker to be woken when this context is done.
    fn register_waker(&self, waker: &std::task::Waker) -> WakerRegistration {
        let Some(inner) = self.inner.as_ref() else {
            return WakerRegistration::Never;
        };
        // Cloned (and, if not needed, dropped) outside the lock: a waker's
        // `clone` and `Drop` are the executor's code.
        let waker = waker.clone();
        let mut links = inner.links();
        if decode(inner.state.load(Ordering::Acquire)).is_some() {
            drop(links);
            crate::panic::drop_quietly(waker);
            return WakerRegistration::AlreadyDone;
        }
        WakerRegistration::Registered(links.insert(Listener::Waker(waker)))
    }

    /// Unparks the calling thread when this context is done, until the
    /// guard drops: for waits of ours that park (`Semaphore::acquire`,
    /// `Singleflight::run`) and must end at a cancel or deadline.
    pub(crate) fn unpark_when_done(&self) -> UnparkGuard<'_> {
        use std::task::{Wake, Waker};

        struct Unpark(crate::sync::thread::Thread);

        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }

        let key = match self.inner {
            // The background context is never done: nothing to register.
            None => None,
            Some(_) => {
                let waker = Waker::from(Arc::new(Unpark(crate::sync::thread::current())));
                match self.register_waker(&waker) {
                    WakerRegistration::Registered(key) => Some(key),
                    WakerRegistration::AlreadyDone | WakerRegistration::Never => None,
                }
            }
        };
        UnparkGuard { ctx: self, key }
    }

    fn unregister_waker(&self, key: usize) {
        if let Some(inner) = &self.inner {
            let removed = inner.links().remove(key);
            crate::panic::drop_quietly(removed);
        }
    }

    /// A future that completes when this context is done (Go's
    /// `<-ctx.Done()`), for async code. Needs no runtime: the canceller (or
    /// the timer thread, for a deadline) wakes it.
    ///
    /// # Example
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     use std::sync::Arc;
    /// #     struct T(std::thread::Thread);
    /// #     impl Wake for T { fn wake(self: Arc<Self>) { self.0.unpark() } }
    /// #     let w = Waker::from(Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&w)) { return v } std::thread::park() }
    /// # }
    /// use std::time::Duration;
    /// let ctx = velocity_async::Context::with_timeout(Duration::from_millis(5));
    /// block_on(ctx.done());
    /// assert!(ctx.is_done());
    /// ```
    pub fn done(&self) -> Done {
        Done {
            ctx: self.clone(),
            key: None,
        }
    }

    /// A channel receiver that is closed when this context is done: Go's
    /// `<-ctx.Done()` for `crossbeam_channel::select!` (needs the
    /// `crossbeam-channel` feature).
    ///
    /// Nothing is ever sent: a `recv` on it blocks until the context is
    /// cancelled or its deadline passes, then returns `Err(RecvError)` at
    /// once, forever. The receiver of a context that can never be done
    /// (outside any task, [`Context::current`] is one) never closes.
    ///
    /// Each call registers one listener with the context until it is done;
    /// call it once and clone the receiver where several are needed.
    ///
    /// # Example
    ///
    /// ```
    /// use crossbeam_channel::{bounded, select};
    /// use std::time::Duration;
    /// use velocity_async::Context;
    ///
    /// let ctx = Context::with_timeout(Duration::from_millis(10));
    /// let (_jobs_tx, jobs) = bounded::<u32>(1);
    /// let why = select! {
    ///     recv(jobs) -> job => format!("job {job:?}"),
    ///     recv(ctx.done_receiver()) -> _ => "done".to_string(),
    /// };
    /// assert_eq!(why, "done");
    /// assert!(ctx.error().unwrap().is_timeout());
    /// ```
    #[cfg(feature = "crossbeam-channel")]
    pub fn done_receiver(&self) -> crossbeam_channel::Receiver<()> {
        use std::task::{Wake, Waker};

        /// Drops the sender (closing the channel) when woken.
        struct Closer(Mutex<Option<crossbeam_channel::Sender<()>>>);

        impl Wake for Closer {
            fn wake(self: Arc<Self>) {
                let sender = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
                drop(sender);
            }
        }

        let (tx, rx) = crossbeam_channel::bounded(0);
        let closer = Arc::new(Closer(Mutex::new(Some(tx))));
        match self.register_waker(&Waker::from(closer.clone())) {
            WakerRegistration::Never => crossbeam_channel::never(),
            WakerRegistration::AlreadyDone => {
                closer.wake();
                rx
            }
            WakerRegistration::Registered(_) => rx,
        }
    }

    /// Blocks until done or `until`; true if done.
    fn wait_until(&self, until: Option<Instant>) -> bool {
        let Some(inner) = &self.inner else {
            // The background context is never done.
            match until {
                Some(until) => {
                    while Instant::now() < until {
                        std::thread::sleep(until - Instant::now());
                    }
                    return false;
                }
                None => loop {
                    std::thread::park();
                },
            }
        };
        // Wake at our deadline or the context's, whichever comes first; the
        // context's deadline is then observed lazily by `reason()`.
        let wake_at = match (until, inner.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if inner.reason().is_some() {
            return true;
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return false; // a poll: nothing to block for
        }
        // A worker waiting here is known to block: its pool lends its slot
        // (as in `Task::wait`), so the work that will cancel this context
        // gets a thread even at the cap. Entered before the context's lock.
        let _blocked = crate::pool::BlockedGuard::enter();
        let mut links = inner.links();
        loop {
            if decode(inner.state.load(Ordering::Acquire)).is_some() {
                return true;
            }
            let now = Instant::now();
            if let Some(w) = wake_at {
                if now >= w {
                    drop(links);
                    return inner.reason().is_some();
                }
            }
            links.sleepers += 1;
            links = match wake_at {
                Some(w) => {
                    inner
                        .cond
                        .wait_timeout(links, w - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => inner.cond.wait(links).unwrap_or_else(|e| e.into_inner()),
            };
            links.sleepers -= 1;
        }
    }
}

/// Cancels its [`Context`] when dropped; see [`Context::cancel_on_drop`].
///
/// # Example
///
/// ```
/// let ctx = velocity_async::Context::new();
/// let guard = ctx.cancel_on_drop();
/// guard.disarm(); // keep it alive after all
/// assert!(!ctx.is_done());
/// ```
#[derive(Debug)]
pub struct CancelGuard {
    ctx: Option<Context>,
}

impl CancelGuard {
    /// Drops the guard without cancelling the context.
    ///
    /// # Example
    ///
    /// ```
    /// let ctx = velocity_async::Context::new();
    /// ctx.cancel_on_drop().disarm();
    /// assert!(!ctx.is_done());
    /// ```
    pub fn disarm(mut self) {
        self.ctx = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            // Cancelling wakes wakers, which run under `catch_unwind`: a
            // guard dropped during an unwind cannot panic a second time.
            ctx.cancel();
        }
    }
}

/// Unregisters the waker of `Context::unpark_when_done` when dropped.
pub(crate) struct UnparkGuard<'a> {
    ctx: &'a Context,
    key: Option<usize>,
}

impl Drop for UnparkGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.ctx.unregister_waker(key);
        }
    }
}

enum WakerRegistration {
    Registered(usize),
    AlreadyDone,
    Never,
}

/// The future returned by [`Context::done`].
///
/// # Example
///
/// ```
/// let ctx = velocity_async::Context::new();
/// let done: velocity_async::Done = ctx.done();
/// ctx.cancel();
/// # let _ = done;
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Done {
    ctx: Context,
    key: Option<usize>,
}

impl std::future::Future for Done {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.ctx.is_done() {
            return std::task::Poll::Ready(());
        }
        if let Some(key) = self.key.take() {
            self.ctx.unregister_waker(key);
        }
        match self.ctx.register_waker(cx.waker()) {
            WakerRegistration::Registered(key) => {
                self.key = Some(key);
                std::task::Poll::Pending
            }
            WakerRegistration::AlreadyDone => std::task::Poll::Ready(()),
            WakerRegistration::Never => std::task::Poll::Pending,
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.ctx.unregister_waker(key);
        }
    }
}

/// A context's done state, borrowed ([`Context::done_flag`]).
#[derive(Clone, Copy)]
pub(crate) struct DoneFlag<'a>(Option<&'a AtomicU8>);

impl DoneFlag<'_> {
    /// Whether the context was marked done (one atomic load).
    #[inline]
    pub(crate) fn is_set(self) -> bool {
        self.0.is_some_and(|s| s.load(Ordering::Acquire) != LIVE)
    }
}

impl Default for Context {
    /// Same as [`Context::new`]: a fresh cancellable context.
    fn default() -> Context {
        Context::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Context(background)"),
            Some(i) => f
                .debug_struct("Context")
                .field("done", &i.reason())
                .field("deadline", &i.deadline)
                .finish(),
        }
    }
}
