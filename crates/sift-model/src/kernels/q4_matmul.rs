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

use super::{Q4Kernels, Quad};

/// Outputs per workgroup along each axis: 16 × 16 invocations of 4 × 4 outputs each.
const TILE: u32 = 64;
/// Invocations per workgroup along each axis (256 in all, WebGPU's guaranteed maximum).
const THREADS: u32 = 16;
/// Inputs per step along `K`: one scale per step. Shared memory then holds a `32 × 64` tile of
/// inputs and one of dequantized weights in f32: 16 KiB, what WebGPU guarantees.
const STEP: u32 = 32;

/// Outputs per workgroup along each axis in the wide kernel: 16 × 16 invocations of 8 × 8.
const WIDE_TILE: u32 = 128;
/// Inputs per step along `K` in the wide kernel: a `16 × 128` tile of inputs and one of
/// weights in f32 are again 16 KiB of shared memory.
const WIDE_STEP: u32 = 16;

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
        let dtypes = [
            dtype_to_storage_type(x.dtype),
            dtype_to_storage_type(scales.dtype),
        ];
        let (m, n) = (m as u32, n as u32);
        // The 128-wide tiles run only where chosen until a GPU has measured them
        // (docs/performance.md).
        if super::q4_kernels() == Q4Kernels::Wide {
            q4_matmul_wide_kernel::launch(
                &x.client,
                CubeCount::new_2d(n.div_ceil(WIDE_TILE), m.div_ceil(WIDE_TILE)),
                CubeDim::new_1d(THREADS * THREADS),
                x.clone().into_tensor_arg(),
                words.into_tensor_arg(),
                scales.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                dtypes,
            );
        } else {
            q4_matmul_kernel::launch(
                &x.client,
                CubeCount::new_2d(n.div_ceil(TILE), m.div_ceil(TILE)),
                CubeDim::new_2d(THREADS, THREADS),
                x.clone().into_tensor_arg(),
                words.into_tensor_arg(),
                scales.into_tensor_arg(),
                output.clone().into_tensor_arg(),
                dtypes,
            );
        }
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
            inputs[at] = input_quad::<F>(x, row0 + quad * 4, k0 + kk);
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
                    values.insert(j, nibble_value(packed[j]));
                    packed[j] /= 16u32;
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
    store_four_by_four::<F>(output, &sums, row0 + ty * 4, col0 + tx * 4, m, n);
}

/// Four consecutive rows of `x` from `first_row` at column `gk`, as one quad (zero past `x`'s
/// rows or columns: a partial tile, or the weight's padding along `K`).
#[cube]
fn input_quad<F: Float>(x: &Tensor<F>, first_row: usize, gk: usize) -> Quad {
    let m = x.shape(0);
    let k = x.shape(1);
    let mut value = Quad::broadcast(0.0);
    #[unroll]
    for i in 0..4 {
        let gm = first_row + i;
        if gm < m && gk < k {
            value.insert(i, f32::cast_from(x[gm * k + gk]));
        }
    }
    value
}

/// The low four bits of `word` as a two's-complement nibble, sign-extended from bit 3.
#[cube]
fn nibble_value(word: u32) -> f32 {
    let nibble = word & 15u32;
    f32::cast_from(i32::cast_from(nibble) - i32::cast_from(nibble & 8u32) * 2)
}

/// The next step's inputs and packed weights, read from global memory into registers while
/// the current step multiplies (the wide kernel's prefetch).
#[cube]
fn wide_step_load<F: Float, S: Float>(
    x: &Tensor<F>,
    words: &Tensor<u32>,
    scales: &Tensor<S>,
    s: usize,
    row0: usize,
    col0: usize,
    n: usize,
    inputs: &mut Array<Quad>,
    packed: &mut Array<u32>,
    scale: &mut Array<f32>,
) {
    let step = WIDE_STEP as usize;
    let threads = (THREADS * THREADS) as usize;
    let thread = UNIT_POS as usize;
    let k0 = s * step;
    // Inputs: four consecutive rows at one `k` per quad; consecutive invocations read
    // consecutive `k` of the same rows (16 of them, 64 bytes a row).
    #[unroll]
    for r in 0..2 {
        let at = thread + r * threads;
        let kk = at % step;
        let quad = at / step;
        inputs[r] = input_quad::<F>(x, row0 + quad * 4, k0 + kk);
    }
    // Weights: four consecutive weight rows, the word holding this invocation's two steps of
    // `k` (eight invocations share each row's two words of a step).
    let words_per_row = words.shape(1);
    let scales_per_row = scales.shape(1);
    let quad = thread % 32;
    let word = thread / 128;
    #[unroll]
    for j in 0..4 {
        let gn = col0 + quad * 4 + j;
        packed[j] = 0u32;
        scale[j] = 0.0;
        if gn < n {
            packed[j] = words[gn * words_per_row + s * 2 + word];
            scale[j] = f32::cast_from(scales[gn * scales_per_row + k0 / 32]);
        }
    }
}

/// One workgroup of 256 invocations computes a 128 × 128 tile of the output, each invocation
/// 8 × 8 of it (rows `4·ty..` and `64 + 4·ty..`, columns likewise from `tx`): per input a quarter
/// of the 64-wide kernel's reads of shared memory, and half its reads of global memory per
/// product. Invocations are laid out so that a warp of 32 is 4 columns × 8 rows of them: its
/// reads of a step's inputs and weights are then 8 and 4 consecutive quads, one access of
/// shared memory each. Inputs are stored with their quad index XOR-ed by `k mod 8`, so that
/// eight invocations storing consecutive `k` of the same rows hit distinct banks. The next
/// step's global reads are issued before the current step multiplies.
#[cube(launch)]
fn q4_matmul_wide_kernel<F: Float, S: Float>(
    x: &Tensor<F>,
    words: &Tensor<u32>,
    scales: &Tensor<S>,
    output: &mut Tensor<F>,
    #[define(F, S)] _dtypes: [ElemType; 2],
) {
    let tile = WIDE_TILE as usize;
    let quads = tile / 4;
    let half = quads / 2;
    let step = WIDE_STEP as usize;
    let threads = (THREADS * THREADS) as usize;
    let thread = UNIT_POS as usize;
    let lane = thread % 32;
    let warp = thread / 32;
    let tx = (warp % 4) * 4 + lane % 4;
    let ty = (warp / 4) * 8 + lane / 4;
    let row0 = CUBE_POS_Y as usize * tile;
    let col0 = CUBE_POS_X as usize * tile;
    let m = x.shape(0);
    let n = output.shape(1);
    let steps = words.shape(1) / 2;

    let mut inputs = Shared::<[Quad]>::new_slice(step * quads);
    let mut weights = Shared::<[Quad]>::new_slice(step * quads);
    // Sums of the low and high four rows by the low and high four columns.
    let mut low_low = Array::<Quad>::new(4usize);
    let mut low_high = Array::<Quad>::new(4usize);
    let mut high_low = Array::<Quad>::new(4usize);
    let mut high_high = Array::<Quad>::new(4usize);
    #[unroll]
    for i in 0..4 {
        low_low[i] = Quad::broadcast(0.0);
        low_high[i] = Quad::broadcast(0.0);
        high_low[i] = Quad::broadcast(0.0);
        high_high[i] = Quad::broadcast(0.0);
    }
    let mut next_inputs = Array::<Quad>::new(2usize);
    let mut packed = Array::<u32>::new(4usize);
    let mut scale = Array::<f32>::new(4usize);
    wide_step_load::<F, S>(
        x,
        words,
        scales,
        0usize,
        row0,
        col0,
        n,
        &mut next_inputs,
        &mut packed,
        &mut scale,
    );
    // This invocation's two steps of `k` within the word it dequantizes.
    let weight_quad = thread % 32;
    let pair = thread / 32;
    let shift = u32::cast_from((pair % 4) * 8);
    for s in 0..steps {
        #[unroll]
        for r in 0..2 {
            let at = thread + r * threads;
            let kk = at % step;
            inputs[kk * quads + ((at / step) ^ (kk % 8))] = next_inputs[r];
        }
        let mut at_shift = shift;
        #[unroll]
        for v in 0..2 {
            let mut values: Quad = Quad::broadcast(0.0);
            #[unroll]
            for j in 0..4 {
                values.insert(j, nibble_value(packed[j] >> at_shift) * scale[j]);
            }
            weights[(pair * 2 + v) * quads + weight_quad] = values;
            at_shift += 4u32;
        }
        sync_cube();
        if s + 1 < steps {
            wide_step_load::<F, S>(
                x,
                words,
                scales,
                s + 1,
                row0,
                col0,
                n,
                &mut next_inputs,
                &mut packed,
                &mut scale,
            );
        }
        // The XOR of the inputs' stores, `k mod 8`, counted at run time alongside the unrolled
        // `k` (the driver's compiler folds it).
        let mut swizzle = 0usize;
        #[unroll]
        for kk in 0..step {
            let a0: Quad = inputs[kk * quads + (ty ^ swizzle)];
            let a1: Quad = inputs[kk * quads + half + (ty ^ swizzle)];
            let b0: Quad = weights[kk * quads + tx];
            let b1: Quad = weights[kk * quads + half + tx];
            swizzle = (swizzle + 1) % 8;
            #[unroll]
            for i in 0..4 {
                let low: Quad = Quad::broadcast(a0.extract(i));
                let high: Quad = Quad::broadcast(a1.extract(i));
                low_low[i] += low * b0;
                low_high[i] += low * b1;
                high_low[i] += high * b0;
                high_high[i] += high * b1;
            }
        }
        sync_cube();
    }
    let (rows, cols) = (row0 + ty * 4, col0 + tx * 4);
    let half_tile = tile / 2;
    store_four_by_four::<F>(output, &low_low, rows, cols, m, n);
    store_four_by_four::<F>(output, &low_high, rows, cols + half_tile, m, n);
    store_four_by_four::<F>(output, &high_low, rows + half_tile, cols, m, n);
    store_four_by_four::<F>(output, &high_high, rows + half_tile, cols + half_tile, m, n);
}

/// Four rows from `row` by four columns from `col` of the output, from `sums` (one row each),
/// those inside the output.
#[cube]
fn store_four_by_four<F: Float>(
    output: &mut Tensor<F>,
    sums: &Array<Quad>,
    row: usize,
    col: usize,
    m: usize,
    n: usize,
) {
    #[unroll]
    for i in 0..4 {
        let gm = row + i;
        #[unroll]
        for j in 0..4 {
            let gn = col + j;
            if gm < m && gn < n {
                output[gm * n + gn] = F::cast_from(sums[i].extract(j));
            }
        }
    }
}
