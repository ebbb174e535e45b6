//! Searching for activation functions. `oneshot`: gradient-based cell searches (DARTS, GDAS,
//! DrNAS, GRAFS) over a ResNet whose every activation site is a mixed cell. `sample`:
//! sample-based searches (PPO, REINFORCE, random, evolution, exhaustive) that train one child
//! network per proposed function, run by an executor of `crate::exec`. `fidelity`: how much a
//! sample-based search trains each function (all of `--child-steps`, or successive halving's
//! rungs) and what it may spend in all (`--budget-steps`). `predict`: a function's reward
//! predicted without training it (features and a nearest-neighbour regressor).

pub mod fidelity;
pub mod oneshot;
pub mod predict;
pub mod sample;
