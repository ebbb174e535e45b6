//! `actsearch search` with a one-shot method (darts, darts2, gdas, drnas, grafs): the
//! network's activations become mixed cells. The sample-based methods are `super::sample`.

use anyhow::{Result, bail};
use clap::ValueEnum;

use super::progress::Progress;
use super::search_args::{PresetArg, SearchArgs, default_out};
use super::stdout;
use super::then_eval::compare;
use crate::model::{Network, Task};
use crate::search::oneshot::SearchConfig;
use crate::search::oneshot::config::SearchPreset;
use crate::search::oneshot::seeds::search_seeds;
use crate::train::config::{Optimizer, Preset};

pub fn run(args: SearchArgs) -> Result<()> {
    args.sample.exec.check()?;
    reject_sample_flags(&args)?;
    let preset = match args.preset {
        PresetArg::Paper => {
            bail!("--preset paper is for the sample-based methods (ppo, reinforce, random, evolution, exhaustive)")
        }
        PresetArg::Seed => SearchPreset::Seed,
        PresetArg::Grafs => SearchPreset::Grafs,
        PresetArg::Quick => SearchPreset::Quick,
    };
    let defaults = preset.defaults();
    let network = args.network.unwrap_or(defaults.network);
    if args.then_eval {
        super::search_args::same_task(network, "--network", args.eval_network(network))?;
    }
    let language = network.task() != Task::Image;
    task_flags(&args, network)?;
    // A language or translation model's search runs by steps, with eval's recipe and length.
    let gpt = match language {
        true => Some(match preset {
            SearchPreset::Quick => Preset::Quick.defaults_for(network)?,
            _ => Preset::Standard.defaults_for(network)?,
        }),
        false => None,
    };
    let steps = args.steps.or(gpt.and_then(|d| d.steps));
    let eval_interval = steps.map(|s| args.eval_interval.or(gpt.and_then(|d| d.eval_interval)).unwrap_or(s).min(s));
    // The weights' recipe follows the network: SGD for the ResNets, AdamW for the transformers.
    let weights = match network.is_resnet() {
        true => Weights {
            optimizer: Optimizer::Sgd,
            lr: defaults.lr,
            lr_min: 0.001,
            momentum: 0.9,
            weight_decay: defaults.weight_decay,
            grad_clip: 5.0,
            warmup: 0.0,
        },
        // eval's recipe for the transformer (train::config::Preset): a ViT's cosine to 0, a
        // GPT's nanoGPT recipe, a translation model's Adam (their floors and betas are the
        // network's, see `search_net`); the gradient norm is clipped at 1 where eval does not
        // clip (the translation models), since a supernet's mixed outputs can spike.
        false => {
            let vit = match gpt {
                Some(d) => d,
                None => Preset::Standard.defaults_for(network)?,
            };
            Weights {
                optimizer: vit.optimizer,
                lr: vit.lr,
                lr_min: 0.0,
                momentum: vit.momentum,
                weight_decay: vit.weight_decay,
                grad_clip: vit.grad_clip.unwrap_or(1.0),
                warmup: vit.warmup,
            }
        }
    };
    let method = args.method.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
    let (device, pool) = args.common.device_and_pool()?;
    let config = SearchConfig {
        method: method.clone(),
        space: args.space.clone(),
        network,
        dataset: args.common.dataset.clone(),
        data_dir: args.common.data_dir.clone(),
        epochs: if language { 0 } else { args.epochs.unwrap_or(defaults.epochs) },
        steps,
        eval_interval,
        batch_size: args.batch_size.unwrap_or(gpt.map_or(defaults.batch_size, |d| d.batch_size)),
        lr: args.lr.unwrap_or(weights.lr),
        lr_min: weights.lr_min,
        momentum: weights.momentum,
        weight_decay: args.weight_decay.unwrap_or(weights.weight_decay),
        grad_clip: weights.grad_clip,
        optimizer: weights.optimizer,
        warmup: weights.warmup,
        mlp: args.mlp.on(network)?,
        dropout: gpt.map_or(0.0, |d| d.dropout),
        translation: (network.task() == Task::Translation).then(|| args.translation.config()),
        arch_lr: args.arch_lr.unwrap_or(defaults.arch_lr),
        arch_betas: (0.5, 0.999),
        arch_weight_decay: 1e-3,
        kl_scale: args.kl_scale,
        shared_cell: args.shared_cell || defaults.shared_cell,
        warm_start: args.warm_start.map(|n| n as usize),
        warm_start_with: args.warm_start_with.clone(),
        accumulate: args.accumulate.unwrap_or(defaults.accumulate),
        train_portion: args.train_portion.unwrap_or(defaults.train_portion),
        subset: args.subset.or(defaults.subset),
        test_subset: args.test_subset,
        requested: Default::default(),
        augment: args.augment == "standard" && !language,
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
    let length = match config.span_steps() {
        (_, 0) => format!("{} epochs", config.epochs),
        (steps, interval) => format!("{steps} steps, evaluated every {interval}"),
    };
    progress.println(&format!(
        "actsearch search: {} over the {} space on {} {} ({length}, {} threads) -> {}",
        config.method,
        config.space,
        config.dataset,
        config.network.name(),
        config.threads,
        config.out.display()
    ));
    if args.then_eval {
        // A bad baseline fails now, not after the search.
        crate::space::resolve::resolve_activation(&args.baseline(network))?;
    }
    let (summary, outcomes) = pool.install(|| search_seeds(&config, &seeds, &device, args.resume, &progress))?;
    progress.finish();
    if args.then_eval {
        let genotype = outcomes[0].out.join("genotype.json").to_string_lossy().into_owned();
        return compare(
            &args,
            network,
            config.seed,
            &config.dataset,
            &outcomes[0].out,
            &genotype,
            &outcomes[0].undecided,
        );
    }
    if seeds.len() == 1 {
        let genotype = outcomes[0].out.join("genotype.json");
        let network = match (config.network.is_resnet(), language) {
            (true, _) => String::new(),
            (false, false) => format!(" --network {}", config.network.name()),
            (false, true) => format!(" --network {} --dataset {}", config.network.name(), config.dataset),
        };
        return stdout(&format!(
            "found: {}\ngenotype in {}; train it from scratch with\n  actsearch eval --activation {}{network} --seeds 0,1,2\n",
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
            summary
                .functions
                .iter()
                .map(|f| format!("seeds {:?}: {}", f.seeds, crate::report::shown(&f.formula)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    text += &format!("summary in {}\n", config.out.join("summary.json").display());
    stdout(&text)
}

/// The weights' recipe of a one-shot search.
struct Weights {
    optimizer: Optimizer,
    lr: f64,
    lr_min: f64,
    momentum: f64,
    weight_decay: f64,
    grad_clip: f64,
    warmup: f64,
}

/// The sample-only flags given with a one-shot method: an error names them.
fn reject_sample_flags(args: &SearchArgs) -> Result<()> {
    let s = &args.sample;
    let flags = [
        ("--budget", s.budget.is_some()),
        ("--batch-children", s.batch_children.is_some()),
        ("--child-network", s.child_network.is_some()),
        ("--child-steps", s.child_steps.is_some()),
        ("--population", s.population.is_some()),
        ("--tournament", s.tournament.is_some()),
        ("--max-proposals", s.max_proposals.is_some()),
        ("--keep-checkpoints", s.keep_checkpoints),
        ("--executor slurm", s.exec.executor == super::exec_args::ExecutorArg::Slurm),
    ];
    super::refuse_flags(&flags, "the sample-based methods (ppo, reinforce, random, evolution, exhaustive)")
}

/// The flags of the other task's searches, refused with what this network counts in.
fn task_flags(args: &SearchArgs, network: Network) -> Result<()> {
    if let Some(flag) = args.translation.given().first().filter(|_| network.task() != Task::Translation) {
        bail!("{flag} is for the translation models (--network transformer-micro or transformer-small)");
    }
    match network.task() {
        Task::Language | Task::Translation => {
            if args.epochs.is_some() {
                bail!("{} searches for a number of steps, not epochs: use --steps N", network.name());
            }
            for (flag, given) in [("--subset", args.subset.is_some()), ("--test-subset", args.test_subset.is_some())] {
                if given {
                    bail!(
                        "{flag} applies to image datasets; {} searches on the first 90% of its text file (split by --train-portion between the weights and the alphas) and is scored on the rest",
                        network.name()
                    );
                }
            }
        }
        Task::Image => {
            for (flag, given) in [("--steps", args.steps.is_some()), ("--eval-interval", args.eval_interval.is_some())]
            {
                if given {
                    bail!(
                        "{flag} is for the language models' searches; a search on {} counts --epochs",
                        network.name()
                    );
                }
            }
        }
    }
    Ok(())
}

fn validate(c: &SearchConfig, seeds: &[u64]) -> Result<()> {
    super::distinct_seeds("--seeds", seeds)?;
    if c.phases() == 0 {
        anyhow::bail!("--epochs must be at least 1");
    }
    if c.batch_size < 2 && c.network.is_resnet() {
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
    if let Some(n) = c.warm_start.filter(|&n| n >= c.phases()) {
        match c.span_steps() {
            (_, 0) => anyhow::bail!(
                "--warm-start {n} leaves no epoch for the mixed cell ({} epochs): give fewer warm-start epochs or more --epochs",
                c.epochs
            ),
            (steps, interval) => anyhow::bail!(
                "--warm-start {n} leaves no evaluation interval for the mixed cell ({steps} steps are {} intervals of {interval}): give fewer warm-start intervals, more --steps or a shorter --eval-interval",
                c.phases()
            ),
        }
    }
    if c.subset == Some(0) || c.test_subset == Some(0) {
        anyhow::bail!("--subset and --test-subset must be at least 1");
    }
    c.warm_start_formula()?;
    Ok(())
}
