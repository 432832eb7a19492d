//! A linear layer whose weight keeps the checkpoint's `[out, in]` layout, so that f32 weights
//! load without a transposition and 4-bit weights keep their blocks of 32 along `in`.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct Projection {
    /// `[out, in]`: f32, or Q4 with one scale per 32 values of a row.
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Projection {
    /// A layer to be filled by a checkpoint: nothing is allocated until then.
    pub fn new(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Self {
        Self {
            weight: Initializer::Zeros.init([d_out, d_in], device),
            bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
        }
    }

    /// Width of the input.
    pub fn d_in(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `x · Wᵀ + b` over the last axis of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // A Q4 weight becomes f32 for this call only (a no-op for f32): burn's fused Q4 matmul
        // measured 4.6–12× slower than this at prefill shapes (docs/q4-spike.md).
        let weight = self.weight.val().dequantize().transpose();
        burn::tensor::module::linear(x, weight, self.bias.as_ref().map(|b| b.val()))
    }
}
