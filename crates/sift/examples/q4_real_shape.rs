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

use std::path::{Path, PathBuf};

use sift::bench::{Formats, ModelSize, WeightStyle, write_random_model};
use sift::{Backend, Content, ImageSource, Request, RerankOptions, Reranker};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn required(args: &[String], name: &str) -> PathBuf {
    PathBuf::from(arg(args, name).unwrap_or_else(|| panic!("{name} is required")))
}

fn generate(args: &[String]) {
    let size = match arg(args, "--size").as_deref() {
        None | Some("2b") => ModelSize::B2,
        Some("8b") => ModelSize::B8,
        Some(other) => panic!("--size is 2b or 8b, not {other}"),
    };
    let style = WeightStyle {
        outliers: arg(args, "--outliers").map_or(4, |n| n.parse().expect("--outliers N")),
        noise: arg(args, "--noise").map_or(0.0, |r| r.parse().expect("--noise R")),
        scaled_residuals: args.iter().any(|a| a == "--scaled-residuals"),
    };
    let out = required(args, "--out");
    let started = std::time::Instant::now();
    let with_f32 = args.iter().any(|a| a == "--with-f32");
    let formats = if with_f32 { Formats::Both } else { Formats::Q4 };
    let model = write_random_model(
        size,
        style,
        Some(&required(args, "--tokenizer")),
        &out,
        formats,
    )
    .unwrap();
    println!(
        "{}: written to {} (4-bit){} in {:.0} s",
        size.name(),
        model.q4_dir.display(),
        if with_f32 { " and f32" } else { "" },
        started.elapsed().as_secs_f64()
    );
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
