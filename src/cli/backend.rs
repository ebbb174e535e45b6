//! `--backend` and `--threads`: choosing the compute device at run time. More threads than
//! the machine has cores are capped at the cores, with one warning per process (on stderr):
//! the extra threads would only take turns on the same cores, and a run with thousands of
//! them crawls. Results do not depend on the thread count, so the cap changes only the speed.

use anyhow::{Result, bail};
use burn::prelude::Device;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Pure-Rust CPU backend (always available).
    Flex,
    /// NVIDIA GPUs (build with `--features cuda`).
    Cuda,
    /// AMD GPUs (build with `--features rocm`).
    Rocm,
    /// Any GPU through wgpu: Vulkan, Metal, DX12 (build with `--features wgpu`).
    Wgpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Cuda => "cuda",
            Backend::Rocm => "rocm",
            Backend::Wgpu => "wgpu",
        }
    }

    /// The device, or a clear error when this binary was built without the backend.
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Device::cuda(0)),
            #[cfg(feature = "rocm")]
            Backend::Rocm => Ok(Device::rocm(0)),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => bail!(
                "this actsearch binary was built without the {0} backend: rebuild with `cargo build --release --features {0}`, or use --backend flex",
                other.name()
            ),
        }
    }
}

/// The CPU thread pool (rayon, which burn-flex and our kernels use) with `threads` threads,
/// every core by default. Run the work with `pool.install(..)`: the training loop then runs on
/// a pool thread, so each parallel tensor op starts without a cross-thread hand-off and the
/// loop's own thread takes part in it.
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let n = thread_count(threads)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("actsearch-{i}"))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start {n} threads: {e}"))
}

/// The threads to use: `threads`, or every core when None. Zero is an error; more than the
/// cores [`std::thread::available_parallelism`] reports (which respects CPU affinity and
/// container limits) are capped at the cores, with one warning per process.
pub fn thread_count(threads: Option<usize>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).ok();
    match (threads, cores) {
        (Some(0), _) => bail!("--threads must be at least 1 (leave it out to use every core)"),
        (Some(n), Some(cores)) if n > cores => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                let of = if cores == 1 { "1 core".to_string() } else { format!("{cores} cores") };
                eprintln!(
                    "warning: --threads {n} is more than the {of} of this machine; using {cores} (more would only be slower)"
                );
            });
            Ok(cores)
        }
        (Some(n), _) => Ok(n),
        (None, cores) => Ok(cores.unwrap_or(1)),
    }
}

/// Flags every training command shares: where the data is and what computes.
#[derive(Args, Clone, Debug)]
pub struct DataAndCompute {
    /// cifar10, cifar100, or PATH to an image folder with train/<class>/ and test/<class>/ (or a
    /// .tar.xz/.tar.gz of one).
    #[arg(long, default_value = "cifar10")]
    pub dataset: String,
    /// Where datasets are downloaded and decoded images are cached.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: Backend,
    /// CPU threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_whole)]
    pub threads: Option<usize>,
}

impl DataAndCompute {
    /// The device and a thread pool to run the work in (see [`thread_pool`]).
    pub fn device_and_pool(&self) -> Result<(Device, rayon::ThreadPool)> {
        Ok((self.backend.device()?, thread_pool(self.threads)?))
    }
}
