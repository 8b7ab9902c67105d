//! A BERT encoder for inference on the CPU, on candle tensors, laid out for
//! speed rather than generality (the profile of the generic
//! `candle-transformers` BERT showed time in scalar `erf`, scalar `exp` and
//! re-packing of transposed weights):
//!
//! - weights are stored transposed and contiguous (`in x out`), and the
//!   query, key and value projections are one matrix, so each layer makes
//!   four matrix products over all tokens of the batch at once;
//! - the attention scale `1/sqrt(head_dim)` is folded into the query weights;
//! - everything between the matrix products is a fused kernel on the
//!   embedder's thread pool: bias + GELU (the exact, erf form BERT uses),
//!   bias + residual + layer norm, and a softmax that skips padding (so no
//!   mask tensor), with a branch-free `exp` the compiler vectorises,
//!   accurate to a few units in the last place of f32.
//!
//! Numerically it is the same function as Hugging Face's `BertModel`
//! (without the pooler): `tests/local_model.rs` checks its sentence vectors
//! against the sentence-transformers library.

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
    pub pad_token_id: usize,
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

struct Linear {
    /// `in x out`, contiguous.
    weight_t: Tensor,
    bias: Vec<f32>,
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
    hidden: usize,
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
            weight_t: transpose(&weight)?,
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
    /// Builds the encoder from a safetensors buffer. Errors name the tensor.
    pub fn load(safetensors: &[u8], config: &BertConfig) -> std::result::Result<Self, String> {
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
            let query_t = q.weight_t.affine(scale, 0.0).map_err(|e| e.to_string())?;
            let qkv = Linear {
                weight_t: Tensor::cat(&[&query_t, &k.weight_t, &v.weight_t], 1)
                    .map_err(|e| e.to_string())?,
                bias: q
                    .bias
                    .iter()
                    .map(|b| (f64::from(*b) * scale) as f32)
                    .chain(k.bias)
                    .chain(v.bias)
                    .collect(),
            };
            layers.push(Layer {
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
            });
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
            hidden: h,
        })
    }

    /// The last hidden states, `(batch, len, hidden)`, of `ids`
    /// (`(batch, len)`, u32, all token types 0). `lengths[b]` is the number
    /// of real tokens of row `b`; the rest is padding, which no real token
    /// attends to. Padding positions come out as finite garbage.
    pub fn forward(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        if lengths.len() != batch {
            candle_core::bail!("{} lengths for a batch of {batch}", lengths.len());
        }
        let rows = batch * len;
        let (h, heads, hd) = (self.hidden, self.heads, self.head_dim);

        let words = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((batch, len, h))?;
        let positions = self.position.narrow(0, 0, len)?;
        let x = words
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type0)?;
        let (gamma, beta, eps) = &self.embedding_norm;
        let mut x = candle_nn::ops::layer_norm(&x, gamma, beta, *eps)?.reshape((rows, h))?;
        let softmax = MaskedSoftmax {
            lengths,
            rows_per_item: heads * len,
        };

        for layer in &self.layers {
            let qkv = x
                .matmul(&layer.qkv.weight_t)?
                .apply_op1_no_bwd(&BiasAdd(&layer.qkv.bias))? // (rows, 3h)
                .reshape((batch, len, 3, heads, hd))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?; // (3, batch, heads, len, hd)
            let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
            // (batch, heads, len, len); the scale is in the query weights.
            let probs = q.matmul(&k.t()?)?.apply_op1_no_bwd(&softmax)?;
            let context = probs
                .matmul(&v)? // (batch, heads, len, hd)
                .transpose(1, 2)?
                .contiguous()?
                .reshape((rows, h))?;
            let attended = context.matmul(&layer.attention_out.weight_t)?;
            x = attended.apply_op2_no_bwd(
                &x,
                &AddNorm(&layer.attention_out.bias, &layer.attention_norm),
            )?;

            let inner = x
                .matmul(&layer.intermediate.weight_t)?
                .apply_op1_no_bwd(&BiasGelu(&layer.intermediate.bias))?;
            let out = inner.matmul(&layer.output.weight_t)?;
            x = out.apply_op2_no_bwd(&x, &AddNorm(&layer.output.bias, &layer.output_norm))?;
        }
        x.reshape((batch, len, h))
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
/// loops the compiler vectorises for it.
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
        .for_each(|(i, (d, s))| simd(|| f(i * rows_per_piece, d, s)));
}

fn check_width(op: &str, len: usize, width: usize) -> Result<()> {
    if width == 0 || !len.is_multiple_of(width) {
        candle_core::bail!("{op}: {len} elements are not rows of {width}");
    }
    Ok(())
}

/// `x + bias`, the bias along the last dimension.
struct BiasAdd<'a>(&'a [f32]);

impl CustomOp1 for BiasAdd<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-bias-add"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_with_bias("bias-add", storage, layout, self.0, |v| v)
    }
}

/// GELU (erf form) of `x + bias`: `v/2 * (1 + erf(v/sqrt 2))`.
struct BiasGelu<'a>(&'a [f32]);

impl CustomOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_with_bias("bias-gelu", storage, layout, self.0, |v| {
            0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
        })
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
    for_rows(&mut dst, src, bias.len(), |_, d, s| {
        for (d, s) in d
            .chunks_exact_mut(bias.len())
            .zip(s.chunks_exact(bias.len()))
        {
            for ((d, &x), &b) in d.iter_mut().zip(s).zip(bias) {
                *d = g(x + b);
            }
        }
    });
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
        for_rows(&mut dst, x, width, |first_row, d, x| {
            let r = &residual[first_row * width..first_row * width + x.len()];
            for ((d, x), r) in d
                .chunks_exact_mut(width)
                .zip(x.chunks_exact(width))
                .zip(r.chunks_exact(width))
            {
                for (((d, &x), &r), &b) in d.iter_mut().zip(x).zip(r).zip(bias) {
                    *d = x + r + b;
                }
                let mean = d.iter().sum::<f32>() / width as f32;
                let var = d.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
                let inv = 1.0 / (var + norm.eps).sqrt();
                for ((d, &g), &b) in d.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
                    *d = (*d - mean) * inv * g + b;
                }
            }
        });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// Softmax over the last dimension of attention scores
/// `(batch, heads, len, len)`, where key positions at or past
/// `lengths[b]` (padding) get probability 0.
struct MaskedSoftmax<'a> {
    lengths: &'a [usize],
    /// `heads * len`: rows of scores per batch item.
    rows_per_item: usize,
}

impl CustomOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, "softmax")?;
        let width = layout.shape().dims().last().copied().unwrap_or(0);
        check_width("softmax", src.len(), width)?;
        if src.len() / width != self.lengths.len() * self.rows_per_item {
            candle_core::bail!("softmax: the scores do not match the batch");
        }
        let mut dst = vec![0f32; src.len()];
        for_rows(&mut dst, src, width, |first_row, d, s| {
            for (i, (d, s)) in d
                .chunks_exact_mut(width)
                .zip(s.chunks_exact(width))
                .enumerate()
            {
                let n = self.lengths[(first_row + i) / self.rows_per_item].min(width);
                let (d, s) = (&mut d[..n], &s[..n]);
                let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for (d, &x) in d.iter_mut().zip(s) {
                    *d = exp(x - max);
                }
                let inv = 1.0 / d.iter().sum::<f32>();
                for d in d.iter_mut() {
                    *d *= inv;
                }
            }
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
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

/// The mean of `hidden` (`(batch, len, dim)`) over each row's first
/// `lengths[b]` positions, scaled to length 1, as sentence-transformers'
/// mean pooling followed by `Normalize`.
pub(crate) fn mean_pool_normalized(hidden: &Tensor, lengths: &[usize]) -> Result<Vec<Vec<f32>>> {
    let (_, len, dim) = hidden.dims3()?;
    let data = hidden.flatten_all()?.to_vec1::<f32>()?;
    let mut out = Vec::with_capacity(lengths.len());
    for (b, &n) in lengths.iter().enumerate() {
        let mut sum = vec![0f64; dim];
        for t in 0..n.min(len) {
            let row = &data[(b * len + t) * dim..(b * len + t + 1) * dim];
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

    #[test]
    fn softmax_rows_sum_to_one_and_skip_padding() {
        // Two items, one head, length 4; the first item has 3 real tokens.
        let scores: Vec<f32> = (0..32).map(|i| (i % 5) as f32 * 0.5).collect();
        let t = Tensor::from_vec(scores.clone(), (2, 1, 4, 4), &Device::Cpu).unwrap();
        let op = MaskedSoftmax {
            lengths: &[3, 4],
            rows_per_item: 4,
        };
        let p = t.apply_op1_no_bwd(&op).unwrap();
        let p = p.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for row in 0..8 {
            let n = if row < 4 { 3 } else { 4 };
            let s = &scores[row * 4..row * 4 + n];
            let total: f64 = s.iter().map(|x| f64::from(*x).exp()).sum();
            for j in 0..4 {
                let want = if j < n {
                    f64::from(s[j]).exp() / total
                } else {
                    0.0
                };
                let got = f64::from(p[row * 4 + j]);
                assert!((got - want).abs() < 1e-6, "row {row} col {j}");
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
