//! `--backend` and `--threads`: choosing the compute device at run time.

use anyhow::{Result, bail};
use burn::prelude::Device;
use clap::ValueEnum;

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

/// Size the CPU thread pool (rayon's global pool, which burn-flex and our kernels use).
/// `None` uses every core. Returns the number of threads in use.
pub fn set_threads(threads: Option<usize>) -> Result<usize> {
    let n = match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    // A second call (e.g. in tests) keeps the first pool; that is fine.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    Ok(rayon::current_num_threads())
}
