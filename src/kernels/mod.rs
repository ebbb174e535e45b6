//! Evaluating activations on tensors, and the CPU kernels the networks run on. `reference`
//! composes burn tensor ops (every backend, autodiff for free, the test oracle); the op
//! semantics come from `expr::ops`. On the `flex` CPU backend `fused` (activations and mixed
//! cells, compiled by `program`), `conv` (with `shifted`, and `winograd` when switched on),
//! `norm` and `norm_program` (a batch norm and the activation after it in one pass) replace
//! burn's ops.

/// Defines `fn $name(args)` that runs `$imp(args)` (an `#[inline(always)]` function) compiled
/// for the best instruction set this CPU has: AVX-512, AVX2 + FMA, or the baseline. Every
/// build computes the same numbers (the bodies fix their summation order, and `fast32` uses
/// fused multiply-adds everywhere).
macro_rules! simd_fn {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $imp:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                if $crate::kernels::program::has_avx512() {
                    // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::kernels::program::has_avx2() {
                    // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

/// The instruction set the kernels of `simd_fn!` run on, on this CPU: "avx512", "avx2+fma"
/// or "baseline".
pub fn vector_extensions() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if program::has_avx512() {
            return "avx512";
        }
        if program::has_avx2() {
            return "avx2+fma";
        }
    }
    "baseline"
}

pub mod attention;
pub mod conv;
pub mod cross_entropy;
pub mod dropout;
pub mod fast32;
pub mod fused;
mod geometry;
mod lanes;
pub mod layer_norm;
pub mod linear;
mod matmul;
pub mod norm;
pub mod norm_program;
pub mod program;
pub mod reference;
mod shifted;
mod winograd;

use burn::backend::flex::FlexTensor;
use burn::prelude::Device;

/// Whether tensors on `device` take this crate's CPU kernels (`fused`, `conv`, `norm`); other
/// devices use the reference path or burn's own ops.
pub fn available(device: &Device) -> bool {
    *device == Device::flex()
}

/// 0: not yet read from the environment, 1: on, 2: off.
static WINOGRAD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Turns the Winograd path of the 3x3 stride-1 convolutions (`winograd`) on or off for this
/// process. It is off unless the environment sets `ACTSEARCH_WINOGRAD=1`: on the ResNets'
/// shapes it does not beat the direct path yet (README, Performance), so the direct path stays
/// the default.
pub fn set_winograd(on: bool) {
    WINOGRAD.store(if on { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

fn winograd_enabled() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match WINOGRAD.load(Relaxed) {
        0 => {
            let on = std::env::var("ACTSEARCH_WINOGRAD").is_ok_and(|v| v == "1");
            set_winograd(on);
            on
        }
        mode => mode == 1,
    }
}

/// A contiguous f32 view of a flex tensor (a shared handle when it already is one).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), burn::backend::DType::F32, "the CPU kernels work on f32 tensors");
    t.to_contiguous()
}

/// An output vector filled by the rayon threads with no zeroing pass up front: each chunk is
/// either zeroed by the thread that then writes it, in cache, just before its writes
/// ([`zeroed`]), or written element by element and counted ([`written`]). (A separate pass
/// over a multi-megabyte output, on one thread or several, costs about as much as the
/// kernel's own writes.)
struct Filled {
    v: Vec<f32>,
    len: usize,
    /// Elements zeroed or written so far, checked before the vector is handed out.
    ready: std::sync::atomic::AtomicUsize,
}

impl Filled {
    fn new(len: usize) -> Filled {
        Filled { v: Vec::with_capacity(len), len, ready: Default::default() }
    }

    /// The chunks of `size` elements (the last may be shorter) as a parallel iterator, and
    /// the counter to pass to [`zeroed`] or [`written`] with each.
    fn chunks(
        &mut self,
        size: usize,
    ) -> (rayon::slice::ChunksMut<'_, std::mem::MaybeUninit<f32>>, &std::sync::atomic::AtomicUsize) {
        use rayon::prelude::*;
        (self.v.spare_capacity_mut()[..self.len].par_chunks_mut(size), &self.ready)
    }

    /// The vector, once every chunk has been through [`zeroed`] or [`written`] (panics
    /// otherwise).
    fn into_vec(mut self) -> Vec<f32> {
        assert_eq!(self.ready.into_inner(), self.len, "Filled: a chunk was never written");
        // SAFETY: `zeroed` and `written`'s callers initialized every one of the first `len`
        // elements (counted above).
        unsafe { self.v.set_len(self.len) };
        self.v
    }
}

/// Counts a chunk of [`Filled`] that its writer initialized element by element
/// (`MaybeUninit::write`), with no zeroing first.
///
/// # Safety
/// Every element of `chunk` must have been written.
unsafe fn written(chunk: &[std::mem::MaybeUninit<f32>], ready: &std::sync::atomic::AtomicUsize) {
    ready.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
}

/// The chunk zeroed, as plain floats (counted in `ready`, see [`Filled`]).
fn zeroed<'a>(chunk: &'a mut [std::mem::MaybeUninit<f32>], ready: &std::sync::atomic::AtomicUsize) -> &'a mut [f32] {
    for e in chunk.iter_mut() {
        e.write(0.0);
    }
    ready.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: every element was just written; MaybeUninit<f32> has the layout of f32.
    unsafe { &mut *(chunk as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}
