//! Products of activations by a fixed weight matrix in bfloat16, on the
//! AVX-512 BF16 dot-product instruction (`vdpbf16ps`): two bf16 products
//! summed into each f32 lane, so twice the multiply-adds per instruction of
//! f32 FMA, and half the weight bytes to stream from cache.
//!
//! Both operands are rounded to bf16 (8 significant bits, round to nearest
//! even); every sum is accumulated in f32. On all-MiniLM-L6-v2 the sentence
//! vectors stay within cosine 0.9999 of the f32 model (`tests/local_model.rs`
//! checks both against the sentence-transformers library).
//!
//! The weight is packed once, at load, in panels of [`NR`] output columns:
//! for each pair of input rows `(2p, 2p+1)`, the panel holds [`NR`] `u32`s,
//! the bf16 of `W[2p][col]` in the low half and `W[2p+1][col]` in the high
//! half, the layout `vdpbf16ps` multiplies against a broadcast pair of
//! activations. The micro-kernel keeps [`MR`] rows by [`NR`] columns of
//! accumulators (24 of the 32 vector registers) and walks the whole input
//! dimension in one pass; tiles of rows by panels run in parallel on the
//! current rayon pool.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};

/// Output columns per packed panel: four vectors of 16 f32.
pub(crate) const NR: usize = 64;
/// Rows per micro-kernel call.
pub(crate) const MR: usize = 6;
/// Rows per parallel task (a multiple of [`MR`]).
const ROWS_PER_TASK: usize = MR * 16;

/// A pointer parallel tasks write through, each to elements no other task
/// touches (the users say which).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub *mut f32);

impl SharedMut {
    /// The pointer. A closure calling this captures the whole
    /// `SharedMut` (which is `Send`), not the bare pointer field.
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: tasks write disjoint elements, and the buffer outlives them.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// `f32` to bf16, rounding to nearest even (NaN stays NaN).
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// A weight matrix `k x n` (`in x out`) packed for [`PackedMatMul`].
pub(crate) struct PackedWeight {
    k: usize,
    n: usize,
    /// `ceil(k / 2)`: pairs of input rows.
    pairs: usize,
    /// `ceil(n / NR)` panels of `pairs * NR` u32s each.
    data: Vec<u32>,
}

impl PackedWeight {
    /// Packs `w`, row-major `k x n`.
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight is not {k} x {n}");
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![0u32; panels * pairs * NR];
        for panel in 0..panels {
            let base = panel * pairs * NR;
            for p in 0..pairs {
                for c in 0..NR {
                    let col = panel * NR + c;
                    if col >= n {
                        continue;
                    }
                    let lo = bf16_bits(w[2 * p * n + col]);
                    let hi = if 2 * p + 1 < k {
                        bf16_bits(w[(2 * p + 1) * n + col])
                    } else {
                        0
                    };
                    data[base + p * NR + c] = u32::from(lo) | (u32::from(hi) << 16);
                }
            }
        }
        PackedWeight { k, n, pairs, data }
    }
}

/// Whether this CPU runs [`PackedMatMul`].
pub(crate) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x · W` for `x` of shape `(.., k)`, contiguous f32: shape `(.., n)`;
/// with `gelu_bias`, `GELU(x · W + bias)` instead, applied to each block
/// of the product as it leaves the registers (no second pass over the
/// output). Only call it when [`supported`] is true.
pub(crate) struct PackedMatMul<'a> {
    pub weight: &'a PackedWeight,
    pub gelu_bias: Option<&'a [f32]>,
}

impl CustomOp1 for PackedMatMul<'_> {
    fn name(&self) -> &'static str {
        "memory-embed-bf16-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = self.weight;
        if self.gelu_bias.is_some_and(|b| b.len() != w.n) {
            candle_core::bail!("bf16 matmul: the bias does not have {} values", w.n);
        }
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("bf16 matmul: only f32 input is supported");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("bf16 matmul: the input must be contiguous");
        };
        let x = &data[start..end];
        let mut dims = layout.shape().dims().to_vec();
        if dims.last() != Some(&w.k) {
            candle_core::bail!("bf16 matmul: input {dims:?} does not end in {}", w.k);
        }
        let rows = x.len() / w.k;
        // Not zeroed first: the product writes every element.
        let mut out: Vec<f32> = Vec::with_capacity(rows * w.n);
        multiply(
            x,
            rows,
            w,
            self.gelu_bias,
            out.spare_capacity_mut().as_mut_ptr().cast(),
        )?;
        // SAFETY: `multiply` returned Ok, so all rows * n elements are written.
        unsafe { out.set_len(rows * w.n) };
        *dims.last_mut().expect("non-empty") = w.n;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// `out = x · W` (or `GELU(x · W + bias)`), `x` being `rows x k` and
/// `out` room for `rows x n`; on `Ok`, every element of `out` is written.
fn multiply(
    x: &[f32],
    rows: usize,
    w: &PackedWeight,
    gelu_bias: Option<&[f32]>,
    out: *mut f32,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        if supported() {
            // SAFETY: the CPU has the features (checked just above).
            unsafe { x86::multiply(x, rows, w, gelu_bias, out) };
            return Ok(());
        }
    }
    let _ = (x, rows, w, gelu_bias, out);
    candle_core::bail!("bf16 matmul: this CPU has no AVX-512 BF16")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedWeight, SharedMut, MR, NR, ROWS_PER_TASK};
    use rayon::prelude::*;
    use std::arch::x86_64::*;

    /// # Safety
    ///
    /// The CPU must have AVX-512 F and BF16; `out` has room for
    /// `rows * w.n` f32s.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn multiply(
        x: &[f32],
        rows: usize,
        w: &PackedWeight,
        gelu_bias: Option<&[f32]>,
        out: *mut f32,
    ) {
        debug_assert_eq!(x.len(), rows * w.k);
        let pairs = w.pairs;
        // The activations in bf16, two per u32, each row padded to `pairs`,
        // in a buffer this thread keeps between calls: a fresh one of a few
        // MiB comes from the kernel as untouched pages, and faulting them
        // in cost more than the conversion itself (8% of a batch's time).
        thread_local! {
            static BF16_ROWS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut a = BF16_ROWS.take();
        a.clear();
        a.resize(rows * pairs, 0);
        a.par_chunks_mut(pairs * 16)
            .zip(x.par_chunks(w.k * 16))
            // SAFETY: the features were checked by the caller.
            .for_each(|(a, x)| unsafe { convert_rows(x, w.k, pairs, a) });

        let panels = w.n.div_ceil(NR);
        let row_tasks = rows.div_ceil(ROWS_PER_TASK);
        // Each task writes a disjoint block: its rows, its panel's columns.
        let dst = SharedMut(out);
        (0..row_tasks * panels).into_par_iter().for_each(|task| {
            let (row_task, panel) = (task / panels, task % panels);
            let first = row_task * ROWS_PER_TASK;
            let last = (first + ROWS_PER_TASK).min(rows);
            let b = w.data[panel * pairs * NR..].as_ptr();
            let col = panel * NR;
            let cols = (w.n - col).min(NR);
            let mut r = first;
            while r < last {
                let take = (last - r).min(MR);
                // SAFETY: rows r..r+take exist in `a` and `out`; this
                // task alone writes rows first..last, columns col..col+cols.
                unsafe {
                    let a = a.as_ptr().add(r * pairs);
                    let c = dst.ptr().add(r * w.n + col);
                    match take {
                        6 => kernel::<6>(a, pairs, b, c, w.n, cols),
                        5 => kernel::<5>(a, pairs, b, c, w.n, cols),
                        4 => kernel::<4>(a, pairs, b, c, w.n, cols),
                        3 => kernel::<3>(a, pairs, b, c, w.n, cols),
                        2 => kernel::<2>(a, pairs, b, c, w.n, cols),
                        _ => kernel::<1>(a, pairs, b, c, w.n, cols),
                    }
                    if let Some(bias) = gelu_bias {
                        bias_gelu(c, w.n, take, &bias[col..col + cols]);
                    }
                }
                r += take;
            }
        });
        // Kept up to 8 MiB (a batch of 32 memories of about 65 tokens);
        // a rare larger one is given back.
        if a.capacity() * 4 <= 8 << 20 {
            BF16_ROWS.set(a);
        }
    }

    /// `GELU(v + bias)` in place over `rows` rows of `c` (stride `ldc`),
    /// `bias.len()` columns each, while they are still in L1.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn bias_gelu(c: *mut f32, ldc: usize, rows: usize, bias: &[f32]) {
        for r in 0..rows {
            let row = std::slice::from_raw_parts_mut(c.add(r * ldc), bias.len());
            for (v, &b) in row.iter_mut().zip(bias) {
                *v = crate::bert::gelu(*v + b);
            }
        }
    }

    /// Rows of `x` (`k` wide) to bf16 pairs in `a` (`pairs` wide).
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn convert_rows(x: &[f32], k: usize, pairs: usize, a: &mut [u32]) {
        for (x, a) in x.chunks_exact(k).zip(a.chunks_exact_mut(pairs)) {
            // SAFETY: `a` holds `pairs * 2 >= k` u16s.
            let a16 = a.as_mut_ptr().cast::<u16>();
            let mut i = 0;
            while i + 16 <= k {
                let v = _mm512_loadu_ps(x.as_ptr().add(i));
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(a16.add(i).cast(), h);
                i += 16;
            }
            while i < k {
                *a16.add(i) = super::bf16_bits(x[i]);
                i += 1;
            }
            if k % 2 == 1 {
                *a16.add(k) = 0;
            }
        }
    }

    /// `R` rows of `c` (stride `ldc`), columns `0..cols` (at most [`NR`]),
    /// = `R` rows of `a` (stride `lda` u32s, `pairs` used) times the panel
    /// at `b`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn kernel<const R: usize>(
        a: *const u32,
        lda: usize,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
    ) {
        let pairs = lda;
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for p in 0..pairs {
            let bp = b.add(p * NR).cast::<i32>();
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_epi32(bp));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_epi32(bp.add(16)));
            let b2: __m512bh = std::mem::transmute(_mm512_loadu_epi32(bp.add(32)));
            let b3: __m512bh = std::mem::transmute(_mm512_loadu_epi32(bp.add(48)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = *a.add(r * lda + p) as i32;
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
                acc[2] = _mm512_dpbf16_ps(acc[2], av, b2);
                acc[3] = _mm512_dpbf16_ps(acc[3], av, b3);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = c.add(r * ldc);
            for (j, v) in acc.iter().enumerate() {
                let first = j * 16;
                if first >= cols {
                    break;
                }
                let left = cols - first;
                if left >= 16 {
                    _mm512_storeu_ps(row.add(first), *v);
                } else {
                    let mask: __mmask16 = (1u16 << left) - 1;
                    _mm512_mask_storeu_ps(row.add(first), mask, *v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn bf16_value(bits: u16) -> f32 {
        f32::from_bits(u32::from(bits) << 16)
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_value(bf16_bits(1.0)), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to even (1).
        assert_eq!(bf16_value(bf16_bits(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_value(bf16_bits(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert_eq!(bf16_value(bf16_bits(-2.5)), -2.5);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
    }

    /// The product against the same product in f64 of the bf16-rounded
    /// operands, for shapes with partial panels, odd `k`, and row counts
    /// that are not multiples of the micro-kernel's or the tasks'.
    #[test]
    fn matches_the_product_of_the_rounded_operands() {
        if !supported() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let round = |v: f32| bf16_value(bf16_bits(v));
        for (rows, k, n) in [
            (1, 2, 1),
            (7, 5, 70),
            (13, 384, 384),
            (101, 33, 130),
            (200, 64, 64),
        ] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729 % 997) as f32 / 498.5) - 1.0)
                .collect();
            let packed = PackedWeight::pack(&w, k, n);
            let bias: Vec<f32> = (0..n).map(|c| (c % 9) as f32 * 0.25 - 1.0).collect();
            let input = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).expect("tensor");
            let run = |gelu_bias: Option<&[f32]>| {
                let got = input
                    .apply_op1_no_bwd(&PackedMatMul {
                        weight: &packed,
                        gelu_bias,
                    })
                    .expect("matmul");
                assert_eq!(got.dims(), &[rows, n]);
                got.flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .expect("vec")
            };
            let (plain, gelu) = (run(None), run(Some(&bias)));
            for r in 0..rows {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| f64::from(round(x[r * k + i])) * f64::from(round(w[i * n + c])))
                        .sum();
                    let g = f64::from(plain[r * n + c]);
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{rows}x{k}x{n} at ({r}, {c}): {g} vs {want}"
                    );
                    let v = want + f64::from(bias[c]);
                    let want = 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt()));
                    let g = f64::from(gelu[r * n + c]);
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "GELU {rows}x{k}x{n} at ({r}, {c}): {g} vs {want}"
                    );
                }
            }
        }
    }
}
