//! The one training loop shared by `eval`, the one-shot searches and the children of the
//! sample-based searches: optimizer, learning-rate
//! schedules, metrics, `errors.json`, checkpoints and resume, multi-seed summaries, and
//! evaluation grids (networks × activations × seeds as executor tasks). `batches` and `text`
//! hold the training batches of the image and language-model tasks, `bleu` sacreBLEU's corpus
//! BLEU.

pub mod adam;
pub mod batches;
pub mod bleu;
pub mod checkpoint;
pub mod config;
pub mod driver;
pub mod grid;
pub mod history;
pub mod metrics;
pub mod optimizer;
pub mod run;
pub mod run_dir;
pub mod schedule;
pub mod seeds;
pub mod sgd;
pub mod steps;
pub mod text;
pub mod translate;
pub mod update;

pub use config::TrainConfig;
pub use run::{RunOutcome, train};
