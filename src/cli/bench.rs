//! `actsearch bench w1|w2|w3|w4|w5|w6|w7|w8|all`: time the reference workloads (see `bench`) and print one
//! JSON line each, as `../shared/reference/pytorch_bench.py` does. Each workload runs in its
//! own child process so that its peak memory is its own. With `--pytorch PYTHON` the reference
//! script runs right after each workload with the same thread count, and a third line gives
//! the ratios (ours / PyTorch's) measured in that one run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use super::backend::{Backend, thread_count, thread_pool};
use super::stdout;
use crate::bench::{self, Workload};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// w1 (ResNet-20 training step, batch 128), w2 (first-order DARTS step on ResNet-8 with
    /// the small cell, batch 64), w3 (a ResNet-8 epoch on 10000 images through the data
    /// loader), w4 (a search child's step: ResNet-20, batch 128, x*sigmoid(b*x)), w5
    /// (ResNet-20 inference on 500 images), w6 (a gpt-micro training step, 12 windows of 64
    /// characters), w7 (a vit-micro training step with AdamW, batch 128), w8 (a
    /// transformer-micro training step, 64 pairs of 24 + 24 tokens, vocabulary 8000) or all.
    #[arg(default_value = "all")]
    pub workload: String,
    /// CPU threads.
    #[arg(long, default_value_t = 2, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub threads: usize,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// Also run the PyTorch reference with this Python (e.g. /tmp/torchref/bin/python) and
    /// print the ratios.
    #[arg(long)]
    pub pytorch: Option<PathBuf>,
    /// The reference script.
    #[arg(long, default_value = "../shared/reference/pytorch_bench.py")]
    pub reference: PathBuf,
    /// Run the workload in this process (used for the per-workload child processes).
    #[arg(long, hide = true)]
    pub in_process: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let workloads = Workload::parse(&args.workload)?;
    // Here, not only in the child process, whose stderr is only shown when it fails; both
    // sides then run on the capped count.
    let args = BenchArgs { threads: thread_count(Some(args.threads))?, ..args };
    if let Some(python) = &args.pytorch {
        if !args.reference.is_file() {
            bail!(
                "the reference script {} does not exist; pass --reference PATH/pytorch_bench.py",
                args.reference.display()
            );
        }
        if !python.exists() {
            bail!(
                "{} does not exist; create it with `python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch==2.13.0`",
                python.display()
            );
        }
    }
    if args.in_process {
        let device = args.backend.device()?;
        let pool = thread_pool(Some(args.threads))?;
        for w in workloads {
            let timing = pool.install(|| bench::run(w, &device, args.threads))?;
            stdout(&format!("{}\n", serde_json::to_string(&timing)?))?;
        }
        return Ok(());
    }
    for w in workloads {
        let ours = run_child(&args, w)?;
        stdout(&format!("{ours}\n"))?;
        if let Some(python) = &args.pytorch {
            let theirs = run_reference(python, &args, w)?;
            stdout(&format!("{theirs}\n"))?;
            let ratio = |key: &str| {
                let (a, b) = (ours[key].as_f64().unwrap_or(f64::NAN), theirs[key].as_f64().unwrap_or(f64::NAN));
                ((a / b) * 1000.0).round() / 1000.0
            };
            let line = json!({
                "workload": w.name(),
                "ratio_median": ratio("median_ms"),
                "ratio_min": ratio("min_ms"),
                "ratio_peak_rss": ratio("peak_rss_mb"),
                "threads": args.threads,
            });
            stdout(&format!("{line}\n"))?;
        }
    }
    Ok(())
}

/// This binary, `bench W --in-process`, in a child process; its JSON line.
fn run_child(args: &BenchArgs, w: Workload) -> Result<Value> {
    let exe = std::env::current_exe().context("cannot find the actsearch executable")?;
    let output = Command::new(exe)
        .args(["bench", w.name(), "--in-process", "--threads", &args.threads.to_string()])
        .args(["--backend", args.backend.name()])
        .output()
        .context("cannot start the benchmark process")?;
    json_line(&output, &format!("actsearch bench {}", w.name()))
}

/// The reference script for one workload, with its peak RSS added.
fn run_reference(python: &PathBuf, args: &BenchArgs, w: Workload) -> Result<Value> {
    // The script's folder goes first on the path, as `python3 script` would put it (it
    // imports transformers_ref.py beside it).
    const WRAPPER: &str = "import json, os, resource, runpy, sys, io, contextlib\n\
        script, which, threads = sys.argv[1], sys.argv[2], sys.argv[3]\n\
        sys.argv = [script, which, '--threads', threads]\n\
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))\n\
        buf = io.StringIO()\n\
        with contextlib.redirect_stdout(buf):\n    runpy.run_path(script, run_name='__main__')\n\
        line = json.loads(buf.getvalue().strip().splitlines()[-1])\n\
        line['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 2)\n\
        print(json.dumps(line))\n";
    let output = Command::new(python)
        .args(["-c", WRAPPER])
        .arg(&args.reference)
        .args([w.name(), &args.threads.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    json_line(&output, "the PyTorch reference")
}

/// The JSON line a benchmark process printed, or its error: the child's own `error:` line
/// (without that prefix, which ours adds again), else its last line of stderr.
fn json_line(output: &std::process::Output, what: &str) -> Result<Value> {
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let reason = match lines.iter().rev().find_map(|l| l.strip_prefix("error:")) {
            Some(reason) => reason.trim(),
            None => lines.last().copied().unwrap_or("no output"),
        };
        bail!("{what} failed: {reason}");
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.trim().lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("{what} printed no JSON line: '{line}'"))
}
