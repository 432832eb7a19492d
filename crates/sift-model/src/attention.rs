//! Scaled dot-product attention, shared by the vision tower and the text decoder, through
//! burn's attention op: a flash kernel on the CPU backend, and natively on GPUs wherever
//! autotune finds one faster; the formula written out by separate kernels in browsers.
//!
//! Queries are processed in chunks so that a score matrix, where one is written, never exceeds
//! what the GPU binds: a full `[heads, L, L]` matrix is 3.3 GB in f32 for one 1800-token image
//! (7200 patches, 16 heads). Each row's softmax still spans every key it sees, so chunking
//! changes no result.

use std::ops::Range;

use burn::tensor::module::attention as attention_op;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Device, Tensor};

use crate::Projection;

/// Bytes of score matrix computed at once in browsers and where the binding limit is unknown:
/// half of WebGPU's default `maxStorageBufferBindingSize`, which keeps one image pair of the
/// 4-bit 2B model within 1.6 GB of GPU memory (docs/quantization.md).
const DEFAULT_SCORE_BYTES: usize = 64 << 20;

/// The most bytes of score matrix computed at once, whatever the GPU binds. Natively: one image
/// of the 2B's vision tower (16 heads, 3072 patches: 604 MB) in one launch per layer.
#[cfg(not(target_family = "wasm"))]
const MAX_SCORE_BYTES: usize = 1 << 30;
/// In browsers: the default, which bounds the page's GPU memory (see above).
#[cfg(target_family = "wasm")]
const MAX_SCORE_BYTES: usize = DEFAULT_SCORE_BYTES;

/// How attention multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPrecision {
    /// f32 throughout. burn's GPU op is given its scale explicitly, which keeps it on its f32
    /// kernels: its flash kernels take no scale and multiply in f16 on GPUs with tensor cores.
    F32,
    /// q, k and v in f16 (f32 accumulation, the output back in f32): the flash kernels,
    /// tensor cores included, are free to run.
    F16,
}

impl AttentionPrecision {
    /// The precision of a layer's attention: that of its projections, so that
    /// [`Projection::compute_in_f16`] switches both, except on GPUs whose kernels are WGSL.
    /// There burn's f16 attention has no tensor-core kernel and runs 5–9× slower than its f32
    /// one (docs/performance.md), so attention stays f32 while the linear layers go f16.
    pub fn of(projection: &Projection) -> Self {
        let on_wgsl_gpu = !cfg!(feature = "vulkan")
            && crate::device::gpu_info(&projection.weight.val().device()).is_some();
        if projection.computes_in_f16() && !on_wgsl_gpu {
            Self::F16
        } else {
            Self::F32
        }
    }
}

/// `softmax(q·kᵀ / √d [+ causal mask]) · v` for `q` of shape `[batch, heads, len, head_dim]`
/// and `k`, `v` of shape `[batch, heads, keys, head_dim]` with `keys ≥ len`. With `causal`,
/// the queries are the last `len` of the keys' positions and query `i` sees keys
/// `0..=keys - len + i`: a whole prompt (`keys == len`), or tokens after a reused prefix.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    causal: bool,
    precision: AttentionPrecision,
) -> Tensor<4> {
    let budget = score_budget(&q.device(), precision);
    attention_in_chunks(q, k, v, causal, precision, budget)
}

/// `count` consecutive segments of `length` rows from `start`, computed as one batch: a video's
/// frame groups, images of one size, documents of one length packed in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub length: usize,
    pub count: usize,
}

impl Run {
    /// The run's rows of a heads-first `[heads, len, head_dim]` tensor, as a batch
    /// `[count, heads, length, head_dim]`.
    pub fn batch(&self, t: &Tensor<3>) -> Tensor<4> {
        let [heads, _, head_dim] = t.dims();
        t.clone()
            .slice([0..heads, self.start..self.start + self.length * self.count])
            .reshape([heads, self.count, self.length, head_dim])
            .swap_dims(0, 1)
    }

    /// [`batch`](Self::batch) undone: `[heads, count·length, head_dim]`.
    pub fn unbatch(&self, t: Tensor<4>) -> Tensor<3> {
        let [_, heads, _, head_dim] = t.dims();
        t.swap_dims(0, 1)
            .reshape([heads, self.count * self.length, head_dim])
    }
}

/// Consecutive segments of one length, joined into runs.
pub fn equal_length_runs(segments: impl IntoIterator<Item = Range<usize>>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for segment in segments {
        match runs.last_mut() {
            Some(run)
                if run.length == segment.len()
                    && run.start + run.length * run.count == segment.start =>
            {
                run.count += 1
            }
            _ => runs.push(Run {
                start: segment.start,
                length: segment.len(),
                count: 1,
            }),
        }
    }
    runs
}

/// Score-matrix elements computed at once on `device`: half of what it binds (every
/// intermediate of the written-out formula is one such matrix), within the caps above.
fn score_budget(device: &Device, precision: AttentionPrecision) -> usize {
    let bytes = crate::device::binding_limit(device).map_or(DEFAULT_SCORE_BYTES, |limit| {
        usize::try_from(limit / 2).map_or(MAX_SCORE_BYTES, |half| half.min(MAX_SCORE_BYTES))
    });
    let element = match precision {
        AttentionPrecision::F32 => 4,
        AttentionPrecision::F16 => 2,
    };
    bytes / element
}

fn attention_in_chunks(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    causal: bool,
    precision: AttentionPrecision,
    budget: usize,
) -> Tensor<4> {
    let [batch, heads, len, head_dim] = q.dims();
    let keys = k.dims()[2];
    let options = AttentionModuleOptions {
        scale: match precision {
            AttentionPrecision::F32 => Some((head_dim as f64).powf(-0.5)),
            // The op's default scale, 1/√d: the same value.
            AttentionPrecision::F16 => None,
        },
        softcap: None,
        is_causal: causal,
    };
    let [q, k, v] = [q, k, v].map(|t| match precision {
        AttentionPrecision::F32 => t,
        AttentionPrecision::F16 => t.cast(DType::F16),
    });
    let rows = (budget / (batch * heads * keys).max(1)).clamp(1, len.max(1));
    let chunks: Vec<Tensor<4>> = (0..len)
        .step_by(rows)
        .map(|start| {
            let end = (start + rows).min(len);
            let q = q
                .clone()
                .slice([0..batch, 0..heads, start..end, 0..head_dim]);
            // A causal chunk sees no key after its last query; the op aligns the queries with
            // the last keys it is given.
            let seen = if causal { keys - len + end } else { keys };
            let [k, v] = [&k, &v].map(|t| t.clone().slice([0..batch, 0..heads, 0..seen]));
            attention_op(q, k, v, None, None, options)
        })
        .collect();
    Tensor::cat(chunks, 2).cast(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Bool, Distribution};

    /// Queries, keys and values of 2 batches, 3 heads, 37 positions and 8 dimensions.
    fn random_qkv() -> [Tensor<4>; 3] {
        let device = Device::flex();
        std::array::from_fn(|_| {
            Tensor::<4>::random([2, 3, 37, 8], Distribution::Normal(0.0, 1.0), &device)
        })
    }

    /// The formula written out: `softmax(q·kᵀ/√d)·v`, query `i` seeing keys `0..=i` when
    /// `causal`.
    fn formula(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
        let len = q.dims()[2];
        let mut scores = q.matmul(k.swap_dims(2, 3)) * (8f64).powf(-0.5);
        if causal {
            let future = Tensor::<2, Bool>::tril_mask([len, len], 0, &scores.device());
            scores = scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY);
        }
        softmax(scores, 3).matmul(v)
    }

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Chunked attention equals the formula, with and without the causal mask, in one chunk
    /// and in chunks of 5 rows.
    #[test]
    fn chunks_equal_the_formula() {
        let [q, k, v] = random_qkv();
        for causal in [false, true] {
            let expected = formula(q.clone(), k.clone(), v.clone(), causal);
            for budget in [usize::MAX, 2 * 3 * 37 * 5] {
                let (q, k, v) = (q.clone(), k.clone(), v.clone());
                let got = attention_in_chunks(q, k, v, causal, AttentionPrecision::F32, budget);
                let diff = max_difference(got, expected.clone());
                assert!(diff < 1e-5, "causal={causal}, budget {budget}: {diff}");
            }
        }
    }

    /// f16 attention stays near f32: within what rounding q, k, v and the output to f16's 11
    /// significant bits allows (outputs are of order 1).
    #[test]
    fn f16_attention_stays_near_f32() {
        let [q, k, v] = random_qkv();
        for causal in [false, true] {
            let exact = attention(
                q.clone(),
                k.clone(),
                v.clone(),
                causal,
                AttentionPrecision::F32,
            );
            let half = attention(
                q.clone(),
                k.clone(),
                v.clone(),
                causal,
                AttentionPrecision::F16,
            );
            assert_eq!(half.dtype(), DType::F32);
            let diff = max_difference(exact, half);
            assert!(diff > 0.0 && diff < 5e-3, "causal={causal}: {diff}");
        }
    }

    /// A layer computing in f16 attends in f16 on the CPU, and in f32 on a GPU whose kernels
    /// are WGSL (lavapipe, with `.ci/test --native-gpu`).
    #[cfg(all(feature = "wgpu", not(feature = "vulkan")))]
    #[test]
    fn attention_stays_f32_on_a_wgsl_gpu_while_the_layer_goes_f16() {
        let gpu = crate::gpu_device().expect("a GPU through wgpu (lavapipe without one)");
        let precision = |device: &Device| {
            let mut layer = Projection::new(8, 8, false, device);
            layer.compute_in_f16();
            AttentionPrecision::of(&layer)
        };
        assert_eq!(precision(&Device::flex()), AttentionPrecision::F16);
        assert_eq!(precision(&gpu), AttentionPrecision::F32);
    }

    #[test]
    fn segments_of_one_length_form_runs() {
        // Two 2-frame groups of 8 patches, an image of 6, another image of 6.
        let runs = equal_length_runs([0..8, 8..16, 16..22, 22..28]);
        let run = |start, length, count| Run {
            start,
            length,
            count,
        };
        assert_eq!(runs, [run(0, 8, 2), run(16, 6, 2)]);
        assert_eq!(equal_length_runs([]), []);
        // A batch is undone exactly.
        let [q, _, _] = random_qkv();
        let q = q.slice([0..1, 0..3]).squeeze_dim::<3>(0);
        let run = run(5, 10, 3);
        let batch = run.batch(&q);
        assert_eq!(batch.dims(), [3, 3, 10, 8]);
        let diff: f32 = (run.unbatch(batch) - q.slice([0..3, 5..35]))
            .abs()
            .max()
            .into_scalar();
        assert_eq!(diff, 0.0);
    }

    /// The last rows of causal attention, computed after the keys and values of the rows before
    /// them, equal those rows of the whole computation: what a reused prefix relies on.
    #[test]
    fn queries_after_a_past_equal_the_rows_of_the_whole() {
        let [q, k, v] = random_qkv();
        let whole = attention(
            q.clone(),
            k.clone(),
            v.clone(),
            true,
            AttentionPrecision::F32,
        );
        let past = 30;
        let after = attention_in_chunks(
            q.slice([0..2, 0..3, past..37, 0..8]),
            k,
            v,
            true,
            AttentionPrecision::F32,
            2 * 3 * 37 * 2,
        );
        let diff = max_difference(whole.slice([0..2, 0..3, past..37, 0..8]), after);
        assert!(diff < 1e-6, "max difference {diff}");
    }
}
