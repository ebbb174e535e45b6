//! `actsearch eval`: train a network from scratch with any activation (a name, a formula or a
//! searched genotype) over one or more seeds: a CIFAR ResNet or a ViT on images, a character
//! GPT on a text file.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::backend::DataAndCompute;
use super::exec_args::{ExecArgs, ExecutorArg};
use super::progress::Progress;
use super::stdout;
use crate::model::{Arch, Mlp, Network, Task};
use crate::space::resolve::{InitParams, resolve_activation, site_values};
use crate::train::config::{Optimizer, Preset, TranslationConfig};
use crate::train::schedule::Schedule;
use crate::train::{TrainConfig, seeds};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Common CIFAR ResNet practice: batch 128, lr 0.1, momentum 0.9, wd 5e-4, cosine, 200 epochs.
    Standard,
    /// The seed project's eval setup: 100 epochs, batch 64, lr 0.025, wd 3e-4, grad clip 5, train portion 0.8.
    Seed,
    /// Minutes on a CPU: 3 epochs on 7000 training and 2000 test images.
    Quick,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitParamsArg {
    Init,
    Learned,
    LearnedMean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Augment {
    /// Pad 4, random 32x32 crop, random horizontal flip.
    Standard,
    /// No augmentation.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MlpArg {
    Standard,
    Gated,
}

impl EvalArgs {
    /// `--baseline`, or the function the grid's networks are usually trained with.
    pub fn baseline(&self) -> String {
        match &self.baseline {
            Some(b) => b.clone(),
            // One baseline for the grid: the networks' usual activation where they agree.
            None => {
                match self.network.iter().map(|n| n.usual_activation()).collect::<std::collections::BTreeSet<_>>() {
                    usual if usual.len() == 1 => usual.into_iter().next().unwrap_or("relu").to_string(),
                    _ => "relu".to_string(),
                }
            }
        }
    }
}

impl MlpArg {
    /// The MLP of `network`: gated is refused for a network without MLP blocks.
    pub fn on(self, network: Network) -> Result<Mlp> {
        match self {
            MlpArg::Standard => Ok(Mlp::Standard),
            MlpArg::Gated if network.is_resnet() => {
                bail!(
                    "--mlp gated applies to the transformers (vit-micro, vit-tiny, gpt-micro, gpt-mini); {} has no MLP blocks",
                    network.name()
                )
            }
            MlpArg::Gated => Ok(Mlp::Gated),
        }
    }
}

/// The translation models' flags (transformer-micro, transformer-small).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Translation (--network transformer-micro or transformer-small, --dataset FOLDER)")]
pub struct TranslationArgs {
    /// The language translated from: the L of the folder's train.L files [default: en where the
    /// folder has en and de].
    #[arg(long)]
    pub source: Option<String>,
    /// The language translated into [default: de where the folder has en and de].
    #[arg(long)]
    pub target: Option<String>,
    /// The test split: NAME for the folder's test_NAME.L files [default: the first test_* in
    /// name order].
    #[arg(long)]
    pub test_set: Option<String>,
    /// Tokens in the joint BPE vocabulary learned on the training pairs (cached under
    /// --data-dir).
    #[arg(long, default_value_t = 8000, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub vocab_size: usize,
    /// Decode the final translations with a beam search of N hypotheses (scores divided by
    /// length^0.6); 1 is greedy.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub beam: usize,
}

impl TranslationArgs {
    /// The run's translation settings: the languages and test split as asked (empty: the
    /// defaults, settled when the folder is read), DESIGN.md's label smoothing.
    pub fn config(&self) -> TranslationConfig {
        TranslationConfig {
            source: self.source.clone().unwrap_or_default(),
            target: self.target.clone().unwrap_or_default(),
            test_set: self.test_set.clone().unwrap_or_default(),
            vocab_size: self.vocab_size,
            beam: self.beam,
            label_smoothing: TranslationConfig::LABEL_SMOOTHING,
        }
    }

    /// The flags given, for errors about a network that is not a translation model.
    pub fn given(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        for (flag, given) in [
            ("--source", self.source.is_some()),
            ("--target", self.target.is_some()),
            ("--test-set", self.test_set.is_some()),
            ("--vocab-size", self.vocab_size != TranslationConfig::VOCAB_SIZE),
            ("--beam", self.beam != 1),
        ] {
            if given {
                flags.push(flag);
            }
        }
        flags
    }
}

#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    /// The network to train: a CIFAR ResNet (resnet8, resnet20, resnet32, resnet44, resnet56,
    /// resnet110) or a Vision Transformer (vit-micro, vit-tiny, trained with AdamW) on images,
    /// or a character GPT (gpt-micro, gpt-mini: nanoGPT's recipe) on a text file given as
    /// --dataset; a comma-separated list (resnet8,resnet20) makes a grid.
    #[arg(long, default_value = "resnet20", value_delimiter = ',', value_parser = parse_network)]
    pub network: Vec<Network>,
    /// A named activation (see `actsearch functions`), a formula such as "x*sigmoid(b*x)",
    /// or PATH/genotype.json from a search. Repeat it for a grid: every network × activation
    /// × seed runs into OUT/<network>/<activation>/seed-N, and OUT/summary.json compares each
    /// activation with --baseline.
    #[arg(long, required = true, allow_hyphen_values = true)]
    pub activation: Vec<String>,
    /// The activation a grid compares every other with (on each network) [default: gelu when
    /// every network is a ViT, else relu].
    #[arg(long, allow_hyphen_values = true)]
    pub baseline: Option<String>,
    /// Where the activation's parameters (b, g, ...) start when --activation is a genotype:
    /// `init` (the op's initial value, as from scratch), `learned` (the values the search
    /// learned, per site and channel; needs the search's network) or `learned-mean` (each
    /// parameter at the mean of its learned values; any network).
    #[arg(long, value_enum, default_value = "init")]
    pub init_params: InitParamsArg,
    /// Defaults for the training recipe; explicit flags override them.
    #[arg(long, value_enum, default_value = "standard")]
    pub preset: PresetArg,
    /// A transformer's MLP blocks: standard `act(x W1) W2`, or gated `act(x W1) * (x W3) W2`
    /// at two thirds of the width (`--activation silu --mlp gated` is SwiGLU, gelu GEGLU).
    #[arg(long, value_enum, default_value = "standard")]
    pub mlp: MlpArg,
    /// Training epochs [preset: standard 200, seed 100, quick 3].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub epochs: Option<usize>,
    /// Train for this many optimizer steps instead of epochs [GPTs: gpt-micro 2000, gpt-mini
    /// 5000, quick 500].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub steps: Option<usize>,
    /// With --steps: evaluate (and checkpoint) every N steps [GPTs: 250, quick 100; otherwise a
    /// tenth of the steps].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub eval_interval: Option<usize>,
    /// Training batch size: images, or a GPT's windows of its context [preset: standard 128,
    /// seed 64; gpt-micro 12 windows of 64 characters, gpt-mini 64 of 256].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub batch_size: Option<usize>,
    /// Peak learning rate [preset: standard 0.1, seed 0.025; ViTs and GPTs 1e-3, a GPT's
    /// cosine ending at a tenth of it].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum [preset: 0.9] (the ResNets; a ViT trains with AdamW).
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Use Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay [preset: standard 5e-4, seed 3e-4; ViTs 0.05, GPTs 0.1, decoupled (AdamW),
    /// on parameters of two or more dimensions].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule, stepped per epoch [preset: cosine]; a ViT's is stepped per
    /// step, after a linear warm-up over the first 5% of the steps.
    #[arg(long, value_parser = Schedule::parse)]
    pub schedule: Option<Schedule>,
    /// Clip the global gradient norm to this value [preset: seed 5, ViTs 1, others none].
    #[arg(long, allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,
    /// Training-data augmentation.
    #[arg(long, value_enum, default_value = "standard")]
    pub augment: Augment,
    /// Fraction of the training images used for training; the rest is the validation split
    /// [preset: standard 1.0 (no validation split), seed 0.8].
    #[arg(long, allow_negative_numbers = true)]
    pub train_portion: Option<f64>,
    /// Use only the first N training images after a seeded shuffle.
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub subset: Option<usize>,
    /// Use only the first N test images after a seeded shuffle.
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub test_subset: Option<usize>,
    /// Comma-separated seeds; each trains into its own seed-N subfolder of --out.
    #[arg(long, default_value = "0", value_delimiter = ',', allow_negative_numbers = true, value_parser = super::whole)]
    pub seeds: Vec<u64>,
    /// Output directory [default: runs/eval-NETWORK-ACTIVATION].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Dropout after the embeddings, on the attention weights and after every residual branch
    /// of a GPT or a translation model, as the reference places it [default: gpt-mini 0.2,
    /// translation 0.1, gpt-micro 0].
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f64>,
    /// Batch size for evaluating the validation and test splits (images, or a GPT's windows).
    #[arg(long, default_value_t = 500, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub eval_batch_size: usize,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Also write each run's data for a twin in another framework: OUT/plan.safetensors (the
    /// training and test images, the normalization, and every epoch's order, crops and flips)
    /// and OUT/init.safetensors (the initial weights, under the PyTorch twin's names).
    /// `python/vit_torch.py OUT` then trains transformers_ref.ViT on exactly the same data.
    #[arg(long)]
    pub write_plan: bool,
    /// Where the runs of a grid go, and how many at once.
    #[command(flatten)]
    pub translation: TranslationArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub common: DataAndCompute,
}

impl EvalArgs {
    /// The one activation of a single eval (not a grid).
    fn single_activation(&self) -> &str {
        &self.activation[0]
    }

    fn single_network(&self) -> Network {
        self.network[0]
    }

    /// Whether this is a grid: several networks or activations, or runs handed to an executor.
    pub fn is_grid(&self) -> bool {
        self.network.len() > 1
            || self.activation.len() > 1
            || self.exec.executor == ExecutorArg::Slurm
            || self.exec.workers > 1
    }

    /// The quick preset for `activation` on `network`, one seed, into `out`; every other flag
    /// at its command-line default (parsed by clap, so the defaults live in one place).
    pub fn quick(network: Network, activation: &str, out: &std::path::Path, seed: u64, common: DataAndCompute) -> Self {
        #[derive(clap::Parser)]
        struct Eval {
            #[command(flatten)]
            args: EvalArgs,
        }
        // `--activation=...` in one word, so a formula starting with '-' is not read as a flag.
        let argv = ["eval".to_string(), format!("--activation={activation}"), "--preset=quick".to_string()];
        let mut args = <Eval as clap::Parser>::try_parse_from(argv).expect("eval's defaults parse").args;
        args.network = vec![network];
        args.seeds = vec![seed];
        args.out = Some(out.to_path_buf());
        args.common = common;
        args
    }
}

fn parse_network(s: &str) -> Result<Network> {
    Network::parse(s)
}

/// One activation on one network (the seeds each in their own folder); a grid goes to
/// `eval_grid` instead (the cli's dispatch chooses).
pub fn run(args: EvalArgs) -> Result<()> {
    args.exec.check()?;
    run_summary(args).map(|_| ())
}

/// [`run`], returning the summary over the seeds.
pub fn run_summary(args: EvalArgs) -> Result<seeds::Summary> {
    let formula = resolve_activation(args.single_activation())?;
    let config = build_config(&args, formula.to_string())?;
    // A genotype without usable learned values fails here, before anything is written.
    site_values(args.single_activation(), &formula, config.init_params, &config.network.site_widths(config.mlp))?;
    let (device, pool) = args.common.device_and_pool()?;
    let config = TrainConfig { threads: pool.current_num_threads(), ..config };
    let threads = config.threads;

    let progress = Progress::new();
    progress.println(&format!(
        "actsearch eval: {} with {} on {} ({}, backend {}, {} threads) -> {}",
        config.network.name(),
        config.activation,
        config.dataset,
        config.length(),
        config.backend,
        threads,
        config.out.display()
    ));
    let (summary, _) =
        pool.install(|| seeds::train_seeds(&config, &args.seeds, &formula, &device, args.resume, &progress))?;
    progress.finish();
    let per_seed: Vec<String> =
        summary.seeds.iter().zip(summary.values()).map(|(s, a)| format!("seed {s}: {}", summary.show(*a))).collect();
    let ci = summary.ci95.map_or("one seed: no uncertainty, run --seeds 0,1,2".to_string(), |[lo, hi]| {
        format!("95% CI of the mean [{}, {}]", summary.show(lo), summary.show(hi))
    });
    let direction = if summary.higher_is_better { "" } else { " (lower is better)" };
    stdout(&format!(
        "{} | {} | {}: {}{direction} {} ± {} over {} seed(s) ({}; {ci})\nresults in {}\n",
        summary.network,
        summary.dataset,
        match config.mlp {
            crate::model::Mlp::Gated => format!("{} (gated)", summary.activation),
            crate::model::Mlp::Standard => summary.activation.clone(),
        },
        summary.metric_words(),
        summary.show(summary.mean),
        summary.show(summary.std),
        summary.seeds.len(),
        per_seed.join(", "),
        config.out.display()
    ))?;
    Ok(summary)
}

/// Flags over preset defaults, validated (for the first network and activation).
pub fn build_config(args: &EvalArgs, activation: String) -> Result<TrainConfig> {
    let preset = match args.preset {
        PresetArg::Standard => Preset::Standard,
        PresetArg::Seed => Preset::Seed,
        PresetArg::Quick => Preset::Quick,
    };
    let network = args.single_network();
    let d = preset.defaults_for(network)?;
    let mlp = args.mlp.on(network)?;
    if d.optimizer == Optimizer::Adamw && (args.momentum.is_some() || args.nesterov) {
        let (b1, b2) = crate::train::config::adamw_betas(network);
        bail!("--momentum and --nesterov are SGD's; {} trains with AdamW (betas {b1}, {b2})", network.name());
    }
    let translation = network.task() == Task::Translation;
    if let Some(flag) = args.translation.given().first().filter(|_| !translation) {
        bail!("{flag} is for the translation models (--network transformer-micro or transformer-small)");
    }
    let language = network.task() != Task::Image;
    if language {
        if args.epochs.is_some() {
            bail!(
                "{} trains for a number of steps, not epochs: use --steps N (default {})",
                network.name(),
                d.steps.unwrap_or(0)
            );
        }
        for (flag, given) in [
            ("--subset", args.subset.is_some()),
            ("--test-subset", args.test_subset.is_some()),
            ("--train-portion", args.train_portion.is_some()),
        ] {
            if given {
                let data = match translation {
                    true => "trains on its folder's train pairs and validates on its val pairs",
                    false => "trains on the first 90% of its text file and validates on the rest",
                };
                bail!("{flag} applies to image datasets; {} {data}", network.name());
            }
        }
    }
    let steps = args.steps.or(d.steps);
    if args.eval_interval.is_some() && steps.is_none() {
        bail!("--eval-interval counts steps: give --steps N too (an epoch-counted run is evaluated after every epoch)");
    }
    let config = TrainConfig {
        network,
        activation_spec: args.single_activation().to_string(),
        activation,
        init_params: match args.init_params {
            InitParamsArg::Init => InitParams::Init,
            InitParamsArg::Learned => InitParams::Learned,
            InitParamsArg::LearnedMean => InitParams::LearnedMean,
        },
        dataset: args.common.dataset.clone(),
        data_dir: args.common.data_dir.clone(),
        epochs: if steps.is_some() { 0 } else { args.epochs.unwrap_or(d.epochs) },
        steps,
        eval_interval: steps.map(|s| args.eval_interval.or(d.eval_interval).unwrap_or(s.div_ceil(10)).min(s)),
        batch_size: args.batch_size.unwrap_or(d.batch_size),
        eval_batch_size: args.eval_batch_size,
        lr: args.lr.unwrap_or(d.lr),
        momentum: args.momentum.unwrap_or(d.momentum),
        nesterov: args.nesterov,
        weight_decay: args.weight_decay.unwrap_or(d.weight_decay),
        schedule: args.schedule.unwrap_or(d.schedule),
        grad_clip: args.grad_clip.or(d.grad_clip),
        optimizer: d.optimizer,
        warmup: d.warmup,
        mlp,
        augment: args.augment == Augment::Standard && !language,
        train_portion: args.train_portion.unwrap_or(d.train_portion),
        subset: args.subset.or(d.subset),
        test_subset: args.test_subset.or(d.test_subset),
        requested: Default::default(),
        seed: args.seeds.first().copied().unwrap_or(0),
        backend: args.common.backend.name().to_string(),
        threads: 0,
        out: args.out.clone().unwrap_or_else(|| default_out(args)),
        translation: translation.then(|| args.translation.config()),
        dropout: args.dropout.unwrap_or(d.dropout),
        write_plan: args.write_plan,
    };
    validate(&config, args)?;
    Ok(config)
}

fn default_out(args: &EvalArgs) -> PathBuf {
    PathBuf::from("runs").join(format!("eval-{}-{}", args.single_network().name(), slug(args.single_activation())))
}

/// An activation as a folder name: letters, digits and `_`, the rest `-`, at most 48.
pub fn slug(activation: &str) -> String {
    activation.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).take(48).collect()
}

fn validate(c: &TrainConfig, args: &EvalArgs) -> Result<()> {
    c.numbers().check(&|field| format!("--{field}"))?;
    if c.eval_batch_size == 0 {
        bail!("--eval-batch-size must be at least 1");
    }
    if args.seeds.is_empty() {
        bail!("--seeds needs at least one seed, e.g. --seeds 0,1,2");
    }
    if !(0.0..1.0).contains(&c.dropout) {
        bail!("--dropout {} must be at least 0 and below 1", c.dropout);
    }
    if args.dropout.is_some() && !matches!(c.network.arch(), Arch::Gpt(_) | Arch::Seq2Seq(_)) {
        bail!("--dropout is for the GPTs and the translation models; {} trains without dropout", c.network.name());
    }
    super::distinct_seeds("--seeds", &args.seeds)
}
