//! Thin entry point: all work happens in the library; `cli` turns argv into a config.

/// mimalloc instead of the system allocator: it reuses the large tensor buffers that a
/// training step frees, where glibc returns them to the OS and faults fresh zeroed pages in on
/// the next step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (15 in v2 and in v3, the version `libmimalloc-sys`
/// 0.1.49 builds by default): how long freed memory waits before it is returned to the OS; -1
/// is never. The peak memory is the same either way (what a step frees, the next step
/// allocates again), and the default (10 ms) returns and re-faults the buffers of every step.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // SAFETY: sets one of mimalloc's documented options, before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    std::process::exit(actsearch::cli::main());
}
