//! `actsearch search`: search for an activation function over a cell space, one-shot (the
//! network's activations become mixed cells) or sample-based (`super::sample`: a child network
//! trained per proposed function).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::backend::DataAndCompute;
use super::progress::Progress;
use super::sample::{SampleArgs, sample_method};
use super::stdout;
use crate::model::Network;
use crate::search::oneshot::config::SearchPreset;
use crate::search::oneshot::SearchConfig;
use crate::search::oneshot::seeds::search_seeds;

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
    /// Sample-based: an LSTM controller trained with PPO (clipped objective, moving-average
    /// baseline, entropy bonus) on the validation accuracy of a child trained per function.
    Ppo,
    /// Sample-based: the same controller with the plain policy gradient.
    Reinforce,
    /// Sample-based: uniform random sequences (the control).
    Random,
    /// Sample-based: regularized (aging) evolution with tournament selection and one-token
    /// mutations.
    Evolution,
    /// Sample-based: every sequence of the space in a fixed order, up to --budget.
    Exhaustive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// The seed project's search: ResNet-8, batch 64, 100 epochs, lr 0.025, 50/50 split.
    Seed,
    /// GRAFS: ResNet-20, batch 64 x 2 accumulation steps, 75/25 split, 50 epochs, arch lr
    /// 6e-4, lr 0.1, weight decay 1e-4, one shared cell.
    Grafs,
    /// Minutes on a CPU: GRAFS' recipe (shared cell, lr 0.1, wd 1e-4, arch lr 6e-4) on
    /// ResNet-8 for 6 epochs on 10000 training images (5000 train / 5000 valid), batch 64.
    /// Sample-based methods: budget 16, 4 per iteration, ResNet-8 children of 200 steps on
    /// 5000 images (4000 train / 1000 valid).
    Quick,
    /// Sample-based methods (Ramachandran et al. 2017, as far as published): ResNet-20
    /// children of 10000 steps, batch 128, lr 0.1 cosine, wd 5e-4, 80/20 split, budget 1000.
    /// The seed preset means the same for them.
    Paper,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Search method (grafs is the one that finds useful functions in a few CPU minutes).
    #[arg(long, value_enum, default_value = "grafs")]
    pub method: Method,
    /// Cell space: small, huge, grafs, core1, core2, or PATH.toml (see README).
    #[arg(long, default_value = "grafs")]
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
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = super::whole, conflicts_with = "seeds")]
    pub seed: u64,
    /// Comma-separated seeds: one search per seed, each in its own seed-N subfolder of
    /// --out, and summary.json says whether the seeds found the same function.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, value_parser = super::whole)]
    pub seeds: Vec<u64>,
    /// Output directory [default: runs/search-METHOD-SPACE].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the search in --out from its last checkpoint (and, with --then-eval, its evals).
    #[arg(long)]
    pub resume: bool,
    /// After the search, train the found function and the --baseline from scratch over
    /// --eval-seeds with eval's quick preset (3 epochs on 7000 images, 2000 test images) on
    /// --eval-network, compare them (difference with its 95% interval, p-value, verdict; also
    /// in OUT/summary.json), and write a report (formula plot, alphas, curves) to OUT/report.
    #[arg(long)]
    pub then_eval: bool,
    /// The activation the found function is compared with (--then-eval).
    #[arg(long, default_value = "relu", requires = "then_eval", allow_hyphen_values = true)]
    pub baseline: String,
    /// The network both are trained on (--then-eval).
    #[arg(long, default_value = "resnet8", value_parser = Network::parse, requires = "then_eval")]
    pub eval_network: Network,
    /// Seeds of the evals of --then-eval (the same for both, so the comparison is paired by
    /// seed); one seed gives no verdict.
    #[arg(long, default_value = "0,1,2", value_delimiter = ',', allow_negative_numbers = true, value_parser = super::whole, requires = "then_eval")]
    pub eval_seeds: Vec<u64>,
    #[command(flatten)]
    pub sample: SampleArgs,
    #[command(flatten)]
    pub common: DataAndCompute,
}

pub fn run(args: SearchArgs) -> Result<()> {
    if let Some(method) = sample_method(args.method) {
        return super::sample::run(&args, method);
    }
    reject_sample_flags(&args)?;
    let preset = match args.preset {
        PresetArg::Paper => bail!("--preset paper is for the sample-based methods (ppo, reinforce, random, evolution, exhaustive)"),
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
        seed: args.seeds.first().copied().unwrap_or(args.seed),
        backend: args.common.backend.name().to_string(),
        threads: pool.current_num_threads(),
        out: args.out.clone().unwrap_or_else(|| default_out(&method, &args.space)),
    };
    let seeds = if args.seeds.is_empty() { vec![args.seed] } else { args.seeds.clone() };
    validate(&config, &seeds)?;
    if args.then_eval && seeds.len() > 1 {
        bail!(
            "--then-eval takes one search seed (--seeds gives {}): evaluate each seed's genotype with `actsearch eval --activation OUT/seed-N/genotype.json --seeds 0,1,2`",
            seeds.len()
        );
    }
    if args.then_eval {
        super::distinct_seeds("--eval-seeds", &args.eval_seeds)?;
    }
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
    let (summary, outcomes) = pool.install(|| search_seeds(&config, &seeds, &device, args.resume, &progress))?;
    progress.finish();
    if args.then_eval {
        let genotype = outcomes[0].out.join("genotype.json").to_string_lossy().into_owned();
        return compare(&args, config.seed, &config.dataset, &outcomes[0].out, &genotype, &outcomes[0].undecided);
    }
    if seeds.len() == 1 {
        let genotype = outcomes[0].out.join("genotype.json");
        return stdout(&format!(
            "found: {}\ngenotype in {}; train it from scratch with\n  actsearch eval --activation {} --seeds 0,1,2\n",
            outcomes[0].genotype.formula,
            genotype.display(),
            genotype.display()
        ));
    }
    let mut text = String::new();
    for (seed, formula) in summary.seeds.iter().zip(&summary.formulas) {
        text += &format!("seed {seed}: {formula}\n");
    }
    text += &match summary.agree {
        true => format!("the {} seeds agree: they found the same function\n", seeds.len()),
        false => format!(
            "the {} seeds disagree: {} different functions ({}); the search is not stable at this budget\n",
            seeds.len(),
            summary.functions.len(),
            summary.functions.iter().map(|f| format!("seeds {:?}: {}", f.seeds, crate::report::shown(&f.formula))).collect::<Vec<_>>().join("; ")
        ),
    };
    text += &format!("summary in {}\n", config.out.join("summary.json").display());
    stdout(&text)
}

/// The sample-only flags given with a one-shot method: an error names them.
fn reject_sample_flags(args: &SearchArgs) -> Result<()> {
    let s = &args.sample;
    let given: Vec<&str> = [
        ("--budget", s.budget.is_some()),
        ("--batch-children", s.batch_children.is_some()),
        ("--child-network", s.child_network.is_some()),
        ("--child-steps", s.child_steps.is_some()),
        ("--population", s.population.is_some()),
        ("--tournament", s.tournament.is_some()),
        ("--max-proposals", s.max_proposals.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, on)| on.then_some(flag))
    .collect();
    if !given.is_empty() {
        bail!("{} only apply to the sample-based methods (ppo, reinforce, random, evolution, exhaustive)", given.join(", "));
    }
    Ok(())
}

/// `--then-eval`: the found function (`found`: a genotype path or a formula) and the baseline
/// trained from scratch over the same seeds, compared (paired by seed), the comparison in
/// `OUT/summary.json`, then the report.
pub(super) fn compare(
    args: &SearchArgs,
    seed: u64,
    dataset: &str,
    out: &std::path::Path,
    found: &str,
    undecided: &[String],
) -> Result<()> {
    use super::eval::{self, EvalArgs};
    use crate::report::stats;
    let runs = [(found.to_string(), out.join("eval-found")), (args.baseline.clone(), out.join("eval-baseline"))];
    let seeds = args.eval_seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
    stdout(&format!(
        "found: {}\ntraining it and {} from scratch on {} (eval's quick preset, seeds {seeds}) to compare\n",
        crate::space::resolve::resolve_activation(found)?,
        args.baseline,
        args.eval_network.name()
    ))?;
    let mut summaries = Vec::new();
    for (activation, dir) in &runs {
        let mut eval = EvalArgs::quick(args.eval_network, activation, dir, seed, args.common.clone());
        eval.seeds = args.eval_seeds.clone();
        eval.resume = args.resume;
        summaries.push(eval::run_summary(eval)?);
    }
    let pairs = |s: &crate::train::seeds::Summary| s.seeds.iter().copied().zip(s.test_acc.iter().copied()).collect::<Vec<_>>();
    let c = stats::compare(&pairs(&summaries[0]), &pairs(&summaries[1]));
    let quick = crate::train::config::Preset::Quick.defaults();
    let recipe = format!(
        "{} on {}, {} epochs on {} images, {} test images, seeds {seeds}",
        args.eval_network.name(),
        dataset,
        quick.epochs,
        quick.subset.map_or("all".into(), |n| n.to_string()),
        quick.test_subset.map_or("all".into(), |n| n.to_string()),
    );
    let side = |s: &crate::train::seeds::Summary, dir: &std::path::Path| {
        serde_json::json!({
            "activation": s.activation, "seeds": s.seeds, "test_acc": s.test_acc, "mean": s.mean, "std": s.std,
            "ci95": s.ci95, "runs": dir.strip_prefix(out).unwrap_or(dir).to_string_lossy(),
        })
    };
    let summary = serde_json::json!({
        "found": side(&summaries[0], &runs[0].1),
        "baseline": side(&summaries[1], &runs[1].1),
        "comparison": c.to_json(),
        "recipe": recipe,
    });
    crate::train::history::write_json(&out.join("summary.json"), &summary)?;
    // The search and the evals inside it.
    let loaded = crate::report::runs::load(&[out.to_path_buf()])?;
    let report = crate::report::document::build(&loaded, &summaries[1].activation)?;
    let written = crate::report::document::write(&report, &out.join("report"))?;
    let plot = written.images.iter().find(|p| p.to_string_lossy().ends_with("-formula.png"));
    let line = |name: &str, s: &crate::train::seeds::Summary| {
        let ci = s.ci95.map_or("no interval from one seed".to_string(), |[lo, hi]| format!("95% CI [{lo:.2}, {hi:.2}]"));
        format!("{name:<10} {:>6.2} ± {:.2}%  ({ci})  {}\n", s.mean, s.std, crate::report::shown(&s.activation))
    };
    let verdict = match c.ci {
        Some((lo, hi)) => format!(
            "found - baseline: {:+.2} points, 95% CI [{lo:+.2}, {hi:+.2}] ({}), p = {:.3}: {}{}\n",
            c.diff,
            c.test.words(),
            c.p.unwrap_or(f64::NAN),
            c.verdict.words(),
            c.seeds_needed_clause().map_or(String::new(), |clause| format!(" ({clause})"))
        ),
        None => format!("found - baseline: {:+.2} points: {}\n", c.diff, c.verdict.words()),
    };
    let undecided = match undecided.is_empty() {
        true => String::new(),
        false => format!(
            "warning: the search had not chosen at {} position(s) ({}): those ops are an argmax of noise\n",
            undecided.len(),
            undecided.join("; ")
        ),
    };
    stdout(&format!(
        "\n{undecided}{}{}{verdict}(test accuracy, {recipe}: a quick check; train both longer with `actsearch eval --epochs 200 --seeds 0,1,2`)\ncomparison: {}\nplot of the found function: {}\nreport: {}\n",
        line("found", &summaries[0]),
        line("baseline", &summaries[1]),
        out.join("summary.json").display(),
        plot.map_or("(none)".into(), |p| p.display().to_string()),
        written.html.display()
    ))
}

pub(super) fn default_out(method: &str, space: &str) -> PathBuf {
    let slug: String = space.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    PathBuf::from("runs").join(format!("search-{method}-{slug}"))
}

fn validate(c: &SearchConfig, seeds: &[u64]) -> Result<()> {
    super::distinct_seeds("--seeds", seeds)?;
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
