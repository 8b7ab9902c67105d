//! A BERT encoder for inference on the CPU, on candle tensors, laid out for
//! speed rather than generality (the profile of the generic
//! `candle-transformers` BERT showed time in scalar `erf`, scalar `exp` and
//! re-packing of transposed weights):
//!
//! - weights are stored transposed and contiguous (`in x out`), and the
//!   query, key and value projections are one matrix, so each layer makes
//!   four matrix products over all tokens of the batch at once;
//! - the attention scale `1/sqrt(head_dim)` is folded into the query weights;
//! - the four weight products of each layer run in bf16 with f32 sums
//!   where the CPU has AVX-512 BF16 (`gemm.rs`), else in f32 (candle);
//! - everything between them is a fused kernel on the embedder's thread
//!   pool: the whole self-attention (bias, scores, a softmax over the
//!   item's own tokens so there is no mask tensor, weighted values) per item and
//!   head, bias + GELU (the exact, erf form BERT uses), and bias +
//!   residual + layer norm, with a branch-free `exp` the compiler
//!   vectorises, accurate to a few units in the last place of f32.
//!
//! Numerically it is the same function as Hugging Face's `BertModel`
//! (without the pooler): `tests/local_model.rs` checks its sentence vectors
//! against the sentence-transformers library.

use crate::gemm::{PackedMatMul, PackedWeight, SharedMut};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::HashMap;

/// The fields of a Hugging Face BERT `config.json` this encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Refuses what this encoder does not implement.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        if let Some(kind) = &self.position_embedding_type {
            if kind != "absolute" {
                return Err(format!(
                    "position_embedding_type {kind:?} is not supported (only \"absolute\")"
                ));
            }
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

/// A weight matrix in the form its products use.
enum Weight {
    /// `in x out`, contiguous, for candle's f32 products.
    F32(Tensor),
    /// bf16 panels for [`PackedMatMul`].
    Bf16(PackedWeight),
}

struct Linear {
    weight: Weight,
    bias: Vec<f32>,
}

impl Linear {
    /// `x · W` (without the bias).
    fn product(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Weight::F32(w) => x.matmul(w),
            Weight::Bf16(packed) => x.apply_op1_no_bwd(&PackedMatMul {
                weight: packed,
                gelu_bias: None,
            }),
        }
    }

    /// `GELU(x · W + bias)`: one pass with the bf16 panels.
    fn product_gelu(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Weight::F32(w) => x.matmul(w)?.apply_op1_no_bwd(&BiasGelu(&self.bias)),
            Weight::Bf16(packed) => x.apply_op1_no_bwd(&PackedMatMul {
                weight: packed,
                gelu_bias: Some(&self.bias),
            }),
        }
    }

    /// Replaces the f32 weight by its bf16 panels.
    fn pack(&mut self) -> std::result::Result<(), String> {
        let Weight::F32(w) = &self.weight else {
            return Ok(());
        };
        let (k, n) = w.dims2().map_err(|e| e.to_string())?;
        let data = w
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| e.to_string())?;
        self.weight = Weight::Bf16(PackedWeight::pack(&data, k, n));
        Ok(())
    }

    /// The f32 weight (before packing).
    fn f32_weight(&self) -> std::result::Result<&Tensor, String> {
        match &self.weight {
            Weight::F32(w) => Ok(w),
            Weight::Bf16(_) => Err("weight already packed".to_string()),
        }
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

pub(crate) struct Bert {
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    embedding_norm: (Tensor, Tensor, f32),
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
}

/// Named tensors of a checkpoint, with or without the `bert.` prefix, and
/// the old `gamma`/`beta` names of layer norms.
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> std::result::Result<Tensor, String> {
        let full = format!("{}{name}", self.prefix);
        let alternative = full
            .replace("LayerNorm.weight", "LayerNorm.gamma")
            .replace("LayerNorm.bias", "LayerNorm.beta");
        let t = self
            .tensors
            .get(&full)
            .or_else(|| self.tensors.get(&alternative))
            .ok_or_else(|| format!("tensor {full} is missing"))?;
        if t.dims() != shape {
            return Err(format!(
                "tensor {full} has shape {:?}, config.json implies {shape:?}",
                t.dims()
            ));
        }
        t.to_dtype(DType::F32)
            .map_err(|e| format!("tensor {full}: {e}"))
    }

    fn vec(&self, name: &str, size: usize) -> std::result::Result<Vec<f32>, String> {
        self.get(name, &[size])?
            .to_vec1::<f32>()
            .map_err(|e| format!("tensor {name}: {e}"))
    }

    fn linear(
        &self,
        name: &str,
        input: usize,
        output: usize,
    ) -> std::result::Result<Linear, String> {
        let weight = self.get(&format!("{name}.weight"), &[output, input])?;
        Ok(Linear {
            weight: Weight::F32(transpose(&weight)?),
            bias: self.vec(&format!("{name}.bias"), output)?,
        })
    }

    fn norm(&self, name: &str, size: usize, eps: f32) -> std::result::Result<Norm, String> {
        Ok(Norm {
            gamma: self.vec(&format!("{name}.weight"), size)?,
            beta: self.vec(&format!("{name}.bias"), size)?,
            eps,
        })
    }
}

fn transpose(t: &Tensor) -> std::result::Result<Tensor, String> {
    t.t()
        .and_then(|t| t.contiguous())
        .map_err(|e| e.to_string())
}

impl Bert {
    /// Builds the encoder from a safetensors buffer, with the matrix
    /// products in bf16 when `bf16` (the caller checks that the CPU has
    /// [`crate::gemm::supported`]). Errors name the tensor.
    pub fn load(
        safetensors: &[u8],
        config: &BertConfig,
        bf16: bool,
    ) -> std::result::Result<Self, String> {
        config.check()?;
        let tensors = candle_core::safetensors::load_buffer(safetensors, &Device::Cpu)
            .map_err(|e| format!("not a safetensors file: {e}"))?;
        let prefix = if tensors.keys().any(|k| k.starts_with("bert.")) {
            "bert."
        } else {
            ""
        };
        let w = Weights { tensors, prefix };
        let h = config.hidden_size;
        let eps = config.layer_norm_eps as f32;
        let heads = config.num_attention_heads;
        let head_dim = h / heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let token_types = w.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = w.linear(&format!("{p}.attention.self.query"), h, h)?;
            let k = w.linear(&format!("{p}.attention.self.key"), h, h)?;
            let v = w.linear(&format!("{p}.attention.self.value"), h, h)?;
            // One product for all three; the attention scale goes into the
            // query's weights and bias.
            let query_t = q
                .f32_weight()?
                .affine(scale, 0.0)
                .map_err(|e| e.to_string())?;
            let qkv = Linear {
                weight: Weight::F32(
                    Tensor::cat(&[&query_t, k.f32_weight()?, v.f32_weight()?], 1)
                        .map_err(|e| e.to_string())?,
                ),
                bias: q
                    .bias
                    .iter()
                    .map(|b| (f64::from(*b) * scale) as f32)
                    .chain(k.bias)
                    .chain(v.bias)
                    .collect(),
            };
            let mut layer = Layer {
                qkv,
                attention_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: w.linear(
                    &format!("{p}.intermediate.dense"),
                    h,
                    config.intermediate_size,
                )?,
                output: w.linear(&format!("{p}.output.dense"), config.intermediate_size, h)?,
                output_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            };
            if bf16 {
                for linear in [
                    &mut layer.qkv,
                    &mut layer.attention_out,
                    &mut layer.intermediate,
                    &mut layer.output,
                ] {
                    linear.pack()?;
                }
            }
            layers.push(layer);
        }
        Ok(Bert {
            word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type0: token_types.get(0).map_err(|e| e.to_string())?,
            embedding_norm: (
                w.get("embeddings.LayerNorm.weight", &[h])?,
                w.get("embeddings.LayerNorm.bias", &[h])?,
                eps,
            ),
            layers,
            heads,
            head_dim,
        })
    }

    /// The last hidden states, `(tokens, hidden)`, of a batch given as its
    /// token ids one item after the other (`ids`, all token types 0) and
    /// each item's token count (`lengths`, summing to `ids.len()`). There
    /// is no padding: every product runs over real tokens only, and the
    /// attention keeps each item to its own tokens.
    pub fn forward(&self, ids: &[u32], lengths: &[usize]) -> Result<Tensor> {
        if lengths.iter().sum::<usize>() != ids.len() {
            candle_core::bail!("{} token ids for lengths {lengths:?}", ids.len());
        }
        let (heads, hd) = (self.heads, self.head_dim);
        let starts: Vec<usize> = lengths
            .iter()
            .scan(0, |next, &n| {
                let start = *next;
                *next += n;
                Some(start)
            })
            .collect();
        let positions: Vec<u32> = lengths.iter().flat_map(|&n| 0..n as u32).collect();
        let device = self.word.device();
        let words = self.word.index_select(&Tensor::new(ids, device)?, 0)?;
        let positions = self
            .position
            .index_select(&Tensor::new(positions.as_slice(), device)?, 0)?;
        let x = (words + positions)?.broadcast_add(&self.token_type0)?;
        let (gamma, beta, eps) = &self.embedding_norm;
        let mut x = candle_nn::ops::layer_norm(&x, gamma, beta, *eps)?;
        for layer in &self.layers {
            let context = layer.qkv.product(&x)?.apply_op1_no_bwd(&Attention {
                bias: &layer.qkv.bias,
                lengths,
                starts: &starts,
                heads,
                head_dim: hd,
            })?; // (tokens, h)
            let attended = layer.attention_out.product(&context)?;
            x = attended.apply_op2_no_bwd(
                &x,
                &AddNorm(&layer.attention_out.bias, &layer.attention_norm),
            )?;

            let inner = layer.intermediate.product_gelu(&x)?;
            let out = layer.output.product(&inner)?;
            x = out.apply_op2_no_bwd(&x, &AddNorm(&layer.output.bias, &layer.output_norm))?;
        }
        Ok(x)
    }
}

/// Elements per parallel piece of the element-wise kernels.
const CHUNK: usize = 16 * 1024;

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(data) => data,
        _ => candle_core::bail!("{op}: only f32 is supported"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// Runs `f` compiled for the best instruction set this CPU has (AVX2 and
/// FMA on current x86), chosen at run time: the kernels below are plain
/// loops the compiler vectorises for it. `f` and the closures it calls
/// must be `#[inline(always)]`: a closure the compiler does not inline
/// into the dispatching function is compiled for the baseline (SSE2).
#[inline(always)]
fn simd(f: impl FnOnce()) {
    pulp::Arch::new().dispatch(f)
}

/// Calls `f(first_row, dst_rows, src_rows)` on pieces of whole rows of
/// `width` elements, in parallel on the current rayon pool, each piece
/// compiled for the CPU's vector instructions.
fn for_rows(
    dst: &mut [f32],
    src: &[f32],
    width: usize,
    f: impl Fn(usize, &mut [f32], &[f32]) + Sync,
) {
    let rows_per_piece = (CHUNK / width.max(1)).max(1);
    dst.par_chunks_mut(rows_per_piece * width)
        .zip(src.par_chunks(rows_per_piece * width))
        .enumerate()
        .for_each(|(i, (d, s))| {
            simd(
                #[inline(always)]
                || f(i * rows_per_piece, d, s),
            )
        });
}

fn check_width(op: &str, len: usize, width: usize) -> Result<()> {
    if width == 0 || !len.is_multiple_of(width) {
        candle_core::bail!("{op}: {len} elements are not rows of {width}");
    }
    Ok(())
}

/// GELU (erf form) of `x + bias`: `v/2 * (1 + erf(v/sqrt 2))`.
struct BiasGelu<'a>(&'a [f32]);

impl CustomOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_with_bias("bias-gelu", storage, layout, self.0, gelu)
    }
}

/// `g(x + bias)` element by element, the bias along the last dimension.
fn map_with_bias(
    op: &str,
    storage: &CpuStorage,
    layout: &Layout,
    bias: &[f32],
    g: impl Fn(f32) -> f32 + Sync,
) -> Result<(CpuStorage, Shape)> {
    let src = contiguous_f32(storage, layout, op)?;
    check_width(op, src.len(), bias.len())?;
    let mut dst = vec![0f32; src.len()];
    for_rows(
        &mut dst,
        src,
        bias.len(),
        #[inline(always)]
        |_, d, s| {
            for (d, s) in d
                .chunks_exact_mut(bias.len())
                .zip(s.chunks_exact(bias.len()))
            {
                for ((d, &x), &b) in d.iter_mut().zip(s).zip(bias) {
                    *d = g(x + b);
                }
            }
        },
    );
    Ok((CpuStorage::F32(dst), layout.shape().clone()))
}

/// `layer_norm(x + bias + residual)`: the end of each BERT sub-layer.
struct AddNorm<'a>(&'a [f32], &'a Norm);

impl CustomOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "add-norm")?;
        let residual = contiguous_f32(s2, l2, "add-norm")?;
        let (bias, norm) = (self.0, self.1);
        let width = bias.len();
        check_width("add-norm", x.len(), width)?;
        if residual.len() != x.len() || norm.gamma.len() != width || norm.beta.len() != width {
            candle_core::bail!("add-norm: mismatched shapes");
        }
        // The sum goes into `dst` first, then is normalised in place.
        let mut dst = vec![0f32; x.len()];
        for_rows(
            &mut dst,
            x,
            width,
            #[inline(always)]
            |first_row, d, x| {
                let r = &residual[first_row * width..first_row * width + x.len()];
                for ((d, x), r) in d
                    .chunks_exact_mut(width)
                    .zip(x.chunks_exact(width))
                    .zip(r.chunks_exact(width))
                {
                    for (((d, &x), &r), &b) in d.iter_mut().zip(x).zip(r).zip(bias) {
                        *d = x + r + b;
                    }
                    let mean = lane_sum(d) / width as f32;
                    let var = lane_sum_of(d, |v| (v - mean) * (v - mean)) / width as f32;
                    let inv = 1.0 / (var + norm.eps).sqrt();
                    for ((d, &g), &b) in d.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
                        *d = (*d - mean) * inv * g + b;
                    }
                }
            },
        );
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// Self-attention of one layer, from the raw product `x · W_qkv`
/// (`(batch * len, 3 * hidden)`, query | key | value, without the bias):
/// the context vectors `(batch * len, hidden)`. Each (item, head) pair is
/// one parallel task: it adds the bias, lays the keys out transposed, and
/// for each real token computes the scores, a softmax over the real key
/// positions of the same item (so no mask tensor) and the weighted sum of
/// values, all in f32. Items have no padding: item `b` is rows
/// `starts[b] .. starts[b] + lengths[b]`.
struct Attention<'a> {
    /// `3 * hidden`: the query part already carries the attention scale.
    bias: &'a [f32],
    /// Tokens of each batch item.
    lengths: &'a [usize],
    /// First row of each batch item.
    starts: &'a [usize],
    heads: usize,
    head_dim: usize,
}

/// Scratch space of one attention task.
#[derive(Default)]
struct AttentionScratch {
    /// `head_dim` (padded) rows of the keys, each `n` (padded) long.
    keys_t: Vec<f32>,
    /// `n` rows of the values, each `head_dim` (padded) long.
    values: Vec<f32>,
    /// [`QB`] queries, each `head_dim` (padded) long.
    queries: Vec<f32>,
    /// [`QB`] rows of scores, each `n` (padded) long.
    scores: Vec<f32>,
}

/// Queries per block of the attention kernel.
const QB: usize = 4;
/// Keys (of the scores) or value dimensions (of the context) per block:
/// with [`QB`] queries, 64 accumulators, 8 AVX2 registers.
const KB: usize = 16;

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "attention")?;
        let hidden = self.heads * self.head_dim;
        let rows: usize = self.lengths.iter().sum();
        if self.bias.len() != 3 * hidden
            || src.len() != rows * 3 * hidden
            || self.starts.len() != self.lengths.len()
            || self
                .starts
                .iter()
                .zip(self.lengths)
                .any(|(&start, &n)| start + n > rows)
        {
            candle_core::bail!("attention: the input does not match the batch");
        }
        let mut out = vec![0f32; rows * hidden];
        let dst = SharedMut(out.as_mut_ptr());
        (0..self.lengths.len() * self.heads)
            .into_par_iter()
            .for_each_init(AttentionScratch::default, |scratch, task| {
                let (item, head) = (task / self.heads, task % self.heads);
                // SAFETY: this task alone writes the rows of `item`,
                // columns of `head`, inside `out` (rows x hidden).
                simd(
                    #[inline(always)]
                    || unsafe { self.attend(src, item, head, scratch, dst.ptr()) },
                );
            });
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}

impl Attention<'_> {
    /// One (item, head) task of [`Attention`]. Queries go [`QB`] at a time
    /// and keys or value dimensions [`KB`] at a time, so the sums stay in
    /// registers and each loaded key or value serves [`QB`] queries; the
    /// head dimension and the key count are padded with zeros to
    /// multiples of [`KB`] (zeros add nothing to a score, and padded keys
    /// are left out of the softmax).
    ///
    /// # Safety
    ///
    /// `dst` points to `(batch * len) x hidden` f32s, and no other thread
    /// writes this item's rows in this head's columns.
    #[inline(always)]
    unsafe fn attend(
        &self,
        src: &[f32],
        item: usize,
        head: usize,
        s: &mut AttentionScratch,
        dst: *mut f32,
    ) {
        let (hd, hidden) = (self.head_dim, self.heads * self.head_dim);
        let width = 3 * hidden;
        let n = self.lengths[item];
        if n == 0 {
            return;
        }
        let (hp, np) = (hd.next_multiple_of(KB), n.next_multiple_of(KB));
        let first = self.starts[item];
        let (q_off, k_off, v_off) = (head * hd, hidden + head * hd, 2 * hidden + head * hd);
        let row = |j: usize| &src[(first + j) * width..(first + j + 1) * width];

        s.keys_t.clear();
        s.keys_t.resize(hp * np, 0.0);
        s.values.clear();
        s.values.resize(n * hp, 0.0);
        for j in 0..n {
            let r = row(j);
            for (d, (&k, &b)) in r[k_off..k_off + hd]
                .iter()
                .zip(&self.bias[k_off..k_off + hd])
                .enumerate()
            {
                s.keys_t[d * np + j] = k + b;
            }
            add(
                &mut s.values[j * hp..j * hp + hd],
                &r[v_off..v_off + hd],
                &self.bias[v_off..v_off + hd],
            );
        }
        s.queries.clear();
        s.queries.resize(QB * hp, 0.0);
        s.scores.clear();
        s.scores.resize(QB * np, 0.0);
        let (keys_t, values) = (&s.keys_t[..], &s.values[..]);
        let (queries, scores) = (&mut s.queries[..], &mut s.scores[..]);

        for i0 in (0..n).step_by(QB) {
            let rows = (n - i0).min(QB);
            for (r, q) in queries.chunks_exact_mut(hp).enumerate() {
                if r < rows {
                    add(
                        &mut q[..hd],
                        &row(i0 + r)[q_off..q_off + hd],
                        &self.bias[q_off..q_off + hd],
                    );
                } else {
                    q.fill(0.0);
                }
            }
            for j0 in (0..np).step_by(KB) {
                // acc[r][t] = sum over d of query r [d] * key j0 + t [d]
                let acc = block_fma(queries, hp, &keys_t[j0..], np, hp);
                for (r, acc) in acc.iter().enumerate() {
                    scores[r * np + j0..][..KB].copy_from_slice(acc);
                }
            }
            let mut inv = [0f32; QB];
            for (r, inv) in inv.iter_mut().enumerate().take(rows) {
                *inv = softmax_unnormalised(&mut scores[r * np..r * np + n]);
            }
            for d0 in (0..hp).step_by(KB) {
                // acc[r][t] = sum over j of p(r, j) * value j [d0 + t]
                let acc = block_fma(scores, np, &values[d0..], hp, n);
                let dims = (hd - d0).min(KB);
                for (r, (acc, &inv)) in acc.iter().zip(&inv).enumerate().take(rows) {
                    // SAFETY: row first + i0 + r (a real token of this
                    // item) and columns q_off + d0 .. + dims (this head)
                    // are inside `dst` and belong to this task.
                    let out = std::slice::from_raw_parts_mut(
                        dst.add((first + i0 + r) * hidden + q_off + d0),
                        dims,
                    );
                    for (o, &a) in out.iter_mut().zip(acc) {
                        *o = a * inv;
                    }
                }
            }
        }
    }
}

/// `dst = a + b`, element by element.
#[inline(always)]
fn add(dst: &mut [f32], a: &[f32], b: &[f32]) {
    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
        *d = a + b;
    }
}

/// The [`QB`] x [`KB`] block `out[r][c] = sum over t < iters of
/// a[r * a_row + t] * x[t * x_row + c]`: the inner loop of both halves of
/// the attention (scores: queries by transposed keys; context:
/// probabilities by values).
#[inline(always)]
fn block_fma(a: &[f32], a_row: usize, x: &[f32], x_row: usize, iters: usize) -> [[f32; KB]; QB] {
    if iters == 0 {
        return [[0.0; KB]; QB];
    }
    assert!(a.len() >= (QB - 1) * a_row + iters && x.len() >= (iters - 1) * x_row + KB);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features are present; the assertion above keeps
            // every read inside `a` and `x`.
            return unsafe { block_fma_avx2(a.as_ptr(), a_row, x.as_ptr(), x_row, iters) };
        }
    }
    let mut acc = [[0f32; KB]; QB];
    for t in 0..iters {
        let x = &x[t * x_row..t * x_row + KB];
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = a[r * a_row + t];
            for (acc, &x) in acc.iter_mut().zip(x) {
                *acc = a.mul_add(x, *acc);
            }
        }
    }
    acc
}

/// [`block_fma`] in AVX2 registers: 8 accumulators, two loads and four
/// broadcasts per eight fused multiply-adds.
///
/// # Safety
///
/// AVX2 and FMA present; `a` readable at `r * a_row + t` and `x` at
/// `t * x_row + c` for `r < QB`, `t < iters`, `c < KB`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_fma_avx2(
    a: *const f32,
    a_row: usize,
    x: *const f32,
    x_row: usize,
    iters: usize,
) -> [[f32; KB]; QB] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; QB];
    for t in 0..iters {
        let row = x.add(t * x_row);
        let (x0, x1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
        for (r, acc) in acc.iter_mut().enumerate() {
            let v = _mm256_set1_ps(*a.add(r * a_row + t));
            acc[0] = _mm256_fmadd_ps(v, x0, acc[0]);
            acc[1] = _mm256_fmadd_ps(v, x1, acc[1]);
        }
    }
    let mut out = [[0f32; KB]; QB];
    for (out, acc) in out.iter_mut().zip(&acc) {
        _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
    }
    out
}

/// The sum of `x` in 16 independent lanes (a loop the compiler
/// vectorises, unlike one running f32 sum).
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    lane_sum_of(x, |v| v)
}

/// The sum of `f(v)` over `x`, in 16 independent lanes.
#[inline(always)]
fn lane_sum_of(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f32>()
}

/// Replaces `scores` by `e^(score - max)`; returns `1 / sum` of them.
#[inline(always)]
fn softmax_unnormalised(scores: &mut [f32]) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for sc in scores.iter_mut() {
        *sc = exp(*sc - max);
    }
    1.0 / lane_sum(scores)
}

/// `e^x` without branches or calls (so loops over it vectorise): range
/// reduction by `ln 2` in two parts and a degree-6 polynomial; relative
/// error below 5e-7 for x in [-87, 88]; about 1e-38 below that.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding it rounds to an integer, kept in the low bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO; // |r| <= ln2/2
                                           // Taylor terms up to r^6 / 6!, Horner form.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// GELU, erf form: `v/2 * (1 + erf(v/sqrt 2))`.
#[inline(always)]
pub(crate) fn gelu(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf(x)` with absolute error below 5e-7 in f32 (Abramowitz and Stegun
/// 7.1.26), branch-free.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// The mean of each item's rows of `hidden` (`(tokens, dim)`, items one
/// after the other, `lengths[b]` rows each), scaled to length 1, as
/// sentence-transformers' mean pooling followed by `Normalize`.
pub(crate) fn mean_pool_normalized(hidden: &Tensor, lengths: &[usize]) -> Result<Vec<Vec<f32>>> {
    let (tokens, dim) = hidden.dims2()?;
    if lengths.iter().sum::<usize>() != tokens {
        candle_core::bail!("{tokens} rows for lengths {lengths:?}");
    }
    let data = hidden.flatten_all()?.to_vec1::<f32>()?;
    let mut out = Vec::with_capacity(lengths.len());
    let mut rows = data.chunks_exact(dim);
    for &n in lengths {
        let mut sum = vec![0f64; dim];
        for row in rows.by_ref().take(n) {
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += f64::from(x);
            }
        }
        let count = n.max(1) as f64;
        let norm = sum
            .iter()
            .map(|s| (s / count) * (s / count))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        out.push(sum.iter().map(|s| (s / count / norm) as f32).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.3));
        assert!(exp(-1000.0) < 1e-37);
        assert!((exp(0.0) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = libm::erf(f64::from(x));
            worst = worst.max((f64::from(erf(x)) - want).abs());
            x += 0.001;
        }
        assert!(worst < 5e-7, "absolute error {worst}");
        assert_eq!(erf(0.0), 0.0);
    }

    /// The fused attention against the textbook computation in f64, for
    /// items of 3 and 5 tokens (each attends to its own only).
    #[test]
    fn attention_matches_the_textbook_within_each_item() {
        let (heads, hd) = (3, 4);
        let hidden = heads * hd;
        let (lengths, starts) = ([3, 5], [0, 3]);
        let rows = 8;
        let raw: Vec<f32> = (0..rows * 3 * hidden)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let bias: Vec<f32> = (0..3 * hidden)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect();
        let input = Tensor::from_vec(raw.clone(), (rows, 3 * hidden), &Device::Cpu).unwrap();
        let got = input
            .apply_op1_no_bwd(&Attention {
                bias: &bias,
                lengths: &lengths,
                starts: &starts,
                heads,
                head_dim: hd,
            })
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let at = |row: usize, col: usize| f64::from(raw[row * 3 * hidden + col] + bias[col]);
        for (b, (&n, &start)) in lengths.iter().zip(&starts).enumerate() {
            for h in 0..heads {
                for i in 0..n {
                    let row = start + i;
                    let scores: Vec<f64> = (0..n)
                        .map(|j| {
                            (0..hd)
                                .map(|e| at(row, h * hd + e) * at(start + j, hidden + h * hd + e))
                                .sum()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::MIN, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for d in 0..hd {
                        let want: f64 = (0..n)
                            .map(|j| {
                                (scores[j] - max).exp() / total
                                    * at(start + j, 2 * hidden + h * hd + d)
                            })
                            .sum();
                        let g = f64::from(got[row][h * hd + d]);
                        assert!(
                            (g - want).abs() < 1e-5,
                            "item {b} head {h} token {i}: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn add_norm_matches_the_textbook_layer_norm() {
        let dev = Device::Cpu;
        let norm = Norm {
            gamma: vec![1.0, 2.0, 0.5, 1.0],
            beta: vec![0.0, 0.1, -0.1, 0.0],
            eps: 1e-12,
        };
        let x =
            Tensor::from_vec(vec![1f32, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 5.0], (2, 4), &dev).unwrap();
        let r = Tensor::from_vec(vec![0.5f32; 8], (2, 4), &dev).unwrap();
        let bias = [0.0f32, 1.0, 0.0, -1.0];
        let got = x.apply_op2_no_bwd(&r, &AddNorm(&bias, &norm)).unwrap();
        let got = got.to_vec2::<f32>().unwrap();
        let gamma = Tensor::new(norm.gamma.as_slice(), &dev).unwrap();
        let beta = Tensor::new(norm.beta.as_slice(), &dev).unwrap();
        let bias = Tensor::new(&bias, &dev).unwrap();
        let summed = (x + r).unwrap().broadcast_add(&bias).unwrap();
        let want = candle_nn::ops::layer_norm_slow(&summed, &gamma, &beta, 1e-12).unwrap();
        let want = want.to_vec2::<f32>().unwrap();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn bias_gelu_is_gelu_of_the_sum() {
        let xs = [-3f32, -1.0, 0.0, 0.5, 1.0, 2.5];
        let x = Tensor::from_vec(xs.to_vec(), (3, 2), &Device::Cpu).unwrap();
        let got = x.apply_op1_no_bwd(&BiasGelu(&[0.25, -0.5])).unwrap();
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, g) in got.iter().enumerate() {
            let v = f64::from(xs[i]) + if i % 2 == 0 { 0.25 } else { -0.5 };
            let want = 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt()));
            assert!((f64::from(*g) - want).abs() < 1e-6, "{i}");
        }
    }
}
