//! Times burn's kernels at the 2B model's prefill shapes on the default GPU: the linear layers
//! (f32, f16, with and without the casts around them), attention through burn's op in two
//! layouts of the same problem (the first timed again: the first kernel timed after tuning runs
//! slow for its first calls), attention's parts written out, and a 4-bit weight dequantized and
//! multiplied (straight to f16 or through f32, whole or in blocks). The figures behind
//! docs/performance.md's "Where the time goes"; not part of any build of sift. With
//! `SIFT_KERNELS=1`, only sift's own kernels (`sift_model::kernels`) against burn's at the same
//! problems, each first checked against burn's result.
//!
//! cargo run --release -p sift-model --no-default-features --features vulkan --example kernel_rates

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::backend::Dispatch;
use burn::backend::ops::QTensorOps;
use burn::tensor::activation::softmax;
use burn::tensor::module::{attention, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::quantization::ScaleDtype;
use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor, TensorData};
use sift_model::kernels;
use sift_model::kernels::{FlashAttention, Q4Kernels, use_flash_attention, use_q4_kernels};
use sift_model::{Projection, q4_tensor_data};

/// Milliseconds per call of `run` after three calls that compile and tune its kernels, and its
/// rate for `flop` operations; a kernel that fails is reported and the probe goes on.
fn report<const D: usize>(
    name: &str,
    flop: f64,
    device: &Device,
    mut run: impl FnMut() -> Tensor<D>,
) {
    let timed = catch_unwind(AssertUnwindSafe(|| {
        for _ in 0..3 {
            drop(run());
        }
        let _ = device.sync();
        let calls = 10;
        let start = Instant::now();
        for _ in 0..calls {
            drop(run());
        }
        let _ = device.sync();
        start.elapsed().as_secs_f64() * 1e3 / f64::from(calls)
    }));
    match timed {
        Ok(ms) if flop > 0.0 => println!("{name:<64} {ms:8.3} ms {:7.1} TFLOP/s", flop / ms / 1e9),
        Ok(ms) => println!("{name:<64} {ms:8.3} ms"),
        Err(_) => println!("{name:<64}   failed"),
    }
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 0.5), device)
}

fn main() {
    let device = sift_model::gpu_device().expect("a GPU through wgpu");
    println!("{:?}", sift_model::gpu_info(&device).map(|info| info.name));
    // One image's vision attention alone, in a process of its own so that autotune tunes it
    // afresh: `contiguous`, `strided` (q, k and v sliced from one qkv projection, as the
    // vision tower has them) or `padded` (head_dim 64 padded to 128).
    if let Ok(case) = std::env::var("VISION_ATTENTION") {
        vision_attention(&case, &device);
        return;
    }
    // Only sift's own kernels against burn's at the models' shapes.
    if std::env::var_os("SIFT_KERNELS").is_some() {
        q4_products(&device);
        flash_attention(&device);
        causal_flash_attention(&device);
        return;
    }

    // (tokens, in, out): the vision tower's qkv, MLP in and out for one 1024×768 image; the
    // decoder's MLP in and out for 16 packed text documents, and for one.
    for (m, k, n) in [
        (3072, 1024, 3072),
        (3072, 1024, 4096),
        (3072, 4096, 1024),
        (4480, 2048, 6144),
        (4480, 6144, 2048),
        (340, 2048, 6144),
    ] {
        let flop = 2.0 * (m * k * n) as f64;
        let x = random([m, k], &device);
        let weight = random([n, k], &device);
        for dtype in [DType::F32, DType::F16] {
            let (x, weight) = (x.clone().cast(dtype), weight.clone().cast(dtype));
            report(
                &format!("linear {dtype:?} {m}×{k}×{n}"),
                flop,
                &device,
                || linear(x.clone(), weight.clone().transpose(), None),
            );
        }
        let half = weight.clone().cast(DType::F16);
        report(
            &format!("linear f16 with casts from and to f32 {m}×{k}×{n}"),
            flop,
            &device,
            || linear(x.clone().cast(DType::F16), half.clone().transpose(), None).cast(DType::F32),
        );
    }

    four_bit(&device);

    // (batch, heads, queries, keys, head_dim, causal): one image in the vision tower, a
    // video's 8 frame groups, 16 packed text documents after their prefix, one image pair.
    for (batch, heads, len, keys, d, causal) in [
        (1, 16, 3072, 3072, 64, false),
        (8, 16, 784, 784, 64, false),
        (16, 16, 280, 340, 128, true),
        (1, 16, 850, 850, 128, true),
    ] {
        let flop = 4.0 * (batch * heads * len * keys * d) as f64;
        let [q, k, v] =
            [len, keys, keys].map(|l| random([batch, heads, l, d], &device).cast(DType::F16));
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: causal,
        };
        let shape = format!(
            "{batch}×{heads}×{len}×{keys}×{d}{}",
            if causal { " causal" } else { "" }
        );
        let heads_first = || attention(q.clone(), k.clone(), v.clone(), None, None, options);
        report(
            &format!("attention f16 [batch, heads, len, d] {shape}"),
            flop,
            &device,
            heads_first,
        );
        let heads_in_batch = |t: &Tensor<4>| {
            let [b, h, l, d] = t.dims();
            t.clone().reshape([b * h, 1, l, d])
        };
        report(
            &format!("attention f16 [batch·heads, 1, len, d] {shape}"),
            flop,
            &device,
            || {
                attention(
                    heads_in_batch(&q),
                    heads_in_batch(&k),
                    heads_in_batch(&v),
                    None,
                    None,
                    options,
                )
            },
        );
        // Both layouts share one autotune key: timed again, so that an order effect shows.
        report(
            &format!("attention f16 [batch, heads, len, d] again {shape}"),
            flop,
            &device,
            heads_first,
        );
        if causal {
            continue;
        }
        let scores = q.clone().matmul(k.clone().swap_dims(2, 3));
        report(
            &format!("  q·kᵀ f16 {shape}"),
            flop / 2.0,
            &device,
            || q.clone().matmul(k.clone().swap_dims(2, 3)),
        );
        let scores32 = scores.clone().cast(DType::F32);
        report(
            &format!("  softmax f32 alone {shape}"),
            0.0,
            &device,
            || softmax(scores32.clone(), 3),
        );
        report(&format!("  p·v f16 {shape}"), flop / 2.0, &device, || {
            scores.clone().matmul(v.clone())
        });
        report(
            &format!("written out: f16 q·kᵀ, f32 softmax, f16 p·v {shape}"),
            flop,
            &device,
            || {
                let scores = q
                    .clone()
                    .matmul(k.clone().swap_dims(2, 3))
                    .cast(DType::F32)
                    .mul_scalar((d as f64).powf(-0.5));
                softmax(scores, 3).cast(DType::F16).matmul(v.clone())
            },
        );
    }
}

/// An 8B MLP weight `[12288, 4096]` in 4-bit, as sift uploads it: dequantized to f32, to f32
/// then cast to f16 (sift's f16 path before it dequantized straight to f16), and straight to
/// f16; then multiplied in f16 for one text pair's 340 tokens, whole and in 8 M-value blocks
/// (what a device must bind at least), against the same product with a dense f16 weight.
fn four_bit(device: &Device) {
    let (tokens, d_in, d_out) = (340, 4096, 12288);
    let values: Vec<f32> = random([d_out, d_in], device)
        .into_data()
        .try_to_vec()
        .expect("f32 values");
    let q = sift_quant::q4::quantize(&values, d_out, d_in);
    let weight = Tensor::<2>::from_data(q4_tensor_data(&q, ScaleDtype::F16), device);
    let dequantize = |dtype: FloatDType| {
        Tensor::<2>::from_dispatch(Dispatch::dequantize(weight.clone().into_dispatch(), dtype))
    };
    let shape = format!("[{d_out}, {d_in}]");
    report(
        &format!("dequantize Q4 to f32 {shape}"),
        0.0,
        device,
        || dequantize(FloatDType::F32),
    );
    report(
        &format!("dequantize Q4 to f32, cast to f16 {shape}"),
        0.0,
        device,
        || dequantize(FloatDType::F32).cast(DType::F16),
    );
    report(
        &format!("dequantize Q4 to f16 {shape}"),
        0.0,
        device,
        || dequantize(FloatDType::F16),
    );
    let flop = 2.0 * (tokens * d_in * d_out) as f64;
    let x = random([tokens, d_in], device);
    let mut layer = Projection::from_tensors(weight.clone(), None, d_in);
    layer.compute_in_f16();
    let mm = format!("{tokens}×{d_in}×{d_out}");
    report(
        &format!("linear Q4 to f16, whole weight {mm}"),
        flop,
        device,
        || layer.forward_dequantizing(x.clone(), usize::MAX),
    );
    report(
        &format!("linear Q4 to f16, 8 M-value blocks {mm}"),
        flop,
        device,
        || layer.forward_dequantizing(x.clone(), 8 << 20),
    );
    let dense = Tensor::<2>::from_data(TensorData::new(q.dequantize(), [d_out, d_in]), device)
        .cast(DType::F16);
    report(
        &format!("linear f16, dense weight {mm}"),
        flop,
        device,
        || linear(x.clone().cast(DType::F16), dense.clone().transpose(), None).cast(DType::F32),
    );
}

/// The 2B's 4-bit linear layers at an image pair's shapes (the vision tower's 3,072 patches,
/// the decoder's 850 tokens), 16 packed text documents and one text: burn's dequantize then
/// burn's matmul (f32, and f16 as `--precision f16` does), against sift's fused kernel. Each
/// fused product is first checked against the dequantized f32 one.
fn q4_products(device: &Device) {
    let f16 = device.supports_dtype(DType::F16);
    for (m, k, n) in [
        (3072, 1024, 3072),
        (3072, 1024, 4096),
        (3072, 4096, 1024),
        (850, 2048, 2048),
        (850, 2048, 6144),
        (850, 6144, 2048),
        (4240, 2048, 6144),
        (4240, 6144, 2048),
        (340, 2048, 6144),
    ] {
        let values: Vec<f32> = random([n, k], device)
            .into_data()
            .try_to_vec()
            .expect("f32 values");
        let q = sift_quant::q4::quantize(&values, n, k);
        let scales = if f16 {
            ScaleDtype::F16
        } else {
            ScaleDtype::F32
        };
        let weight = Tensor::<2>::from_data(q4_tensor_data(&q, scales), device);
        let layer = Projection::from_tensors(weight, None, k);
        let mut half = layer.clone();
        if f16 {
            half.compute_in_f16();
        }
        let x = random([m, k], device);
        let flop = 2.0 * (m * k * n) as f64;
        let mm = format!("{m}×{k}×{n}");
        use_q4_kernels(Q4Kernels::Dequantize);
        let want = layer.forward(x.clone());
        report(
            &format!("Q4 dequantize, f32 matmul {mm}"),
            flop,
            device,
            || layer.forward(x.clone()),
        );
        if f16 {
            report(
                &format!("Q4 dequantize to f16, f16 matmul {mm}"),
                flop,
                device,
                || half.forward(x.clone()),
            );
        }
        for (kernels, name) in [
            (Q4Kernels::Fused, "fused kernel, 64 × 64 tiles"),
            (Q4Kernels::Wide, "fused kernel, 128 × 128 tiles"),
        ] {
            use_q4_kernels(kernels);
            let got = layer.forward(x.clone());
            let worst: f32 = (got - want.clone()).abs().max().into_scalar();
            let scale: f32 = want.clone().abs().max().into_scalar();
            println!(
                "  {name}: differs from dequantize-then-f32 by {worst:.2e} (outputs up to {scale:.2})"
            );
            report(&format!("Q4 {name} {mm}"), flop, device, || {
                layer.forward(x.clone())
            });
        }
    }
    use_q4_kernels(Q4Kernels::default());
}

/// The vision towers' attention (no mask) in f32: one 2B image, a video's 8 frame groups, one
/// 8B image (head_dim 72): burn's op, the formula written out, and sift's flash kernel (first
/// checked against the formula).
fn flash_attention(device: &Device) {
    for (batch, heads, len, d) in [(1, 16, 3072, 64), (8, 16, 784, 64), (1, 16, 3072, 72)] {
        let flop = 4.0 * (batch * heads * len * len * d) as f64;
        let [q, k, v] = [0; 3].map(|_| random([batch, heads, len, d], device));
        let scale = (d as f64).powf(-0.5);
        let shape = format!("{batch}×{heads}×{len}×{d}");
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: false,
        };
        let formula =
            || softmax((q.clone() * scale).matmul(k.clone().swap_dims(2, 3)), 3).matmul(v.clone());
        let flash = || {
            kernels::flash_attention(&q, &k, &v, scale as f32, false)
                .expect("the flash kernel runs on GPUs")
        };
        let want = formula();
        let worst: f32 = (flash() - want).abs().max().into_scalar();
        println!("  flash attention {shape}: differs from the formula by {worst:.2e}");
        report(
            &format!("attention f32, burn's op {shape}"),
            flop,
            device,
            || attention(q.clone(), k.clone(), v.clone(), None, None, options),
        );
        report(
            &format!("attention f32, formula {shape}"),
            flop,
            device,
            formula,
        );
        report(
            &format!("attention f32, sift's flash kernel {shape}"),
            flop,
            device,
            flash,
        );
    }
}

/// The 2B decoder's causal attention (16 query heads over 8 key heads, head_dim 128) in f32: an
/// image pair whole (850 tokens), and 16 text documents of 230 tokens after a 35-token prefix:
/// burn's op and the formula on key heads repeated (as `attention` gives them), sift's flash
/// kernel on the key heads themselves (first checked against the formula).
fn causal_flash_attention(device: &Device) {
    use_flash_attention(FlashAttention::All);
    for (batch, len, past) in [(1, 850, 0), (16, 230, 35)] {
        let (heads, key_heads, d) = (16, 8, 128);
        let keys = past + len;
        // Half of the score matrix is seen.
        let flop = 2.0 * (batch * heads * len * keys * d) as f64;
        let q = random([batch, heads, len, d], device);
        let [k, v] = [0; 2].map(|_| random([batch, key_heads, keys, d], device));
        let repeat = |t: &Tensor<4>| {
            t.clone()
                .unsqueeze_dim::<5>(2)
                .expand([batch, key_heads, heads / key_heads, keys, d])
                .reshape([batch, heads, keys, d])
        };
        let (kr, vr) = (repeat(&k), repeat(&v));
        let scale = (d as f64).powf(-0.5);
        let shape = format!("{batch}×{heads}/{key_heads}×{len} after {past}×{d}");
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: true,
        };
        let formula = || {
            let scores = (q.clone() * scale).matmul(kr.clone().swap_dims(2, 3));
            let future =
                Tensor::<2, burn::tensor::Bool>::tril_mask([len, keys], past as i64, device)
                    .unsqueeze::<4>()
                    .expand([batch, heads, len, keys]);
            softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3).matmul(vr.clone())
        };
        let flash = || {
            kernels::flash_attention(&q, &k, &v, scale as f32, true)
                .expect("the flash kernel runs on GPUs")
        };
        let worst: f32 = (flash() - formula()).abs().max().into_scalar();
        println!("  causal flash attention {shape}: differs from the formula by {worst:.2e}");
        report(
            &format!("causal attention f32, burn's op {shape}"),
            flop,
            device,
            || attention(q.clone(), kr.clone(), vr.clone(), None, None, options),
        );
        report(
            &format!("causal attention f32, formula {shape}"),
            flop,
            device,
            formula,
        );
        report(
            &format!("causal attention f32, sift's flash kernel {shape}"),
            flop,
            device,
            flash,
        );
    }
    use_flash_attention(FlashAttention::default());
}

/// One image's vision attention (16 heads, 3072 patches, head_dim 64) in f16, laid out as
/// `case` says.
fn vision_attention(case: &str, device: &Device) {
    let (heads, len, d) = (16, 3072, 64);
    let flop = 4.0 * (heads * len * len * d) as f64;
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: false,
    };
    let [q, k, v] = match case {
        "contiguous" => [0; 3].map(|_| random([1, heads, len, d], device).cast(DType::F16)),
        "strided" => {
            let qkv = random([len, 3 * heads * d], device).reshape([len, 3, heads, d]);
            [0, 1, 2].map(|i| {
                qkv.clone()
                    .slice([0..len, i..i + 1, 0..heads, 0..d])
                    .reshape([len, heads, d])
                    .swap_dims(0, 1)
                    .reshape([1, heads, len, d])
                    .cast(DType::F16)
            })
        }
        "padded" => [0; 3].map(|_| {
            let t = random([1, heads, len, d], device);
            Tensor::cat(vec![t.clone(), t.zeros_like()], 3).cast(DType::F16)
        }),
        other => panic!("VISION_ATTENTION is contiguous, strided or padded, not {other}"),
    };
    report(
        &format!(
            "vision attention f16, {case}, 1×{heads}×{len}×{}",
            q.dims()[3]
        ),
        flop,
        device,
        || attention(q.clone(), k.clone(), v.clone(), None, None, options),
    );
}
