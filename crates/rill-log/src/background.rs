//! Fixed pools of threads for blocking file work (fsyncs) handed off by a thread that has
//! better things to do than wait for the disk.
//!
//! [`BlockingPool`] is the pool itself. Every log in the process shares one small pool for the
//! fsyncs of sealed segments: a roll hands its segment's fsync there instead of doing it on the
//! appending thread (which may serve many partitions) or starting a thread of its own (which,
//! with thousands of partitions rolling at once, would mean thousands of threads). Owners of
//! many logs start their own pool for group commits (so a long seal never delays them).

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::error::LogError;

/// Threads in the seal pool: fsyncs wait on the disk, not the processor, and a few in flight
/// let the disk merge them.
const SEAL_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run the jobs handed to them, in the order they come.
#[derive(Debug, Clone)]
pub struct BlockingPool {
    jobs: mpsc::Sender<Job>,
}

impl BlockingPool {
    /// Starts `threads` threads named `<name>-<i>`. They end once every clone of the pool is
    /// dropped and the jobs handed over are done; the handles are for joining them then.
    pub fn start(name: &str, threads: usize) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        loop {
                            let next = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            match next {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })?,
            );
        }
        Ok((Self { jobs }, handles))
    }

    /// Runs `job` on the pool, or here if the pool's threads are gone.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(Box::new(job)) {
            job();
        }
    }
}

/// Work handed to the seal pool, and its outcome once known.
#[derive(Debug)]
pub(crate) struct Pending {
    outcome: Receiver<Result<(), LogError>>,
}

impl Pending {
    /// The outcome if the work is done; `None` while it runs.
    pub(crate) fn try_outcome(&self) -> Option<Result<(), LogError>> {
        match self.outcome.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(lost())),
        }
    }

    /// Waits for the outcome.
    pub(crate) fn wait(self) -> Result<(), LogError> {
        self.outcome.recv().unwrap_or_else(|_| Err(lost()))
    }
}

fn lost() -> LogError {
    LogError::Io {
        path: std::path::PathBuf::new(),
        source: std::io::Error::other("a background fsync thread panicked"),
    }
}

/// Runs `work` on the seal pool (or here, if its threads could not be started).
pub(crate) fn run(work: impl FnOnce() -> Result<(), LogError> + Send + 'static) -> Pending {
    static POOL: OnceLock<Option<BlockingPool>> = OnceLock::new();
    let (tx, outcome) = mpsc::sync_channel(1);
    let job = move || {
        let _ = tx.send(work());
    };
    // Detached: the seal threads live as long as the process.
    let pool = POOL.get_or_init(|| {
        BlockingPool::start("rill-log-seal", SEAL_THREADS)
            .ok()
            .map(|(pool, _)| pool)
    });
    match pool {
        Some(pool) => pool.run(job),
        None => job(),
    }
    Pending { outcome }
}
