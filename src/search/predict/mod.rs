//! Predicting a function's reward without training it: the approach of AQuaSurF (Bingham &
//! Miikkulainen 2023). `features` describes a function by what needs no training (`fisher`:
//! the spectrum its network starts with, from gradients at initialization); `knn` is
//! the regressor that, fit to the rewards trained so far, scores candidates that were not.
//!
//! Nothing here trains, stores or proposes anything; a search method uses these to rank its
//! candidates.

pub mod features;
pub mod fisher;
pub mod knn;

pub use features::{OUTPUT_SAMPLES, output_features};
pub use knn::Knn;
