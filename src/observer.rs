//! Progress reporting without printing: library code emits [`Event`]s to an [`Observer`],
//! and the cli renders them (progress bars, log lines). Nothing below `cli` prints.

/// Something worth telling the user about while long work runs.
#[derive(Clone, Debug)]
pub enum Event {
    /// A long task with a known amount of work starts (decoding images, downloading, ...).
    TaskStart { id: &'static str, label: String, total: u64 },
    /// `n` more units of the task are done.
    TaskAdvance { id: &'static str, n: u64 },
    /// The task is finished.
    TaskEnd { id: &'static str },
    /// A one-line human-readable message (also written to the run's log file).
    Info(String),
    /// A training batch finished.
    Batch(BatchProgress),
    /// An epoch finished; the line is the epoch summary for the log.
    Epoch(EpochSummary),
    /// A child of a sample-based search finished: distinct functions trained of the budget,
    /// the best reward so far, and the formula just trained.
    Children { done: usize, budget: usize, best: f64, current: String },
}

/// State of the training loop after a batch.
#[derive(Clone, Debug)]
pub struct BatchProgress {
    pub epoch: usize,
    pub epochs: usize,
    pub batch: usize,
    pub batches: usize,
    pub loss: f64,
    pub acc: f64,
    pub images_per_sec: f64,
    /// Images in this batch.
    pub images: usize,
}

/// Metrics of one finished epoch.
#[derive(Clone, Debug)]
pub struct EpochSummary {
    pub epoch: usize,
    pub epochs: usize,
    pub line: String,
}

/// Receives events; implementations must be cheap because events come from hot loops.
pub trait Observer: Send + Sync {
    fn event(&self, event: Event);

    /// Polled between batches: returning true stops the run as if it had been killed there
    /// (the last checkpoint stays; `--resume` continues from it).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that drops everything (tests, library use).
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _event: Event) {}
}
