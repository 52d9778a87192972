//! A small pool of long-lived worker threads, each owning at most one PKCS#11 session.
//!
//! Why threads: a blocking C call cannot be interrupted, so a time limit can only be kept
//! by waiting for the call on another thread and giving up at the deadline. Why long-lived,
//! each with its own session: modules keep per-thread state (OpenSSL's per-thread DRBG in
//! SoftHSM made a fresh thread per signature ~3x slower), and CloudHSM recommends one
//! session per thread.
use std::{
    cell::Cell,
    sync::{
        atomic::{AtomicU8, AtomicUsize, Ordering},
        mpsc, Arc, Mutex, PoisonError,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::Pkcs11Error;

/// A job runs on a worker with the worker's session slot (`None` when it has none), and
/// calls `ready` once it is done with the slot, before it hands its result over (so that the
/// worker counts as idle by the time the caller can submit the next job).
pub(crate) type Job<S> = Box<dyn FnOnce(&mut Option<S>, &dyn Fn()) + Send>;

/// The life of one job, shared by the caller and the worker.
pub(crate) const QUEUED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const DONE: u8 = 2;
pub(crate) const ABANDONED: u8 = 3;

#[derive(Default)]
struct Counts {
    spawned: AtomicUsize,
    idle: AtomicUsize,
    queued: AtomicUsize,
}

pub(crate) struct Workers<S> {
    tx: Option<mpsc::Sender<Job<S>>>,
    rx: Arc<Mutex<mpsc::Receiver<Job<S>>>>,
    counts: Arc<Counts>,
    max: usize,
    /// Every thread started, joined when the pool is dropped (see `Drop`).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// How long dropping a pool waits for its workers to close their sessions and end.
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// Dropping the pool (the last clone of the key) ends its idle workers, which close their
/// sessions, and waits for them: a worker still closing its session, or running its
/// thread-local destructors (OpenSSL's per-thread state in SoftHSM), while the process exits
/// races the module's own exit-time cleanup, which crashed test processes now and then.
/// A worker stuck in a C call past its deadline cannot be waited for: after `JOIN_WAIT` it
/// is left running, as before.
impl<S> Drop for Workers<S> {
    fn drop(&mut self) {
        drop(self.tx.take()); // idle workers see the channel closed and end
        let threads = std::mem::take(
            self.threads
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let me = std::thread::current().id();
        let until = Instant::now() + JOIN_WAIT;
        for t in threads {
            if t.thread().id() == me {
                continue; // the last key clone was dropped by one of its own jobs
            }
            // Bounded: poll until the thread's main function returned, then join, which
            // waits only for its thread-local destructors.
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Why a job did not give a result.
#[derive(Debug)]
pub(crate) enum Wait {
    /// Still queued at the deadline (every worker busy); it will not run.
    Queued { workers: usize },
    /// Running at the deadline; its session is quarantined.
    Running,
    /// The worker died (panicked) or the pool is gone.
    Died,
}

impl<S: Send + 'static> Workers<S> {
    pub(crate) fn new(max: usize) -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            tx: Some(tx),
            rx: Arc::new(Mutex::new(rx)),
            counts: Arc::default(),
            max: max.max(1),
            threads: Mutex::default(),
        }
    }

    fn maybe_spawn(&self) -> Result<(), Pkcs11Error> {
        let c = &self.counts;
        let mut n = c.spawned.load(Ordering::Acquire);
        loop {
            if n >= self.max {
                return Ok(());
            }
            match c
                .spawned
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        let rx = Arc::clone(&self.rx);
        let counts = Arc::clone(&self.counts);
        std::thread::Builder::new()
            .name("codeseal-pkcs11".into())
            .spawn(move || worker_loop::<S>(&rx, &counts))
            .map(|t| {
                let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
                threads.retain(|t| !t.is_finished());
                threads.push(t);
            })
            .map_err(|e| {
                self.counts.spawned.fetch_sub(1, Ordering::AcqRel);
                Pkcs11Error::Worker(format!("cannot start a thread: {e}"))
            })
    }

    /// Runs `f` on a worker and waits for its result until `deadline` (forever if `None`).
    /// `f` gets the worker's session slot and the job's state, which turns `ABANDONED` when
    /// the caller stops waiting.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Option<S>, &AtomicU8) -> T + Send + 'static,
    ) -> Result<T, Wait> {
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, result) = mpsc::sync_channel(1);
        let job_state = Arc::clone(&state);
        let job: Job<S> = Box::new(move |slot, ready| {
            if job_state
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return; // the caller gave up while it was queued
            }
            let r = f(slot, &job_state);
            ready();
            let _ = reply.send(r);
        });
        let queued = self.counts.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if queued > self.counts.idle.load(Ordering::Acquire) && self.maybe_spawn().is_err() {
            // No new thread: the job waits for a busy one, or for the deadline.
            tracing::warn!("cannot start another PKCS#11 worker thread");
        }
        let sent = self.tx.as_ref().map(|tx| tx.send(job));
        if !matches!(sent, Some(Ok(()))) {
            self.counts.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Wait::Died);
        }
        let got = match deadline {
            None => result.recv().map_err(|_| Wait::Died),
            Some(d) => result
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .map_err(|e| match e {
                    mpsc::RecvTimeoutError::Timeout => Wait::Running,
                    mpsc::RecvTimeoutError::Disconnected => Wait::Died,
                }),
        };
        match got {
            Err(Wait::Running) => {
                for (from, why) in [
                    (
                        QUEUED,
                        Wait::Queued {
                            workers: self.counts.spawned.load(Ordering::Acquire),
                        },
                    ),
                    (RUNNING, Wait::Running),
                ] {
                    if state
                        .compare_exchange(from, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return Err(why);
                    }
                }
                // It finished just now.
                result.recv().map_err(|_| Wait::Died)
            }
            other => other,
        }
    }
}

fn worker_loop<S>(rx: &Mutex<mpsc::Receiver<Job<S>>>, counts: &Counts) {
    struct Exit<'a>(&'a Counts);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            self.0.spawned.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let _exit = Exit(counts);
    let mut slot: Option<S> = None;
    counts.idle.fetch_add(1, Ordering::AcqRel);
    loop {
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        counts.idle.fetch_sub(1, Ordering::AcqRel);
        let Ok(job) = job else {
            break; // the key is gone; dropping the slot closes the session
        };
        counts.queued.fetch_sub(1, Ordering::AcqRel);
        let idle_again = Cell::new(false);
        let ready = || {
            if !idle_again.replace(true) {
                counts.idle.fetch_add(1, Ordering::AcqRel);
            }
        };
        job(&mut slot, &ready);
        ready();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn runs_jobs_keeps_the_slot_and_bounds_threads() {
        let w: Workers<u32> = Workers::new(2);
        let r = w.run(None, |slot, _| {
            *slot = Some(slot.unwrap_or(0) + 1);
            *slot
        });
        assert_eq!(r.expect("run"), Some(1));
        // One worker so far: the next job sees the same slot.
        let r = w.run(None, |slot, _| *slot).expect("run");
        assert_eq!(r, Some(1));
        assert_eq!(w.counts.spawned.load(Ordering::Acquire), 1);
    }

    #[test]
    fn deadline_while_running_and_while_queued() {
        let w: Workers<u32> = Workers::new(1);
        let soon = || Some(Instant::now() + Duration::from_millis(50));
        let (tx, rx) = mpsc::channel::<()>();
        let r = w.run(soon(), move |_, state| {
            let _ = rx.recv_timeout(Duration::from_secs(5));
            state.load(Ordering::Acquire)
        });
        assert!(matches!(r, Err(Wait::Running)), "{r:?}");
        // The only worker is stuck: the next job waits in the queue and never runs.
        let r = w.run(soon(), |_, _| 7);
        assert!(matches!(r, Err(Wait::Queued { workers: 1 })), "{r:?}");
        drop(tx); // unstick it
        let r = w.run(Some(Instant::now() + Duration::from_secs(5)), |_, _| 8);
        assert_eq!(r.expect("runs again"), 8);
    }

    /// Dropping the pool waits for its idle workers to drop their slots (close sessions)
    /// and end, so none is still running while the process exits.
    #[test]
    fn dropping_the_pool_joins_idle_workers() {
        use std::sync::atomic::AtomicBool;
        struct Session(Arc<AtomicBool>);
        impl Drop for Session {
            fn drop(&mut self) {
                std::thread::sleep(Duration::from_millis(100));
                self.0.store(true, Ordering::Release);
            }
        }
        let closed = Arc::new(AtomicBool::new(false));
        let w: Workers<Session> = Workers::new(2);
        let c = Arc::clone(&closed);
        w.run(None, move |slot, _| *slot = Some(Session(c)))
            .expect("run");
        let counts = Arc::clone(&w.counts);
        drop(w);
        assert!(closed.load(Ordering::Acquire), "session not closed yet");
        assert_eq!(counts.spawned.load(Ordering::Acquire), 0);
    }
}
