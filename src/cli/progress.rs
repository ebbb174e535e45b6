//! Renders library events on the terminal: a bar per long task (downloads, image decoding),
//! an epoch bar and a batch bar with loss, accuracy and images per second during training,
//! and plain lines for messages. When stderr is not a terminal, bars are hidden and only the
//! lines are printed. Lines repeat no value from the command line longer than 80 characters
//! (see [`super::shorten_user_values`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::observer::{Event, Observer};

pub struct Progress {
    multi: MultiProgress,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tasks: HashMap<&'static str, ProgressBar>,
    epoch_bar: Option<ProgressBar>,
    batch_bar: Option<ProgressBar>,
    children_bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new() -> Progress {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        Progress { multi, state: Mutex::new(State::default()) }
    }

    /// Print a line above the bars (or plainly when there are none); a long value from the
    /// command line in it is cut as in error messages.
    pub fn println(&self, line: &str) {
        let line = &super::shorten_user_values(line);
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Remove all bars (before the final summary).
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap();
        for bar in state.tasks.values() {
            bar.finish_and_clear();
        }
        state.tasks.clear();
        if let Some(bar) = state.batch_bar.take() {
            bar.finish_and_clear();
        }
        if let Some(bar) = state.epoch_bar.take() {
            bar.finish_and_clear();
        }
        if let Some(bar) = state.children_bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn task_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:>24} [{bar:30.cyan/blue}] {human_pos}/{human_len} ({eta})")
        .unwrap()
        .progress_chars("=> ")
}

fn epoch_style() -> ProgressStyle {
    ProgressStyle::with_template("epoch {pos:>3}/{len} [{bar:30.green/white}] {elapsed_precise} (eta {eta}) {msg}")
        .unwrap()
        .progress_chars("=> ")
}

fn children_style() -> ProgressStyle {
    ProgressStyle::with_template("children {pos:>3}/{len} [{bar:30.green/white}] {elapsed_precise} (eta {eta}) {msg}")
        .unwrap()
        .progress_chars("=> ")
}

fn batch_style() -> ProgressStyle {
    ProgressStyle::with_template("batch {pos:>4}/{len:4} [{bar:30.cyan/blue}] {msg}").unwrap().progress_chars("=> ")
}

/// Set by the first Ctrl-C: long work stops at its next safe point (a search cancels its
/// tasks and keeps what finished, for --resume). A second Ctrl-C ends the process at once.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the Ctrl-C handler (once, at start).
pub fn handle_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping at the next safe point (Ctrl-C again to quit at once)...");
    });
}

impl Observer for Progress {
    fn should_stop(&self) -> bool {
        STOP.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn event(&self, event: Event) {
        let mut state = self.state.lock().unwrap();
        match event {
            Event::TaskStart { id, label, total } => {
                let bar = self.multi.add(ProgressBar::new(total).with_style(task_style()).with_message(label));
                bar.enable_steady_tick(Duration::from_millis(250));
                state.tasks.insert(id, bar);
            }
            Event::TaskAdvance { id, n } => {
                if let Some(bar) = state.tasks.get(id) {
                    bar.inc(n);
                }
            }
            Event::TaskEnd { id } => {
                if let Some(bar) = state.tasks.remove(id) {
                    bar.finish_and_clear();
                }
            }
            Event::Info(line) => {
                drop(state);
                self.println(&line);
            }
            Event::Batch(p) => {
                let epoch_bar = state.epoch_bar.get_or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new(p.epochs as u64).with_style(epoch_style()));
                    bar.set_position(p.epoch as u64 - 1);
                    bar
                });
                epoch_bar.set_length(p.epochs as u64);
                let batch_bar = state.batch_bar.get_or_insert_with(|| {
                    self.multi.add(ProgressBar::new(p.batches as u64).with_style(batch_style()))
                });
                batch_bar.set_length(p.batches as u64);
                batch_bar.set_position(p.batch as u64);
                batch_bar
                    .set_message(format!("loss {:.4} | acc {:.2}% | {:.0} img/s", p.loss, p.acc, p.images_per_sec));
            }
            Event::Children { done, budget, best, current } => {
                let bar = state.children_bar.get_or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new(budget as u64).with_style(children_style()));
                    bar.enable_steady_tick(Duration::from_millis(500));
                    bar
                });
                bar.set_length(budget as u64);
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "best {best:.4} | last {}",
                    super::shorten_user_values(&crate::expr::shorten(&current))
                ));
            }
            Event::Epoch(summary) => {
                if let Some(bar) = &state.epoch_bar {
                    bar.set_position(summary.epoch as u64);
                }
                if let Some(bar) = state.batch_bar.take() {
                    bar.finish_and_clear();
                }
                if summary.epoch == summary.epochs
                    && let Some(bar) = state.epoch_bar.take()
                {
                    bar.finish_and_clear();
                }
                drop(state);
                self.println(&summary.line);
            }
        }
    }
}
