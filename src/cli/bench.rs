//! `actsearch bench w1|w2|w3|w4|w5|w6|w7|w8|all`: time the reference workloads (see `bench`) and print one
//! JSON line each, as `../shared/reference/pytorch_bench.py` does. Each workload runs in its
//! own child process so that its peak memory is its own. With `--pytorch PYTHON` the reference
//! script runs right after each workload with the same thread count, and a third line gives
//! the ratios (ours / PyTorch's), with the CPU model and our kernels' instruction set. With
//! `--repeat N` the two alternate N times (ours, theirs, ours, theirs, ...), and the ratio line
//! gives the median of the per-pair ratios and their range.

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
    /// With --pytorch: run each workload this many times in interleaved pairs (ours, PyTorch's,
    /// ours, PyTorch's, ...) and give the median of the per-pair ratios with their range, a
    /// ratio that one noisy pair cannot move.
    #[arg(long, default_value_t = 1, value_parser = super::positive_whole)]
    pub repeat: usize,
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
    if args.repeat > 1 && args.pytorch.is_none() {
        bail!("--repeat interleaves our runs with PyTorch's; add --pytorch PYTHON (e.g. /tmp/torchref/bin/python)");
    }
    for w in workloads {
        let Some(python) = &args.pytorch else {
            stdout(&format!("{}\n", run_child(&args, w)?))?;
            continue;
        };
        // Interleaved pairs: a slow spell of the machine falls on both sides of a pair.
        let mut pairs = Vec::new();
        for pair in 0..args.repeat {
            let mut ours = run_child(&args, w)?;
            let mut theirs = run_reference(python, &args, w)?;
            if args.repeat > 1 {
                (ours["pair"], theirs["pair"]) = (json!(pair + 1), json!(pair + 1));
            }
            stdout(&format!("{ours}\n{theirs}\n"))?;
            pairs.push((ours, theirs));
        }
        stdout(&format!("{}\n", ratio_line(w, &pairs, args.threads)))?;
    }
    Ok(())
}

/// The ratios (ours / PyTorch's) of a workload's pairs of runs: the median over the pairs of
/// each pair's ratio of median step times (and of min step times, and of peak memory), the
/// range of the median ratio over the pairs, the CPU model and the instruction set our kernels
/// chose.
fn ratio_line(w: Workload, pairs: &[(Value, Value)], threads: usize) -> Value {
    let ratios = |key: &str| -> Vec<f64> {
        pairs.iter().map(|(a, b)| a[key].as_f64().unwrap_or(f64::NAN) / b[key].as_f64().unwrap_or(f64::NAN)).collect()
    };
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let medians = ratios("median_ms");
    let spread = medians.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    json!({
        "workload": w.name(),
        "ratio_median": round(bench::median(&medians)),
        "ratio_min": round(bench::median(&ratios("min_ms"))),
        "ratio_peak_rss": round(bench::median(&ratios("peak_rss_mb"))),
        "pairs": pairs.len(),
        "ratio_median_range": [round(spread.0), round(spread.1)],
        "threads": threads,
        "cpu": bench::cpu_model(),
        "kernels": crate::kernels::vector_extensions(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The ratio line takes each pair's ratio, then the median over the pairs: one slow pair
    /// (the second, whose PyTorch run was slowed) moves the range, not the median.
    #[test]
    fn the_ratio_is_the_median_of_the_pairs_ratios() {
        let run = |median: f64, min: f64, rss: f64| json!({"median_ms": median, "min_ms": min, "peak_rss_mb": rss});
        let pairs = vec![
            (run(100.0, 90.0, 100.0), run(200.0, 180.0, 400.0)),
            (run(100.0, 90.0, 100.0), run(1000.0, 900.0, 400.0)),
            (run(120.0, 90.0, 100.0), run(200.0, 150.0, 400.0)),
        ];
        let line = ratio_line(Workload::W5, &pairs, 2);
        assert_eq!(line["ratio_median"], json!(0.5));
        assert_eq!(line["ratio_median_range"], json!([0.1, 0.6]));
        assert_eq!(line["ratio_min"], json!(0.5));
        assert_eq!(line["ratio_peak_rss"], json!(0.25));
        assert_eq!(line["pairs"], json!(3));
        assert!(line["cpu"].as_str().is_some_and(|c| !c.is_empty()) && line["kernels"].is_string());
    }
}
