//! sift's own GPU kernels, written in CubeCL (what burn's kernels are written in), so that one
//! kernel serves WGSL in browsers and WGSL or SPIR-V natively. Each replaces a chain of burn
//! ops behind the same function, where the device runs CubeCL kernels; on the CPU backend the
//! chain stays.

#[cfg(any(feature = "wgpu", feature = "webgpu"))]
mod flash_attention;
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
mod q4_matmul;

/// Four f32 values, read from and written to shared memory in one access: both kernels stage
/// their tiles four values to an element.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
type Quad = cubecl::prelude::Vector<f32, cubecl::prelude::Const<4>>;

use std::sync::Mutex;

use burn::tensor::Tensor;

/// How a linear layer with a 4-bit weight multiplies on GPUs. `sift bench --q4-kernel`
/// chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Q4Kernels {
    /// sift's fused kernel (packed weights dequantized in shared memory, summed in f32) in
    /// 64 × 64 tiles where the layer multiplies in f32; where it multiplies in f16, burn's
    /// dequantize to f16 and its f16 matmul, which measured faster (docs/performance.md).
    #[default]
    Measured,
    /// sift's fused kernel in 64 × 64 tiles for every layer.
    Fused,
    /// sift's fused kernel in 128 × 128 tiles for every layer (8 × 8 outputs per invocation;
    /// not yet measured on a GPU, so not yet chosen by `Measured`).
    Wide,
    /// burn's dequantize, then burn's matmul, for every layer.
    Dequantize,
}

static Q4_KERNELS: Mutex<Q4Kernels> = Mutex::new(Q4Kernels::Measured);

/// Sets how this process multiplies by 4-bit weights on GPUs.
pub fn use_q4_kernels(kernels: Q4Kernels) {
    *Q4_KERNELS.lock().unwrap_or_else(|e| e.into_inner()) = kernels;
}

fn q4_kernels() -> Q4Kernels {
    *Q4_KERNELS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `x · Wᵀ` over the last axis of `x` for a Q4 weight `[N, Kp]` (rows padded to whole blocks,
/// `x`'s width at most `Kp`), in `x`'s float type, through the fused kernel, for a layer that
/// multiplies in f16 if `in_f16`; `None` where the kernel does not run (the CPU backend, or
/// not chosen).
pub(crate) fn fused_q4_matmul<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    in_f16: bool,
) -> Option<Tensor<D>> {
    #[cfg(any(feature = "wgpu", feature = "webgpu"))]
    {
        use burn::backend::Dispatch;
        use q4_matmul::Q4MatmulOps;

        let chosen = match q4_kernels() {
            Q4Kernels::Measured => !in_f16,
            Q4Kernels::Fused | Q4Kernels::Wide => true,
            Q4Kernels::Dequantize => false,
        };
        if !chosen || !on_gpu(&x.device()) {
            return None;
        }
        let dims = x.dims();
        let width = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let flat: Tensor<2> = x.clone().reshape([rows, width]);
        let product = Tensor::<2>::from_dispatch(Dispatch::q4_matmul(
            flat.into_dispatch(),
            weight.clone().into_dispatch(),
        ));
        let mut shape = dims;
        shape[D - 1] = weight.dims()[0];
        Some(product.reshape(shape))
    }
    #[cfg(not(any(feature = "wgpu", feature = "webgpu")))]
    {
        let _ = (x, weight, in_f16, q4_kernels());
        None
    }
}

/// Whether `device` runs CubeCL kernels (natively through wgpu, or WebGPU in a browser).
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
fn on_gpu(device: &burn::tensor::Device) -> bool {
    matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_))
}

/// Which attention sift's flash kernel computes on GPUs (`sift bench --flash-attention`);
/// the rest goes through `attention`'s other kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FlashAttention {
    /// None.
    Off,
    /// Attention without a mask (the vision towers'), where it measured 1.5–2.2× faster than
    /// burn's kernels (docs/performance.md).
    Unmasked,
    /// Also the decoder's causal attention, grouped query heads read from their key head: the
    /// 2B's pairs 1.01–1.07× faster than with the decoder's attention through the op or the
    /// formula measured per class (H100, WGSL; docs/performance.md).
    #[default]
    All,
}

static FLASH_ATTENTION: Mutex<FlashAttention> = Mutex::new(FlashAttention::All);

/// Sets which attention this process computes through sift's flash kernel on GPUs.
pub fn use_flash_attention(flash: FlashAttention) {
    *FLASH_ATTENTION.lock().unwrap_or_else(|e| e.into_inner()) = flash;
}

fn flash_for(causal: bool) -> bool {
    match *FLASH_ATTENTION.lock().unwrap_or_else(|e| e.into_inner()) {
        FlashAttention::Off => false,
        FlashAttention::Unmasked => !causal,
        FlashAttention::All => true,
    }
}

/// The widest head the flash kernel takes: its registers hold a query row and its output.
const FLASH_HEAD_DIM: usize = 128;

/// `softmax(q·kᵀ · scale [+ causal mask]) · v` for `q [B, H, L, D]`, `k`, `v` `[B, G, S, D]`
/// with `G` dividing `H` (grouped-query attention: query head `h` reads key head
/// `h / (H / G)`) and, if `causal`, `S ≥ L` (the queries are the last `L` positions of the
/// keys), in `q`'s float type, computed in f32, through sift's flash kernel; `None` where it
/// does not run (the CPU backend, heads wider than 128 or not a multiple of 4 wide, or not
/// chosen by [`use_flash_attention`]).
pub fn flash_attention(
    q: &Tensor<4>,
    k: &Tensor<4>,
    v: &Tensor<4>,
    scale: f32,
    causal: bool,
) -> Option<Tensor<4>> {
    let [_, heads, queries, head_dim] = q.dims();
    let [_, key_heads, keys, _] = k.dims();
    debug_assert!(key_heads > 0 && heads.is_multiple_of(key_heads));
    debug_assert!(!causal || keys >= queries);
    if !flash_for(causal) || head_dim > FLASH_HEAD_DIM || !head_dim.is_multiple_of(4) {
        return None;
    }
    #[cfg(any(feature = "wgpu", feature = "webgpu"))]
    {
        use burn::backend::Dispatch;
        use flash_attention::FlashAttentionOps;

        if !on_gpu(&q.device()) {
            return None;
        }
        Some(Tensor::from_dispatch(Dispatch::flash_attention(
            q.clone().into_dispatch(),
            k.clone().into_dispatch(),
            v.clone().into_dispatch(),
            scale,
            causal,
        )))
    }
    #[cfg(not(any(feature = "wgpu", feature = "webgpu")))]
    {
        let _ = (v, scale);
        None
    }
}
