//! Winograd F(2x2, 3x3) for the stride-1, padding-1 3x3 convolutions (the ResNets' convs
//! inside a stage): 16 multiplies per 2x2 output tile and input/output channel pair instead
//! of 36, as NNPACK and oneDNN do. With `d` a 4x4 input patch, `g` a 3x3 kernel and
//!
//! ```text
//! Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]
//! Aᵀ = [1 1 1 0; 0 1 -1 -1]
//! ```
//!
//! the forward pass, per tile, is `Y = Aᵀ [Σ_ci (G g Gᵀ) ⊙ (Bᵀ d B)] A`: the input transform
//! `V = Bᵀ d B` and the weight transform `U = G g Gᵀ` turn the sum over input channels into 16
//! matrix products (one per element of the 4x4 transformed tile),
//! `M[e] [Cout, T] = U[e] [Cout, Cin] · V[e] [Cin, T]` over T tiles at once. The backward pass
//! is its exact adjoint, term by term:
//!
//! - output gradient into the transformed domain: `dM = A dY Aᵀ`;
//! - input gradient: `dV[e] = U[e]ᵀ dM[e]`, then `dd = B dV Bᵀ` added onto the overlapping
//!   4x4 patches;
//! - weight gradient: `dU[e] = Σ_tiles dM[e] V[e]ᵀ`, then `dg = Gᵀ dU G`.
//!
//! Transforms are written along whole rows of tiles (the even and odd columns apart), so they
//! vectorize. Tiles are processed in chunks of whole tile rows of about [`CHUNK`] tiles, so a
//! chunk's transformed input stays in cache between its transform and its products. Groups of
//! [`GROUP`] samples run in parallel; the weight gradient is summed per group and the groups
//! added in order, so results do not depend on the thread count. The rounding differs from the
//! direct convolution's (about 1e-6 relative): the unit tests compare every pass with the
//! definition, and `tests/winograd.rs` trains with and without it.
//!
//! Off by default (`ACTSEARCH_WINOGRAD=1` turns it on, see [`super::set_winograd`]): on the
//! ResNets' shapes it does not beat the direct path yet. With 16-64 channels the products
//! have an inner dimension of 16-64, where gemm runs far below its peak, and the transforms
//! (O(C) work per tile against the products' O(C²), and a transformed input 4x the size of the
//! input) cost more than the multiplies saved. Measurements are in the README (Performance).

use std::ops::Range;

use rayon::prelude::*;

use super::geometry::Geometry;
use super::matmul::{Dest, GROUP, Operand, add_bias, matmul, sum_groups};
use super::{Filled, zeroed};

/// Tiles per chunk (rounded to whole tile rows).
const CHUNK: usize = 256;

/// Whether a convolution takes this path: 3x3, stride 1, padding 1, enough channels each way
/// for the products to outweigh the transforms, and switched on (see [`super::set_winograd`]).
pub(super) fn applies(g: &Geometry) -> bool {
    g.k == 3
        && g.stride == 1
        && g.pad == 1
        && g.cin >= 8
        && g.cout >= 8
        && g.h >= 2
        && g.w >= 2
        && super::winograd_enabled()
}

/// The tiling of one `[H, W]` plane: `th` x `tw` tiles of 2x2 outputs, read from a copy of
/// the plane padded to `hp` x `wp` (one zero row and column before, and enough after).
#[derive(Clone, Copy, Debug)]
struct Tiling {
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
    hp: usize,
    wp: usize,
}

impl Tiling {
    fn of(g: &Geometry) -> Tiling {
        let (th, tw) = (g.h.div_ceil(2), g.w.div_ceil(2));
        Tiling { h: g.h, w: g.w, th, tw, hp: 2 * th + 2, wp: 2 * tw + 2 }
    }

    fn plane(&self) -> usize {
        self.hp * self.wp
    }

    /// The group's tile rows (sample-major) in chunks of about [`CHUNK`] tiles.
    fn chunks(&self, samples: usize) -> impl Iterator<Item = Range<usize>> + use<> {
        let (rows, step) = (samples * self.th, (CHUNK / self.tw).max(1));
        (0..rows).step_by(step).map(move |s| s..(s + step).min(rows))
    }

    /// Elements of a padded row's even (or odd) columns: `wp / 2`.
    fn half(&self) -> usize {
        self.tw + 1
    }

    /// `[n, C, H, W]` into padded planes `[n, C, hp, wp]` (every element written). Each padded
    /// row is stored as its even columns then its odd columns, so the transforms read
    /// neighbouring tiles' columns contiguously (padded column p is input column p - 1).
    fn pad(&self, src: &[f32], planes: usize, dst: &mut Vec<f32>) {
        let (pl, half, (h, w)) = (self.plane(), self.half(), (self.h, self.w));
        dst.resize(planes * pl, 0.0);
        for (p, out) in dst.chunks_mut(pl).enumerate() {
            let image = &src[p * h * w..][..h * w];
            out[..self.wp].fill(0.0);
            for (y, row) in image.chunks(w).enumerate() {
                let (even, odd) = out[(y + 1) * self.wp..][..self.wp].split_at_mut(half);
                // input column x is padded column x + 1: odd columns hold even x
                even[0] = 0.0;
                let (pairs, last) = row.as_chunks::<2>();
                for (i, pair) in pairs.iter().enumerate() {
                    odd[i] = pair[0];
                    even[i + 1] = pair[1];
                }
                let filled = pairs.len();
                match last.first() {
                    Some(&v) => {
                        odd[filled] = v;
                        even[filled + 1..].fill(0.0);
                        odd[filled + 1..].fill(0.0);
                    }
                    None => {
                        even[filled + 1..].fill(0.0);
                        odd[filled..].fill(0.0);
                    }
                }
            }
            out[(h + 1) * self.wp..].fill(0.0);
        }
    }

    /// The padded planes `[n, C, hp, wp]` (rows stored as by [`Tiling::pad`]) cropped back to
    /// `[n, C, H, W]`.
    fn crop(&self, src: &[f32], dst: &mut [f32]) {
        let (half, (h, w)) = (self.half(), (self.h, self.w));
        for (p, plane) in dst.chunks_mut(h * w).enumerate() {
            let padded = &src[p * self.plane()..][..self.plane()];
            for (y, row) in plane.chunks_mut(w).enumerate() {
                let (even, odd) = padded[(y + 1) * self.wp..][..self.wp].split_at(half);
                let (pairs, last) = row.as_chunks_mut::<2>();
                for (i, pair) in pairs.iter_mut().enumerate() {
                    pair[0] = odd[i];
                    pair[1] = even[i + 1];
                }
                if let Some(v) = last.first_mut() {
                    *v = odd[pairs.len()];
                }
            }
        }
    }
}

/// The `count` elements at `at` of each of the 16 streams `[16][stride]` of `v`.
#[inline(always)]
fn streams_ref(v: &[f32], stride: usize, at: usize, count: usize) -> [&[f32]; 16] {
    let mut it = v.chunks(stride).map(|s| &s[at..at + count]);
    std::array::from_fn(|_| it.next().expect("16 streams"))
}

thread_local! {
    /// Per-thread padded planes, transformed input, transformed output (gradient), row
    /// buffers and the input-gradient planes, kept between calls.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 5]> = Default::default();
}

/// `U = G g Gᵀ` of every `[Cout, Cin, 3, 3]` kernel, as `[16][Cout][Cin]`.
fn transform_weights(ws: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let pairs = cout * cin;
    let mut u = vec![0f32; 16 * pairs];
    for (pair, g) in ws.chunks(9).enumerate() {
        // G g: rows [g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2], each a 3-vector
        let mut gg = [[0f32; 3]; 4];
        for c in 0..3 {
            let (a, b, d) = (g[c], g[3 + c], g[6 + c]);
            gg[0][c] = a;
            gg[1][c] = 0.5 * (a + b + d);
            gg[2][c] = 0.5 * (a - b + d);
            gg[3][c] = d;
        }
        for (i, r) in gg.iter().enumerate() {
            let row = [r[0], 0.5 * (r[0] + r[1] + r[2]), 0.5 * (r[0] - r[1] + r[2]), r[2]];
            for (j, v) in row.into_iter().enumerate() {
                u[(i * 4 + j) * pairs + pair] = v;
            }
        }
    }
    u
}

/// `dg = Gᵀ dU G` for `dU` `[16][Cout][Cin]`, as `[Cout, Cin, 3, 3]`.
fn untransform_weight_grad(du: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let pairs = cout * cin;
    let mut dw = vec![0f32; 9 * pairs];
    // Gᵀ u for a 4-vector u: [u0 + (u1+u2)/2, (u1-u2)/2, (u1+u2)/2 + u3]
    let gt = |u: [f32; 4]| [u[0] + 0.5 * (u[1] + u[2]), 0.5 * (u[1] - u[2]), 0.5 * (u[1] + u[2]) + u[3]];
    for pair in 0..pairs {
        let e = |i: usize, j: usize| du[(i * 4 + j) * pairs + pair];
        // columns first: q[a][j] = Σ_i G[i][a] dU[i][j]
        let cols = [0, 1, 2, 3].map(|j| gt([e(0, j), e(1, j), e(2, j), e(3, j)]));
        for a in 0..3 {
            let row = gt(cols.map(|col| col[a]));
            dw[pair * 9 + a * 3..][..3].copy_from_slice(&row);
        }
    }
    dw
}

/// `V = Bᵀ d B` of the tiles of tile rows `rows` (of the group) of every channel, into
/// `v` `[16][C][T]` (T = rows x tw, tile t = local row x tw + column). `xp` holds the group's
/// padded planes `[n, C]` (see [`Tiling::pad`]).
fn transform_input(xp: &[f32], t: &Tiling, channels: usize, rows: Range<usize>, v: &mut Vec<f32>) {
    let (tw, half, count) = (t.tw, t.half(), rows.len() * t.tw);
    let stride = channels * count;
    v.resize(16 * stride, 0.0);
    for c in 0..channels {
        for (lr, gr) in rows.clone().enumerate() {
            let (n, ty) = (gr / t.th, gr % t.th);
            let plane = &xp[(n * channels + c) * t.plane()..][..t.plane()];
            // patch row i: even columns (2x, 2x+2 = e[x], e[x+1]) and odd (o[x], o[x+1])
            let row = |i: usize| plane[(2 * ty + i) * t.wp..][..t.wp].split_at(half);
            let [(e0, o0), (e1, o1), (e2, o2), (e3, o3)] = [row(0), row(1), row(2), row(3)];
            let at = c * count + lr * tw;
            let rows = [(e0, o0), (e1, o1), (e2, o2), (e3, o3)].map(|(e, o)| (&e[..tw + 1], &o[..tw + 1]));
            // Bᵀ d: row k of the transformed patch combines patch rows (p, q) as p - q or p + q
            let combos = [(0, 2, -1f32), (1, 2, 1.0), (2, 1, -1.0), (1, 3, -1.0)];
            for (k, &(p, q, sign)) in combos.iter().enumerate() {
                let ((ep, op), (eq, oq)) = (rows[p], rows[q]);
                let (v0, rest) = v[(4 * k) * stride + at..].split_at_mut(stride);
                let (v1, rest) = rest.split_at_mut(stride);
                let (v2, v3) = rest.split_at_mut(stride);
                let (v0, v1, v2, v3) = (&mut v0[..tw], &mut v1[..tw], &mut v2[..tw], &mut v3[..tw]);
                for x in 0..tw {
                    // columns 2x, 2x+1, 2x+2, 2x+3 of row k of Bᵀ d
                    let (a, b) = (ep[x] + sign * eq[x], op[x] + sign * oq[x]);
                    let (c, d) = (ep[x + 1] + sign * eq[x + 1], op[x + 1] + sign * oq[x + 1]);
                    // then · B: [c0 - c2, c1 + c2, c2 - c1, c1 - c3]
                    v0[x] = a - c;
                    v1[x] = b + c;
                    v2[x] = c - b;
                    v3[x] = b - d;
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` of the tiles of tile rows `rows`, from `m` `[16][C][T]`, written into the
/// group's output `[n, C, H, W]` (rows and columns past the image dropped).
fn transform_output(m: &[f32], t: &Tiling, channels: usize, rows: Range<usize>, out: &mut [f32], buf: &mut Vec<f32>) {
    let (tw, count, (h, w)) = (t.tw, rows.len() * t.tw, (t.h, t.w));
    let stride = channels * count;
    buf.resize(8 * tw, 0.0);
    for c in 0..channels {
        for (lr, gr) in rows.clone().enumerate() {
            let (n, ty) = (gr / t.th, gr % t.th);
            let at = c * count + lr * tw;
            let e = |i: usize, j: usize| &m[(i * 4 + j) * stride + at..][..tw];
            // Aᵀ M: s0 = M0 + M1 + M2, s1 = M1 - M2 - M3 (rows), per column j
            let (s, _) = buf.split_at_mut(8 * tw);
            for j in 0..4 {
                let (m0, m1, m2, m3) = (e(0, j), e(1, j), e(2, j), e(3, j));
                for x in 0..tw {
                    s[j * tw + x] = m0[x] + m1[x] + m2[x];
                    s[(4 + j) * tw + x] = m1[x] - m2[x] - m3[x];
                }
            }
            let plane = &mut out[(n * channels + c) * h * w..][..h * w];
            for r in 0..2 {
                let y = 2 * ty + r;
                if y >= h {
                    break;
                }
                let q = |j: usize| &s[(4 * r + j) * tw..][..tw];
                let (q0, q1, q2, q3) = (q(0), q(1), q(2), q(3));
                let row = &mut plane[y * w..][..w];
                let (pairs, last) = row.as_chunks_mut::<2>();
                for (x, pair) in pairs.iter_mut().enumerate() {
                    pair[0] = q0[x] + q1[x] + q2[x];
                    pair[1] = q1[x] - q2[x] - q3[x];
                }
                if let Some(v) = last.first_mut() {
                    let x = tw - 1;
                    *v = q0[x] + q1[x] + q2[x];
                }
            }
        }
    }
}

/// `dM = A dY Aᵀ` of the tiles of tile rows `rows` of the group's output gradient `[n, C, H,
/// W]` (zero past the image), into `dm` `[16][C][T]`.
fn transform_output_grad(
    dy: &[f32],
    t: &Tiling,
    channels: usize,
    rows: Range<usize>,
    dm: &mut Vec<f32>,
    buf: &mut Vec<f32>,
) {
    let (tw, count, (h, w)) = (t.tw, rows.len() * t.tw, (t.h, t.w));
    let stride = channels * count;
    dm.resize(16 * stride, 0.0);
    // the two output rows of a tile row, even and odd columns apart: [r][even|odd][tw]
    buf.resize(4 * tw, 0.0);
    for c in 0..channels {
        for (lr, gr) in rows.clone().enumerate() {
            let (n, ty) = (gr / t.th, gr % t.th);
            let plane = &dy[(n * channels + c) * h * w..][..h * w];
            for r in 0..2 {
                let y = 2 * ty + r;
                let (even, odd) = buf[2 * r * tw..][..2 * tw].split_at_mut(tw);
                if y >= h {
                    even.fill(0.0);
                    odd.fill(0.0);
                    continue;
                }
                let row = &plane[y * w..][..w];
                let (pairs, last) = row.as_chunks::<2>();
                for (x, pair) in pairs.iter().enumerate() {
                    even[x] = pair[0];
                    odd[x] = pair[1];
                }
                if let Some(&v) = last.first() {
                    even[tw - 1] = v;
                    odd[tw - 1] = 0.0;
                }
            }
            let [y00, y01, y10, y11] = [0, 1, 2, 3].map(|i| &buf[i * tw..][..tw]);
            let at = c * count + lr * tw;
            // A dY, row i: (q0, q1) = pa (y00, y01) + pb (y10, y11) with (pa, pb) =
            // (1, 0), (1, 1), (1, -1), (0, -1); then · Aᵀ: [q0, q0 + q1, q0 - q1, -q1]
            for (i, (pa, pb)) in [(1f32, 0f32), (1.0, 1.0), (1.0, -1.0), (0.0, -1.0)].into_iter().enumerate() {
                let (m0, rest) = dm[(4 * i) * stride + at..].split_at_mut(stride);
                let (m1, rest) = rest.split_at_mut(stride);
                let (m2, m3) = rest.split_at_mut(stride);
                let (m0, m1, m2, m3) = (&mut m0[..tw], &mut m1[..tw], &mut m2[..tw], &mut m3[..tw]);
                for x in 0..tw {
                    let (q0, q1) = (pa * y00[x] + pb * y10[x], pa * y01[x] + pb * y11[x]);
                    m0[x] = q0;
                    m1[x] = q0 + q1;
                    m2[x] = q0 - q1;
                    m3[x] = -q1;
                }
            }
        }
    }
}

/// `dd = B dV Bᵀ` of the tiles of tile rows `rows`, from `dv` `[16][C][T]`, added onto the
/// group's padded input-gradient planes `dxp` `[n, C, hp, wp]` (rows stored as by
/// [`Tiling::pad`]).
fn add_input_grad(dv: &[f32], t: &Tiling, channels: usize, rows: Range<usize>, dxp: &mut [f32], buf: &mut Vec<f32>) {
    let (tw, half, count) = (t.tw, t.half(), rows.len() * t.tw);
    let stride = channels * count;
    // per patch row i: B dV's four columns, then the columns 2x+2 and 2x+3 of each tile
    buf.resize(6 * tw, 0.0);
    for c in 0..channels {
        for (lr, gr) in rows.clone().enumerate() {
            let (n, ty) = (gr / t.th, gr % t.th);
            let at = c * count + lr * tw;
            let v: [&[f32]; 16] = streams_ref(dv, stride, at, tw).map(|s| &s[..tw]);
            let plane = &mut dxp[(n * channels + c) * t.plane()..][..t.plane()];
            // B dV, row i, per column l: Σ_k coef[i][k] v[k][l], with B's rows
            // [v0, v1 - v2 + v3, v1 + v2 - v0, -v3]
            let coef = [[1f32, 0., 0., 0.], [0., 1., -1., 1.], [-1., 1., 1., 0.], [0., 0., 0., -1.]];
            for (i, [k0, k1, k2, k3]) in coef.into_iter().enumerate() {
                let (w, rest) = buf.split_at_mut(4 * tw);
                let (l2, l3) = rest[..2 * tw].split_at_mut(tw);
                let (l2, l3) = (&mut l2[..tw], &mut l3[..tw]);
                for (l, wl) in w.chunks_exact_mut(tw).enumerate() {
                    let (a, b, c, d) = (v[l], v[4 + l], v[8 + l], v[12 + l]);
                    for ((((o, &a), &b), &c), &d) in wl.iter_mut().zip(a).zip(b).zip(c).zip(d) {
                        *o = k0 * a + k1 * b + k2 * c + k3 * d;
                    }
                }
                let (w0, rest) = w.split_at(tw);
                let (w1, rest) = rest.split_at(tw);
                let (w2, w3) = rest.split_at(tw);
                let (even, odd) = plane[(2 * ty + i) * t.wp..][..t.wp].split_at_mut(half);
                let (even, odd) = (&mut even[..tw + 1], &mut odd[..tw + 1]);
                for x in 0..tw {
                    // then · Bᵀ along columns 2x .. 2x+3
                    even[x] += w0[x];
                    odd[x] += w1[x] - w2[x] + w3[x];
                    l2[x] = w1[x] + w2[x] - w0[x];
                    l3[x] = -w3[x];
                }
                // columns 2x+2 and 2x+3 are the next tile's 2x and 2x+1
                for x in 0..tw {
                    even[x + 1] += l2[x];
                    odd[x + 1] += l3[x];
                }
            }
        }
    }
}

/// y `[N, Cout, H, W]` of x `[N, Cin, H, W]` and w `[Cout, Cin, 3, 3]`, plus `bias[co]` on
/// output channel co when given.
pub(super) fn forward(xs: &[f32], ws: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let (t, in_len, out_len, (cin, cout)) = (Tiling::of(g), g.in_len(), g.out_len(), (g.cin, g.cout));
    let u = transform_weights(ws, cout, cin);
    let mut y = Filled::new(g.batch * out_len);
    let (chunks, ready) = y.chunks(GROUP * out_len);
    chunks.zip(xs.par_chunks(GROUP * in_len)).for_each(|(yg, xg)| {
        let yg = zeroed(yg, ready);
        SCRATCH.with_borrow_mut(|[xp, v, m, buf, _]| {
            let samples = xg.len() / in_len;
            t.pad(xg, samples * cin, xp);
            for rows in t.chunks(samples) {
                let count = rows.len() * t.tw;
                transform_input(xp, &t, cin, rows.clone(), v);
                m.resize(16 * cout * count, 0.0);
                for e in 0..16 {
                    let (ue, ve) = (&u[e * cout * cin..], &v[e * cin * count..]);
                    let me = Dest::rows(&mut m[e * cout * count..], count);
                    matmul(me, false, (cout, count, cin), Operand(ue, cin, 1), Operand(ve, count, 1));
                }
                transform_output(m, &t, cout, rows, yg, buf);
            }
            add_bias(yg, bias, g.ho * g.wo);
        })
    });
    y.into_vec()
}

/// The gradients for x (if `need_x`, else empty) and w (if `need_w`, else empty; `[Cout, Cin,
/// 3, 3]`) given dy.
pub(super) fn backward(
    xs: &[f32],
    ws: &[f32],
    gs: &[f32],
    g: &Geometry,
    need_x: bool,
    need_w: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (t, in_len, out_len, (cin, cout)) = (Tiling::of(g), g.in_len(), g.out_len(), (g.cin, g.cout));
    let u = if need_x { transform_weights(ws, cout, cin) } else { Vec::new() };
    let groups = g.batch.div_ceil(GROUP);
    let du_len = 16 * cout * cin;
    // Gradients not asked for get one dummy element per group (see conv::backward).
    let (dx_chunk, part_chunk) = (if need_x { GROUP * in_len } else { 1 }, if need_w { du_len } else { 1 });
    let mut dx = Filled::new(if need_x { xs.len() } else { groups });
    let (dx_chunks, ready) = dx.chunks(dx_chunk);
    let mut partials = Filled::new(groups * part_chunk);
    let (part_chunks, part_ready) = partials.chunks(part_chunk);
    xs.par_chunks(GROUP * in_len).zip(gs.par_chunks(GROUP * out_len)).zip(dx_chunks).zip(part_chunks).for_each(
        |(((xg, gg), dxg), part)| {
            let (dxg, part) = (zeroed(dxg, ready), zeroed(part, part_ready));
            SCRATCH.with_borrow_mut(|[xp, v, dm, buf, dxp]| {
                let samples = xg.len() / in_len;
                if need_w {
                    t.pad(xg, samples * cin, xp);
                }
                if need_x {
                    dxp.clear();
                    dxp.resize(samples * cin * t.plane(), 0.0);
                }
                for (i, rows) in t.chunks(samples).enumerate() {
                    let count = rows.len() * t.tw;
                    transform_output_grad(gg, &t, cout, rows.clone(), dm, buf);
                    if need_w {
                        // dU[e] [cout, cin] += dM[e] [cout, T] · V[e]ᵀ [T, cin]
                        transform_input(xp, &t, cin, rows.clone(), v);
                        for e in 0..16 {
                            let (dme, ve) = (&dm[e * cout * count..], &v[e * cin * count..]);
                            let due = Dest::rows(&mut part[e * cout * cin..], cin);
                            matmul(due, i > 0, (cout, cin, count), Operand(dme, count, 1), Operand(ve, 1, count));
                        }
                    }
                    if need_x {
                        // dV[e] [cin, T] = U[e]ᵀ [cin, cout] · dM[e] [cout, T]
                        v.resize(16 * cin * count, 0.0);
                        for e in 0..16 {
                            let (ue, dme) = (&u[e * cout * cin..], &dm[e * cout * count..]);
                            let dve = Dest::rows(&mut v[e * cin * count..], count);
                            matmul(dve, false, (cin, count, cout), Operand(ue, 1, cin), Operand(dme, count, 1));
                        }
                        add_input_grad(v, &t, cin, rows, dxp, buf);
                    }
                }
                if need_x {
                    t.crop(dxp, dxg);
                }
            })
        },
    );
    let dw =
        if need_w { untransform_weight_grad(&sum_groups(&partials.into_vec(), du_len), cout, cin) } else { Vec::new() };
    (if need_x { dx.into_vec() } else { Vec::new() }, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct definition (f64 sums) of y, dx and dw for a stride-1 padding-1 3x3 conv.
    fn direct(xs: &[f32], ws: &[f32], dy: &[f32], g: &Geometry) -> [Vec<f64>; 3] {
        let (mut y, mut dx, mut dw) = (vec![0f64; g.batch * g.out_len()], vec![0f64; xs.len()], vec![0f64; ws.len()]);
        for n in 0..g.batch {
            for co in 0..g.cout {
                for oy in 0..g.h {
                    for ox in 0..g.w {
                        let o = ((n * g.cout + co) * g.h + oy) * g.w + ox;
                        for ci in 0..g.cin {
                            for i in 0..3 {
                                for j in 0..3 {
                                    let (iy, ix) = ((oy + i) as isize - 1, (ox + j) as isize - 1);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                        let xi = ((n * g.cin + ci) * g.h + iy as usize) * g.w + ix as usize;
                                        let wi = ((co * g.cin + ci) * 3 + i) * 3 + j;
                                        y[o] += xs[xi] as f64 * ws[wi] as f64;
                                        dx[xi] += dy[o] as f64 * ws[wi] as f64;
                                        dw[wi] += dy[o] as f64 * xs[xi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        [y, dx, dw]
    }

    fn geometry(batch: usize, cin: usize, cout: usize, h: usize, w: usize) -> Geometry {
        Geometry { batch, cin, h, w, cout, k: 3, ho: h, wo: w, stride: 1, pad: 1 }
    }

    fn close(what: &str, got: &[f32], want: &[f64], scale: f64) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!((a as f64 - b).abs() < 2e-5 * scale, "{what}[{i}]: {a} vs {b}");
        }
    }

    /// Values, input gradient and weight gradient against the definition, for even and odd
    /// sizes (cropped tiles), several chunks, and batches that are not a multiple of the group.
    #[test]
    fn every_pass_matches_the_direct_convolution() {
        for &(batch, cin, cout, h, w) in
            &[(3, 8, 9, 8, 8), (5, 9, 8, 7, 5), (2, 8, 8, 3, 40), (1, 10, 12, 33, 17), (6, 8, 8, 2, 2)]
        {
            let g = geometry(batch, cin, cout, h, w);
            let f =
                |n: usize, m: usize, s: f32| (0..n).map(|i| (((i * m) % 29) as f32 - 14.0) / s).collect::<Vec<f32>>();
            let (xs, ws, dy) =
                (f(g.batch * g.in_len(), 37, 9.0), f(cout * cin * 9, 17, 11.0), f(g.batch * g.out_len(), 13, 7.0));
            let [y, dx, dw] = direct(&xs, &ws, &dy, &g);
            let what = format!("{batch}x{cin}->{cout} {h}x{w}");
            close(&format!("y {what}"), &forward(&xs, &ws, None, &g), &y, (cin * 9) as f64);
            let (gx, gw) = backward(&xs, &ws, &dy, &g, true, true);
            close(&format!("dx {what}"), &gx, &dx, (cout * 9) as f64);
            close(&format!("dw {what}"), &gw, &dw, (batch * h * w) as f64);
            let (only_x, none) = backward(&xs, &ws, &dy, &g, true, false);
            assert!(none.is_empty() && only_x == gx, "{what}: dx alone");
            let (none, only_w) = backward(&xs, &ws, &dy, &g, false, true);
            assert!(none.is_empty() && only_w == gw, "{what}: dw alone");
        }
    }
}
