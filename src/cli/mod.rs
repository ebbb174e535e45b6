//! The command-line front end: the only module that knows about argv and the only one that
//! prints. Each subcommand turns its flags into a library configuration and renders progress
//! events with indicatif.
//!
//! Messages: every error is one `error:` line (causes joined by [`one_line`]); numeric flags
//! take negative values (`--lr -1`) so that their validator, not clap, says what is wrong; and
//! a value the user gave that is longer than 80 characters (a formula, a path) is shown cut to
//! 80 characters wherever a message repeats it ([`shorten_user_values`]).

mod backend;
mod bench;
mod child;
mod compare;
mod data;
mod eval;
mod eval_grid;
mod exec_args;
mod export;
mod functions;
mod memory;
mod plot;
mod predict;
mod progress;
mod report;
mod sample;
mod search;
mod search_args;
mod then_eval;

use clap::{Parser, Subcommand};

/// Discover neural-network activation functions and prove whether they help.
#[derive(Parser, Debug)]
#[command(name = "actsearch", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a CIFAR ResNet from scratch with an activation function and report its accuracy.
    Eval(Box<eval::EvalArgs>),
    /// Search for an activation function: one-shot (darts, darts2, gdas, drnas, grafs: the
    /// network's activations become mixed cells) or sample-based (ppo, reinforce, random,
    /// evolution, exhaustive, surrogate: one child network trained per proposed function).
    Search(Box<search_args::SearchArgs>),
    /// Train one child of a sample-based search from its spec (what executors run).
    Child(child::ChildArgs),
    /// List every named activation and every function usable in formulas.
    Functions,
    /// Download and verify datasets.
    Data(data::DataArgs),
    /// Time the reference workloads (w1: ResNet-20 training step; w2: DARTS step with the
    /// small cell), optionally side by side with PyTorch.
    Bench(bench::BenchArgs),
    /// Draw activation functions (and their derivatives) on one chart, as PNG or SVG.
    Plot(plot::PlotArgs),
    /// Compare activations over seeds with a baseline: mean ± std, the difference with a 95%
    /// confidence interval, a p-value and a verdict (better, worse, no detectable difference).
    ///
    /// The interval is paired by seed when both sides ran the same seeds, Welch's otherwise.
    /// There is no interval, and so no better/worse verdict, with one seed on either side, or
    /// when the difference has no spread: the same difference in every seed (identical runs,
    /// or a small test set's quantized accuracies), or, unpaired, the same accuracy in every
    /// seed on each side. More seeds or a larger test set give one.
    ///
    /// Sample-based searches get a table of their own: each method and fidelity by the best
    /// reward its searches reached at the full child steps, over search seeds, against random
    /// search at full fidelity with the same space, child recipe and --budget-steps.
    Compare(compare::CompareArgs),
    /// Charts, tables, report.md and a self-contained report.html from eval and search runs.
    Report(report::ReportArgs),
    /// How well the surrogate (--method surrogate) predicts: fit on one sample-based search's
    /// rewards, the Spearman rank correlation of predicted against actual rewards on another
    /// search's functions that the first does not hold.
    Predict(predict::PredictArgs),
    /// Write an activation (a genotype.json, a name or a formula) as self-contained PyTorch or
    /// JAX code, or as a formula with its parameter values.
    Export(export::ExportArgs),
}

/// Run the program; returns the process exit code. Every error is one line on stderr.
pub fn main() -> i32 {
    memory::keep_freed_memory();
    if std::env::var_os(crate::exec::EXIT_WITH_PARENT_ENV).is_some() {
        watch_parent();
    }
    if std::env::var_os(crate::exec::TASK_ENV).is_some() {
        crate::files::wait_for_busy_locks(crate::exec::TASK_LOCK_PATIENCE);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let plain = e.render().to_string();
            match shorten_user_values(&plain) {
                short if short != plain => eprint!("{short}"),
                _ => {
                    let _ = e.print();
                }
            }
            return code;
        }
    };
    if matches!(cli.command, Command::Eval(_) | Command::Search(_)) {
        // The long runs stop cleanly on Ctrl-C (the others end at once, as usual).
        progress::handle_ctrl_c();
    }
    let result = match cli.command {
        Command::Eval(args) if args.is_grid() => eval_grid::run(*args),
        Command::Eval(args) => eval::run(*args),
        Command::Search(args) => match search_args::sample_method(args.method) {
            Some(method) => sample::run(&args, method),
            None => search::run(*args),
        },
        Command::Child(args) => child::run(args),
        Command::Functions => functions::run(),
        Command::Data(args) => data::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Report(args) => report::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Export(args) => export::run(args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            match e.chain().any(|c| c.is::<crate::files::Busy>()) {
                true => crate::files::Busy::EXIT_CODE,
                false => 1,
            }
        }
    }
}

/// Write results to stdout. A closed pipe (`actsearch functions | head`) is not an error.
fn stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// An error and its causes on one line, without repeating a cause already in the message.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    shorten_user_values(&line.replace('\n', " "))
}

/// `text` with every long value from the command line (or a long word taken from one, such as
/// an unknown name inside a formula) cut as [`crate::report::shown`] cuts it: messages from
/// every module pass through here, so none of them floods the terminal with a 100 kB formula.
fn shorten_user_values(text: &str) -> String {
    const LONG: usize = 80;
    let mut values: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .map(|a| match a.starts_with("--") {
            true => a.split_once('=').map_or(a.clone(), |(_, v)| v.to_string()),
            false => a,
        })
        .filter(|a| a.chars().count() > LONG)
        .collect();
    if values.is_empty() {
        return text.to_string();
    }
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for v in &values {
        out = out.replace(v.as_str(), &crate::report::shown(v));
    }
    let from_user = |word: &str| values.iter().any(|v| v.contains(word) || word.contains(v.as_str()));
    let words: Vec<String> = out
        .split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| "'\"`()[]{},;:".contains(c));
            match core.chars().count() > LONG && from_user(core) {
                true => word.replace(core, &crate::report::shown(core)),
                false => word.to_string(),
            }
        })
        .collect();
    words.join(" ")
}

/// A count flag's value: a whole number from 1 to 10^9 (`MAX_COUNT`; a negative or fractional value gets
/// this message, naming the flag, instead of clap's "invalid digit").
fn positive_whole(text: &str) -> Result<usize, String> {
    use crate::train::config::MAX_COUNT;
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        Ok(n) if n > MAX_COUNT => Err(format!("must be at most {MAX_COUNT} (10^9), got {n}")),
        _ => Err(format!("must be a positive whole number (1, 2, 3, ...), got {}", crate::report::shown(text))),
    }
}

/// A seed: a whole number, 0 included.
/// A seed list given to `flag` (`--seeds`, `--eval-seeds`): each seed at most once.
fn distinct_seeds(flag: &str, seeds: &[u64]) -> anyhow::Result<()> {
    let mut unique = seeds.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() != seeds.len() {
        anyhow::bail!("{flag} lists a seed twice: {seeds:?}");
    }
    Ok(())
}

fn whole(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("must be a whole number (0, 1, 2, ...), got {}", crate::report::shown(text)))
}

/// A thread that ends the process when its parent is gone (the parent id changes when the
/// parent dies and this process is adopted): tasks of the local executor, `child
/// --exit-with-parent`.
fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    let linger = crate::exec::test_linger();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                std::thread::sleep(linger);
                std::process::exit(130);
            }
        }
    });
}

/// Refuses the flags of `flags` that were given (`true`), naming them: they `only apply to
/// {what}`.
fn refuse_flags(flags: &[(&str, bool)], what: &str) -> anyhow::Result<()> {
    let given: Vec<&str> = flags.iter().filter_map(|&(flag, on)| on.then_some(flag)).collect();
    if !given.is_empty() {
        anyhow::bail!("{} only apply to {what}", given.join(", "));
    }
    Ok(())
}
