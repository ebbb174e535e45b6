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
    /// Second-order DARTS: the unrolled one-step gradient with a finite-difference
    /// Hessian-vector product (about 2.5x the work of darts per batch).
    Darts2,
    /// GDAS: one op per position sampled by a hard Gumbel-softmax (straight-through, tau
    /// 10 -> 0.1); only the sampled op is computed, so it is the cheapest in time and memory.
    Gdas,
    /// DrNAS: mixing weights sampled from Dirichlet(ELU(alpha)+1), reparameterized, with a
    /// KL anchor towards Dirichlet(1).
    Drnas,
    /// GRAFS: DrNAS plus a ReLU warm start (epoch 1), outputs bounded to +-10, independent
    /// samples per site, progressive shrinking from epoch 2 and the best-validation genotype.
    Grafs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// The seed project's search: ResNet-8, batch 64, 100 epochs, lr 0.025, 50/50 split.
    Seed,
    /// GRAFS: ResNet-20, batch 64 x 2 accumulation steps, 75/25 split, 50 epochs, arch lr
    /// 6e-4, lr 0.1, weight decay 1e-4, one shared cell.
    Grafs,
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
    /// The CIFAR ResNet whose activation sites become cells [preset: seed resnet8, grafs resnet20].
    #[arg(long, value_parser = Network::parse)]
    pub network: Option<Network>,
    /// Defaults for the recipe; explicit flags override them.
    #[arg(long, value_enum, default_value = "seed")]
    pub preset: PresetArg,
    /// Search epochs [preset: seed 100, grafs 50, quick 2].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub epochs: Option<usize>,
    /// Batch size of both the training and the validation batches [preset: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub batch_size: Option<usize>,
    /// Average the gradients of N batches into one step [preset: seed 1, grafs 2].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub accumulate: Option<usize>,
    /// Weights' learning rate, cosine-annealed to 0.001 [preset: seed 0.025, grafs 0.1].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Weights' weight decay [preset: seed 3e-4, grafs 1e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Alphas' learning rate (Adam, betas (0.5, 0.999), weight decay 1e-3) [preset: seed 3e-4, grafs 6e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub arch_lr: Option<f64>,
    /// Scale of the KL term towards Dirichlet(1) for drnas and grafs (0 turns it off).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub kl_scale: f64,
    /// One set of alphas shared by every activation site (the GRAFS setting) instead of one
    /// set per site [preset: grafs].
    #[arg(long)]
    pub shared_cell: bool,
    /// Fraction of the training images that train the weights; the rest trains the alphas
    /// [preset: seed 0.5, grafs 0.75].
    #[arg(long, allow_negative_numbers = true)]
    pub train_portion: Option<f64>,
    /// Use only the first N training images after a seeded shuffle [preset: quick 5000].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub subset: Option<usize>,
    /// Also score the supernet on the first N test images (after a seeded shuffle) after
    /// every epoch; the last value is the final supernet's test accuracy. Without it the test
    /// split is not used.
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub test_subset: Option<usize>,
    /// Training-data augmentation (pad 4, random crop, flip).
    #[arg(long, default_value = "standard", value_parser = ["standard", "none"])]
    pub augment: String,
    /// Seed for the weights, the alphas, the split and the augmentation.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = super::whole)]
    pub seed: u64,
    /// Output directory [default: runs/search-METHOD-SPACE].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the search in --out from its last checkpoint (and, with --then-eval, its evals).
    #[arg(long)]
    pub resume: bool,
    /// After the search, train the found function and the --baseline from scratch with
    /// eval's quick preset (3 epochs on 5000 images, 1000 test images) on --eval-network,
    /// compare their test accuracy, and write a report (formula plot, alphas, curves) to
    /// OUT/report.
    #[arg(long)]
    pub then_eval: bool,
    /// The activation the found function is compared with (--then-eval).
    #[arg(long, default_value = "relu", requires = "then_eval", allow_hyphen_values = true)]
    pub baseline: String,
    /// The network both are trained on (--then-eval).
    #[arg(long, default_value = "resnet20", value_parser = Network::parse, requires = "then_eval")]
    pub eval_network: Network,
    #[command(flatten)]
    pub common: DataAndCompute,
}

pub fn run(args: SearchArgs) -> Result<()> {
    let preset = match args.preset {
        PresetArg::Seed => SearchPreset::Seed,
        PresetArg::Grafs => SearchPreset::Grafs,
        PresetArg::Quick => SearchPreset::Quick,
    };
    let defaults = preset.defaults();
    let method = args.method.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let (device, pool) = args.common.device_and_pool()?;
    let config = SearchConfig {
        method: method.clone(),
        space: args.space.clone(),
        network: args.network.unwrap_or(defaults.network),
        dataset: args.common.dataset.clone(),
        data_dir: args.common.data_dir.clone(),
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        lr: args.lr.unwrap_or(defaults.lr),
        lr_min: 0.001,
        momentum: 0.9,
        weight_decay: args.weight_decay.unwrap_or(defaults.weight_decay),
        grad_clip: 5.0,
        arch_lr: args.arch_lr.unwrap_or(defaults.arch_lr),
        arch_betas: (0.5, 0.999),
        arch_weight_decay: 1e-3,
        kl_scale: args.kl_scale,
        shared_cell: args.shared_cell || defaults.shared_cell,
        accumulate: args.accumulate.unwrap_or(defaults.accumulate),
        train_portion: args.train_portion.unwrap_or(defaults.train_portion),
        subset: args.subset.or(defaults.subset),
        test_subset: args.test_subset,
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
    if args.then_eval {
        // A bad baseline fails now, not after the search.
        crate::space::resolve::resolve_activation(&args.baseline)?;
    }
    let outcome = pool.install(|| search(&config, &device, args.resume, &progress))?;
    progress.finish();
    if args.then_eval {
        return compare(&args, &config, &outcome.out);
    }
    stdout(&format!(
        "found: {}\ngenotype in {}; train it from scratch with\n  actsearch eval --activation {} --network resnet20\n",
        outcome.genotype.formula,
        outcome.out.join("genotype.json").display(),
        outcome.out.join("genotype.json").display()
    ))
}

/// `--then-eval`: the found function and the baseline trained from scratch, then the report.
fn compare(args: &SearchArgs, config: &SearchConfig, out: &std::path::Path) -> Result<()> {
    use super::eval::{self, EvalArgs};
    let genotype = out.join("genotype.json");
    let found = genotype.to_string_lossy().into_owned();
    let runs = [(found.clone(), out.join("eval-found")), (args.baseline.clone(), out.join("eval-baseline"))];
    stdout(&format!(
        "found: {}
training it and {} from scratch on {} (quick preset) to compare
",
        crate::space::resolve::load_formula(&genotype)?,
        args.baseline,
        args.eval_network.name()
    ))?;
    for (activation, dir) in &runs {
        let eval = EvalArgs { resume: args.resume, ..EvalArgs::quick(args.eval_network, activation, dir, config.seed, args.common.clone()) };
        eval::run(eval)?;
    }
    // The search and the two evals inside it.
    let loaded = crate::report::runs::load(&[out.to_path_buf()])?;
    let written = crate::report::document::write(&crate::report::document::build(&loaded)?, &out.join("report"))?;
    let run = |dir: &std::path::Path| loaded.iter().find(|r| r.dir == dir);
    let acc = |i: usize| {
        let final_acc = run(&runs[i].1).and_then(|r| r.errors.final_test_acc());
        final_acc.map_or("?".into(), |a| format!("{a:.2}%"))
    };
    let activation = |i: usize| run(&runs[i].1).map_or(String::new(), |r| r.errors.activation.clone());
    let plot = written.images.iter().find(|p| p.to_string_lossy().ends_with("-formula.png"));
    let quick = crate::train::config::Preset::Quick.defaults();
    stdout(&format!(
        "\n{:<10} {:>8}  {}\n{:<10} {:>8}  {}\n(test accuracy, {} on {}, {} epochs on {} images: a smoke test, not a verdict: train both longer with `actsearch eval --epochs 200`)\nplot of the found function: {}\nreport: {}\n",
        "found",
        acc(0),
        activation(0),
        "baseline",
        acc(1),
        activation(1),
        args.eval_network.name(),
        config.dataset,
        quick.epochs,
        quick.subset.map_or("all".into(), |n| n.to_string()),
        plot.map_or("(none)".into(), |p| p.display().to_string()),
        written.html.display()
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
    if !(c.weight_decay >= 0.0 && c.kl_scale >= 0.0 && c.weight_decay.is_finite() && c.kl_scale.is_finite()) {
        anyhow::bail!("--weight-decay and --kl-scale must be finite and not negative");
    }
    if c.accumulate == 0 {
        anyhow::bail!("--accumulate must be at least 1");
    }
    if c.subset == Some(0) || c.test_subset == Some(0) {
        anyhow::bail!("--subset and --test-subset must be at least 1");
    }
    Ok(())
}
