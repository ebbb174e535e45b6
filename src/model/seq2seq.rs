//! The translation model, exactly `transformers_ref.Seq2Seq` of `../shared/reference`
//! (Vaswani et al. 2017 with pre-LN blocks): separate source and target embeddings scaled by
//! sqrt(d) plus fixed sinusoidal positions, an encoder of bidirectional blocks and a decoder of
//! causal blocks that attend to the encoder's output (`transformer::Block` with biases), a final
//! LayerNorm on each stack, and the output head tied to the target embedding. Padding (id 0)
//! is masked as a key everywhere. Every MLP hidden layer, encoder and decoder alike, is an
//! activation site.
//!
//! Every weight of two or more dimensions starts at N(0, d^-0.5), deliberately (the
//! embeddings are scaled by sqrt(d)), biases at 0 and LayerNorms at (1, 0), drawn from our own
//! seeded stream. Parameter names are the reference's `state_dict` keys ([`Seq2SeqNames`]).
//!
//! Decoding ([`Seq2Seq::translate`]) is greedy, or a beam search whose scores are divided by
//! length^0.6; it stops at the end token or after source length + 50 tokens.

use std::collections::HashMap;

use anyhow::{Result, bail};
use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, LayerNorm};
use burn::prelude::*;

use super::activation::Site;
use super::init::Init;
use super::net::Net;
use super::state::{self, NamedTensor, Naming, host_f32};
use super::transformer::{Block, BlockShape, LN_EPSILON, Mlp, MlpBlock, TransformerNames, layer_norm};
use crate::kernels::{dropout, layer_norm as ln_kernel, linear as linear_kernel};

/// Ids the model treats specially (DESIGN.md): padding is masked; decoding starts at begin and
/// stops at end.
pub const PAD: u32 = 0;
pub const BOS: u32 = 2;
pub const EOS: u32 = 3;
/// The longest sequence the positions cover (the reference's `max_len`).
pub const MAX_LEN: usize = 512;
/// Decoding stops after the source's length plus this many tokens.
pub const EXTRA_TOKENS: usize = 50;
/// A beam's score is its log-probability divided by its length to this power.
pub const LENGTH_PENALTY: f64 = 0.6;

/// The encoder-decoder sizes of the reference (`SIZES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seq2SeqSize {
    TransformerMicro,
    TransformerSmall,
}

/// The shape of one size: layers per stack, heads, width and the standard MLP's hidden width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seq2SeqShape {
    pub layers: usize,
    pub heads: usize,
    pub d_model: usize,
    pub hidden: usize,
}

impl Seq2SeqSize {
    pub fn name(self) -> &'static str {
        match self {
            Seq2SeqSize::TransformerMicro => "transformer-micro",
            Seq2SeqSize::TransformerSmall => "transformer-small",
        }
    }

    pub fn shape(self) -> Seq2SeqShape {
        match self {
            Seq2SeqSize::TransformerMicro => Seq2SeqShape { layers: 3, heads: 4, d_model: 256, hidden: 512 },
            Seq2SeqSize::TransformerSmall => Seq2SeqShape { layers: 6, heads: 8, d_model: 512, hidden: 2048 },
        }
    }
}

/// A batch of pairs as the model reads it: `batch` rows of source ids (`src_len` each) and of
/// decoder input ids (`tgt_len` each, starting with begin), padded with 0, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct Seq2SeqInput {
    pub batch: usize,
    pub src_len: usize,
    pub tgt_len: usize,
    pub src: Vec<u32>,
    pub tgt: Vec<u32>,
}

#[derive(Module, Debug)]
pub struct Seq2Seq<A: Site> {
    /// The source embedding `[vocab, d]`.
    pub src_emb: Param<Tensor<2>>,
    /// The target embedding `[vocab, d]`, also the output head.
    pub tgt_emb: Param<Tensor<2>>,
    pub encoder: Vec<Block<A>>,
    pub decoder: Vec<Block<A>>,
    pub ln_enc: LayerNorm,
    pub ln_dec: LayerNorm,
    /// After the embeddings (the blocks hold their own).
    pub drop: Dropout,
}

impl<A: Site> Seq2Seq<A> {
    /// A freshly initialised model over source and target vocabularies of `src_vocab` and
    /// `tgt_vocab` tokens, `dropout` where the reference places it, whose sites come from
    /// `site(width)` in forward order (the encoder's blocks, then the decoder's).
    #[allow(clippy::too_many_arguments)]
    pub fn with_sites(
        size: Seq2SeqSize,
        mlp: Mlp,
        src_vocab: usize,
        tgt_vocab: usize,
        dropout: f64,
        seed: u64,
        device: &Device,
        mut site: impl FnMut(usize) -> A,
    ) -> Self {
        let Seq2SeqShape { layers, heads, d_model: d, hidden } = size.shape();
        let std = (d as f64).powf(-0.5);
        let mut init = Init::new(seed);
        let mut normal = |shape: &[usize], std: f64| init.normal(shape.iter().product(), std);
        let src_emb = Param::from_data(TensorData::new(normal(&[src_vocab, d], std), [src_vocab, d]), device);
        let tgt_emb = Param::from_data(TensorData::new(normal(&[tgt_vocab, d], std), [tgt_vocab, d]), device);
        let shape = |cross: bool, causal: bool| BlockShape {
            std,
            cross,
            dropout,
            d,
            heads,
            width: mlp.width(hidden),
            mlp,
            bias: true,
            causal,
            residual_layers: None,
        };
        let (enc, dec) = (shape(false, false), shape(true, true));
        let encoder = (0..layers).map(|_| Block::new(&enc, &mut normal, &mut site, device)).collect();
        let decoder = (0..layers).map(|_| Block::new(&dec, &mut normal, &mut site, device)).collect();
        Seq2Seq {
            src_emb,
            tgt_emb,
            encoder,
            decoder,
            ln_enc: layer_norm(d, true, device),
            ln_dec: layer_norm(d, true, device),
            drop: DropoutConfig::new(dropout).init(),
        }
    }

    fn d(&self) -> usize {
        self.src_emb.dims()[1]
    }

    pub fn vocab_size(&self) -> usize {
        self.tgt_emb.dims()[0]
    }

    /// `emb(ids) sqrt(d) + pe[:tokens]`, then dropout: `[batch, tokens, d]`.
    fn embed(&self, emb: &Param<Tensor<2>>, ids: &[u32], batch: usize, tokens: usize) -> Tensor<3> {
        let d = self.d();
        let device = emb.val().device();
        let ids =
            Tensor::<1, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i64).collect(), [ids.len()]), &device);
        let embedded = emb.val().select(0, ids).reshape([batch, tokens, d]).mul_scalar((d as f64).sqrt());
        let pe = Tensor::<2>::from_data(TensorData::new(positions(tokens, d), [tokens, d]), &device);
        dropout::apply(&self.drop, embedded + pe.reshape([1, tokens, d]))
    }

    /// The encoder's output `[batch, src_len, d]` and its padding as an attention bias
    /// `[batch, 1, 1, src_len]`.
    pub fn encode(&self, src: &[u32], batch: usize, src_len: usize) -> (Tensor<3>, Tensor<4>) {
        assert!(src_len <= MAX_LEN, "seq2seq: {src_len} source tokens exceed {MAX_LEN}");
        let device = self.src_emb.val().device();
        let bias = padding_bias(src, batch, 1, src_len, false, &device);
        let keys = key_counts(src, batch, src_len);
        let mut m = self.embed(&self.src_emb, src, batch, src_len);
        for block in &self.encoder {
            m = block.forward_masked(m, bias.clone(), keys.as_deref(), None);
        }
        let d = self.d();
        let m =
            ln_kernel::apply(&self.ln_enc, LN_EPSILON, m.reshape([batch * src_len, d])).reshape([batch, src_len, d]);
        (m, bias)
    }

    /// Logits `[batch * tgt_len, vocab]` of the decoder on `tgt` (`[batch, tgt_len]` ids, padded
    /// with 0), attending to `memory` with its padding bias: row `b * tgt_len + t` predicts the
    /// token after `tgt[b][t]`.
    pub fn decode(
        &self,
        tgt: &[u32],
        batch: usize,
        tgt_len: usize,
        memory: &Tensor<3>,
        memory_bias: &Tensor<4>,
    ) -> Tensor<2> {
        let t = self.decoder_states(tgt, batch, tgt_len, memory, memory_bias);
        self.head(t.reshape([batch * tgt_len, self.d()]))
    }

    /// The decoder stack's output `[batch, tgt_len, d]`, before its final LayerNorm.
    fn decoder_states(
        &self,
        tgt: &[u32],
        batch: usize,
        tgt_len: usize,
        memory: &Tensor<3>,
        memory_bias: &Tensor<4>,
    ) -> Tensor<3> {
        assert!(tgt_len <= MAX_LEN, "seq2seq: {tgt_len} target tokens exceed {MAX_LEN}");
        let device = self.tgt_emb.val().device();
        let bias = padding_bias(tgt, batch, tgt_len, tgt_len, true, &device);
        let keys = key_counts(tgt, batch, tgt_len);
        let mut t = self.embed(&self.tgt_emb, tgt, batch, tgt_len);
        for block in &self.decoder {
            t = block.forward_masked(t, bias.clone(), keys.as_deref(), Some((memory, memory_bias)));
        }
        t
    }

    /// Logits `[rows, vocab]` of decoder states `[rows, d]`: the final LayerNorm, then the head
    /// tied to the target embedding.
    fn head(&self, states: Tensor<2>) -> Tensor<2> {
        let t = ln_kernel::apply(&self.ln_dec, LN_EPSILON, states);
        linear_kernel::affine(t, self.tgt_emb.val().transpose(), None)
    }

    /// Logits `[batch * tgt_len, vocab]` for a batch of pairs.
    pub fn forward(&self, input: Seq2SeqInput) -> Tensor<2> {
        let (memory, bias) = self.encode(&input.src, input.batch, input.src_len);
        self.decode(&input.tgt, input.batch, input.tgt_len, &memory, &bias)
    }

    /// The translations of `sources` (each a list of ids ending with end, without padding):
    /// greedy with `beam` 1, otherwise a beam search of `beam` hypotheses per sentence whose
    /// finished scores are divided by length^0.6. Each output holds the ids after begin, up to
    /// (not including) end, at most source length + 50. Call it on the inference copy.
    pub fn translate(&self, sources: &[Vec<u32>], beam: usize) -> Vec<Vec<u32>> {
        if sources.is_empty() {
            return Vec::new();
        }
        let batch = sources.len();
        let src_len = sources.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut src = vec![PAD; batch * src_len];
        for (row, s) in sources.iter().enumerate() {
            src[row * src_len..row * src_len + s.len()].copy_from_slice(s);
        }
        let (memory, bias) = self.encode(&src, batch, src_len);
        let limits: Vec<usize> = sources.iter().map(|s| (s.len() + EXTRA_TOKENS).min(MAX_LEN - 1)).collect();
        match beam {
            0 | 1 => self.greedy(&memory, &bias, &limits),
            _ => self.beam_search(&memory, &bias, &limits, beam),
        }
    }

    /// The log-probabilities of the next token after each prefix (all `len` long, of rows
    /// `rows` of the memory): `[prefixes][vocab]`, padding and begin excluded (-inf).
    fn next_log_probs(
        &self,
        prefixes: &[Vec<u32>],
        rows: &[usize],
        memory: &Tensor<3>,
        bias: &Tensor<4>,
    ) -> Vec<Vec<f64>> {
        let n = prefixes.len();
        let len = prefixes[0].len();
        let device = memory.device();
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&r| r as i64).collect(), [n]), &device);
        let (memory, bias) = (memory.clone().select(0, index.clone()), bias.clone().select(0, index));
        let tgt: Vec<u32> = prefixes.iter().flatten().copied().collect();
        // The head only on each prefix's last position: the vocabulary's product dominates.
        let states = self.decoder_states(&tgt, n, len, &memory, &bias).narrow(1, len - 1, 1);
        let logits = self.head(states.reshape([n, self.d()]));
        let vocab = logits.dims()[1];
        let last = host_f32(logits);
        // Padding and begin are never an output.
        let mut probs: Vec<Vec<f64>> = last.chunks(vocab).map(log_softmax).collect();
        for p in &mut probs {
            for id in [PAD, BOS] {
                if let Some(v) = p.get_mut(id as usize) {
                    *v = f64::NEG_INFINITY;
                }
            }
        }
        probs
    }

    fn greedy(&self, memory: &Tensor<3>, bias: &Tensor<4>, limits: &[usize]) -> Vec<Vec<u32>> {
        let batch = limits.len();
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); batch];
        let mut open: Vec<usize> = (0..batch).collect();
        let mut step = 0;
        while !open.is_empty() {
            let prefixes: Vec<Vec<u32>> =
                open.iter().map(|&r| std::iter::once(BOS).chain(out[r].iter().copied()).collect()).collect();
            let probs = self.next_log_probs(&prefixes, &open, memory, bias);
            step += 1;
            let mut still = Vec::new();
            for (&row, p) in open.iter().zip(&probs) {
                let next = argmax(p) as u32;
                if next == EOS {
                    continue;
                }
                out[row].push(next);
                if step < limits[row] {
                    still.push(row);
                }
            }
            open = still;
        }
        out
    }

    fn beam_search(&self, memory: &Tensor<3>, bias: &Tensor<4>, limits: &[usize], beam: usize) -> Vec<Vec<u32>> {
        // Per sentence: the live hypotheses (tokens after begin, summed log-probability) and
        // the finished ones with their length-normalized scores.
        let batch = limits.len();
        let mut live: Vec<Vec<(Vec<u32>, f64)>> = vec![vec![(Vec::new(), 0.0)]; batch];
        let mut done: Vec<Vec<(Vec<u32>, f64)>> = vec![Vec::new(); batch];
        let score = |tokens: usize, logp: f64| logp / ((tokens + 1) as f64).powf(LENGTH_PENALTY);
        for step in 0.. {
            let mut prefixes = Vec::new();
            let mut rows = Vec::new();
            for (row, hyps) in live.iter().enumerate() {
                for (tokens, _) in hyps {
                    prefixes.push(std::iter::once(BOS).chain(tokens.iter().copied()).collect::<Vec<u32>>());
                    rows.push(row);
                }
            }
            if prefixes.is_empty() {
                break;
            }
            let probs = self.next_log_probs(&prefixes, &rows, memory, bias);
            let mut k = 0;
            for row in 0..batch {
                let hyps = std::mem::take(&mut live[row]);
                let mut candidates: Vec<(Vec<u32>, f64, bool)> = Vec::new();
                for (tokens, logp) in hyps {
                    let p = &probs[k];
                    k += 1;
                    let mut best: Vec<usize> = (0..p.len()).collect();
                    best.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
                    for &id in best.iter().take(beam) {
                        let mut next = tokens.clone();
                        let ended = id as u32 == EOS;
                        if !ended {
                            next.push(id as u32);
                        }
                        candidates.push((next, logp + p[id], ended));
                    }
                }
                candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (tokens, logp, ended) in candidates.into_iter() {
                    if live[row].len() >= beam {
                        break;
                    }
                    match ended || step + 1 >= limits[row] {
                        true => done[row].push((tokens.clone(), score(tokens.len(), logp))),
                        false => live[row].push((tokens, logp)),
                    }
                    if done[row].len() >= beam {
                        live[row].clear();
                        break;
                    }
                }
                // A sentence with `beam` finished hypotheses is done.
                if done[row].len() >= beam {
                    live[row].clear();
                }
            }
        }
        done.into_iter()
            .map(|d| d.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(t, _)| t).unwrap_or_default())
            .collect()
    }

    /// All activation sites in forward order: the encoder's, then the decoder's.
    pub fn sites(&self) -> Vec<&A> {
        self.encoder.iter().chain(&self.decoder).map(|b| &b.mlp.act).collect()
    }

    /// Replace every activation site by `f(index, site)`, in forward order.
    pub fn map_sites(self, mut f: impl FnMut(usize, A) -> A) -> Self {
        let layers = self.encoder.len();
        let mut map = |offset: usize, blocks: Vec<Block<A>>| -> Vec<Block<A>> {
            blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| Block { mlp: MlpBlock { act: f(offset + i, b.mlp.act), ..b.mlp }, ..b })
                .collect()
        };
        let encoder = map(0, self.encoder);
        let decoder = map(layers, self.decoder);
        Seq2Seq { encoder, decoder, ..self }
    }
}

/// The sinusoidal positions `[tokens, d]` as the reference computes them in float32:
/// `pe[p, 2i] = sin(p w_i)`, `pe[p, 2i + 1] = cos(p w_i)`, `w_i = exp(2i (-ln 10000 / d))`.
pub fn positions(tokens: usize, d: usize) -> Vec<f32> {
    let rate = (-(10000f64.ln()) / d as f64) as f32;
    let mut pe = vec![0f32; tokens * d];
    for p in 0..tokens {
        for i in (0..d).step_by(2) {
            let w = ((i as f32) * rate).exp();
            let angle = (p as f32 * w) as f64;
            pe[p * d + i] = angle.sin() as f32;
            if i + 1 < d {
                pe[p * d + i + 1] = angle.cos() as f32;
            }
        }
    }
    pe
}

/// Each sample's count of tokens before its padding, where every sample of `ids` `[batch,
/// len]` is right-padded and has a token; `None` otherwise (padding inside a sample, or a
/// sample that is all padding), which the attention bias handles.
fn key_counts(ids: &[u32], batch: usize, len: usize) -> Option<Vec<usize>> {
    (0..batch)
        .map(|b| {
            let row = &ids[b * len..(b + 1) * len];
            let n = row.iter().rposition(|&t| t != PAD)? + 1;
            (!row[..n].contains(&PAD)).then_some(n)
        })
        .collect()
}

/// The attention bias of padded `ids` `[batch, keys]`: 0 where a query may attend to a key,
/// -inf at padding and (`causal`) at later keys; `[batch, 1, queries, keys]`.
fn padding_bias(ids: &[u32], batch: usize, queries: usize, keys: usize, causal: bool, device: &Device) -> Tensor<4> {
    let mut bias = vec![0f32; batch * queries * keys];
    for b in 0..batch {
        for q in 0..queries {
            for k in 0..keys {
                if ids[b * keys + k] == PAD || (causal && k > q) {
                    bias[(b * queries + q) * keys + k] = f32::NEG_INFINITY;
                }
            }
        }
    }
    Tensor::<4>::from_data(TensorData::new(bias, [batch, 1, queries, keys]), device)
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let top = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - top).exp()).sum();
    let log_sum = top + sum.ln();
    logits.iter().map(|&v| v as f64 - log_sum).collect()
}

/// The first index of the largest value.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// The reference's `state_dict` names: those of every transformer (`TransformerNames`), and
/// the embeddings, plain parameters here, are `nn.Embedding` weights there (`src_emb.weight`).
pub struct Seq2SeqNames;

impl Naming for Seq2SeqNames {
    fn torch_name(&self, path: &str) -> String {
        match path {
            "src_emb" | "tgt_emb" => format!("{path}.weight"),
            _ => TransformerNames.torch_name(path),
        }
    }

    fn transposed(&self, path: &str) -> bool {
        TransformerNames.transposed(path)
    }
}

impl<A: Site> Net for Seq2Seq<A> {
    type Input = Seq2SeqInput;
    type Site = A;

    fn forward(&self, input: Seq2SeqInput) -> Tensor<2> {
        Seq2Seq::forward(self, input)
    }

    fn sites(&self) -> Vec<&A> {
        Seq2Seq::sites(self)
    }

    fn map_sites(self, f: impl FnMut(usize, A) -> A) -> Self {
        Seq2Seq::map_sites(self, f)
    }

    /// AdamW's groups of the reference: parameters of two or more dimensions decay.
    fn decays(&self, _path: &str, dims: usize) -> bool {
        dims >= 2
    }

    fn state_dict(&self, batches_tracked: i64) -> Vec<NamedTensor> {
        state::state_dict_with(self, batches_tracked, &Seq2SeqNames)
    }

    fn load_state_dict(self, tensors: &HashMap<String, NamedTensor>) -> Result<Self> {
        state::load_state_dict_with(self, tensors, &Seq2SeqNames)
    }
}

/// Parses an encoder-decoder size name.
pub fn parse_size(name: &str) -> Result<Seq2SeqSize> {
    match name.to_ascii_lowercase().as_str() {
        "transformer-micro" => Ok(Seq2SeqSize::TransformerMicro),
        "transformer-small" => Ok(Seq2SeqSize::TransformerSmall),
        _ => bail!("unknown translation model '{name}': use transformer-micro or transformer-small"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Formula;
    use crate::model::Activation;

    fn model(device: &Device) -> Seq2Seq<Activation> {
        let gelu = Formula::parse("gelu(x)").unwrap();
        Seq2Seq::with_sites(Seq2SeqSize::TransformerMicro, Mlp::Standard, 20, 20, 0.0, 3, device, |w| {
            Activation::new(&gelu, w, device)
        })
    }

    /// Padding changes nothing: a sentence's logits are the same alone and padded in a batch
    /// beside a longer one, and a later target token does not change earlier logits.
    #[test]
    fn padding_and_future_tokens_are_masked() {
        let device = Device::flex();
        let m = model(&device);
        let alone = host_f32(m.forward(Seq2SeqInput {
            batch: 1,
            src_len: 3,
            tgt_len: 2,
            src: vec![5, 6, EOS],
            tgt: vec![BOS, 7],
        }));
        let padded = host_f32(m.forward(Seq2SeqInput {
            batch: 2,
            src_len: 5,
            tgt_len: 3,
            src: vec![5, 6, EOS, PAD, PAD, 8, 9, 10, 11, EOS],
            tgt: vec![BOS, 7, PAD, BOS, 12, 13],
        }));
        for (a, b) in alone.iter().zip(&padded[..40]) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert_eq!(m.sites().len(), 6);
    }

    /// Greedy decoding and beam search stop within source length + 50 and never emit padding,
    /// begin or end.
    #[test]
    fn decoding_stops_and_never_emits_special_ids() {
        let device = Device::flex();
        let m = model(&device);
        let sources = vec![vec![5, 6, EOS], vec![7, 8, 9, 10, EOS]];
        let greedy = m.translate(&sources, 1);
        assert_eq!(greedy.len(), 2);
        for (out, src) in greedy.iter().zip(&sources) {
            assert!(out.len() <= src.len() + EXTRA_TOKENS);
            assert!(out.iter().all(|&t| t != EOS && t != BOS && t != PAD));
        }
        let beam = m.translate(&sources, 4);
        assert_eq!(beam.len(), 2);
        for (out, src) in beam.iter().zip(&sources) {
            assert!(out.len() <= src.len() + EXTRA_TOKENS);
            assert!(out.iter().all(|&t| t != EOS && t != BOS && t != PAD));
        }
        assert_eq!(m.translate(&[], 3), Vec::<Vec<u32>>::new());
    }
}
