//! `actsearch search`: one-shot search for an activation function over a cell space.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::backend::DataAndCompute;
use super::progress::Progress;
use super::stdout;
use crate::model::Network;
use crate::search::oneshot::config::SearchPreset;
use crate::search::oneshot::{SearchConfig, search};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// First-order DARTS: alternate Adam steps of the alphas on validation batches and SGD
    /// steps of the weights on training batches.
    Darts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// The seed project's search: ResNet-8, batch 64, 100 epochs, lr 0.025, 50/50 split.
    Seed,
    /// Minutes on a CPU: the seed recipe for 2 epochs on 5000 training images.
    Quick,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Search method.
    #[arg(long, value_enum)]
    pub method: Method,
    /// Cell space: small, huge, grafs, or PATH.toml (see README).
    #[arg(long)]
    pub space: String,
    /// The CIFAR ResNet whose activation sites become cells.
    #[arg(long, default_value = "resnet8", value_parser = Network::parse)]
    pub network: Network,
    /// Defaults for the recipe; explicit flags override them.
    #[arg(long, value_enum, default_value = "seed")]
    pub preset: PresetArg,
    /// Search epochs [preset: seed 100, quick 2].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size of both the training and the validation batches [preset: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Weights' learning rate, cosine-annealed to 0.001 [preset: 0.025].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Alphas' learning rate (Adam).
    #[arg(long, default_value_t = 3e-4)]
    pub arch_lr: f64,
    /// Fraction of the training images that train the weights; the rest trains the alphas.
    #[arg(long, default_value_t = 0.5)]
    pub train_portion: f64,
    /// Use only the first N training images after a seeded shuffle [preset: quick 5000].
    #[arg(long)]
    pub subset: Option<usize>,
    /// Training-data augmentation (pad 4, random crop, flip).
    #[arg(long, default_value = "standard", value_parser = ["standard", "none"])]
    pub augment: String,
    /// Seed for the weights, the alphas, the split and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory [default: runs/search-METHOD-SPACE].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the search in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub common: DataAndCompute,
}

pub fn run(args: SearchArgs) -> Result<()> {
    let preset = match args.preset {
        PresetArg::Seed => SearchPreset::Seed,
        PresetArg::Quick => SearchPreset::Quick,
    };
    let (epochs, batch_size, lr, subset) = preset.defaults();
    let method = args.method.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let (device, pool) = args.common.device_and_pool()?;
    let config = SearchConfig {
        method: method.clone(),
        space: args.space.clone(),
        network: args.network,
        dataset: args.common.dataset.clone(),
        data_dir: args.common.data_dir.clone(),
        epochs: args.epochs.unwrap_or(epochs),
        batch_size: args.batch_size.unwrap_or(batch_size),
        lr: args.lr.unwrap_or(lr),
        lr_min: 0.001,
        momentum: 0.9,
        weight_decay: 3e-4,
        grad_clip: 5.0,
        arch_lr: args.arch_lr,
        arch_betas: (0.5, 0.999),
        arch_weight_decay: 1e-3,
        train_portion: args.train_portion,
        subset: args.subset.or(subset),
        augment: args.augment == "standard",
        seed: args.seed,
        backend: args.common.backend.name().to_string(),
        threads: pool.current_num_threads(),
        out: args.out.clone().unwrap_or_else(|| default_out(&method, &args.space)),
    };
    validate(&config)?;
    crate::space::cell::CellSpace::parse(&config.space)?;
    let progress = Progress::new();
    progress.println(&format!(
        "actsearch search: {} over the {} space on {} {} ({} epochs, {} threads) -> {}",
        config.method,
        config.space,
        config.dataset,
        config.network.name(),
        config.epochs,
        config.threads,
        config.out.display()
    ));
    let outcome = pool.install(|| search(&config, &device, args.resume, &progress))?;
    progress.finish();
    stdout(&format!(
        "found: {}\ngenotype in {}; train it from scratch with\n  actsearch eval --activation {} --network resnet20\n",
        outcome.genotype.formula,
        outcome.out.join("genotype.json").display(),
        outcome.out.join("genotype.json").display()
    ))
}

fn default_out(method: &str, space: &str) -> PathBuf {
    let slug: String = space.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    PathBuf::from("runs").join(format!("search-{method}-{slug}"))
}

fn validate(c: &SearchConfig) -> Result<()> {
    if c.epochs == 0 {
        anyhow::bail!("--epochs must be at least 1");
    }
    if c.batch_size < 2 {
        anyhow::bail!("--batch-size must be at least 2 (BatchNorm needs two images to train)");
    }
    for (flag, v) in [("--lr", c.lr), ("--arch-lr", c.arch_lr)] {
        if !(v > 0.0 && v.is_finite()) {
            anyhow::bail!("{flag} must be a positive number, got {v}");
        }
    }
    if !(c.train_portion > 0.0 && c.train_portion < 1.0) {
        anyhow::bail!("--train-portion must be in (0, 1) for a search, got {}", c.train_portion);
    }
    if c.subset == Some(0) {
        anyhow::bail!("--subset must be at least 1");
    }
    Ok(())
}
