//! `actsearch export RUN/genotype.json|FORMULA --to pytorch|jax|formula`: the activation as
//! self-contained code for another framework, printed on stdout (or written to `--out`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::stdout;
use crate::export::{Exported, Target, export};
use crate::space::genotype::{Genotype, SiteLayout};
use crate::space::resolve::{InitParams, resolve_activation, site_values};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum To {
    /// A PyTorch nn.Module with per-channel parameters (dimension 1, as BatchNorm2d).
    Pytorch,
    /// A JAX function of (x, params) and a Flax module (per-channel parameters on the last axis).
    Jax,
    /// The canonical formula and its parameter values, as text.
    Formula,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Values {
    /// The values the parameters start from when trained from scratch (1, or the op's init).
    Init,
    /// Each parameter at the mean of the values the search learned (a genotype only).
    LearnedMean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    Channels,
    Features,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A search's genotype.json, a named activation or a formula such as "x*sigmoid(b*x)".
    #[arg(value_name = "RUN/genotype.json|FORMULA", allow_hyphen_values = true)]
    pub activation: String,
    /// The framework to write code for.
    #[arg(long, value_enum)]
    pub to: To,
    /// Where the parameters start [default: learned-mean for a genotype with learned
    /// values, else init].
    #[arg(long, value_enum)]
    pub values: Option<Values>,
    /// Where the PyTorch module's parameters lie: `channels` (dimension 1 of (N, C, ...), as
    /// BatchNorm2d: the ResNets' sites) or `features` (the last axis: a transformer's MLP
    /// hidden layer, as transformers_ref.py builds it with act(width)). JAX's parameters are
    /// on the last axis either way [default: the genotype's, from the network it was searched
    /// on; channels for a formula].
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// Write the code to this file (atomically) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const INIT: &str = "its initial value";
const LEARNED_MEAN: &str = "the mean of the values the search learned";

pub fn run(args: ExportArgs) -> Result<()> {
    let formula = resolve_activation(&args.activation)?;
    let is_genotype = args.activation.ends_with(".json");
    let learned_mean = || site_values(&args.activation, &formula, InitParams::LearnedMean, &[1]);
    let init = || site_values(&args.activation, &formula, InitParams::Init, &[1]);
    let (per_param, values_from) = match args.values {
        Some(Values::Init) => (init()?, INIT),
        Some(Values::LearnedMean) if !is_genotype => {
            bail!(
                "--values learned-mean needs a search's genotype.json; '{}' is a formula",
                crate::report::shown(&args.activation)
            )
        }
        Some(Values::LearnedMean) => (learned_mean()?, LEARNED_MEAN),
        // The default: what the search learned where it recorded it, else the initial values.
        None => match is_genotype.then(learned_mean).and_then(Result::ok) {
            Some(values) => (values, LEARNED_MEAN),
            None => (init()?, INIT),
        },
    };
    let values: Vec<f64> = per_param[0].iter().map(|channels| channels[0] as f64).collect();
    let target = match args.to {
        To::Pytorch => Target::Pytorch,
        To::Jax => Target::Jax,
        To::Formula => Target::Formula,
    };
    let layout = match args.layout {
        Some(LayoutArg::Channels) => SiteLayout::Channels,
        Some(LayoutArg::Features) => SiteLayout::Features,
        None if is_genotype => Genotype::load(std::path::Path::new(&args.activation))?.layout,
        None => SiteLayout::Channels,
    };
    let exported = Exported { formula: &formula, values: &values, values_from, source: &args.activation, layout };
    let code = export(&exported, target);
    match &args.out {
        None => stdout(&code),
        Some(path) => {
            crate::files::write_atomic(path, code.as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e:#}", path.display()))?;
            stdout(&format!("wrote {}\n", path.display()))
        }
    }
}
