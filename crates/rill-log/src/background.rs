//! A small, fixed pool of threads for the fsyncs of sealed segments, shared by every log in
//! the process: a roll hands its segment's fsync here instead of doing it on the appending
//! thread (which may serve many partitions) or starting a thread of its own (which, with
//! thousands of partitions rolling at once, would mean thousands of threads).

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::LogError;

/// Threads in the pool: fsyncs wait on the disk, not the processor, and a few in flight let
/// the disk merge them.
const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// Work handed to the pool, and its outcome once known.
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

/// Runs `work` on the pool (or here, if the pool's threads could not be started).
pub(crate) fn run(work: impl FnOnce() -> Result<(), LogError> + Send + 'static) -> Pending {
    static POOL: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    let (tx, outcome) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = tx.send(work());
    });
    let pool = POOL.get_or_init(|| {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let started = std::thread::Builder::new()
                .name(format!("rill-log-seal-{i}"))
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
                });
            if started.is_err() {
                return None;
            }
        }
        Some(Mutex::new(jobs))
    });
    let unsent = match pool.as_ref().map(|jobs| jobs.lock()) {
        Some(Ok(jobs)) => jobs.send(job).err().map(|e| e.0),
        _ => Some(job),
    };
    if let Some(job) = unsent {
        job();
    }
    Pending { outcome }
}
