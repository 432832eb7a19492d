//! `softmax(q·kᵀ · scale [+ causal mask]) · v` without a score matrix: each invocation keeps
//! one query's row, its output and its softmax's running maximum and sum in registers, and the
//! workgroup walks the keys in blocks staged in shared memory (FlashAttention's online
//! softmax). For the vision tower's attention (no mask, head_dim up to 128), where the
//! written-out formula keeps a `[heads, L, L]` score matrix: 604 MB per layer for one image,
//! cut into 64 MB chunks in browsers; and for the decoder's (causal, after a past, grouped
//! query heads read from their key head without a repeated copy), where the blocks past a
//! workgroup's last visible key are never read.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Backend, backend_extension, tensor::FloatTensor};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::Quad;

/// Queries per workgroup, one per invocation.
const QUERIES: u32 = 64;

/// Keys staged in shared memory at once: their keys and values take `2 · 4 · keys · head_dim`
/// bytes, 16 KiB at head_dim 64 and 128 (WebGPU guarantees 16 KiB).
fn keys_per_block(head_dim: usize) -> u32 {
    if head_dim <= 64 { 32 } else { 16 }
}

/// Attention without a mask as a backend operation (lazily recorded natively, as burn's fusion
/// records every op; direct in browsers).
#[backend_extension(Cube, Fusion: cfg(feature = "wgpu"))]
pub trait FlashAttentionOps: Backend {
    /// `q [B, H, L, D]`, `k`, `v` `[B, G, S, D]` with `G` dividing `H` (query head `h` reads
    /// key head `h / (H / G)`) and, if `causal`, `S ≥ L` (query `i` sees keys
    /// `0..=S - L + i`): `[B, H, L, D]` in `q`'s float type, computed in f32.
    #[fusion(dtype = q, shape = q)]
    fn flash_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        causal: bool,
    ) -> FloatTensor<Self>;
}

impl FlashAttentionOps for CubeBackend {
    fn flash_attention(
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        scale: f32,
        causal: bool,
    ) -> CubeTensor {
        let [q, k, v] = [q, k, v].map(into_contiguous);
        let [batch, heads, queries, head_dim] = q.meta.shape().dims::<4>();
        let output = empty_device_dtype(
            q.client.clone(),
            q.device.clone(),
            Shape::new([batch, heads, queries, head_dim]),
            q.dtype,
        );
        let block = keys_per_block(head_dim);
        let count = CubeCount::new_2d((queries as u32).div_ceil(QUERIES), (batch * heads) as u32);
        flash_attention_kernel::launch(
            &q.client,
            count,
            CubeDim::new_1d(QUERIES),
            q.clone().into_tensor_arg(),
            k.into_tensor_arg(),
            v.into_tensor_arg(),
            output.clone().into_tensor_arg(),
            scale,
            head_dim,
            block as usize,
            causal,
            dtype_to_storage_type(q.dtype),
        );
        output
    }
}

#[cube(launch)]
// `div_ceil` is not among the methods CubeCL translates.
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
fn flash_attention_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    output: &mut Tensor<F>,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] block: usize,
    #[comptime] causal: bool,
    #[define(F)] _dtype: ElemType,
) {
    let quads = head_dim / 4;
    let queries = q.shape(2);
    let keys = k.shape(2);
    // Workgroup row `group` is query head `group % heads` of batch `group / heads`.
    let heads = q.shape(1);
    let key_heads = k.shape(1);
    let group = CUBE_POS_Y as usize;
    let key_group = (group / heads) * key_heads + (group % heads) / (heads / key_heads);
    let threads = CUBE_DIM_X as usize;
    let thread = UNIT_POS_X as usize;
    let first_query = CUBE_POS_X as usize * threads;
    let query = first_query + thread;
    let q_base = (group * queries + query) * head_dim;
    let kv_base = key_group * keys * head_dim;
    let active = query < queries;
    // Causal: query `i` sees keys up to `keys - queries + i`, so the workgroup needs none past
    // its last query's.
    let mut last_query = first_query + threads - 1;
    if last_query >= queries {
        last_query = queries - 1;
    }
    let mut seen_keys = keys;
    if causal {
        seen_keys = keys - queries + last_query + 1;
    }

    // The query's row (scaled) and its output, four dimensions to an element.
    let mut row = Array::<Quad>::new(quads);
    let mut out = Array::<Quad>::new(quads);
    #[unroll]
    for d in 0..quads {
        let mut value = Quad::broadcast(0.0);
        if active {
            #[unroll]
            for e in 0..4 {
                value.insert(e, f32::cast_from(q[q_base + d * 4 + e]) * scale);
            }
        }
        row[d] = value;
        out[d] = Quad::broadcast(0.0);
    }
    let mut scores = Array::<f32>::new(block);
    let mut running_max = f32::new(-3.0e38);
    let mut running_sum = 0.0f32;

    let mut key_block = Shared::<[Quad]>::new_slice(block * quads);
    let mut value_block = Shared::<[Quad]>::new_slice(block * quads);
    let blocks = (seen_keys + block - 1) / block;
    for b in 0..blocks {
        let first = b * block;
        // Stage the block's keys and values, four dimensions per element.
        let mut at = thread;
        while at < block * quads {
            let key = first + at / quads;
            let mut kq = Quad::broadcast(0.0);
            let mut vq = Quad::broadcast(0.0);
            if key < keys {
                let base = kv_base + first * head_dim + at * 4;
                #[unroll]
                for e in 0..4 {
                    kq.insert(e, f32::cast_from(k[base + e]));
                    vq.insert(e, f32::cast_from(v[base + e]));
                }
            }
            key_block[at] = kq;
            value_block[at] = vq;
            at += threads;
        }
        sync_cube();
        let mut block_max = f32::new(-3.0e38);
        #[unroll]
        for j in 0..block {
            let mut partial = Quad::broadcast(0.0);
            #[unroll]
            for d in 0..quads {
                partial += row[d] * key_block[j * quads + d];
            }
            let mut s = partial.extract(0usize)
                + partial.extract(1usize)
                + partial.extract(2usize)
                + partial.extract(3usize);
            // Keys past the end, or after the query's own position, weigh nothing. Key 0 is
            // seen by every query, so the first block sets a real maximum and the masked keys'
            // weights are 0.
            if first + j >= keys {
                s = f32::new(-3.0e38);
            }
            if causal && first + j > keys - queries + query {
                s = f32::new(-3.0e38);
            }
            scores[j] = s;
            if s > block_max {
                block_max = s;
            }
        }
        let mut new_max = running_max;
        if block_max > new_max {
            new_max = block_max;
        }
        let correction = (running_max - new_max).exp();
        running_sum *= correction;
        let corrections = Quad::broadcast(correction);
        #[unroll]
        for d in 0..quads {
            out[d] *= corrections;
        }
        #[unroll]
        for j in 0..block {
            let p = (scores[j] - new_max).exp();
            running_sum += p;
            let weight = Quad::broadcast(p);
            #[unroll]
            for d in 0..quads {
                out[d] += weight * value_block[j * quads + d];
            }
        }
        running_max = new_max;
        sync_cube();
    }
    if active {
        let total = Quad::broadcast(running_sum);
        #[unroll]
        for d in 0..quads {
            let result = out[d] / total;
            #[unroll]
            for e in 0..4 {
                output[q_base + d * 4 + e] = F::cast_from(result.extract(e));
            }
        }
    }
}
