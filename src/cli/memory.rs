//! Process-wide allocator settings.
//!
//! Training allocates and frees multi-megabyte tensors every step. glibc's malloc hands blocks
//! above its mmap threshold straight back to the OS (munmap) and trims the heap once enough of
//! its top is free, so each step page-faults and zero-fills the same memory again: 15% of a
//! ResNet-20 training step on 2 cores was spent in the kernel doing that. Raising both
//! thresholds keeps freed memory in the process for reuse (the peak memory use is unchanged;
//! what is freed is just not returned until exit).

/// Keep freed memory for reuse (glibc only; other C libraries keep their defaults).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // From glibc's malloc.h.
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes malloc's tuning parameters; it is called before any
        // other thread exists. 32 MiB is glibc's largest mmap threshold on 64-bit targets.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
