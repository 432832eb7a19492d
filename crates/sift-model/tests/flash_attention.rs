//! sift's flash attention kernel against `softmax(q·kᵀ · scale [+ causal mask]) · v` written
//! out with burn's ops, in f32, at head widths of both models' towers (64, 72) and the kernel's
//! limit (128, the decoders'), with queries and keys that fill no whole block, and causal with
//! grouped key heads, whole or after a past (the decoder's): on wgpu (lavapipe: `.ci/test
//! --native-gpu`) and in a browser on WebGPU (`wasm-bindgen-test`, from
//! `web/worker/tests/flash_attention.rs`, which includes this file so that it builds with the
//! worker's dependencies). On the CPU backend the kernel does not run, which is checked too.

use sift_model::kernels::{FlashAttention, flash_attention, use_flash_attention};
use sift_model::{Device, Tensor};

/// The comparison, where a GPU runs the kernel: natively with the `wgpu` feature (a feature
/// the worker crate, which includes this file for the browser, does not have), and in browsers.
#[cfg_attr(not(target_arch = "wasm32"), cfg(feature = "wgpu"))]
mod comparison {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Bool, DType, TensorData};

    /// Deterministic values of order 1, some large enough that a softmax without its running
    /// maximum would overflow.
    fn values(shape: [usize; 4], seed: u64) -> Vec<f32> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
        (0..shape.iter().product::<usize>())
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let uniform = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                if i % 97 == 5 {
                    uniform * 40.0
                } else {
                    uniform * 2.0
                }
            })
            .collect()
    }

    async fn host(t: Tensor<4>) -> Vec<f32> {
        t.into_data_async()
            .await
            .unwrap()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// The largest difference between the kernel and the formula, per shape
    /// `[batch, heads, key_heads, queries, keys, head_dim, causal]`, and the largest output.
    pub(super) async fn compare(device: &Device) -> Vec<([usize; 7], f32, f32)> {
        use_flash_attention(FlashAttention::All);
        let mut results = Vec::new();
        for [batch, heads, key_heads, queries, keys, head_dim, causal] in [
            [1, 2, 2, 1, 1, 64, 0],
            [2, 3, 3, 37, 37, 64, 0],
            [1, 2, 2, 100, 100, 72, 0],
            [3, 1, 1, 65, 130, 128, 0],
            [1, 16, 16, 200, 200, 64, 0],
            // Causal, grouped key heads: a whole prompt, queries after a past of 35 keys (more
            // than a block), and a workgroup whose last query is past the end.
            [1, 4, 2, 70, 70, 128, 1],
            [2, 4, 1, 45, 80, 128, 1],
            [1, 2, 2, 1, 17, 64, 1],
        ] {
            let causal = causal == 1;
            let tensor = |heads: usize, len: usize, seed: u64| {
                let shape = [batch, heads, len, head_dim];
                Tensor::<4>::from_data(TensorData::new(values(shape, seed), shape), device)
            };
            let q = tensor(heads, queries, 1);
            let (k, v) = (tensor(key_heads, keys, 2), tensor(key_heads, keys, 3));
            let repeat = |t: &Tensor<4>| {
                t.clone()
                    .unsqueeze_dim::<5>(2)
                    .expand([batch, key_heads, heads / key_heads, keys, head_dim])
                    .reshape([batch, heads, keys, head_dim])
            };
            let scale = (head_dim as f32).powf(-0.5);
            let scores = (q.clone() * scale).matmul(repeat(&k).swap_dims(2, 3));
            let scores = match causal {
                true => {
                    let offset = (keys - queries) as i64;
                    let future = Tensor::<2, Bool>::tril_mask([queries, keys], offset, device)
                        .unsqueeze::<4>()
                        .expand([batch, heads, queries, keys]);
                    scores.mask_fill(future, f32::NEG_INFINITY)
                }
                false => scores,
            };
            let formula = softmax(scores, 3).matmul(repeat(&v));
            let flash =
                flash_attention(&q, &k, &v, scale, causal).expect("the kernel runs on GPUs");
            assert_eq!(flash.dtype(), DType::F32);
            let (want, got) = (host(formula).await, host(flash).await);
            let worst = got
                .iter()
                .zip(&want)
                .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
            let largest = want.iter().fold(0f32, |a, w| a.max(w.abs()));
            let shape = [
                batch,
                heads,
                key_heads,
                queries,
                keys,
                head_dim,
                causal as usize,
            ];
            results.push((shape, worst, largest));
        }
        results
    }

    /// Both in f32, summed in different orders: within 1e-5 of outputs of order 10. A wrong
    /// block, key or maximum misses by the outputs' own size.
    pub(super) fn check(results: &[([usize; 7], f32, f32)]) -> String {
        for &(shape, worst, largest) in results {
            assert!(
                largest > 1.0 && worst <= 1e-5 * largest.max(1.0),
                "[batch, heads, key_heads, queries, keys, head_dim, causal] = {shape:?}: the flash \
                 kernel differs from the formula by {worst} (outputs up to {largest})"
            );
        }
        format!("compared: {results:?}")
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::*;

    #[cfg(feature = "flex")]
    #[test]
    fn the_flash_kernel_does_not_run_on_the_cpu_backend() {
        let device = Device::flex();
        let t = Tensor::<4>::zeros([1, 1, 4, 8], &device);
        use_flash_attention(FlashAttention::All);
        assert!(flash_attention(&t, &t, &t, 1.0, false).is_none());
        assert!(flash_attention(&t, &t, &t, 1.0, true).is_none());
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn flash_attention_equals_the_formula_on_wgpu() {
        use comparison::{check, compare};
        let device = Device::wgpu(Default::default());
        println!("{}", check(&pollster::block_on(compare(&device))));
    }
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use super::comparison::{check, compare};
    use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    async fn flash_attention_equals_the_formula_in_the_browser() {
        let device = sift_model::gpu_device_async()
            .await
            .expect("WebGPU is available (Chromium: --enable-unsafe-webgpu)");
        console_log!("{}", check(&compare(&device).await));
    }
}
