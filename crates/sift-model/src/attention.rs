//! Scaled dot-product attention, shared by the vision tower and the text decoder.
//!
//! Queries are processed in chunks so that the score matrix never exceeds a fixed budget: a full
//! `[heads, L, L]` matrix is 3.3 GB in f32 for one 1800-token image (7200 patches, 16 heads).
//! Each row's softmax still spans every key, so chunking changes no result.

use burn::tensor::activation::softmax;
use burn::tensor::module::attention as fused_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

/// Score-matrix elements computed at once: 64 MB in f32, half of WebGPU's default
/// `maxStorageBufferBindingSize`, which keeps one image pair of the 4-bit 2B model within
/// 1.6 GB of GPU memory (docs/quantization.md).
const SCORE_BUDGET: usize = 16 << 20;

/// `softmax(q·kᵀ / √d [+ causal mask]) · v` for `q`, `k`, `v` of shape `[heads, len, head_dim]`.
/// With `causal`, query `i` sees keys `0..=i` (the queries and keys are the same positions).
pub fn attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, causal: bool) -> Tensor<3> {
    attention_in_chunks(q, k, v, causal.then_some(0), SCORE_BUDGET)
}

/// Causal attention of queries that come after `k`'s first `past` positions: `q` is
/// `[heads, len, head_dim]` at positions `past..past + len`, `k` and `v` cover positions
/// `0..past + len`, and query `i` sees keys `0..=past + i`.
pub fn attention_after(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, past: usize) -> Tensor<3> {
    attention_in_chunks(q, k, v, Some(past), SCORE_BUDGET)
}

/// `causal_offset`: `Some(p)` when query row `r` is key position `p + r` and sees no key after
/// it; `None` when every query sees every key.
fn attention_in_chunks(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    causal_offset: Option<usize>,
    budget: usize,
) -> Tensor<3> {
    let [heads, len, head_dim] = q.dims();
    let keys = k.dims()[1];
    let scale = (head_dim as f64).powf(-0.5);
    let keys_t = k.clone().swap_dims(1, 2);
    let rows = (budget / (heads * keys).max(1)).clamp(1, len.max(1));
    let device = q.device();
    let chunks: Vec<Tensor<3>> = (0..len)
        .step_by(rows)
        .map(|start| {
            let end = (start + rows).min(len);
            let q = q.clone().slice([0..heads, start..end, 0..head_dim]);
            let Some(offset) = causal_offset else {
                // Every query sees every key: burn's attention, which on native GPUs picks a
                // flash kernel (the score matrix never written) where one is faster.
                let options = AttentionModuleOptions {
                    scale: Some(scale),
                    softcap: None,
                    is_causal: false,
                };
                let [q, k, v] = [q, k.clone(), v.clone()].map(|t| t.unsqueeze::<4>());
                return fused_attention(q, k, v, None, None, options).squeeze_dim(0);
            };
            // Row r of the chunk is key position offset + start + r: it must not see keys
            // after it.
            let future =
                Tensor::<2, Bool>::tril_mask([end - start, keys], (offset + start) as i64, &device);
            let scores = (q.matmul(keys_t.clone()) * scale)
                .mask_fill(future.unsqueeze::<3>(), f32::NEG_INFINITY);
            softmax(scores, 2).matmul(v.clone())
        })
        .collect();
    Tensor::cat(chunks, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// Queries, keys and values of 3 heads, 37 positions and 8 dimensions.
    fn random_qkv() -> [Tensor<3>; 3] {
        let device = Device::flex();
        std::array::from_fn(|_| {
            Tensor::<3>::random([3, 37, 8], Distribution::Normal(0.0, 1.0), &device)
        })
    }

    /// Chunked attention equals one-shot attention, with and without the causal mask.
    #[test]
    fn chunks_change_nothing() {
        let [q, k, v] = random_qkv();
        for causal in [None, Some(0)] {
            let whole = attention_in_chunks(q.clone(), k.clone(), v.clone(), causal, usize::MAX);
            let chunked = attention_in_chunks(q.clone(), k.clone(), v.clone(), causal, 3 * 37 * 5);
            let diff: f32 = (whole.clone() - chunked).abs().max().into_scalar();
            assert!(diff < 1e-6, "causal={causal:?}: max difference {diff}");
            if causal.is_some() {
                // The first query sees only the first key: its output is v[.., 0, ..].
                let first = whole.slice([0..3, 0..1, 0..8]);
                let v0 = v.clone().slice([0..3, 0..1, 0..8]);
                let diff: f32 = (first - v0).abs().max().into_scalar();
                assert!(diff < 1e-6, "the causal mask leaks: {diff}");
            }
        }
    }

    /// Attention without a mask (burn's, possibly fused) equals the formula written out.
    #[test]
    fn unmasked_attention_equals_the_formula() {
        let [q, k, v] = random_qkv();
        let scores = q.clone().matmul(k.clone().swap_dims(1, 2)) * (8f64).powf(-0.5);
        let expected = softmax(scores, 2).matmul(v.clone());
        let diff: f32 = (attention(q, k, v, false) - expected)
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    /// The last rows of causal attention, computed after the keys and values of the rows before
    /// them, equal those rows of the whole computation: what a reused prefix relies on.
    #[test]
    fn queries_after_a_past_equal_the_rows_of_the_whole() {
        let [q, k, v] = random_qkv();
        let whole = attention(q.clone(), k.clone(), v.clone(), true);
        let past = 30;
        let after = attention_in_chunks(
            q.slice([0..3, past..37, 0..8]),
            k,
            v,
            Some(past),
            3 * 37 * 2,
        );
        let diff: f32 = (whole.slice([0..3, past..37, 0..8]) - after)
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-6, "max difference {diff}");
    }
}
