//! Sample-based searches (Ramachandran, Zoph & Le 2017 and its controls): propose an
//! activation function as a token sequence, train a child network with it, and learn from the
//! reward. The pipeline, top-down:
//!
//! - [`space`]: the discrete spaces (`core1`, `core2`, and the cells one op per position);
//! - [`screen`]: the identity of a proposal (canonical formula, fingerprint) and whether it
//!   is worth training; [`census`], how many distinct functions a small space holds;
//! - [`method`]: what a method is to the loop; [`random`], [`evolution`], [`exhaustive`],
//!   and the LSTM [`controller`] trained by [`policy`] with [`ppo`]'s or [`reinforce`]'s loss;
//! - [`child`], one child's spec, training and result file (`actsearch child`); [`fisher`],
//!   the Fisher features of a child's network at initialization, for the [`surrogate`];
//! - [`store`], which is `search.db`;
//! - [`config`]: a search's configuration and its presets;
//! - [`iteration`]: one controller iteration, from proposals to rows, its children run
//!   through an executor (`exec`);
//! - [`outputs`]: `children.jsonl`, `top.json` and `errors.json`;
//! - [`holdout`]: the surrogate's regressors fit on one search and scored on another
//!   (`actsearch predict`);
//! - [`run`]: the loop that ties them together on one budget.

pub mod census;
pub mod child;
pub mod config;
pub mod controller;
pub mod evolution;
pub mod exhaustive;
pub mod fisher;
pub mod holdout;
pub mod iteration;
pub mod method;
pub mod outputs;
pub mod policy;
pub mod ppo;
pub mod random;
pub mod reinforce;
pub mod run;
pub mod screen;
pub mod space;
pub mod store;
pub mod surrogate;
