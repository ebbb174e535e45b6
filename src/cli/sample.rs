//! `actsearch search --method ppo|reinforce|random|evolution|exhaustive`: the sample-based
//! searches' flags, presets and output. The search itself is `search::sample::run`.

use anyhow::{Result, bail};

use crate::train::config::{Optimizer, Preset};

use super::progress::Progress;
use super::search_args::{PresetArg, SearchArgs, default_out};
use super::stdout;
use crate::search::sample::child::{ChildData, load_data};
use crate::search::sample::config::{ChildRecipe, SampleConfig, SampleMethod, SamplePreset};
use crate::search::sample::controller::ControllerConfig;
use crate::search::sample::policy::{PolicyConfig, Rule};
use crate::search::sample::ppo::CLIP;
use crate::search::sample::space::TokenSpace;

/// The sample-based searches' preset that `--preset` names (`seed` means `paper` for them).
fn preset(preset: PresetArg) -> Result<SamplePreset> {
    match preset {
        PresetArg::Seed | PresetArg::Paper => Ok(SamplePreset::Paper),
        PresetArg::Quick => Ok(SamplePreset::Quick),
        PresetArg::Grafs => {
            bail!("--preset grafs is for the one-shot methods; use --preset paper or quick with a sample-based method")
        }
    }
}

/// Flags of the one-shot searches that mean nothing here: an error names them.
fn reject_one_shot_flags(args: &SearchArgs) -> Result<()> {
    let flags = [
        ("--epochs", args.epochs.is_some()),
        ("--steps (children use --child-steps)", args.steps.is_some()),
        ("--eval-interval", args.eval_interval.is_some()),
        ("--accumulate", args.accumulate.is_some()),
        ("--arch-lr", args.arch_lr.is_some()),
        ("--shared-cell", args.shared_cell),
        ("--warm-start", args.warm_start.is_some()),
        ("--warm-start-with", args.warm_start_with.is_some()),
        ("--test-subset", args.test_subset.is_some()),
        ("--network (children use --child-network)", args.network.is_some()),
        ("--seeds (run one search per seed with --seed N --out DIR-N)", !args.seeds.is_empty()),
    ];
    super::refuse_flags(&flags, "the one-shot methods (darts, darts2, gdas, drnas, grafs)")
}

pub fn run(args: &SearchArgs, method: SampleMethod) -> Result<()> {
    reject_one_shot_flags(args)?;
    let d = preset(args.preset)?.defaults();
    let s = &args.sample;
    let space = TokenSpace::parse(&args.space)?;
    s.exec.check()?;
    let threads = super::backend::thread_count(args.common.threads)?;
    let per_child = s.exec.task_threads(args.common.threads, threads);
    let network = s.child_network.unwrap_or(d.network);
    if args.then_eval {
        super::search_args::same_task(network, "--child-network", args.eval_network(network))?;
    }
    if let Some(flag) = args.translation.given().first().filter(|_| network.task() != crate::model::Task::Translation) {
        bail!("{flag} is for the translation models (--network transformer-micro or transformer-small)");
    }
    let language = network.task() != crate::model::Task::Image;
    let translation = network.task() == crate::model::Task::Translation;
    if language && (args.subset.is_some() || args.train_portion.is_some()) {
        bail!(
            "--subset and --train-portion cut image datasets; {} children train on {} and are scored on {}",
            network.name(),
            if translation { "the folder's train pairs" } else { "the first 90% of the text" },
            if translation { "the val pairs' BLEU" } else { "the rest" }
        );
    }
    // The children's recipe follows their network: SGD for the ResNets, eval's recipe for the
    // transformers (a ViT's AdamW, 5% warm-up, cosine per step, clip 1; a GPT's nanoGPT
    // recipe: AdamW betas (0.9, 0.99), cosine to a tenth, batches of 12 windows for gpt-micro).
    let vit = (!network.is_resnet()).then(|| Preset::Standard.defaults_for(network)).transpose()?;
    let child_steps = s.child_steps.unwrap_or(d.steps);
    // With a budget of steps and none of functions, the steps decide alone.
    let first_rung = s.fidelity(child_steps)?.rungs(child_steps).map_or(child_steps, |r| r.steps(0));
    let budget = match (s.budget, s.budget_steps) {
        (Some(b), _) => b,
        (None, Some(steps)) => (steps / first_rung).max(1),
        (None, None) => d.budget,
    };
    let mut config = SampleConfig {
        method,
        space: args.space.clone(),
        budget,
        budget_steps: s.budget_steps,
        fidelity: s.fidelity(child_steps)?,
        batch_children: s.batch_children.unwrap_or(d.batch_children),
        seed: args.seed,
        child: ChildRecipe {
            network,
            steps: child_steps,
            batch_size: args.batch_size.unwrap_or(if language { vit.map_or(12, |v| v.batch_size) } else { 128 }),
            lr: args.lr.unwrap_or(vit.map_or(0.1, |v| v.lr)),
            momentum: vit.map_or(0.9, |v| v.momentum),
            weight_decay: args.weight_decay.unwrap_or(vit.map_or(5e-4, |v| v.weight_decay)),
            augment: args.augment == "standard" && !language,
            subset: args.subset.or(d.subset),
            requested: Default::default(),
            train_portion: args.train_portion.unwrap_or(0.8),
            optimizer: vit.map_or(Optimizer::Sgd, |v| v.optimizer),
            warmup: vit.map_or(0.0, |v| v.warmup),
            grad_clip: vit.and_then(|v| v.grad_clip),
            mlp: args.mlp.on(network)?,
            // Set from the data by warm_data.
            reward_floor: 0.0,
            dropout: vit.map_or(0.0, |v| v.dropout),
            translation: translation.then(|| args.translation.config()),
        },
        dataset: args.common.dataset.clone(),
        data_dir: args.common.data_dir.clone(),
        population: s.population.unwrap_or(d.population),
        tournament: s.tournament.unwrap_or(d.tournament),
        policy: PolicyConfig {
            rule: if method == SampleMethod::Reinforce {
                Rule::Reinforce
            } else {
                Rule::Ppo { epochs: s.ppo_epochs, clip: CLIP }
            },
            controller: ControllerConfig::default(),
            lr: s.controller_lr,
            entropy_weight: s.entropy_weight,
            baseline_decay: 0.95,
        },
        max_proposals: s.max_proposals.unwrap_or(budget.saturating_mul(20)),
        top_k: s.top_k,
        executor: s.exec.name().into(),
        workers: s.exec.workers,
        threads: per_child,
        backend: args.common.backend.name().to_string(),
        out: args.out.clone().unwrap_or_else(|| default_out(method.name(), &args.space)),
    };
    validate(&config)?;
    // The device must exist here before children are started to use it.
    args.common.backend.device()?;
    let progress = Progress::new();
    progress.println(&format!(
        "actsearch search: {} over the {} ({}), budget {}{}, children {} x {} steps{} on {}, {} worker(s) x {} thread(s) -> {}",
        method.name(),
        config.space,
        space.describe(),
        config.budget,
        config.budget_steps.map_or(String::new(), |b| format!(" functions or {b} child steps")),
        config.child.network.name(),
        config.child.steps,
        match config.fidelity {
            crate::search::fidelity::Fidelity::Halving { min_steps, eta } => {
                format!(" (successive halving from {min_steps}, eta {eta})")
            }
            crate::search::fidelity::Fidelity::Full => String::new(),
        },
        config.dataset,
        config.workers,
        config.threads,
        config.out.display()
    ));
    warm_data(&mut config, &progress)?;
    let mut executor = s.exec.executor(&config.out, |task| task.log.with_file_name("result.json"))?;
    let outcome = crate::search::sample::run::run(&config, executor.as_mut(), args.resume, &progress)?;
    progress.finish();
    if outcome.stopped {
        return stdout(&format!(
            "stopped: {} functions trained are kept in {}; continue with the same command and --resume\n",
            outcome.trained,
            config.out.join("search.db").display()
        ));
    }
    if !args.sample.keep_checkpoints {
        crate::search::sample::run::remove_child_checkpoints(&config.out)?;
    }
    let mut text = String::new();
    if let Some(why) = &outcome.ended_early {
        text += &format!("note: the search ended before its budget: {why}\n");
    }
    text += &format!(
        "{} distinct functions trained ({} proposals); the best, by {} of the child:\n",
        outcome.trained,
        outcome.proposals,
        match (config.child.reward_floor < 0.0, config.child.translation.is_some()) {
            (true, _) => "the negated validation loss",
            (false, true) => "validation BLEU (as a fraction)",
            (false, false) => "validation accuracy",
        }
    );
    let halving = config.fidelity != Default::default();
    if halving {
        text += "(highest rung first: a reward at more child steps ranks above any at fewer)\n";
    }
    for t in &outcome.top {
        let steps = match (halving, t.steps) {
            (true, Some(steps)) => format!("  ({steps} steps)"),
            _ => String::new(),
        };
        text += &format!("{:>3}. {:.4}  {}{steps}\n", t.rank, t.reward, crate::report::shown(&t.formula));
    }
    text += &format!(
        "store: {}, top functions: {}\n",
        config.out.join("search.db").display(),
        config.out.join("top.json").display()
    );
    stdout(&text)?;
    let Some(best) = outcome.top.first() else {
        bail!("no child trained successfully; see {}", config.out.join("log.log").display());
    };
    if args.then_eval {
        return super::then_eval::compare(args, network, config.seed, &config.dataset, &config.out, &best.formula, &[]);
    }
    // A ViT's children point at a ViT eval (eval's default network is resnet20).
    let network = match config.child.network.is_resnet() {
        true => String::new(),
        false => format!(" --network {}", config.child.network.name()),
    };
    stdout(&format!(
        "train the best from scratch with\n  actsearch eval --activation \"{}\"{network} --seeds 0,1,2\n",
        best.formula
    ))
}

/// Loads the data once in this process: a bad --dataset fails before any child starts, and
/// the children then find the decoded images (or a translation folder's vocabulary) in the
/// cache. The children's subset becomes the one used (`Splits::settle`).
fn warm_data(config: &mut SampleConfig, progress: &Progress) -> Result<()> {
    let data = load_data(&config.child, &config.dataset, &config.data_dir, config.seed, progress)?;
    config.child.reward_floor = data.reward_floor();
    if let (ChildData::Parallel(corpus), Some(t)) = (&data, &config.child.translation) {
        // Learned once here, so that the children read it from the cache.
        crate::data::bpe::Vocabulary::learn_or_load(corpus, t.vocab_size, &config.data_dir)?;
    }
    let ChildData::Images(splits) = data else { return Ok(()) };
    let child = &mut config.child;
    splits.settle(&mut child.subset, &mut None, &mut child.requested);
    if splits.train.len() < config.child.batch_size {
        bail!(
            "the training split has {} images, fewer than one batch of {}; lower --batch-size or raise --subset",
            splits.train.len(),
            config.child.batch_size
        );
    }
    Ok(())
}

fn validate(c: &SampleConfig) -> Result<()> {
    // The children's recipe, checked as `actsearch child` checks each spec.
    let flag = |field: &str| match field {
        "steps" => "--child-steps".to_string(),
        f => format!("--{f}"),
    };
    c.child.numbers().check(&flag)?;
    crate::search::fidelity::check_budget_steps(c.budget_steps, &c.fidelity.rungs(c.child.steps)?)?;
    if !(c.policy.lr > 0.0 && c.policy.lr.is_finite()) {
        bail!("--controller-lr must be a positive number, got {}", c.policy.lr);
    }
    if !(c.policy.entropy_weight >= 0.0 && c.policy.entropy_weight.is_finite()) {
        bail!("--entropy-weight must be finite and not negative, got {}", c.policy.entropy_weight);
    }
    if c.method == SampleMethod::Evolution && c.tournament > c.population {
        bail!("--tournament ({}) must not exceed --population ({})", c.tournament, c.population);
    }
    Ok(())
}
