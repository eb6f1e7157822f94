//! `TaskSet<T>`: tasks yielded in the order they finish (tokio's
//! `JoinSet`, Python's `as_completed`), blocking or awaited.
//!
//! Each task in the set is polled as a `Future` with a waker of the set's
//! own, which puts the task's index on the set's ready queue when it
//! resolves. So no thread waits per task, and a task that finishes wakes
//! whoever waits on the set: a blocked `next` (condvar) or an awaiting
//! `join_next` (its waker).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use crate::error::Error;
use crate::panic;
use crate::pool;
use crate::sync::{Condvar, Mutex};
use crate::task::Task;

/// A set of `'static` tasks, yielded in the order they finish.
///
/// * **Blocking:** the set is an [`Iterator`]: `next` blocks until some task
///   of the set has finished and yields its outcome, `None` once the set is
///   empty. [`try_join_next`](TaskSet::try_join_next) never blocks.
/// * **Async:** [`join_next`](TaskSet::join_next) is a future of the same,
///   for any executor.
/// * **Cancellation:** [`cancel_all`](TaskSet::cancel_all) cancels every task
///   still in the set ([`Task::cancel`]: each resolves with
///   [`Error::Cancelled`] at once, its work is told to stop); dropping the
///   set does the same. Outcomes are yielded whatever they are: a value, a
///   panic ([`Error::Panic`]), a timeout, a cancellation.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use velocity_async as va;
///
/// let mut set = va::TaskSet::new();
/// for ms in [30u64, 10, 20] {
///     set.spawn(move || {
///         std::thread::sleep(Duration::from_millis(ms));
///         ms
///     });
/// }
/// set.push(va::run_with_timeout(Duration::ZERO, || 0)); // any Task<T>
/// assert_eq!(set.len(), 4);
/// let first = set.next().unwrap();
/// assert!(first.unwrap_err().is_timeout());
/// let rest: Vec<u64> = set.map(|r| r.unwrap()).collect();
/// assert_eq!(rest.len(), 3); // in the order they finished (usually 10, 20, 30)
/// ```
pub struct TaskSet<T> {
    /// The tasks not yet yielded, by index, each with the waker it is polled
    /// with; `None` is a free place (`free`).
    entries: Vec<Option<(Task<T>, Waker)>>,
    free: Vec<usize>,
    /// Outcomes known when their task was pushed, not yet yielded.
    early: VecDeque<Result<T, Error>>,
    /// Tasks in `entries`.
    pending: usize,
    queue: Arc<ReadyQueue>,
}

/// Indices of tasks that resolved, and who waits for them.
struct ReadyQueue {
    inner: Mutex<Ready>,
    cond: Condvar,
}

struct Ready {
    indices: VecDeque<usize>,
    /// Threads blocked in `next`; `notify_one` is skipped when zero.
    sleepers: usize,
    /// The waker of the last `join_next` that found nothing ready.
    waker: Option<Waker>,
}

/// Wakes the set for the task at `index`.
struct EntryWaker {
    index: usize,
    queue: Arc<ReadyQueue>,
}

impl Wake for EntryWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let (notify, waker) = {
            let mut ready = self.queue.inner.lock().unwrap_or_else(|e| e.into_inner());
            ready.indices.push_back(self.index);
            (ready.sleepers > 0, ready.waker.take())
        };
        if notify {
            self.queue.cond.notify_one();
        }
        // An executor's waker is user code: never under the lock, never
        // unwinding into the thread that resolved the task.
        if let Some(w) = waker {
            panic::wake(w);
        }
    }
}

impl<T: Send + 'static> TaskSet<T> {
    /// An empty set.
    ///
    /// ```
    /// let mut set = velocity_async::TaskSet::<u8>::new();
    /// assert!(set.is_empty());
    /// assert!(set.next().is_none()); // an empty set never blocks
    /// ```
    pub fn new() -> TaskSet<T> {
        TaskSet {
            entries: Vec::new(),
            free: Vec::new(),
            early: VecDeque::new(),
            pending: 0,
            queue: Arc::new(ReadyQueue {
                inner: Mutex::new(Ready {
                    indices: VecDeque::new(),
                    sleepers: 0,
                    waker: None,
                }),
                cond: Condvar::new(),
            }),
        }
    }

    /// Runs `f` as [`run`](crate::run) does and adds its task to the set.
    ///
    /// ```
    /// let mut set = velocity_async::TaskSet::new();
    /// set.spawn(|| 2 + 2);
    /// assert_eq!(set.next().unwrap().unwrap(), 4);
    /// ```
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.push(crate::run(f));
    }

    /// Adds a task from anywhere (`run_with_timeout`, a pool's `run`, the
    /// task builder) to the set.
    ///
    /// ```
    /// use velocity_async as va;
    /// let mut set = va::TaskSet::new();
    /// set.push(va::task().name("answer").run(|| 42));
    /// assert_eq!(set.next().unwrap().unwrap(), 42);
    /// ```
    pub fn push(&mut self, mut task: Task<T>) {
        let index = self.free.pop().unwrap_or(self.entries.len());
        let waker = Waker::from(Arc::new(EntryWaker {
            index,
            queue: self.queue.clone(),
        }));
        // Registers the waker, or takes an outcome already known.
        match Pin::new(&mut task).poll(&mut std::task::Context::from_waker(&waker)) {
            Poll::Ready(r) => {
                self.early.push_back(r);
                self.free.push(index);
            }
            Poll::Pending => {
                if index == self.entries.len() {
                    self.entries.push(Some((task, waker)));
                } else {
                    self.entries[index] = Some((task, waker));
                }
                self.pending += 1;
            }
        }
    }

    /// How many tasks the set holds: not yet yielded, finished or not.
    ///
    /// ```
    /// let mut set = velocity_async::TaskSet::new();
    /// set.spawn(|| 1);
    /// assert_eq!(set.len(), 1);
    /// let _ = set.next();
    /// assert_eq!(set.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.pending + self.early.len()
    }

    /// True if the set holds no task.
    ///
    /// ```
    /// assert!(velocity_async::TaskSet::<()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels every task still in the set ([`Task::cancel`]): each one not
    /// finished yet resolves with [`Error::Cancelled`] at once, and is yielded
    /// as such; the work is told to stop through its context.
    ///
    /// ```
    /// use velocity_async as va;
    /// let mut set = va::TaskSet::new();
    /// set.spawn(|| va::Context::current().wait()); // runs until told
    /// set.cancel_all();
    /// assert!(set.next().unwrap().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel_all(&self) {
        for (task, _) in self.entries.iter().flatten() {
            task.cancel();
        }
    }

    /// The next finished task's outcome, if one has finished; never blocks.
    /// `None` if none has (or the set is empty).
    ///
    /// ```
    /// let mut set = velocity_async::TaskSet::new();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// set.spawn(move || rx.recv().is_ok());
    /// assert!(set.try_join_next().is_none());
    /// drop(tx);
    /// assert_eq!(set.next().unwrap().unwrap(), false);
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, Error>> {
        self.poll_ready(None)
    }

    /// A future of the next finished task's outcome (`None` once the set is
    /// empty): [`Iterator::next`] for async code, under any executor.
    ///
    /// # Example
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct Unpark(std::thread::Thread);
    /// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let mut set = velocity_async::TaskSet::new();
    /// set.spawn(|| "a");
    /// set.spawn(|| "b");
    /// let mut seen = block_on(async {
    ///     let mut seen = Vec::new();
    ///     while let Some(r) = set.join_next().await {
    ///         seen.push(r.unwrap());
    ///     }
    ///     seen
    /// });
    /// seen.sort();
    /// assert_eq!(seen, ["a", "b"]);
    /// ```
    pub fn join_next(&mut self) -> JoinNext<'_, T> {
        JoinNext { set: self }
    }

    /// Takes the next outcome whose task has resolved. With `cx`, registers
    /// its waker first, so a task resolving after the check wakes it.
    fn poll_ready(&mut self, cx: Option<&std::task::Context<'_>>) -> Option<Result<T, Error>> {
        if let Some(r) = self.early.pop_front() {
            return Some(r);
        }
        // Cloned (and dropped) outside the lock: a waker's `clone` and `Drop`
        // are the executor's code.
        let mut waker = cx.map(|cx| cx.waker().clone());
        loop {
            let (index, replaced) = {
                let mut ready = self.queue.inner.lock().unwrap_or_else(|e| e.into_inner());
                match ready.indices.pop_front() {
                    Some(index) => (Some(index), None),
                    None => (None, waker.take().and_then(|w| ready.waker.replace(w))),
                }
            };
            panic::drop_quietly(replaced);
            let Some(index) = index else {
                panic::drop_quietly(waker);
                return None;
            };
            if let Some(r) = self.poll_entry(index) {
                panic::drop_quietly(waker);
                return Some(r);
            }
        }
    }

    /// Polls the task at `index`; its outcome if it has resolved (a stale or
    /// repeated index finds nothing).
    fn poll_entry(&mut self, index: usize) -> Option<Result<T, Error>> {
        let (task, waker) = self.entries.get_mut(index)?.as_mut()?;
        match Pin::new(task).poll(&mut std::task::Context::from_waker(waker)) {
            Poll::Pending => None,
            Poll::Ready(r) => {
                let entry = self.entries[index].take();
                self.free.push(index);
                self.pending -= 1;
                panic::drop_quietly(entry);
                Some(r)
            }
        }
    }
}

impl<T: Send + 'static> Iterator for TaskSet<T> {
    type Item = Result<T, Error>;

    /// Blocks until a task of the set has finished and yields its outcome;
    /// `None` at once if the set is empty. A pool worker blocked here counts
    /// as blocked, so the pool runs the set's queued tasks meanwhile.
    fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(r) = self.poll_ready(None) {
                return Some(r);
            }
            if self.pending == 0 {
                return None;
            }
            let _blocked = pool::BlockedGuard::enter();
            let mut ready = self.queue.inner.lock().unwrap_or_else(|e| e.into_inner());
            while ready.indices.is_empty() {
                ready.sleepers += 1;
                ready = self
                    .queue
                    .cond
                    .wait(ready)
                    .unwrap_or_else(|e| e.into_inner());
                ready.sleepers -= 1;
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T: Send + 'static> Default for TaskSet<T> {
    fn default() -> Self {
        TaskSet::new()
    }
}

impl<T: Send + 'static> Extend<Task<T>> for TaskSet<T> {
    fn extend<I: IntoIterator<Item = Task<T>>>(&mut self, tasks: I) {
        for task in tasks {
            self.push(task);
        }
    }
}

impl<T: Send + 'static> FromIterator<Task<T>> for TaskSet<T> {
    /// Collects tasks into a set:
    ///
    /// ```
    /// use velocity_async as va;
    /// let set: va::TaskSet<u32> = (1..=3).map(|i| va::run(move || i * i)).collect();
    /// let mut squares: Vec<u32> = set.map(Result::unwrap).collect();
    /// squares.sort();
    /// assert_eq!(squares, [1, 4, 9]);
    /// ```
    fn from_iter<I: IntoIterator<Item = Task<T>>>(tasks: I) -> Self {
        let mut set = TaskSet::new();
        set.extend(tasks);
        set
    }
}

impl<T> Drop for TaskSet<T> {
    /// Cancels what still runs ([`TaskSet::cancel_all`]); outcomes not
    /// yielded are dropped.
    fn drop(&mut self) {
        for (task, _) in self.entries.iter().flatten() {
            task.cancel();
        }
    }
}

impl<T> fmt::Debug for TaskSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSet")
            .field("len", &(self.pending + self.early.len()))
            .finish_non_exhaustive()
    }
}

/// The future of [`TaskSet::join_next`]: the next finished task's outcome,
/// `None` once the set is empty.
#[must_use = "futures do nothing unless polled"]
pub struct JoinNext<'a, T> {
    set: &'a mut TaskSet<T>,
}

impl<T: Send + 'static> Future for JoinNext<'_, T> {
    type Output = Option<Result<T, Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let set = &mut *self.get_mut().set;
        match set.poll_ready(Some(cx)) {
            Some(r) => Poll::Ready(Some(r)),
            None if set.pending == 0 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for JoinNext<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinNext").finish_non_exhaustive()
    }
}
