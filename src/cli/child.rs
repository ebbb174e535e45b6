//! `actsearch child SPEC.json`: train one child of a sample-based search and write its result
//! (`result.json` beside the spec, atomically). Executors run this; a user can too, to rerun
//! one child by hand. A spec that cannot be read is an error (exit 1, no result); a child
//! that cannot train (its data is missing, say) writes a `failed` result and exits 1.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::backend::{Backend, thread_pool};
use super::progress::Progress;
use crate::search::sample::child::{ChildResult, read_spec, result_path, train_child, write_result};

#[derive(Args, Debug)]
pub struct ChildArgs {
    /// The child's spec (written by the search into OUT/children/ID/spec.json).
    pub spec: PathBuf,
    /// CPU threads [default: the spec's].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub threads: Option<usize>,
    /// Exit as soon as the process that started this one is gone (the local executor passes
    /// it, so that killing a search never leaves its children running).
    #[arg(long)]
    pub exit_with_parent: bool,
}

pub fn run(args: ChildArgs) -> Result<()> {
    if args.exit_with_parent {
        super::watch_parent();
    }
    let spec = read_spec(&args.spec)?;
    let backend = match Backend::from_str(&spec.backend, true) {
        Ok(b) => b,
        Err(_) => bail!(
            "\"backend\" in {}: unknown backend '{}' (use flex, cuda, rocm or wgpu)",
            args.spec.display(),
            spec.backend
        ),
    };
    let out = result_path(&args.spec);
    let had_result = out.exists();
    // One process per child folder, whatever runs it (two Slurm jobs of one child, say). A
    // task waits a while for the lock (the child of a killed search may still hold it).
    let folder = &spec.training_folder(&args.spec);
    let what = format!("child folder {}", folder.display());
    let _lock = crate::files::Lock::try_exclusive_telling(&folder.join(".lock"), &what, || {
        eprintln!(
            "child {}: waiting for another process to release {what} (the child of a stopped search, on its way out?)",
            spec.id
        )
    })?;
    std::thread::sleep(crate::exec::test_linger());
    if out.exists() && !had_result {
        eprintln!("child {}: another process wrote this child's result while this one waited for its lock", spec.id);
        return Ok(());
    }
    if out.exists() {
        bail!("{} already holds this child's result; delete it to train the child again", out.display());
    }
    let start = Instant::now();
    let trained = backend.device().and_then(|device| {
        let pool = thread_pool(Some(args.threads.unwrap_or(spec.threads).max(1)))?;
        let progress = Progress::new();
        pool.install(|| train_child(&spec, folder, &device, &progress))
    });
    match trained {
        Ok(result) => {
            write_result(&out, &result)?;
            eprintln!(
                "child {}: {} {} reward {:.4} in {:.1} s",
                spec.id,
                spec.formula,
                result.status.name(),
                result.reward,
                result.seconds
            );
            Ok(())
        }
        Err(e) => {
            let error = super::one_line(&e);
            let failed =
                ChildResult::failed(spec.id, error.clone(), start.elapsed().as_secs_f64(), spec.recipe.reward_floor);
            write_result(&out, &failed)?;
            Err(e)
        }
    }
}
