//! A linear layer whose weight keeps the checkpoint's `[out, in]` layout, so that f32 weights
//! load without a transposition and 4-bit weights keep their blocks of 32 along `in`.

use burn::backend::Dispatch;
use burn::backend::ops::QTensorOps;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::module::linear;
use burn::tensor::{DType, Device, FloatDType, Tensor};

#[derive(Module, Debug)]
pub struct Projection {
    /// `[out, in]`: f32, or Q4 with one scale per 32 values of a row, each row padded to whole
    /// blocks (`[out, in.next_multiple_of(32)]`).
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
    /// Width of the input, without a Q4 weight's padding.
    d_in: usize,
    /// Whether the product is computed in f16 ([`compute_in_f16`](Self::compute_in_f16)).
    in_f16: bool,
}

impl Projection {
    /// A layer to be filled by a checkpoint: nothing is allocated until then.
    pub fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        Self {
            weight: Initializer::Zeros.init([d_out, d_in], device),
            bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
            d_in,
            in_f16: false,
        }
    }

    /// A layer from its weight (`[out, in]` f32, or Q4 padded to whole blocks) and bias, for an
    /// input `d_in` wide.
    pub fn from_tensors(weight: Tensor<2>, bias: Option<Tensor<1>>, d_in: usize) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            d_in,
            in_f16: false,
        }
    }

    /// Multiplies in f16 from now on: inputs and weights in f16 (an f32 weight is converted
    /// once, here; a Q4 weight is dequantized to f16 per call), the output back in the input's
    /// type. Half the memory traffic, and tensor cores where the GPU's compiler uses them.
    pub fn compute_in_f16(&mut self) {
        self.in_f16 = true;
        let half = |t: Tensor<2>| match t.dtype() {
            DType::QFloat(_) => t,
            _ => t.cast(DType::F16),
        };
        self.weight = Param::from_tensor(half(self.weight.val()));
        self.bias = self
            .bias
            .take()
            .map(|b| Param::from_tensor(b.val().cast(DType::F16)));
    }

    /// Whether [`compute_in_f16`](Self::compute_in_f16) was called.
    pub fn computes_in_f16(&self) -> bool {
        self.in_f16
    }

    /// Width of the input.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// `x · Wᵀ + b` over the last axis of `x`. A Q4 weight on a GPU goes through sift's fused
    /// kernel where [`kernels::Q4Kernels`](crate::kernels::Q4Kernels) chooses it (in `x`'s
    /// float type, summed in f32); otherwise it is dequantized
    /// ([`forward_dequantizing`](Self::forward_dequantizing)).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let weight = self.weight.val();
        if matches!(weight.dtype(), DType::QFloat(_))
            && let Some(product) = crate::kernels::fused_q4_matmul(&x, &weight, self.in_f16)
        {
            return match &self.bias {
                Some(bias) => {
                    let bias = bias.val().cast(product.dtype());
                    product + bias.unsqueeze()
                }
                None => product,
            };
        }
        let element_bytes = if self.in_f16 { 2 } else { 4 };
        let values = values_at_once(&x.device(), element_bytes);
        self.forward_dequantizing(x, values)
    }

    /// [`forward`](Self::forward), dequantizing a Q4 weight at most `values` at a time (whole
    /// rows, at least one): each block of rows is dequantized, multiplied and dropped, and the
    /// outputs are joined.
    pub fn forward_dequantizing<const D: usize>(&self, x: Tensor<D>, values: usize) -> Tensor<D> {
        // A Q4 weight becomes f32 (or f16) for this call only (a no-op for others): burn's
        // fused Q4 matmul measured 4.6–12× slower than this at prefill shapes
        // (docs/q4-spike.md).
        let weight = self.weight.val();
        let bias = self.bias.as_ref().map(|b| b.val());
        if self.in_f16 {
            let dtype = x.dtype();
            let half = |w: Tensor<2>| dequantized(w, FloatDType::F16);
            return self
                .multiply(x.cast(DType::F16), weight, bias, values, half)
                .cast(dtype);
        }
        self.multiply(x, weight, bias, values, |w| dequantized(w, FloatDType::F32))
    }

    /// `x · Wᵀ + b`, a Q4 weight dequantized by `dequantize` at most `values` at a time.
    fn multiply<const D: usize>(
        &self,
        x: Tensor<D>,
        weight: Tensor<2>,
        bias: Option<Tensor<1>>,
        values: usize,
        dequantize: impl Fn(Tensor<2>) -> Tensor<2>,
    ) -> Tensor<D> {
        let [d_out, stored_in] = weight.dims();
        let d_in = self.d_in;
        // Rows of a Q4 weight end in padding to whole blocks, dropped once dequantized.
        let unpadded = |w: Tensor<2>| {
            if stored_in == d_in {
                w
            } else {
                let rows = w.dims()[0];
                w.slice([0..rows, 0..d_in])
            }
        };
        let rows = rows_at_once(stored_in, values);
        if !matches!(weight.dtype(), DType::QFloat(_)) || rows >= d_out {
            return linear(x, unpadded(dequantize(weight)).transpose(), bias);
        }
        let parts = (0..d_out)
            .step_by(rows)
            .map(|start| {
                let end = (start + rows).min(d_out);
                let block = dequantize(weight.clone().slice([start..end, 0..stored_in]));
                let bias = bias.clone().map(|b| b.slice(start..end));
                linear(x.clone(), unpadded(block).transpose(), bias)
            })
            .collect();
        Tensor::cat(parts, D - 1)
    }
}

/// A Q4 weight's values in `dtype` (others as they are). burn's own `dequantize` gives the
/// device's default type, f32: an f16 product would then need an f32 copy and a cast.
fn dequantized(weight: Tensor<2>, dtype: FloatDType) -> Tensor<2> {
    match weight.dtype() {
        DType::QFloat(_) => crate::profile::stage("4-bit dequantization", &weight.device(), || {
            Tensor::from_dispatch(Dispatch::dequantize(weight.into_dispatch(), dtype))
        }),
        _ => weight,
    }
}

/// Values of a Q4 weight dequantized at once where the device's binding limit is unknown, and
/// so the least a device must bind: 8 M, 32 MB of f32, within WebGPU's default binding size
/// (the 8B model's MLP weights are 201 MB whole).
const DEQUANTIZE_AT_LEAST: usize = 8 << 20;

/// The most values dequantized at once: 64 M (256 MB of f32), so that every weight of both
/// models is dequantized whole where the device binds it. Whole, an 8B MLP weight multiplies
/// 2.8× faster than in 8 M-value blocks on an H200 (docs/performance.md).
const DEQUANTIZE_AT_MOST: usize = 64 << 20;

/// Values of a Q4 weight dequantized at once on `device`, into elements of `element_bytes`:
/// as many as it binds, within the bounds above.
fn values_at_once(device: &Device, element_bytes: u64) -> usize {
    crate::device::binding_limit(device).map_or(DEQUANTIZE_AT_LEAST, |limit| {
        usize::try_from(limit / element_bytes)
            .unwrap_or(DEQUANTIZE_AT_MOST)
            .clamp(DEQUANTIZE_AT_LEAST, DEQUANTIZE_AT_MOST)
    })
}

/// Rows of a weight `d_in` wide dequantized at once for a budget of `values`.
fn rows_at_once(d_in: usize, values: usize) -> usize {
    (values / d_in.max(1)).max(1)
}

/// Bytes of the largest f32 copy a device must bind for a `[d_out, d_in]` Q4 weight: its
/// blocks on a device that binds no more (one that binds more dequantizes larger blocks).
pub(crate) fn dequantized_bytes(d_out: usize, d_in: usize) -> u64 {
    let stored_in = sift_quant::q4::padded_cols(d_in);
    (rows_at_once(stored_in, DEQUANTIZE_AT_LEAST).min(d_out) * stored_in) as u64 * 4
}
