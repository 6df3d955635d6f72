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
    /// Workers told to come for a job (woken, or just started) that have not yet taken the
    /// lock again: each will take one of the queued jobs.
    coming: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        // SAFETY: `atexit` has no preconditions; `finish_at_exit` is a C-ABI function that
        // never unwinds (it catches panics) and stays loaded until exit (Node never unloads an
        // addon; glibc runs a shared object's handlers at its unloading anyway).
        unsafe { libc::atexit(finish_at_exit) };
        Pool {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            spinning: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        }
    })
}

/// How long the process's exit waits for the calls already queued or running.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// At exit (`process.exit()` included): waits, at most [`EXIT_WAIT`], until every call already
/// queued or running has finished, as libuv's pool does at exit. A refresh cut off between
/// the token endpoint's answer and the save would lose a rotated refresh token for good.
extern "C" fn finish_at_exit() {
    let _ = catch_unwind(|| {
        let Some(pool) = POOL.get() else { return };
        let deadline = Instant::now() + EXIT_WAIT;
        while Instant::now() < deadline {
            let idle = pool.lock().jobs.is_empty() && pool.running.load(Ordering::SeqCst) == 0;
            if idle {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs run outside the lock and catch their panics: a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`, and wakes or starts a worker for it unless one is already on its way
    /// (the spinning one, or one woken or started for an earlier job that it has not taken
    /// yet).
    fn submit(&'static self, job: Job) {
        let mut queue = self.lock();
        queue.jobs.push_back(job);
        self.queued.store(queue.jobs.len(), Ordering::SeqCst);
        let spinner = usize::from(self.spinning.load(Ordering::SeqCst));
        if queue.jobs.len() <= spinner + queue.coming {
            return;
        }
        if queue.parked > queue.coming {
            queue.coming += 1;
            drop(queue);
            self.wake.notify_one();
            return;
        }
        if queue.workers < MAX_WORKERS {
            queue.workers += 1;
            queue.coming += 1;
            let started = std::thread::Builder::new()
                .name("tokenvault".into())
                .spawn(move || self.work());
            if started.is_err() {
                queue.workers -= 1;
                queue.coming -= 1;
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
        self.arrived(&mut self.lock());
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
                // Woken for a job (or spuriously: then this worker, awake, takes one anyway).
                self.arrived(&mut queue);
            };
            drop(queue);
            self.run(job);
        }
    }

    /// A worker told to come is here.
    fn arrived(&self, queue: &mut Queue) {
        queue.coming = queue.coming.saturating_sub(1);
    }

    fn run(&self, job: Job) {
        self.running.fetch_add(1, Ordering::SeqCst);
        // The work's own panics reject its Promise (see `spawn`); this keeps the worker, and
        // the count, whole should settling the Promise panic too.
        let _ = catch_unwind(AssertUnwindSafe(|| job(true)));
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
