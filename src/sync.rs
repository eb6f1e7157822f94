//! The synchronisation primitives of the two protocols that are
//! model-checked with [loom](https://docs.rs/loom): a task's outcome slot
//! (`task::Slot`) and the join latch of the borrowing combinators
//! (`scope::Latch`). They are std's, or loom's when the crate is built with
//! `RUSTFLAGS="--cfg velocity_loom"` (see `docs/RELIABILITY.md`); nothing
//! else changes between the two builds.

#[cfg(not(velocity_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicU8, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};

#[cfg(velocity_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicU8, AtomicUsize},
    Condvar, Mutex, MutexGuard,
};
