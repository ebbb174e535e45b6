//! A compiled activation: a straight-line program over per-element registers, evaluated in
//! one pass over memory by [`Program::forward_plane`] and differentiated in reverse mode by
//! [`Program::backward_plane`] (which recomputes the forward from the saved input, in the
//! style of llm.c: each instruction's value and local derivative come from the op table,
//! `expr::ops`, so the fused path and the reference path share one definition).
//!
//! A fixed formula compiles to a few instructions; a mixed cell compiles to every candidate
//! op of every position, each multiplied by its mixing weight (an input like the per-channel
//! parameters) and summed. The interpreter works on one channel plane at a time, in chunks
//! of [`LANES`] elements: each instruction is a tight loop over the chunk (on
//! `kernels::fast32::Fast`, so it vectorizes), and values that are the same for every
//! element of the chunk (constants, parameters, weights and what depends only on them) are
//! computed once as scalars ("uniform" registers).

use super::fast32::Fast;
use super::lanes::{dot, sum_of};
use crate::expr::ops::{BinOp, Func, powi_eval};
use crate::expr::{Expr, Formula};

/// `match f` with each arm binding the constant `F`, so that the closure in the arm is
/// specialized to one function and its loop vectorizes.
macro_rules! with_func {
    ($f:expr, $g:ident => $body:expr) => {
        match $f {
            Func::Abs => {
                const $g: Func = Func::Abs;
                $body
            }
            Func::Sqrt => {
                const $g: Func = Func::Sqrt;
                $body
            }
            Func::Exp => {
                const $g: Func = Func::Exp;
                $body
            }
            Func::Log => {
                const $g: Func = Func::Log;
                $body
            }
            Func::Sin => {
                const $g: Func = Func::Sin;
                $body
            }
            Func::Cos => {
                const $g: Func = Func::Cos;
                $body
            }
            Func::Sinh => {
                const $g: Func = Func::Sinh;
                $body
            }
            Func::Cosh => {
                const $g: Func = Func::Cosh;
                $body
            }
            Func::Tanh => {
                const $g: Func = Func::Tanh;
                $body
            }
            Func::Asinh => {
                const $g: Func = Func::Asinh;
                $body
            }
            Func::Atan => {
                const $g: Func = Func::Atan;
                $body
            }
            Func::Sinc => {
                const $g: Func = Func::Sinc;
                $body
            }
            Func::Erf => {
                const $g: Func = Func::Erf;
                $body
            }
            Func::Sigmoid => {
                const $g: Func = Func::Sigmoid;
                $body
            }
            Func::Softplus => {
                const $g: Func = Func::Softplus;
                $body
            }
            Func::Relu => {
                const $g: Func = Func::Relu;
                $body
            }
            Func::Silu => {
                const $g: Func = Func::Silu;
                $body
            }
            Func::Gelu => {
                const $g: Func = Func::Gelu;
                $body
            }
            Func::Elu => {
                const $g: Func = Func::Elu;
                $body
            }
            Func::LeakyRelu => {
                const $g: Func = Func::LeakyRelu;
                $body
            }
        }
    };
}

/// `match op` with each arm binding the constant `O` (see [`with_func`]).
macro_rules! with_binop {
    ($op:expr, $o:ident => $body:expr) => {
        match $op {
            BinOp::Add => {
                const $o: BinOp = BinOp::Add;
                $body
            }
            BinOp::Sub => {
                const $o: BinOp = BinOp::Sub;
                $body
            }
            BinOp::Mul => {
                const $o: BinOp = BinOp::Mul;
                $body
            }
            BinOp::Div => {
                const $o: BinOp = BinOp::Div;
                $body
            }
            BinOp::Max => {
                const $o: BinOp = BinOp::Max;
                $body
            }
            BinOp::Min => {
                const $o: BinOp = BinOp::Min;
                $body
            }
        }
    };
}

/// `match n` binding `$n` to the constant power for the common ones (2, 3, 4), so that
/// `powi_eval`'s match folds away and the loop vectorizes; other powers stay a variable.
macro_rules! with_power {
    ($p:expr, $n:ident => $body:expr) => {
        match $p {
            2 => {
                const $n: i32 = 2;
                $body
            }
            3 => {
                const $n: i32 = 3;
                $body
            }
            4 => {
                const $n: i32 = 4;
                $body
            }
            #[allow(non_snake_case)]
            $n => $body,
        }
    };
}

/// `out[l] = body(Fast(a[l]))` for every lane, written out in place (no closure), so the
/// op-table code is inlined into the loop and vectorizes.
macro_rules! lanes1 {
    ($out:expr, $a:expr, |$v:ident| $body:expr) => {{
        for (o, &x) in $out.iter_mut().zip($a) {
            let $v = Fast(x);
            *o = ($body).0;
        }
    }};
}

/// `out[l] = body(Fast(a[l]), Fast(b[l]))` for every lane.
macro_rules! lanes2 {
    ($out:expr, $a:expr, $b:expr, |$p:ident, $q:ident| $body:expr) => {{
        for ((o, &x), &y) in $out.iter_mut().zip($a).zip($b) {
            let ($p, $q) = (Fast(x), Fast(y));
            *o = ($body).0;
        }
    }};
}

/// `(out[l], d[l]) = body(Fast(a[l]))`: the value and the local derivative, computed together
/// (sin's derivative comes from the same reduction, sigmoid's from its value, ...).
macro_rules! lanes1_d {
    ($out:expr, $d:expr, $a:expr, |$v:ident| $body:expr) => {{
        for ((o, d), &x) in $out.iter_mut().zip($d.iter_mut()).zip($a) {
            let $v = Fast(x);
            let (value, deriv) = $body;
            *o = value.0;
            *d = deriv.0;
        }
    }};
}

/// `(out[l], da[l], db[l]) = body(a[l])` for a binary op with one vector operand `a`.
macro_rules! lanes1_d2 {
    ($out:expr, $da:expr, $db:expr, $a:expr, |$v:ident| $body:expr) => {{
        for (((o, da), db), &x) in $out.iter_mut().zip($da.iter_mut()).zip($db.iter_mut()).zip($a) {
            let $v = Fast(x);
            let (value, d1, d2) = $body;
            *o = value.0;
            *da = d1.0;
            *db = d2.0;
        }
    }};
}

/// `(out[l], da[l], db[l]) = body(a[l], b[l])` for a binary op with two vector operands.
macro_rules! lanes2_d {
    ($out:expr, $da:expr, $db:expr, $a:expr, $b:expr, |$p:ident, $q:ident| $body:expr) => {{
        for ((((o, da), db), &x), &y) in $out.iter_mut().zip($da.iter_mut()).zip($db.iter_mut()).zip($a).zip($b) {
            let ($p, $q) = (Fast(x), Fast(y));
            let (value, d1, d2) = $body;
            *o = value.0;
            *da = d1.0;
            *db = d2.0;
        }
    }};
}

/// Reverse step into vector register `a` from register `i`: `adj[a] += body(src, adj[i])` per
/// lane, where `src` is lane-wise `field[r]`: `vals[a]` (the operand's value) or `dvals[i]` /
/// `dvals2[i]` (the local derivative the forward run stored).
macro_rules! chain {
    ($s:expr, $i:expr, $a:expr, $n:expr, $field:ident[$r:expr], |$v:ident, $g:ident| $body:expr) => {{
        let (i, a, n, r) = ($i, $a, $n, $r);
        let first = !$s.touched[a];
        $s.touched[a] = true;
        let (lo, hi) = $s.adj.split_at_mut(i * LANES);
        let grads = &hi[..n];
        let out = &mut lo[a * LANES..a * LANES + n];
        let src = &$s.$field[r * LANES..r * LANES + n];
        if first {
            for ((o, &$g), &$v) in out.iter_mut().zip(grads).zip(src) {
                *o = $body;
            }
        } else {
            for ((o, &$g), &$v) in out.iter_mut().zip(grads).zip(src) {
                *o += $body;
            }
        }
    }};
}

/// A public method that runs `$imp` (an `#[inline(always)]` body) compiled for the best
/// instruction set this CPU has: AVX-512 (16 lanes), AVX2 + FMA (8), or the baseline (SSE, 4).
macro_rules! simd_builds {
    ($(#[$doc:meta])* $name:ident, $imp:ident, ($($arg:ident: $ty:ty),* $(,)?)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512(p: &Program, $($arg: $ty),*) {
                    p.$imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2(p: &Program, $($arg: $ty),*) {
                    p.$imp($($arg),*)
                }
                if has_avx512() {
                    // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
                    return unsafe { avx512(self, $($arg),*) };
                }
                if has_avx2() {
                    // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                    return unsafe { avx2(self, $($arg),*) };
                }
            }
            self.$imp($($arg),*)
        }
    };
}

/// Elements per chunk: every register of a chunk stays in the L1/L2 cache.
pub const LANES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inst {
    /// The input element.
    X,
    Const(f32),
    /// Row `k` of the per-channel parameter table, at this plane's channel.
    Param(usize),
    /// Mixing weight `j`.
    Weight(usize),
    Neg(usize),
    Pow(usize, i32),
    Call(Func, usize),
    Bin(BinOp, usize, usize),
    /// Clamp to `[lo, hi]`; derivative 1 strictly inside, 0 outside.
    Clamp(usize, f32, f32),
    /// A mixed op: `sum_j weights[weight + j] * reg[mix_regs[start + j]]` for j < len.
    Mix {
        start: usize,
        len: usize,
        weight: usize,
    },
}

/// Where a program's parameters vary: per channel plane (`[N, C, H, W]`, the ResNets' sites)
/// or per element of the last axis (`[.., F]`, the transformers' MLP hidden layers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// One value of each parameter per channel plane: parameters are uniform registers.
    #[default]
    Channels,
    /// One value per feature of the last axis: a chunk runs along a row of features, and
    /// each parameter is a vector register read from the chunk's `[K, LANES]` table.
    Features,
}

/// Registers are instruction indices; register 0 is always [`Inst::X`].
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub insts: Vec<Inst>,
    /// Where the parameters vary (see [`Layout`]).
    pub layout: Layout,
    /// Whether the register is the same for every element of a plane.
    pub uniform: Vec<bool>,
    /// The register holding the result.
    pub output: usize,
    /// Rows of the parameter table and entries of the weight vector the program reads.
    pub params: usize,
    pub weights: usize,
    /// The operands of the [`Inst::Mix`] instructions.
    pub mix_regs: Vec<usize>,
    /// Instructions already emitted, so that a repeated one reuses its register (the ops of
    /// `u1` and `u2` that read x without parameters are computed once).
    memo: std::collections::HashMap<String, usize>,
}

impl Default for Program {
    fn default() -> Program {
        Program {
            insts: vec![Inst::X],
            layout: Layout::Channels,
            uniform: vec![false],
            output: 0,
            params: 0,
            weights: 0,
            mix_regs: Vec::new(),
            memo: Default::default(),
        }
    }
}

impl Program {
    /// The program of a fixed formula; parameter slot `i` reads row `i`.
    pub fn from_formula(formula: &Formula) -> Program {
        let mut p = Program::default();
        let slots: Vec<usize> = (0..formula.num_params()).collect();
        p.output = p.emit(&formula.expr, &[], &slots);
        p
    }

    /// Append an instruction, or find the identical one already there; returns its register.
    pub fn push(&mut self, inst: Inst) -> usize {
        let key = format!("{inst:?}");
        if let Some(&r) = self.memo.get(&key) {
            return r;
        }
        let r = self.push_new(inst);
        self.memo.insert(key, r);
        r
    }

    /// The same program for features on the last axis ([`Layout::Features`]): parameters,
    /// and what depends on them, become vector registers.
    pub fn on_features(mut self) -> Program {
        self.layout = Layout::Features;
        let insts = std::mem::take(&mut self.insts);
        self.uniform.clear();
        for &inst in &insts {
            let u = self.is_uniform(inst);
            self.uniform.push(u);
        }
        self.insts = insts;
        self
    }

    /// Whether `inst` is the same for every element of a chunk, given the registers so far.
    fn is_uniform(&self, inst: Inst) -> bool {
        let u = &self.uniform;
        match inst {
            Inst::X => false,
            Inst::Param(_) => self.layout == Layout::Channels,
            Inst::Const(_) | Inst::Weight(_) => true,
            Inst::Neg(a) | Inst::Pow(a, _) | Inst::Call(_, a) | Inst::Clamp(a, _, _) => u[a],
            Inst::Bin(_, a, b) => u[a] && u[b],
            Inst::Mix { start, len, .. } => self.mix_regs[start..start + len].iter().all(|&r| u[r]),
        }
    }

    fn push_new(&mut self, inst: Inst) -> usize {
        let uniform = self.is_uniform(inst);
        match inst {
            Inst::Param(k) => self.params = self.params.max(k + 1),
            Inst::Weight(j) => self.weights = self.weights.max(j + 1),
            Inst::Mix { len, weight, .. } => self.weights = self.weights.max(weight + len),
            _ => {}
        }
        self.insts.push(inst);
        self.uniform.push(uniform);
        self.insts.len() - 1
    }

    /// A mixed op over `regs` with weights `weight..weight + regs.len()`; returns its register.
    pub fn push_mix(&mut self, regs: &[usize], weight: usize) -> usize {
        let start = self.mix_regs.len();
        self.mix_regs.extend_from_slice(regs);
        self.push(Inst::Mix { start, len: regs.len(), weight })
    }

    /// Emit `e` with `x{k+1}` read from register `args[k]` and parameter slot `i` from table
    /// row `params[i]` (missing ones read as NaN, as in `Formula::eval`). Returns the register.
    pub fn emit(&mut self, e: &Expr, args: &[usize], params: &[usize]) -> usize {
        match e {
            Expr::X => 0,
            Expr::Arg(k) => match args.get(*k) {
                Some(&r) => r,
                None => self.push(Inst::Const(f32::NAN)),
            },
            Expr::Num(c) => self.push(Inst::Const(*c as f32)),
            Expr::Param(i) => match params.get(*i) {
                Some(&row) => self.push(Inst::Param(row)),
                None => self.push(Inst::Const(f32::NAN)),
            },
            Expr::Neg(a) => {
                let a = self.emit(a, args, params);
                self.push(Inst::Neg(a))
            }
            Expr::Pow(a, n) => {
                let a = self.emit(a, args, params);
                self.push(Inst::Pow(a, *n))
            }
            Expr::Call(f, a) => {
                let a = self.emit(a, args, params);
                self.push(Inst::Call(*f, a))
            }
            Expr::Bin(op, a, b) => {
                let a = self.emit(a, args, params);
                let b = self.emit(b, args, params);
                self.push(Inst::Bin(*op, a, b))
            }
        }
    }

    simd_builds! {
        /// `y = f(x)` for one channel plane; `params[k]` is row k at this channel. With
        /// [`Layout::Features`], `x` is one chunk of at most [`LANES`] features and
        /// `params[k * LANES + l]` is row k at the chunk's feature l.
        forward_plane, forward_plane_impl,
        (x: &[f32], y: &mut [f32], params: &[f32], weights: &[f32], s: &mut Scratch)
    }

    simd_builds! {
        /// The gradient for one channel plane: writes `dx`, adds this plane's contributions to
        /// `dparams[k]` (row k at this channel) and `dweights[j]`. With [`Layout::Features`]
        /// (one chunk, as in `forward_plane`), `dparams[k * LANES + l]` is row k at feature l.
        backward_plane, backward_plane_impl,
        (x: &[f32], dy: &[f32], dx: &mut [f32], params: &[f32], weights: &[f32],
         dparams: &mut [f64], dweights: &mut [f64], s: &mut Scratch)
    }

    /// The function when the program is `f(x)` alone (most fixed activations, ReLU among them):
    /// a plane is then one loop each way, with no registers to fill and copy.
    fn single_call(&self) -> Option<Func> {
        match self.insts.as_slice() {
            [Inst::X, Inst::Call(f, 0)] if self.output == 1 => Some(*f),
            _ => None,
        }
    }

    #[inline(always)]
    fn forward_plane_impl(&self, x: &[f32], y: &mut [f32], params: &[f32], weights: &[f32], s: &mut Scratch) {
        if let Some(f) = self.single_call() {
            return with_func!(f, F => lanes1!(y, x, |v| F.value(v)));
        }
        s.ensure(self.insts.len());
        // The last instruction's result goes straight to y when it is the output (and not x
        // itself, which is then copied out of its register).
        let identity = self.output == 0;
        let direct = !identity && !self.uniform[self.output] && self.output + 1 == self.insts.len();
        for (xc, yc) in x.chunks(LANES).zip(y.chunks_mut(LANES)) {
            let n = xc.len();
            if direct {
                self.run::<false>(xc, params, weights, s, false, Some(yc));
            } else {
                self.run::<false>(xc, params, weights, s, identity, None);
                if self.uniform[self.output] {
                    yc.fill(s.scalars[self.output]);
                } else {
                    yc.copy_from_slice(&s.vals[self.output * LANES..self.output * LANES + n]);
                }
            }
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn backward_plane_impl(
        &self,
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        params: &[f32],
        weights: &[f32],
        dparams: &mut [f64],
        dweights: &mut [f64],
        s: &mut Scratch,
    ) {
        if let Some(f) = self.single_call() {
            // dx = dy f'(x), as the sweep below would compute it
            return with_func!(f, F => {
                for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(x) {
                    *d = g * F.eval(Fast(v)).1.0;
                }
            });
        }
        s.ensure(self.insts.len());
        let x_in_vals = self.sweep_reads_x();
        for ((xc, dyc), dxc) in x.chunks(LANES).zip(dy.chunks(LANES)).zip(dx.chunks_mut(LANES)) {
            self.run::<true>(xc, params, weights, s, x_in_vals, None);
            s.weight_adj.clear();
            s.weight_adj.resize(self.weights, 0.0);
            self.sweep(dyc, weights, s);
            for (d, g) in dweights.iter_mut().zip(&s.weight_adj) {
                *d += *g as f64;
            }
            if s.touched[0] {
                dxc.copy_from_slice(&s.adj[..xc.len()]);
            } else {
                dxc.fill(0.0);
            }
            for (i, inst) in self.insts.iter().enumerate() {
                if !s.touched[i] {
                    continue;
                }
                match *inst {
                    Inst::Param(k) if !self.uniform[i] => {
                        let adj = &s.adj[i * LANES..i * LANES + xc.len()];
                        for (d, &g) in dparams[k * LANES..].iter_mut().zip(adj) {
                            *d += g as f64;
                        }
                    }
                    Inst::Param(k) => dparams[k] += s.scalar_adj[i] as f64,
                    Inst::Weight(j) => dweights[j] += s.scalar_adj[i] as f64,
                    _ => {}
                }
            }
        }
    }

    /// Whether the reverse sweep reads x's own register (a clamp or a mix of x itself); the
    /// forward run reads x in place, and copies it into register 0 only then.
    fn sweep_reads_x(&self) -> bool {
        self.insts.iter().any(|inst| match *inst {
            Inst::Clamp(a, _, _) => a == 0,
            Inst::Mix { start, len, .. } => self.mix_regs[start..start + len].contains(&0),
            _ => false,
        })
    }

    /// Every register's value for one chunk; with `DERIV` also the local derivatives of the
    /// vector Call, Pow and Bin registers (for the sweep that follows). x is read in place
    /// (register 0 holds a copy only with `x_in_vals`); with `dest`, the last instruction
    /// (the output) writes there instead of into its register.
    #[inline(always)]
    fn run<const DERIV: bool>(
        &self,
        x: &[f32],
        params: &[f32],
        weights: &[f32],
        s: &mut Scratch,
        x_in_vals: bool,
        mut dest: Option<&mut [f32]>,
    ) {
        let n = x.len();
        let last = self.insts.len() - 1;
        for (i, inst) in self.insts.iter().enumerate() {
            if self.uniform[i] {
                let v = |r: usize| Fast(s.scalars[r]);
                let value = match *inst {
                    Inst::X => unreachable!("x is not uniform"),
                    Inst::Const(c) => c,
                    Inst::Param(k) => params[k],
                    Inst::Weight(j) => weights[j],
                    Inst::Neg(a) => -s.scalars[a],
                    Inst::Pow(a, p) => powi_eval(v(a), p).0.0,
                    Inst::Call(f, a) => f.value(v(a)).0,
                    Inst::Bin(op, a, b) => op.eval(v(a), v(b)).0.0,
                    Inst::Clamp(a, lo, hi) => s.scalars[a].clamp(lo, hi),
                    Inst::Mix { start, len, weight } => {
                        (0..len).map(|j| weights[weight + j] * s.scalars[self.mix_regs[start + j]]).sum()
                    }
                };
                s.scalars[i] = value;
                continue;
            }
            let (before, after) = s.vals.split_at_mut(i * LANES);
            let out = match dest.as_deref_mut() {
                Some(d) if i == last => d,
                _ => &mut after[..n],
            };
            let reg = |r: usize| if r == 0 { x } else { &before[r * LANES..r * LANES + n] };
            let d1 = &mut s.dvals[i * LANES..i * LANES + n];
            let d2 = &mut s.dvals2[i * LANES..i * LANES + n];
            match *inst {
                Inst::X if x_in_vals => out.copy_from_slice(x),
                Inst::X => {}
                Inst::Param(k) => out.copy_from_slice(&params[k * LANES..k * LANES + n]),
                Inst::Const(_) | Inst::Weight(_) => unreachable!("uniform"),
                Inst::Neg(a) => lanes1!(out, reg(a), |v| -v),
                Inst::Pow(a, p) if DERIV => with_power!(p, P => lanes1_d!(out, d1, reg(a), |v| powi_eval(v, P))),
                Inst::Pow(a, p) => with_power!(p, P => lanes1!(out, reg(a), |v| powi_eval(v, P).0)),
                Inst::Clamp(a, lo, hi) => lanes1!(out, reg(a), |v| Fast(v.0.clamp(lo, hi))),
                Inst::Call(f, a) if DERIV => with_func!(f, F => lanes1_d!(out, d1, reg(a), |v| F.eval(v))),
                Inst::Call(f, a) => with_func!(f, F => lanes1!(out, reg(a), |v| F.value(v))),
                Inst::Mix { start, len, weight } => {
                    // Terms added in operand order (as the reference path does), one pass each.
                    let regs = &self.mix_regs[start..start + len];
                    out.fill(0.0);
                    for (j, &r) in regs.iter().enumerate() {
                        let w = weights[weight + j];
                        if self.uniform[r] {
                            let c = w * s.scalars[r];
                            out.iter_mut().for_each(|o| *o += c);
                        } else {
                            for (o, &v) in out.iter_mut().zip(reg(r)) {
                                *o += v * w;
                            }
                        }
                    }
                }
                Inst::Bin(op, a, b) if DERIV => {
                    let (ua, ub) = (self.uniform[a], self.uniform[b]);
                    let (sa, sb) = (Fast(s.scalars[a]), Fast(s.scalars[b]));
                    with_binop!(op, O => match (ua, ub) {
                        (false, false) => lanes2_d!(out, d1, d2, reg(a), reg(b), |p, q| O.eval(p, q)),
                        (true, false) => lanes1_d2!(out, d1, d2, reg(b), |q| O.eval(sa, q)),
                        (false, true) => lanes1_d2!(out, d1, d2, reg(a), |p| O.eval(p, sb)),
                        (true, true) => unreachable!("uniform"),
                    })
                }
                Inst::Bin(op, a, b) => {
                    let (ua, ub) = (self.uniform[a], self.uniform[b]);
                    let (sa, sb) = (Fast(s.scalars[a]), Fast(s.scalars[b]));
                    with_binop!(op, O => match (ua, ub) {
                        (false, false) => lanes2!(out, reg(a), reg(b), |p, q| O.eval(p, q).0),
                        (true, false) => lanes1!(out, reg(b), |q| O.eval(sa, q).0),
                        (false, true) => lanes1!(out, reg(a), |p| O.eval(p, sb).0),
                        (true, true) => unreachable!("uniform"),
                    })
                }
            }
        }
    }

    /// Reverse sweep for one chunk whose values are in `s`: adjoints of every register.
    #[inline(always)]
    fn sweep(&self, dy: &[f32], weights: &[f32], s: &mut Scratch) {
        let n = dy.len();
        s.touched.fill(false);
        let out = self.output;
        if self.uniform[out] {
            s.scalar_adj[out] = dy.iter().sum();
        } else {
            s.adj[out * LANES..out * LANES + n].copy_from_slice(dy);
        }
        s.touched[out] = true;
        for i in (0..self.insts.len()).rev() {
            if !s.touched[i] {
                continue;
            }
            let inst = self.insts[i];
            if self.uniform[i] {
                let g = s.scalar_adj[i];
                let v = |r: usize| Fast(s.scalars[r]);
                match inst {
                    Inst::X | Inst::Const(_) | Inst::Param(_) | Inst::Weight(_) => {}
                    Inst::Neg(a) => s.add_scalar(a, -g),
                    Inst::Pow(a, p) => s.add_scalar(a, g * powi_eval(v(a), p).1.0),
                    Inst::Call(f, a) => s.add_scalar(a, g * f.eval(v(a)).1.0),
                    Inst::Clamp(a, lo, hi) => {
                        let x = s.scalars[a];
                        s.add_scalar(a, if x > lo && x < hi { g } else { 0.0 });
                    }
                    Inst::Bin(op, a, b) => {
                        let (_, da, db) = op.eval(v(a), v(b));
                        s.add_scalar(a, g * da.0);
                        s.add_scalar(b, g * db.0);
                    }
                    Inst::Mix { start, len, weight } => {
                        for j in 0..len {
                            let r = self.mix_regs[start + j];
                            s.weight_adj[weight + j] += g * s.scalars[r];
                            s.add_scalar(r, g * weights[weight + j]);
                        }
                    }
                }
                continue;
            }
            match inst {
                Inst::X | Inst::Param(_) => {}
                Inst::Const(_) | Inst::Weight(_) => unreachable!("uniform"),
                Inst::Neg(a) => chain!(s, i, a, n, vals[a], |_v, g| -g),
                Inst::Pow(a, _) => chain!(s, i, a, n, dvals[i], |d, g| g * d),
                Inst::Clamp(a, lo, hi) => chain!(s, i, a, n, vals[a], |v, g| if v > lo && v < hi { g } else { 0.0 }),
                Inst::Call(_, a) => chain!(s, i, a, n, dvals[i], |d, g| g * d),
                Inst::Mix { start, len, weight } => {
                    for j in 0..len {
                        let r = self.mix_regs[start + j];
                        let w = weights[weight + j];
                        let (lo, hi) = s.adj.split_at_mut(i * LANES);
                        let grads = &hi[..n];
                        if self.uniform[r] {
                            let total: f32 = sum_of(grads, |g| g);
                            s.weight_adj[weight + j] += total * s.scalars[r];
                            s.add_scalar(r, total * w);
                            continue;
                        }
                        s.weight_adj[weight + j] += dot(grads, &s.vals[r * LANES..r * LANES + n]);
                        let out = &mut lo[r * LANES..r * LANES + n];
                        if s.touched[r] {
                            for (o, &g) in out.iter_mut().zip(grads) {
                                *o += w * g;
                            }
                        } else {
                            for (o, &g) in out.iter_mut().zip(grads) {
                                *o = w * g;
                            }
                            s.touched[r] = true;
                        }
                    }
                }
                Inst::Bin(_, a, b) => match (self.uniform[a], self.uniform[b]) {
                    (false, false) => {
                        chain!(s, i, a, n, dvals[i], |d, g| g * d);
                        chain!(s, i, b, n, dvals2[i], |d, g| g * d);
                    }
                    (true, false) => {
                        chain!(s, i, b, n, dvals2[i], |d, g| g * d);
                        let total = dot(&s.adj[i * LANES..i * LANES + n], &s.dvals[i * LANES..i * LANES + n]);
                        s.add_scalar(a, total);
                    }
                    (false, true) => {
                        chain!(s, i, a, n, dvals[i], |d, g| g * d);
                        let total = dot(&s.adj[i * LANES..i * LANES + n], &s.dvals2[i * LANES..i * LANES + n]);
                        s.add_scalar(b, total);
                    }
                    (true, true) => unreachable!("uniform"),
                },
            }
        }
    }
}

/// Whether this CPU has AVX-512F (and AVX2, FMA).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && has_avx2()
}

/// Whether this CPU has AVX2 and FMA (detected once, cached by the standard library).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Per-thread working memory of the interpreter.
#[derive(Default)]
pub struct Scratch {
    /// `vals[r * LANES + l]`: register r, lane l (vector registers).
    vals: Vec<f32>,
    /// The local derivatives of Call, Pow and Bin registers with respect to their first and
    /// second operand, stored by the backward pass's forward run.
    dvals: Vec<f32>,
    dvals2: Vec<f32>,
    adj: Vec<f32>,
    /// Uniform registers' values and adjoints.
    scalars: Vec<f32>,
    scalar_adj: Vec<f32>,
    /// Gradients of the mixing weights read by [`Inst::Mix`] in this chunk.
    weight_adj: Vec<f32>,
    /// Whether a register's adjoint has been written in this sweep (untouched ones are 0).
    touched: Vec<bool>,
}

impl Scratch {
    fn ensure(&mut self, registers: usize) {
        if self.scalars.len() < registers {
            self.vals.resize(registers * LANES, 0.0);
            self.dvals.resize(registers * LANES, 0.0);
            self.dvals2.resize(registers * LANES, 0.0);
            self.adj.resize(registers * LANES, 0.0);
            self.scalars.resize(registers, 0.0);
            self.scalar_adj.resize(registers, 0.0);
            self.touched.resize(registers, false);
        }
    }

    #[inline(always)]
    fn add_scalar(&mut self, r: usize, g: f32) {
        if self.touched[r] {
            self.scalar_adj[r] += g;
        } else {
            self.scalar_adj[r] = g;
            self.touched[r] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::named::resolve;

    /// The program's values and gradients equal the scalar evaluator's (`Formula::eval_grad`,
    /// f64) for formulas that exercise every kind of instruction.
    #[test]
    fn formulas_match_the_scalar_evaluator() {
        let formulas = [
            "x*sigmoid(b*x)",
            "(x+b)^2",
            "b1*x + (abs(x)*abs(x) + b2)",
            "x + (min(-x, sqrt(x)) + b)",
            "sigmoid(sigmoid(x))*sigmoid(x)",
            "max(x, 0) + max(x, 0)",
            "sinc(x) + log(x) - atan(b)*tanh(x)/cosh(x)",
            "gelu(x) + elu(x)*asinh(x) - erf(x)*softplus(x) + x^3",
            "2.5",
            "b",
        ];
        let xs: Vec<f32> = (0..700).map(|i| (i as f32 - 350.0) / 37.0).chain([0.0, 1e-12, -1e-12]).collect();
        for text in formulas {
            let f = resolve(text).unwrap();
            let p = Program::from_formula(&f);
            let params: Vec<f32> = (0..f.num_params()).map(|k| 0.7 + 0.4 * k as f32).collect();
            let mut s = Scratch::default();
            let mut y = vec![0.0; xs.len()];
            p.forward_plane(&xs, &mut y, &params, &[], &mut s);
            let dy: Vec<f32> = (0..xs.len()).map(|i| 1.0 + (i % 3) as f32 * 0.5).collect();
            let mut dx = vec![0.0; xs.len()];
            let mut dp = vec![0.0f64; params.len()];
            p.backward_plane(&xs, &dy, &mut dx, &params, &[], &mut dp, &mut [], &mut s);
            let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
            let mut want_dp = vec![0.0f64; params.len()];
            for (i, &x) in xs.iter().enumerate() {
                let mut g = vec![0.0f64; params.len()];
                let (v, d) = f.eval_grad(x as f64, &p64, &mut g);
                let close = |a: f64, b: f64| (a - b).abs() <= 2e-5 * b.abs().max(1.0) || (a.is_nan() && b.is_nan());
                assert!(close(y[i] as f64, v), "{text} at {x}: {} vs {v}", y[i]);
                assert!(close(dx[i] as f64, dy[i] as f64 * d), "{text}' at {x}: {} vs {}", dx[i], dy[i] as f64 * d);
                for k in 0..params.len() {
                    want_dp[k] += dy[i] as f64 * g[k];
                }
            }
            for k in 0..params.len() {
                assert!(
                    (dp[k] - want_dp[k]).abs() <= 1e-4 * want_dp[k].abs().max(1.0),
                    "{text} d/db{k}: {} vs {}",
                    dp[k],
                    want_dp[k]
                );
            }
        }
    }
}
