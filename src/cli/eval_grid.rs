//! `actsearch eval` over a grid (several `--network`s or `--activation`s, or runs handed to
//! `--workers` processes or Slurm): every network × activation × seed becomes one `actsearch
//! eval` run in `OUT/<network>/<activation>/seed-N`, run by the executor, and the grid ends
//! with one summary comparing each activation with `--baseline` on each network
//! (`train::grid`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::ValueEnum;

use super::eval::{EvalArgs, build_config, slug};
use super::progress::Progress;
use super::stdout;
use crate::model::Network;
use crate::space::resolve::{resolve_activation, site_values};
use crate::train::grid::{GridRun, result_of, run_grid};

pub fn run(args: EvalArgs) -> Result<()> {
    args.exec.check()?;
    let mut baseline = resolve_activation(&args.baseline())?.to_string();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join("eval-grid"));
    let local = super::backend::thread_count(args.common.threads)?;
    let threads = args.exec.task_threads(args.common.threads, local);
    let program = crate::exec::this_program()?;
    super::distinct_seeds("--seeds", &args.seeds)?;
    if args.seeds.is_empty() {
        bail!("--seeds needs at least one seed, e.g. --seeds 0,1,2");
    }
    let mut networks: Vec<Network> = Vec::new();
    for &n in &args.network {
        if !networks.contains(&n) {
            networks.push(n);
        }
    }
    let base_formula = resolve_activation(&args.baseline())?;
    // Every combination is checked before anything runs.
    let mut runs = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut folders: HashSet<String> = HashSet::new();
    for activation in &args.activation {
        let formula = resolve_activation(activation)?;
        let canonical = formula.to_string();
        let key = same_key(&formula);
        if key == same_key(&base_formula) {
            // The grid's own spelling of the baseline (relu given as max(x, 0), say).
            baseline = canonical.clone();
        }
        if let Some(first) = seen.insert(key, activation.clone()) {
            bail!(
                "--activation {} and {} are the same function ({}); give each once",
                crate::report::shown(&first),
                crate::report::shown(activation),
                crate::report::shown(&canonical)
            );
        }
        // A folder name of its own: `a+b` and `a*b` are both `a-b`, the second `a-b-2`, and a
        // literal `a-b-2` then `a-b-2-2`.
        let mut folder = slug(activation);
        while !folders.insert(folder.clone()) {
            folder = format!("{folder}-2");
        }
        for &network in &networks {
            let one = EvalArgs { network: vec![network], activation: vec![activation.clone()], ..args.clone() };
            let config = build_config(&one, canonical.clone())?;
            site_values(activation, &formula, config.init_params, &network.site_widths(config.mlp))?;
            for &seed in &args.seeds {
                let dir = out.join(network.name()).join(&folder).join(format!("seed-{seed}"));
                runs.push(GridRun {
                    network: network.name().to_string(),
                    activation: activation.clone(),
                    formula: canonical.clone(),
                    seed,
                    argv: task_argv(&program, &args, network, activation, seed, &dir, threads),
                    dir,
                    threads,
                });
            }
        }
    }
    if args.exec.executor == super::exec_args::ExecutorArg::Local {
        args.common.backend.device()?;
    }
    let has_baseline = runs.iter().any(|r| r.formula == baseline);
    let progress = Progress::new();
    // The data once here (downloaded, checked and decoded into --data-dir), so that a bad
    // --dataset fails before any job and the runs find the decoded images in the cache.
    let first = build_config(&args, String::new())?;
    let tasks: HashSet<_> = networks.iter().map(|n| n.task()).collect();
    if tasks.len() > 1 {
        bail!(
            "a grid's networks share one --dataset, so an image network and a language model cannot be in one grid: run the image networks and the GPTs as two grids"
        );
    }
    crate::train::run::check_data(&first, &progress)?;
    progress.println(&format!(
        "actsearch eval: a grid of {} runs ({} network(s) x {} activation(s) x {} seed(s)) on {}, {} executor, {} at once, {} thread(s) each -> {}",
        runs.len(),
        networks.len(),
        args.activation.len(),
        args.seeds.len(),
        args.common.dataset,
        args.exec.name(),
        args.exec.max_jobs.unwrap_or(args.exec.workers),
        threads,
        out.display()
    ));
    let total = runs.len();
    let mut executor = args.exec.executor(&out, result_of)?;
    let outcome = run_grid(&out, runs, &baseline, executor.as_mut(), args.resume, &progress)?;
    progress.finish();
    let mut text = format!("{}\n", outcome.table);
    if !has_baseline {
        text += &format!(
            "note: the baseline {} is not in the grid, so nothing was compared; add it with --activation {}\n",
            crate::report::shown(&baseline),
            crate::report::shown(&args.baseline())
        );
    }
    for (dir, why, _) in &outcome.failed {
        text += &format!("failed: {}: {why}\n", dir.display());
    }
    if outcome.stopped {
        text += &format!(
            "stopped: {} of {total} runs finished; continue with the same command and --resume\n",
            outcome.finished
        );
    }
    text += &format!(
        "summary: {} and summary.md; runs in {}/<network>/<activation>/seed-N\n",
        out.join("summary.json").display(),
        out.display()
    );
    stdout(&text)?;
    let diverged = outcome.failed.iter().filter(|f| f.2).count();
    let other = outcome.failed.len() - diverged;
    let mut advice = Vec::new();
    if diverged > 0 {
        advice.push(format!(
            "{diverged} diverged, which a rerun repeats (same seed, same data): lower --lr, add --grad-clip 5, or leave those activations out"
        ));
    }
    if other > 0 {
        advice.push(format!(
            "{other} failed otherwise (see above and their eval.log): rerun with --resume to retry them"
        ));
    }
    if !advice.is_empty() {
        bail!("{} of {total} runs did not finish: {}", outcome.failed.len(), advice.join("; "));
    }
    Ok(())
}

/// The `actsearch eval` command of one run: the grid's recipe flags, one network, activation
/// and seed, `--out` the run's folder and `--resume` (a retried run continues from its
/// checkpoint).
fn task_argv(
    program: &str,
    args: &EvalArgs,
    network: Network,
    activation: &str,
    seed: u64,
    dir: &Path,
    threads: usize,
) -> Vec<String> {
    fn name<T: ValueEnum>(v: &T) -> String {
        v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
    }
    let mut a: Vec<String> = vec![
        program.into(),
        "eval".into(),
        "--network".into(),
        network.name().into(),
        // One word, so that a formula starting with '-' is not read as a flag.
        format!("--activation={activation}"),
        "--seeds".into(),
        seed.to_string(),
        "--out".into(),
        dir.to_string_lossy().into_owned(),
        "--resume".into(),
        "--preset".into(),
        name(&args.preset),
        "--init-params".into(),
        name(&args.init_params),
        "--augment".into(),
        name(&args.augment),
        "--eval-batch-size".into(),
        args.eval_batch_size.to_string(),
    ];
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            a.push(format!("--{flag}={v}"));
        }
    };
    opt("epochs", args.epochs.map(|v| v.to_string()));
    opt("steps", args.steps.map(|v| v.to_string()));
    opt("eval-interval", args.eval_interval.map(|v| v.to_string()));
    opt("batch-size", args.batch_size.map(|v| v.to_string()));
    opt("lr", args.lr.map(|v| v.to_string()));
    opt("momentum", args.momentum.map(|v| v.to_string()));
    opt("weight-decay", args.weight_decay.map(|v| v.to_string()));
    opt("schedule", args.schedule.map(|v| format!("{v:?}").to_lowercase()));
    opt("grad-clip", args.grad_clip.map(|v| v.to_string()));
    opt("train-portion", args.train_portion.map(|v| v.to_string()));
    opt("subset", args.subset.map(|v| v.to_string()));
    opt("test-subset", args.test_subset.map(|v| v.to_string()));
    if args.nesterov {
        a.push("--nesterov".into());
    }
    if args.mlp == super::eval::MlpArg::Gated {
        a.push("--mlp=gated".into());
    }
    a.extend([
        format!("--dataset={}", args.common.dataset),
        format!("--data-dir={}", args.common.data_dir.display()),
        format!("--backend={}", name(&args.common.backend)),
        format!("--threads={threads}"),
    ]);
    a
}

/// What makes two activations the same: the values for a parameter-free function (relu and
/// max(x, 0)); with trainable parameters, only the same formula.
fn same_key(formula: &crate::expr::Formula) -> String {
    match (formula.params.is_empty(), formula.fingerprint()) {
        (true, Some(fp)) => format!("{fp:016x}"),
        _ => formula.to_string(),
    }
}
