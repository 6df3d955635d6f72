//! Blocking work off the event loop: every call that does KDF, storage or network work runs on
//! the addon's own worker threads and settles a Promise on the JS thread.
//!
//! Why not libuv's thread pool (N-API async work): a store lookup takes ~10 µs, and waking a
//! parked pool thread for it costs more than the lookup (on the 2-core bench machine a pool
//! round trip is 35–55 µs; Node's own `fs.promises.stat` takes 40–45 µs). Here a worker that
//! has just finished a call spins for a short while ([`SPIN`]) before it parks, so the next
//! call of a busy caller — the Zoho SDK asks its store on every API request — is picked up at
//! once. At most one worker spins, only right after work and only while no other worker runs
//! a job (then the cores are busy), so an idle process burns nothing. The other half of the
//! round trip, waking the event loop, is `index.js`'s (it polls while a call is in flight).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use napi::Env;
use napi::bindgen_prelude::{Object, ToNapiValue};

use crate::errors::{Failure, Outcome, code};

/// Worker threads at most (libuv's default pool size): a refresh waiting on the network holds
/// one, so a few slow calls do not stall the others.
const MAX_WORKERS: usize = 4;
/// How long a worker that ran out of work keeps looking before it parks.
const SPIN: Duration = Duration::from_micros(100);

/// A queued call. Run with `true`; with `false` it settles its Promise with an error without
/// doing its work (no thread could be started to run it).
type Job = Box<dyn FnOnce(bool) + Send>;

/// The worker pool, one per process (shared by every Node.js worker thread that loads the
/// addon: jobs carry their own environment's deferred).
struct Pool {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Whether a worker is spinning (then a new job needs no wake-up).
    spinning: AtomicBool,
    /// `queue.jobs.len()`, readable without the lock by the spinning worker.
    queued: AtomicUsize,
    /// Workers running a job.
    running: AtomicUsize,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    workers: usize,
    parked: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        spinning: AtomicBool::new(false),
        queued: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
    })
}

impl Pool {
    fn lock(&'static self) -> MutexGuard<'static, Queue> {
        // Jobs run outside the lock and catch their panics: a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`, waking or starting a worker unless the spinning one will take it.
    fn submit(&'static self, job: Job) {
        let mut queue = self.lock();
        queue.jobs.push_back(job);
        self.queued.store(queue.jobs.len(), Ordering::SeqCst);
        let spinner = usize::from(self.spinning.load(Ordering::SeqCst));
        if queue.jobs.len() <= spinner {
            return;
        }
        if queue.parked > 0 {
            drop(queue);
            self.wake.notify_one();
            return;
        }
        if queue.workers < MAX_WORKERS {
            queue.workers += 1;
            let started = std::thread::Builder::new()
                .name("tokenvault".into())
                .spawn(move || self.work());
            if started.is_err() {
                queue.workers -= 1;
                if queue.workers == 0 {
                    // Nothing would ever run it: fail the call instead.
                    let job = queue.jobs.pop_back();
                    self.queued.store(queue.jobs.len(), Ordering::SeqCst);
                    drop(queue);
                    if let Some(job) = job {
                        job(false);
                    }
                }
            }
        }
        // Otherwise every worker is busy; one takes the job when it is done.
    }

    fn pop(&self, queue: &mut Queue) -> Option<Job> {
        let job = queue.jobs.pop_front();
        self.queued.store(queue.jobs.len(), Ordering::SeqCst);
        job
    }

    /// A worker: runs jobs; when there are none, spins a little (if no other worker does),
    /// then parks until [`submit`](Self::submit) wakes it.
    fn work(&'static self) {
        loop {
            let job = {
                let mut queue = self.lock();
                self.pop(&mut queue)
            };
            if let Some(job) = job {
                self.run(job);
                continue;
            }
            if self.spin() {
                continue;
            }
            let mut queue = self.lock();
            let job = loop {
                if let Some(job) = self.pop(&mut queue) {
                    break job;
                }
                queue.parked += 1;
                queue = self
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
                queue.parked -= 1;
            };
            drop(queue);
            self.run(job);
        }
    }

    fn run(&self, job: Job) {
        self.running.fetch_add(1, Ordering::SeqCst);
        job(true);
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Spins until a job is queued (true) or [`SPIN`] has passed (false); false at once if
    /// another worker is already spinning, or any is running a job: then the cores are busy
    /// (a spinner would take one from the work) and the queue is fed without wake-ups anyway.
    fn spin(&self) -> bool {
        if self.running.load(Ordering::SeqCst) > 0 || self.spinning.swap(true, Ordering::SeqCst) {
            return false;
        }
        let deadline = Instant::now() + SPIN;
        let mut found = false;
        'spin: loop {
            for _ in 0..64 {
                if self.queued.load(Ordering::SeqCst) > 0 {
                    found = true;
                    break 'spin;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Cleared before the caller takes the lock to pop or park: a job queued from here on
        // either is seen under the lock or wakes a parked worker.
        self.spinning.store(false, Ordering::SeqCst);
        found
    }
}

/// A Promise settled with what `work` returns, run on a worker thread. The conversion of its
/// value to JS (and of a failure to its error class) happens on the JS thread.
pub fn spawn<'env, T, F>(env: &'env Env, work: F) -> napi::Result<Object<'env>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> Outcome<T> + Send + 'static,
{
    let (deferred, promise) = env.create_deferred()?;
    let job: Job = Box::new(move |run| {
        let outcome = if run {
            // A panic must not unwind out of the worker (it would end the thread, and the
            // call's Promise would never settle): it rejects.
            catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
                Err(Failure::new(
                    code::ERROR,
                    "internal error: the call panicked",
                ))
            })
        } else {
            Err(Failure::new(
                code::ERROR,
                "could not start a worker thread for the call",
            ))
        };
        deferred.resolve(move |env: Env| outcome.map_err(|failure| failure.into_napi(&env)));
    });
    pool().submit(job);
    Ok(promise)
}
