//! The scheduling class of the CPU-heavy native work that runs on libuv's thread pool beside the
//! event loop (ML-DSA-65 signing, hashcash search).
//!
//! A pool thread woken by the event loop normally preempts the thread that woke it when no core
//! is idle: on a busy gateway the event loop (or the SMTP listener thread) then waits for a
//! signature it does not need yet, with its caches cold afterwards. Linux's SCHED_BATCH
//! (sched(7)) takes the pool thread out of wake-up preemption: it runs on an idle core at once,
//! otherwise when the running thread's time slice ends. Its share of the CPU is unchanged (same
//! nice value), so the work is never starved. Measured on two cores (docs/ARCHITECTURE.md): the
//! hybrid-v1 relay and on-ramp move 5-12% more messages per second, with less CPU per message.
//!
//! The class stays with the pool thread for whatever it runs next (file system calls, the
//! store's commits, DNS lookups), all of which are background work too. Elsewhere than Linux this
//! is a no-op.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

thread_local! {
    static BATCH: Cell<bool> = const { Cell::new(false) };
}

/// Puts the calling thread in SCHED_BATCH, once per thread. A refusal (a seccomp filter, say)
/// leaves the thread as it was: the work is the same, only its scheduling differs.
pub fn batch_thread() {
    BATCH.with(|done| {
        if !done.replace(true) {
            set_batch();
        }
    });
}

#[cfg(target_os = "linux")]
fn set_batch() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is the calling
    // thread; SCHED_BATCH with priority 0 needs no privilege.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

#[cfg(not(target_os = "linux"))]
fn set_batch() {}

/// A meeting of `threads` tasks on libuv's pool, to put every pool thread in SCHED_BATCH at
/// start-up: work that Node.js itself queues there (crypto.sign with a callback, file system
/// calls, DNS lookups) never passes through `batch_thread` otherwise. Each task puts its own
/// thread in the class, then waits until all `threads` have arrived, so no two run on one thread;
/// a pool with fewer threads than expected leaves the waits to end at `wait`.
pub struct Rendezvous {
    threads: usize,
    wait: Duration,
    arrived: Mutex<usize>,
    all: Condvar,
}

impl Rendezvous {
    pub fn new(threads: usize, wait: Duration) -> Self {
        Rendezvous {
            threads,
            wait,
            arrived: Mutex::new(0),
            all: Condvar::new(),
        }
    }

    /// Puts the calling thread in SCHED_BATCH and waits for the others; true when all arrived
    /// within the wait.
    pub fn arrive(&self) -> bool {
        batch_thread();
        let mut arrived = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        *arrived += 1;
        self.all.notify_all();
        let (arrived, _) = self
            .all
            .wait_timeout_while(arrived, self.wait, |n| *n < self.threads)
            .unwrap_or_else(|e| e.into_inner());
        *arrived >= self.threads
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::batch_thread;

    fn policy() -> i32 {
        // SAFETY: no arguments to check; pid 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn the_calling_thread_only_becomes_batch() {
        let before = policy();
        let (inside, again) = std::thread::spawn(|| {
            batch_thread();
            let inside = policy();
            batch_thread();
            (inside, policy())
        })
        .join()
        .expect("thread");
        assert_eq!(inside, libc::SCHED_BATCH);
        assert_eq!(again, libc::SCHED_BATCH);
        assert_eq!(policy(), before, "the spawning thread keeps its class");
    }

    #[test]
    fn a_rendezvous_puts_each_arriving_thread_in_the_class_once_all_have_come() {
        use super::Rendezvous;
        use std::sync::Arc;
        use std::time::Duration;
        let meeting = Arc::new(Rendezvous::new(3, Duration::from_secs(10)));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let m = Arc::clone(&meeting);
                std::thread::spawn(move || (m.arrive(), policy()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), (true, libc::SCHED_BATCH));
        }
        // Fewer threads than expected: the wait ends, and says so.
        let short = Rendezvous::new(2, Duration::from_millis(50));
        assert!(!std::thread::spawn(move || short.arrive())
            .join()
            .expect("thread"));
    }
}
