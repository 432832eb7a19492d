//! `x · Wᵀ` for a 4-bit weight `W` in one kernel: each workgroup reads its tile of packed
//! values and scales, dequantizes it into shared memory and multiplies, so no dequantized copy
//! of the weight is ever written to GPU memory. One CubeCL kernel, compiled to WGSL in
//! browsers and to WGSL or SPIR-V natively.
//!
//! Layout (burn's Q4 tensors as sift uploads them, `quantized::q4_tensor_data`): the weight
//! `[N, Kp]` is stored as `[N, Kp / 8]` little-endian `u32` words, value `j` of a word in bits
//! `4j..4j + 4` as a two's-complement nibble, and `[N, Kp / 32]` scales (f16 or f32). `Kp` is
//! the input width padded to whole blocks of 32; the padding's values are zero.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Backend, backend_extension, tensor::FloatTensor, tensor::QuantizedTensor};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::Quad;

/// Outputs per workgroup along each axis: 16 × 16 invocations of 4 × 4 outputs each.
const TILE: u32 = 64;
/// Invocations per workgroup along each axis (256 in all, WebGPU's guaranteed maximum).
const THREADS: u32 = 16;
/// Inputs per step along `K`: one scale per step. Shared memory then holds a `32 × 64` tile of
/// inputs and one of dequantized weights in f32: 16 KiB, what WebGPU guarantees.
const STEP: u32 = 32;

/// The output shape of `x · Wᵀ`: `x`'s rows, `W`'s rows (what burn's fusion records).
#[cfg(feature = "wgpu")]
pub fn q4_matmul_shape(x: &Shape, weight: &Shape) -> Shape {
    Shape::new([x[0], weight[0]])
}

/// The fused 4-bit product as a backend operation: natively with burn's fusion (the op is
/// recorded lazily, as every other op), in browsers on burn's CubeCL backend directly.
#[backend_extension(Cube, Fusion: cfg(feature = "wgpu"))]
pub trait Q4MatmulOps: Backend {
    /// `x [M, K] · Wᵀ` for a Q4 weight `W [N, Kp]` (`K ≤ Kp`), in `x`'s float type, computed
    /// in f32.
    #[fusion(dtype = x, shape = q4_matmul_shape(x, weight))]
    fn q4_matmul(x: FloatTensor<Self>, weight: QuantizedTensor<Self>) -> FloatTensor<Self>;
}

impl Q4MatmulOps for CubeBackend {
    fn q4_matmul(x: CubeTensor, weight: CubeTensor) -> CubeTensor {
        let x = into_contiguous(x);
        let [m, _] = x.meta.shape().dims::<2>();
        let [n, _] = weight.meta.shape().dims::<2>();
        let (words, scales) = weight
            .quantized_handles()
            .expect("q4_matmul: the weight is quantized");
        let output = empty_device_dtype(
            x.client.clone(),
            x.device.clone(),
            Shape::new([m, n]),
            x.dtype,
        );
        let count = CubeCount::new_2d((n as u32).div_ceil(TILE), (m as u32).div_ceil(TILE));
        let dtypes = [
            dtype_to_storage_type(x.dtype),
            dtype_to_storage_type(scales.dtype),
        ];
        q4_matmul_kernel::launch(
            &x.client,
            count,
            CubeDim::new_2d(THREADS, THREADS),
            x.clone().into_tensor_arg(),
            words.into_tensor_arg(),
            scales.into_tensor_arg(),
            output.clone().into_tensor_arg(),
            dtypes,
        );
        output
    }
}

/// One workgroup computes a 64 × 64 tile of the output: per step of 32 inputs along `K` it
/// stages the inputs as `[k][m]` and the dequantized weights as `[k][n]` in shared memory,
/// four values to an element, then each invocation multiplies four consecutive rows by four
/// consecutive columns: two 16-byte reads of shared memory per 16 multiply-adds, summed in f32.
#[cube(launch)]
fn q4_matmul_kernel<F: Float, S: Float>(
    x: &Tensor<F>,
    words: &Tensor<u32>,
    scales: &Tensor<S>,
    output: &mut Tensor<F>,
    #[define(F, S)] _dtypes: [ElemType; 2],
) {
    let tile = TILE as usize;
    let quads = tile / 4;
    let step = STEP as usize;
    let threads = (THREADS * THREADS) as usize;
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let thread = ty * (THREADS as usize) + tx;
    let row0 = CUBE_POS_Y as usize * tile;
    let col0 = CUBE_POS_X as usize * tile;

    let m = x.shape(0);
    let k = x.shape(1);
    let n = output.shape(1);
    let words_per_row = words.shape(1);
    let scales_per_row = scales.shape(1);
    let words_per_step = step / 8;

    let mut inputs = Shared::<[Quad]>::new_slice(step * quads);
    let mut weights = Shared::<[Quad]>::new_slice(step * quads);
    let mut sums = Array::<Quad>::new(4usize);
    #[unroll]
    for i in 0..4 {
        sums[i] = Quad::broadcast(0.0);
    }

    let steps = words_per_row / words_per_step;
    for s in 0..steps {
        let k0 = s * step;
        // Inputs: four consecutive rows at one `k` per element; consecutive invocations take
        // consecutive row quads, so that their stores hit distinct banks.
        #[unroll]
        for r in 0..step * quads / threads {
            let at = thread + r * threads;
            let quad = at % quads;
            let kk = at / quads;
            let gk = k0 + kk;
            let mut value = Quad::broadcast(0.0);
            #[unroll]
            for i in 0..4 {
                let gm = row0 + quad * 4 + i;
                if gm < m && gk < k {
                    value.insert(i, f32::cast_from(x[gm * k + gk]));
                }
            }
            inputs[at] = value;
        }
        // Weights: four consecutive weight rows, one word (8 values along `K`) of each, per
        // invocation of the first `quads · words_per_step`.
        if thread < quads * words_per_step {
            let quad = thread % quads;
            let w = thread / quads;
            let mut packed = Array::<u32>::new(4usize);
            let mut scale = Quad::broadcast(0.0);
            #[unroll]
            for j in 0..4 {
                let gn = col0 + quad * 4 + j;
                packed[j] = 0u32;
                if gn < n {
                    packed[j] = words[gn * words_per_row + s * words_per_step + w];
                    scale.insert(j, f32::cast_from(scales[gn * scales_per_row + k0 / 32]));
                }
            }
            #[unroll]
            for v in 0..8usize {
                let mut values = Quad::broadcast(0.0);
                #[unroll]
                for j in 0..4 {
                    // A two's-complement nibble, sign-extended from bit 3.
                    let nibble = packed[j] & 15u32;
                    packed[j] /= 16u32;
                    let signed = i32::cast_from(nibble) - i32::cast_from(nibble & 8u32) * 2;
                    values.insert(j, f32::cast_from(signed));
                }
                weights[(w * 8 + v) * quads + quad] = values * scale;
            }
        }
        sync_cube();
        #[unroll]
        for kk in 0..step {
            let a = inputs[kk * quads + ty];
            let b = weights[kk * quads + tx];
            #[unroll]
            for i in 0..4 {
                sums[i] += Quad::broadcast(a.extract(i)) * b;
            }
        }
        sync_cube();
    }
    #[unroll]
    for i in 0..4 {
        let gm = row0 + ty * 4 + i;
        #[unroll]
        for j in 0..4 {
            let gn = col0 + tx * 4 + j;
            if gm < m && gn < n {
                output[gm * n + gn] = F::cast_from(sums[i].extract(j));
            }
        }
    }
}
