//! 4-bit models at the real 2B and 8B shapes, with random weights drawn like trained ones (no
//! real weights can be downloaded where sift is developed): GPU memory, and q4 against f32
//! scores and rankings. Figures in docs/quantization.md.
//!
//! ```text
//! q4_real_shape generate --size 2b|8b --tokenizer DIR --out DIR [--with-f32] [--outliers N]
//!                        [--noise R]                  # weights × (1 + R·n): a control
//!                        [--scaled-residuals]         # branch outputs / √(2·layers), as GPT-2
//! q4_real_shape memory   --model DIR            # GPU memory: loaded, and after one image pair
//! q4_real_shape fidelity --f32 DIR --q4 DIR [--cpu]   # 3 queries × 20 documents
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::bf16;
use serde_json::json;
use sift::{Backend, Content, ImageSource, Request, RerankOptions, Reranker};
use sift_model::{Device, ModelConfig};
use sift_quant::QuantizedWriter;

fn config(size: &str) -> serde_json::Value {
    // Qwen3-VL-Reranker-2B and -8B (docs: ../shared/spec/qwen3vl_reranker.md §2).
    let (text, vision, tied) = match size {
        "2b" => (
            (2048, 28, 16, 8, 6144),
            (24, 1024, 16, 4096, [5, 11, 17]),
            true,
        ),
        "8b" => (
            (4096, 36, 32, 8, 12288),
            (27, 1152, 16, 4304, [8, 16, 24]),
            false,
        ),
        other => panic!("--size is 2b or 8b, not {other}"),
    };
    let (hidden, layers, heads, kv_heads, intermediate) = text;
    let (depth, v_hidden, v_heads, v_intermediate, deepstack) = vision;
    json!({
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        "image_token_id": 151655, "video_token_id": 151656,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "tie_word_embeddings": tied,
        "text_config": {
            "attention_bias": false, "head_dim": 128, "hidden_act": "silu",
            "hidden_size": hidden, "intermediate_size": intermediate,
            "max_position_embeddings": 262144, "num_attention_heads": heads,
            "num_hidden_layers": layers, "num_key_value_heads": kv_heads,
            "rms_norm_eps": 1e-6,
            "rope_scaling": {"mrope_interleaved": true, "mrope_section": [24, 20, 20], "rope_type": "default"},
            "rope_theta": 5000000.0, "tie_word_embeddings": tied, "vocab_size": 151936
        },
        "vision_config": {
            "deepstack_visual_indexes": deepstack, "depth": depth,
            "hidden_act": "gelu_pytorch_tanh", "hidden_size": v_hidden, "in_channels": 3,
            "intermediate_size": v_intermediate, "num_heads": v_heads,
            "num_position_embeddings": 2304, "out_hidden_size": hidden, "patch_size": 16,
            "spatial_merge_size": 2, "temporal_patch_size": 2
        }
    })
}

/// xorshift64*: fast, deterministic, good enough for weights.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        bits as f32 / (1u64 << 24) as f32
    }

    /// Roughly normal (a sum of four uniforms, variance 1).
    fn normal(&mut self) -> f32 {
        let sum: f32 = (0..4).map(|_| self.uniform()).sum();
        (sum - 2.0) * 3f32.sqrt()
    }
}

/// Values drawn like a trained checkpoint's, rounded to bf16 as checkpoints ship: matrices
/// with a log-normal scale per row and `outliers` evenly spaced columns eight times larger (the
/// outliers that make 4-bit blocks coarse); norms near 1; small biases.
/// With `noise` > 0, every matrix value is then scaled by `1 + noise·n`, `n` normal from a
/// stream of its own: the same model, perturbed by a known relative amount. `scale` multiplies
/// a matrix's values.
fn trained_like(
    name: &str,
    shape: &[usize],
    seed: u64,
    outliers: usize,
    noise: f32,
    scale: f32,
) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let rows = if shape.len() == 1 { 1 } else { shape[0] };
    let cols = n / rows;
    let norm = shape.len() == 1 && name.contains("norm") && name.ends_with("weight");
    let spacing = (cols / outliers.max(1)).max(1);
    let outlier: Vec<f32> = (0..cols)
        .map(|c| {
            if outliers > 0 && c % spacing == 17 % spacing && c / spacing < outliers {
                8.0
            } else {
                1.0
            }
        })
        .collect();
    // Each row has its own generator, so rows are drawn in parallel and still deterministic.
    let row = |r: usize, out: &mut [f32]| {
        let mut rng = Rng((seed << 32 ^ r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        if shape.len() == 1 {
            let base = if norm { 1.0 } else { 0.0 };
            out.iter_mut().for_each(|v| *v = base + 0.02 * rng.normal());
        } else {
            let row_scale = scale * 0.02 * (0.5 * rng.normal()).exp();
            for (v, o) in out.iter_mut().zip(&outlier) {
                *v = rng.normal() * row_scale * o;
            }
            let mut perturbation = Rng(rng.0 ^ 0x5851_f42d_4c95_7f2d);
            if noise > 0.0 {
                out.iter_mut()
                    .for_each(|v| *v *= 1.0 + noise * perturbation.normal());
            }
        }
        for v in out.iter_mut() {
            *v = bf16::from_f32(*v).to_f32();
        }
    };
    let mut values = vec![0f32; n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let rows_per_thread = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, chunk) in values.chunks_mut(rows_per_thread * cols).enumerate() {
            scope.spawn(move || {
                for (i, out) in chunk.chunks_mut(cols).enumerate() {
                    row(t * rows_per_thread + i, out);
                }
            });
        }
    });
    values
}

/// GPT-2's initialisation: the projection that ends a residual branch (attention output, MLP
/// down) drawn 1/√(2·layers) as large, so each layer nudges the residual stream instead of
/// replacing it. Trained models work in that regime; with every matrix alike, a random 28-layer
/// model is chaotic (docs/quantization.md: 1% weight noise already reorders its rankings).
fn residual_branch_scale(name: &str, config: &ModelConfig) -> f32 {
    let layers = if name.contains("visual.blocks.") {
        config.vision_config.depth
    } else {
        config.text_config.num_hidden_layers
    };
    let ends_branch = [
        "o_proj.weight",
        "down_proj.weight",
        "attn.proj.weight",
        "mlp.linear_fc2.weight",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix));
    if ends_branch {
        1.0 / (2.0 * layers as f32).sqrt()
    } else {
        1.0
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn required(args: &[String], name: &str) -> PathBuf {
    PathBuf::from(arg(args, name).unwrap_or_else(|| panic!("{name} is required")))
}

fn generate(args: &[String]) {
    let size = arg(args, "--size").unwrap_or_else(|| "2b".into());
    let tokenizer = required(args, "--tokenizer");
    let out = required(args, "--out");
    let with_f32 = args.iter().any(|a| a == "--with-f32");
    let outliers: usize = arg(args, "--outliers").map_or(4, |n| n.parse().expect("--outliers N"));
    let noise: f32 = arg(args, "--noise").map_or(0.0, |r| r.parse().expect("--noise R"));
    let scaled_residuals = args.iter().any(|a| a == "--scaled-residuals");
    let config_json = serde_json::to_string_pretty(&config(&size)).unwrap();
    let config = ModelConfig::from_json(&config_json).unwrap();
    let names = sift_model::checkpoint_tensors(&config, &Device::flex());
    let source = out.join("f32");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("config.json"), &config_json).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tokenizer.join(file), source.join(file)).unwrap();
    }
    let tokens =
        sift_inputs::prompt::PromptTokenizer::from_file(&source.join("tokenizer.json")).unwrap();
    let head_rows = [tokens.yes_id as usize, tokens.no_id as usize];
    let mut writer = QuantizedWriter::create(&out.join("q4"), &head_rows).unwrap();
    let mut checkpoint: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let started = std::time::Instant::now();
    for (i, (name, shape)) in names.iter().enumerate() {
        let scale = if scaled_residuals {
            residual_branch_scale(name, &config)
        } else {
            1.0
        };
        let values = trained_like(name, shape, i as u64 + 1, outliers, noise, scale);
        if with_f32 {
            let bytes = values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect();
            checkpoint.insert(name.clone(), (shape.clone(), bytes));
        }
        writer.add(name, shape, values).unwrap();
    }
    let report = writer.finish(&source).unwrap();
    println!(
        "{size}: {} tensors ({} Q4), {:.2} GB of shards in {} files, {:.0} s",
        report.tensors,
        report.q4_tensors,
        report.shard_bytes as f64 / 1e9,
        report.shards,
        started.elapsed().as_secs_f64()
    );
    if with_f32 {
        let views = checkpoint.iter().map(|(name, (shape, bytes))| {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::BF16,
                shape.clone(),
                bytes,
            )
            .unwrap();
            (name.clone(), view)
        });
        safetensors::serialize_to_file(views, None, &source.join("model.safetensors")).unwrap();
        println!("bf16 checkpoint written to {}", source.display());
    }
}

fn gpu_options() -> RerankOptions {
    options(Backend::Gpu)
}

fn options(backend: Backend) -> RerankOptions {
    RerankOptions {
        backend,
        ..RerankOptions::default()
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn memory(args: &[String]) {
    let dir = required(args, "--model");
    let started = std::time::Instant::now();
    let reranker = Reranker::load(&dir, gpu_options()).unwrap();
    let device = sift_model::gpu_device().unwrap();
    device.sync().unwrap();
    let loaded = device.memory_pool_usage().unwrap();
    println!(
        "loaded in {:.1} s ({:?} Q4 scales): {} in use, {} reserved",
        started.elapsed().as_secs_f64(),
        sift_model::q4_scale_dtype(&device),
        mb(loaded.bytes_in_use),
        mb(loaded.bytes_reserved)
    );
    // One image document of 1280×960 (1,200 visual tokens at the default pixel budget).
    let image = sift_inputs::RgbImage::from_fn(1280, 960, |x, y| {
        [(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8].into()
    });
    let request = Request {
        query: Content::text("a photo of a striped test pattern"),
        documents: vec![Content {
            images: vec![ImageSource::Pixels(image)],
            ..Content::default()
        }],
        ..Request::default()
    };
    let started = std::time::Instant::now();
    let score = reranker.score(&request).remove(0).unwrap();
    device.sync().unwrap();
    let after = device.memory_pool_usage().unwrap();
    println!(
        "one image pair scored {score:.4} in {:.1} s: {} in use, {} reserved (the pools keep \
         their peak pages)",
        started.elapsed().as_secs_f64(),
        mb(after.bytes_in_use),
        mb(after.bytes_reserved)
    );
}

/// Kendall's τ-a between two score lists.
fn kendall_tau(a: &[f32], b: &[f32]) -> f64 {
    let mut sum = 0i64;
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            sum += ((a[i] - a[j]).signum() * (b[i] - b[j]).signum()) as i64;
        }
    }
    sum as f64 / (a.len() * (a.len() - 1) / 2) as f64
}

const QUERIES: [&str; 3] = [
    "where do cats like to sleep?",
    "how do I bake bread at home",
    "results of the weekend's football matches",
];

const DOCUMENTS: [&str; 20] = [
    "A cat sleeps on a warm windowsill.",
    "Stock markets fell sharply on Monday.",
    "Kittens need to eat four times a day.",
    "The recipe calls for two cups of flour.",
    "Lions are the only cats that live in groups.",
    "The train to Berlin leaves at noon.",
    "My cat knocks glasses off the table.",
    "Quantum computers use qubits.",
    "Cats sleep for up to sixteen hours a day.",
    "A guide to repotting houseplants.",
    "Why do cats purr? Scientists are not sure.",
    "The museum opens on Sundays.",
    "Feeding a senior cat: what changes.",
    "Football results from the weekend.",
    "A dog and a cat share a sofa.",
    "How to bake sourdough bread.",
    "Tigers are strong swimmers.",
    "The history of the printing press.",
    "Cat videos were the internet's first hit.",
    "Rain is expected all week.",
];

fn scores(dir: &Path, backend: Backend) -> Vec<Vec<f32>> {
    let reranker = Reranker::load(dir, options(backend)).unwrap();
    QUERIES
        .iter()
        .map(|query| {
            let request = Request {
                query: Content::text(*query),
                documents: DOCUMENTS.iter().map(|d| Content::text(*d)).collect(),
                ..Request::default()
            };
            reranker
                .score(&request)
                .into_iter()
                .map(|s| s.unwrap())
                .collect()
        })
        .collect()
}

fn fidelity(args: &[String]) {
    let (f32_dir, q4_dir) = (required(args, "--f32"), required(args, "--q4"));
    // --cpu: a model too large for a small GPU's buffers (lavapipe binds 128 MiB) still runs.
    let backend = if args.iter().any(|a| a == "--cpu") {
        Backend::Cpu
    } else {
        Backend::Gpu
    };
    let (reference, quantized) = (scores(&f32_dir, backend), scores(&q4_dir, backend));
    let mut all = Vec::new();
    for ((query, r), q) in QUERIES.iter().zip(&reference).zip(&quantized) {
        let deltas: Vec<f32> = r.iter().zip(q).map(|(a, b)| (a - b).abs()).collect();
        all.extend_from_slice(&deltas);
        let spread =
            r.iter().copied().fold(f32::MIN, f32::max) - r.iter().copied().fold(f32::MAX, f32::min);
        println!(
            "{query:?}: mean |q4 - f32| {:.2e}, max {:.2e}, f32 spread {spread:.2e}, Kendall tau {:.3}",
            deltas.iter().sum::<f32>() / deltas.len() as f32,
            deltas.iter().copied().fold(0f32, f32::max),
            kendall_tau(r, q)
        );
    }
    println!(
        "all {} scores: mean |q4 - f32| {:.2e}, max {:.2e}",
        all.len(),
        all.iter().sum::<f32>() / all.len() as f32,
        all.iter().copied().fold(0f32, f32::max)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") => generate(&args),
        Some("memory") => memory(&args),
        Some("fidelity") => fidelity(&args),
        _ => {
            eprintln!("usage: q4_real_shape generate|memory|fidelity ... (see the source's header)")
        }
    }
}
