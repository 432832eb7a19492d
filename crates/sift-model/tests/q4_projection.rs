//! The Q4 projection (weight uploaded in burn's Q4 layout; on GPUs multiplied by sift's fused
//! 4-bit kernel where the layer multiplies in f32, and dequantized on the device, whole or in
//! blocks of rows, then a matmul) against the f32 matmul of the same weight dequantized on the host by sift-quant,
//! at decode and prefill row counts; and, where the device computes in f16, both in f16 (the Q4
//! weight dequantized straight to f16): on flex, on wgpu (lavapipe: `.ci/test --native-gpu`), and in a browser on WebGPU
//! (`wasm-bindgen-test`, from `web/worker/tests/q4_projection.rs`, which includes this file so
//! that it builds with the worker's dependencies; see the README's test section).

use burn::tensor::quantization::ScaleDtype;
use burn::tensor::{DType, TensorData};
use sift_model::kernels::{Q4Kernels, use_q4_kernels};
use sift_model::{Device, Projection, Tensor, q4_tensor_data};
use sift_quant::q4;

/// A deterministic stand-in for trained weights: per-row scales and a few outlier columns.
fn weights(rows: usize, cols: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..rows * cols)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let uniform = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            let (row, col) = (i / cols, i % cols);
            let outlier = if col % 61 == 3 { 8.0 } else { 1.0 };
            uniform * 0.02 * (1.0 + (row % 7) as f32) * outlier
        })
        .collect()
}

async fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data_async()
        .await
        .unwrap()
        .try_to_vec::<f32>()
        .unwrap()
}

/// One comparison: the input width, the scale type, the precision of the products, the row
/// count, the largest difference and the largest output.
type Comparison = (usize, ScaleDtype, DType, usize, f32, f32);

/// Compares at inputs of whole blocks (256) and of rows padded to whole blocks (272), per scale
/// type the device reads and per row count.
async fn compare_q4_projection(device: &Device) -> Vec<Comparison> {
    let mut results = Vec::new();
    for d_in in [256, 272] {
        results.extend(compare_at_width(device, d_in).await);
    }
    results
}

async fn compare_at_width(device: &Device, d_in: usize) -> Vec<Comparison> {
    // Two 128-wide tiles of outputs, the second partly outside.
    let d_out = 200;
    let q = q4::quantize(&weights(d_out, d_in), d_out, d_in);
    let bias: Vec<f32> = (0..d_out).map(|i| i as f32 * 0.01 - 0.3).collect();
    let layer = |data: TensorData| {
        let bias = Tensor::from_data(TensorData::new(bias.clone(), [d_out]), device);
        Projection::from_tensors(Tensor::from_data(data, device), Some(bias), d_in)
    };
    let f32_layer = layer(TensorData::new(q.dequantize(), [d_out, d_in]));
    let mut scale_types = vec![ScaleDtype::F32];
    let mut precisions = vec![DType::F32];
    if device.supports_dtype(DType::F16) {
        scale_types.push(ScaleDtype::F16);
        precisions.push(DType::F16);
    }
    let mut results = Vec::new();
    for (scales, precision, m) in scale_types.into_iter().flat_map(|s| {
        precisions
            .clone()
            .into_iter()
            .flat_map(move |p| [1, 7, 64, 1000, 2048].map(|m| (s, p, m)))
    }) {
        let mut q4_layer = layer(q4_tensor_data(&q, scales));
        let mut reference = f32_layer.clone();
        if precision == DType::F16 {
            q4_layer.compute_in_f16();
            reference.compute_in_f16();
        }
        let x: Vec<f32> = weights(m, d_in).iter().map(|v| v * 10.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [m, d_in]), device);
        let want = values(reference.forward(x.clone())).await;
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        // Whole (the kernel chosen by shape, then the fused kernel's 128-wide tiles forced),
        // and dequantized 20 rows at a time (the last block short).
        let whole = values(q4_layer.forward(x.clone())).await;
        use_q4_kernels(Q4Kernels::Wide);
        let wide = values(q4_layer.forward(x.clone())).await;
        use_q4_kernels(Q4Kernels::default());
        let in_blocks = values(q4_layer.forward_dequantizing(x, 20 * d_in)).await;
        let worst = [whole, wide, in_blocks]
            .iter()
            .flat_map(|got| got.iter().zip(&want))
            .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        results.push((d_in, scales, precision, m, worst, scale));
    }
    results
}

/// The same weight either way (in f16, the same f16 values: a Q4 value times its f16 scale is
/// exact in f32 and rounds once), so within f32 rounding for f32 products; f16 products are
/// rounded to f16, and two kernels may round one output differently: within two f16 steps
/// (2⁻¹⁰ relative) of the largest output. A wrong weight misses by the outputs' own size.
/// Returns which scale types, precisions and row counts ran, for the log.
fn check(results: &[Comparison]) -> String {
    for &(d_in, scales, precision, m, worst, scale) in results {
        let bound = match precision {
            DType::F16 => scale / 1024.0,
            _ => scale * 1e-6,
        };
        assert!(
            scale > 0.0 && worst <= bound,
            "{d_in} inputs, {scales:?} scales, {precision:?} products, M = {m}: the Q4 \
             projection differs from dequantize-then-multiply by {worst} (outputs up to {scale})"
        );
    }
    // f16 scales and products run only where the device computes in f16.
    format!(
        "compared: {:?}",
        results
            .iter()
            .map(|r| (r.0, r.1, r.2, r.3))
            .collect::<Vec<_>>()
    )
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::*;

    #[cfg(feature = "flex")]
    #[test]
    fn q4_projection_equals_dequantize_then_f32_on_flex() {
        println!(
            "{}",
            check(&pollster::block_on(compare_q4_projection(&Device::flex())))
        );
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn q4_projection_equals_dequantize_then_f32_on_wgpu() {
        let device = Device::wgpu(Default::default());
        println!(
            "{}",
            check(&pollster::block_on(compare_q4_projection(&device)))
        );
    }
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use super::*;
    use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    async fn q4_projection_equals_dequantize_then_f32_in_the_browser() {
        let device = sift_model::gpu_device_async()
            .await
            .expect("WebGPU is available (Chromium: --enable-unsafe-webgpu)");
        let limit = sift_model::binding_limit(&device).expect("the adapter's limits are read");
        console_log!("binding limit {limit} bytes");
        console_log!("{}", check(&compare_q4_projection(&device).await));
    }
}
