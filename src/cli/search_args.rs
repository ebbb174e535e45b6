//! The flags of `actsearch search`, one-shot and sample-based alike (one clap struct, so
//! `--help` lists them together), and the run folder they default to. `search` runs the
//! one-shot methods, `sample` the sample-based ones; both read these.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::backend::DataAndCompute;
use crate::model::Network;
use crate::search::sample::run::SampleMethod;

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
    /// Sample-based: AQuaSurF's surrogate. The space's spellings of relu, silu, tanh,
    /// softplus and x first; then, of 2000 sampled candidates, the one a k-nearest-neighbour
    /// regressor fit to the rewards so far predicts best, from each function's outputs on 1000
    /// fixed inputs and the Fisher spectrum of the child network at initialization (for the
    /// 200 best by outputs; cached under --data-dir/fisher/).
    Surrogate,
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
    /// Cell space: small, huge, grafs, core1, core2, or PATH.toml (see README). As token
    /// sequences for the sample-based methods: core1 6250, core2 156250000, small 2268, huge
    /// 5143824, grafs 22667121 sequences (the run prints its space's size).
    #[arg(long, default_value = "grafs")]
    pub space: String,
    /// The network whose activation sites become cells: a CIFAR ResNet; a ViT (vit-micro,
    /// vit-tiny), whose every MLP activation becomes the cell and whose weights train with
    /// the ViT recipe (AdamW lr 1e-3, weight decay 0.05, 5% warm-up then cosine, clip 1); or a
    /// character GPT (gpt-micro, gpt-mini, with a text file as --dataset), every MLP's
    /// activation a cell as GRAFS searched a GPT, trained with nanoGPT's recipe by --steps
    /// [preset: seed resnet8, grafs resnet20].
    #[arg(long, value_parser = Network::parse)]
    pub network: Option<Network>,
    /// A ViT's MLP blocks: standard, or gated (the cell gates x W3, as SwiGLU does).
    #[arg(long, value_enum, default_value = "standard")]
    pub mlp: super::eval::MlpArg,
    /// Defaults for the recipe; explicit flags override them.
    #[arg(long, value_enum, default_value = "seed")]
    pub preset: PresetArg,
    /// Search epochs of an image search [preset: seed 100, grafs 50, quick 6].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub epochs: Option<usize>,
    /// A language model's search: optimizer steps (it counts steps, not epochs) [gpt-micro
    /// 2000, gpt-mini 5000; preset quick 500].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub steps: Option<usize>,
    /// With --steps: evaluate and checkpoint every N steps; the warm start, GDAS' temperature
    /// and GRAFS' shrinking count in these intervals as an image search's do in epochs [250;
    /// preset quick 100].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub eval_interval: Option<usize>,
    /// Batch size of both the training and the validation batches [preset: 64; gpt-micro 12
    /// windows of 64 characters, gpt-mini 64 of 256].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub batch_size: Option<usize>,
    /// Average the gradients of N batches into one step [preset: seed 1, grafs 2].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub accumulate: Option<usize>,
    /// Weights' learning rate, cosine-annealed to 0.001 [preset: seed 0.025, grafs 0.1; a ViT
    /// 1e-3, to 0].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Weights' weight decay [preset: seed 3e-4, grafs 1e-4; a ViT 0.05].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Alphas' learning rate (Adam, betas (0.5, 0.999), weight decay 1e-3) [preset: seed 3e-4, grafs 6e-4].
    #[arg(long, allow_negative_numbers = true)]
    pub arch_lr: Option<f64>,
    /// Scale of the KL term towards Dirichlet(1) for drnas and grafs (0 turns it off).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub kl_scale: f64,
    /// Epochs (a GPT: evaluation intervals) at the start in which the weights train with ReLU
    /// (a transformer: GELU) at every site while the alphas learn on the mixed cell (GRAFS'
    /// warm start; PC-DARTS and P-DARTS warm the weights up before the alphas move too)
    /// [default: grafs 1, other one-shot methods 0].
    #[arg(long, allow_negative_numbers = true, value_parser = super::whole)]
    pub warm_start: Option<u64>,
    /// The function the weights train with during the warm start (GRAFS' --comp): a named
    /// function or formula of x without parameters [default: relu on a ResNet, gelu on a
    /// transformer].
    #[arg(long, allow_hyphen_values = true)]
    pub warm_start_with: Option<String>,
    /// One set of alphas shared by every activation site (the GRAFS setting) instead of one
    /// set per site [preset: grafs].
    #[arg(long)]
    pub shared_cell: bool,
    /// Fraction of the training images (a GPT: of the training text's first 90%) that train
    /// the weights; the rest trains the alphas [preset: seed 0.5, grafs 0.75].
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
    /// The activation the found function is compared with (--then-eval) [default: relu on a
    /// ResNet, gelu on a ViT].
    #[arg(long, requires = "then_eval", allow_hyphen_values = true)]
    pub baseline: Option<String>,
    /// The network both are trained on (--then-eval), with eval's quick preset for it (a ViT
    /// gets the ViT recipe and the search's --mlp) [default: resnet8 for an image search; the
    /// searched GPT for a language model's].
    #[arg(long, value_parser = Network::parse, requires = "then_eval")]
    pub eval_network: Option<Network>,
    /// Seeds of the evals of --then-eval (the same for both, so the comparison is paired by
    /// seed); one seed gives no verdict.
    #[arg(long, default_value = "0,1,2", value_delimiter = ',', allow_negative_numbers = true, value_parser = super::whole, requires = "then_eval")]
    pub eval_seeds: Vec<u64>,
    #[command(flatten)]
    pub translation: super::eval::TranslationArgs,
    #[command(flatten)]
    pub sample: SampleArgs,
    #[command(flatten)]
    pub common: DataAndCompute,
}

/// Flags of the sample-based methods only.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Distinct functions to train; repeats and rejected functions do not count. A space of at
    /// most 100,000 sequences is counted first: the search warns when the budget exceeds its
    /// distinct functions, and stops once it has trained them all [preset: paper 1000, quick
    /// 16].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub budget: Option<usize>,
    /// The child steps the whole search may spend: a new function is not trained, and a
    /// promotion not started, when its steps (--child-steps, or with --fidelity halving the
    /// rung's) would go past it, so that methods compare at equal compute. Without --budget,
    /// the functions are not counted.
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub budget_steps: Option<usize>,
    /// How much each function trains: `full` (all of --child-steps), or `halving`
    /// (asynchronous successive halving, ASHA): every new function first trains --min-steps,
    /// and one in the top 1/--eta of the results seen at its rung trains on from its
    /// checkpoint to --eta times the steps, up to --child-steps. Methods learn from the
    /// lowest rung's rewards, which every function has; the top functions are ranked highest
    /// rung first.
    #[arg(long, value_enum, default_value = "full")]
    pub fidelity: FidelityArg,
    /// --fidelity halving: the steps of the lowest rung [default: --child-steps / eta^2,
    /// rounded up].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub min_steps: Option<usize>,
    /// --fidelity halving: each rung trains eta times the steps of the one below, and promotes
    /// the top 1/eta of its results [default: 3].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub eta: Option<usize>,
    /// Proposals per controller iteration [preset: paper 8, quick 4].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub batch_children: Option<usize>,
    /// The network each child trains [preset: paper resnet20, quick resnet8].
    #[arg(long, value_parser = Network::parse)]
    pub child_network: Option<Network>,
    /// SGD steps of each child, cosine learning rate per step [preset: paper 10000, quick 200].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub child_steps: Option<usize>,
    /// Where children run and how many at once.
    #[command(flatten)]
    pub exec: super::exec_args::ExecArgs,
    /// Evolution: the population (the most recent children) [preset: paper 20, quick 4].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub population: Option<usize>,
    /// Evolution: the tournament drawn from the population for each parent [preset: paper 5, quick 2].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub tournament: Option<usize>,
    /// PPO/REINFORCE: Adam's learning rate of the LSTM controller (high for a controller: a
    /// CPU budget gives it tens of updates, not the thousands of the papers).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub controller_lr: f64,
    /// PPO/REINFORCE: weight of the entropy bonus.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub entropy_weight: f64,
    /// PPO: optimization epochs over each batch of proposals.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub ppo_epochs: usize,
    /// Stop after this many proposals even if the budget is not spent; any search also stops
    /// after 2000 proposals in a row of functions it has seen [default: 20 x budget].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub max_proposals: Option<usize>,
    /// Functions listed in top.json and at the end.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub top_k: usize,
    /// Keep each child's final weights and optimizer state (OUT/children/ID/checkpoint.safetensors)
    /// when the search finishes; by default they are deleted then (a stopped search keeps them).
    #[arg(long)]
    pub keep_checkpoints: bool,
}

/// `--fidelity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FidelityArg {
    /// Every function trains for all of --child-steps.
    Full,
    /// Asynchronous successive halving (ASHA).
    Halving,
}

impl SampleArgs {
    /// The fidelity the flags ask for, for children of `child_steps`.
    pub fn fidelity(&self, child_steps: usize) -> anyhow::Result<crate::search::fidelity::Fidelity> {
        use crate::search::fidelity::Fidelity;
        match self.fidelity {
            FidelityArg::Full => {
                if let Some(flag) = [("--min-steps", self.min_steps.is_some()), ("--eta", self.eta.is_some())]
                    .iter()
                    .find(|(_, given)| *given)
                {
                    anyhow::bail!("{} is for --fidelity halving; add it, or drop {}", flag.0, flag.0);
                }
                Ok(Fidelity::Full)
            }
            FidelityArg::Halving => {
                let eta = self.eta.unwrap_or(3);
                let min_steps = self.min_steps.unwrap_or_else(|| child_steps.div_ceil(eta.saturating_mul(eta).max(1)));
                Ok(Fidelity::Halving { min_steps, eta })
            }
        }
    }
}

/// The sample-based method, if `method` is one.
pub fn sample_method(method: Method) -> Option<SampleMethod> {
    match method {
        Method::Ppo => Some(SampleMethod::Ppo),
        Method::Reinforce => Some(SampleMethod::Reinforce),
        Method::Random => Some(SampleMethod::Random),
        Method::Evolution => Some(SampleMethod::Evolution),
        Method::Exhaustive => Some(SampleMethod::Exhaustive),
        Method::Surrogate => Some(SampleMethod::Surrogate),
        _ => None,
    }
}

pub fn default_out(method: &str, space: &str) -> PathBuf {
    let slug: String = space.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(40).collect();
    PathBuf::from("runs").join(format!("search-{method}-{slug}"))
}

impl SearchArgs {
    /// `--eval-network`, or the default for a search on `searched`: the searched GPT itself
    /// for a language model, ResNet-8 for the image networks.
    pub fn eval_network(&self, searched: Network) -> Network {
        match (self.eval_network, searched.task()) {
            (Some(network), _) => network,
            (None, crate::model::Task::Language | crate::model::Task::Translation) => searched,
            (None, crate::model::Task::Image) => Network::Resnet8,
        }
    }

    /// `--baseline`, or the function the eval network (for a search on `searched`) is usually
    /// trained with.
    pub fn baseline(&self, searched: Network) -> String {
        match &self.baseline {
            Some(b) => b.clone(),
            None => self.eval_network(searched).usual_activation().to_string(),
        }
    }
}

/// Refuses an `--eval-network` of another task than the search's network: both read the one
/// `--dataset`.
pub fn same_task(network: Network, flag: &str, eval_network: Network) -> anyhow::Result<()> {
    if network.task() != eval_network.task() {
        anyhow::bail!(
            "{flag} {} and --eval-network {} read different data (images and text) from the one --dataset; give an --eval-network of the same kind",
            network.name(),
            eval_network.name()
        );
    }
    Ok(())
}
