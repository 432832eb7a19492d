//! 4-bit weights: a 4-bit directory run directly (Q4 weights on the device) against the f32
//! weights it stands for; and what 4 bits change: every golden tiny model quantized, scored against the f32 reference, and the
//! ranking of 20 documents for a query (Kendall τ). Figures in docs/quantization.md.

use std::collections::BTreeMap;
use std::path::Path;

use sift::{Content, Request, RerankOptions, Reranker};
use sift_model::{Device, ModelInput, RerankerModel, Trace};
use sift_quant::{dequantize_model, quantize_model};
use sift_tests::{Case, all_cases, downloaded_model, model_dir};

/// The hidden states (every text layer) and score of `input` under `model`.
fn run(model: &RerankerModel, input: &ModelInput) -> Vec<(String, Vec<f32>)> {
    let mut trace = Trace::on();
    let logit = model.logit(input, &mut trace).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = trace
        .into_tensors()
        .into_iter()
        .map(|(name, t)| (name, t.into_data().try_to_vec::<f32>().unwrap()))
        .collect();
    out.push((
        "logit".into(),
        logit.into_data().try_to_vec::<f32>().unwrap(),
    ));
    out
}

/// A 4-bit directory loaded as it is (Q4 weights on the device, token table on the host) runs
/// like the f32 model it stands for (`dequantize_model`): every intermediate, on every input.
fn check_q4_directory_runs_like_its_f32_weights(device: &Device, tolerance: f32) {
    let work = tempfile::tempdir().unwrap();
    let mut loaded: BTreeMap<String, (RerankerModel, RerankerModel)> = BTreeMap::new();
    for (model, case_name) in all_cases() {
        let case = Case::load(&model, &case_name);
        let tokens = case.score_tokens();
        let (q4_model, f32_model) = loaded.entry(model.clone()).or_insert_with(|| {
            let (q, back) = (
                work.path().join(&model),
                work.path().join(format!("{model}-f32")),
            );
            quantize_model(
                &model_dir(&model),
                &q,
                &[tokens.yes as usize, tokens.no as usize],
            )
            .unwrap();
            dequantize_model(&q, &back).unwrap();
            let load = |dir: &Path| RerankerModel::load(dir, tokens, device).unwrap();
            (load(&q), load(&back))
        });
        let input = case.model_input(f32_model);
        let (got, want) = (run(q4_model, &input), run(f32_model, &input));
        assert_eq!(got.len(), want.len());
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            let scale = w.iter().fold(1f32, |a, v| a.max(v.abs()));
            let worst = g.iter().zip(w).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
            assert!(
                worst <= tolerance * scale,
                "{model}/{case_name} {name}: 4-bit directory differs from its f32 weights by {worst}"
            );
        }
    }
}

/// A device whose buffers are too small for the model is refused before anything is
/// allocated, with the tensor, both sizes and the fix named.
#[test]
fn a_model_over_the_gpu_binding_limit_is_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let case = Case::load("tied-deep", "text");
    let tokens = case.score_tokens();
    let q = work.path().join("q4");
    quantize_model(
        &model_dir("tied-deep"),
        &q,
        &[tokens.yes as usize, tokens.no as usize],
    )
    .unwrap();
    let device = Device::flex();
    let refused = RerankerModel::load_quantized(&q, tokens, &device, Some(20_000));
    let message = refused
        .err()
        .expect("a 20 kB binding limit is refused")
        .to_string();
    println!("{message}");
    assert!(
        message.contains("this GPU binds at most") && message.contains("model."),
        "{message}"
    );
    assert!(RerankerModel::load_quantized(&q, tokens, &device, Some(1 << 30)).is_ok());
}

#[test]
fn a_q4_directory_runs_like_its_f32_weights_on_flex() {
    check_q4_directory_runs_like_its_f32_weights(&Device::flex(), 1e-5);
}

#[cfg(feature = "wgpu")]
#[test]
fn a_q4_directory_runs_like_its_f32_weights_on_wgpu() {
    check_q4_directory_runs_like_its_f32_weights(&Device::wgpu(Default::default()), 1e-4);
}

#[test]
fn q4_scores_stay_close_to_f32_on_every_golden_model() {
    let device = Device::flex();
    let work = tempfile::tempdir().unwrap();
    let mut per_model: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut models: BTreeMap<String, RerankerModel> = BTreeMap::new();
    for (model, case_name) in all_cases() {
        let case = Case::load(&model, &case_name);
        let tokens = case.score_tokens();
        let q4 = models.entry(model.clone()).or_insert_with(|| {
            let q = work.path().join(&model);
            quantize_model(
                &model_dir(&model),
                &q,
                &[tokens.yes as usize, tokens.no as usize],
            )
            .unwrap();
            RerankerModel::load(&q, tokens, &device).unwrap()
        });
        let score = f64::from(q4.score(&case.model_input(q4)).unwrap().score);
        let reference = case.meta.score;
        per_model
            .entry(model)
            .or_default()
            .push((score - reference).abs());
    }
    let mut worst = 0f64;
    for (model, deltas) in &per_model {
        let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
        let max = deltas.iter().copied().fold(0f64, f64::max);
        worst = worst.max(max);
        println!(
            "{model}: {} inputs, mean |q4 - f32| {mean:.2e}, max {max:.2e}",
            deltas.len()
        );
    }
    // Random tiny models (hidden size 32 to 64) are far more sensitive than trained ones: the
    // largest move measured is 6.72e-2 (tied-deep); the bound sits just above it, so a broken
    // format (wrong nibble order, scales or rows) fails.
    assert!(worst < 0.075, "a q4 score moved by {worst}");
}

/// Kendall's τ-a between two score lists (no ties expected).
fn kendall_tau(a: &[f32], b: &[f32]) -> f64 {
    let (mut concordant, mut discordant) = (0i64, 0i64);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let s = (a[i] - a[j]).signum() * (b[i] - b[j]).signum();
            if s > 0.0 {
                concordant += 1;
            } else if s < 0.0 {
                discordant += 1;
            }
        }
    }
    let pairs = (a.len() * (a.len() - 1) / 2) as f64;
    (concordant - discordant) as f64 / pairs
}

#[test]
fn q4_ranks_twenty_documents_like_f32() {
    let model = downloaded_model();
    let work = tempfile::tempdir().unwrap();
    let q4 = work.path().join("q4");
    let report = sift::quantize(model.path(), &q4).unwrap();
    println!("{report:?}");
    let documents: Vec<Content> = [
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
    ]
    .into_iter()
    .map(Content::text)
    .collect();
    let request = Request {
        query: Content::text("where do cats like to sleep?"),
        documents,
        ..Request::default()
    };
    let scores = |dir: &std::path::Path| -> Vec<f32> {
        let reranker = Reranker::load(dir, RerankOptions::default()).unwrap();
        reranker
            .score(&request)
            .into_iter()
            .map(|s| s.unwrap())
            .collect()
    };
    let (f32_scores, q4_scores) = (scores(model.path()), scores(&q4));
    let deltas: Vec<f64> = f32_scores
        .iter()
        .zip(&q4_scores)
        .map(|(a, b)| f64::from((a - b).abs()))
        .collect();
    let tau = kendall_tau(&f32_scores, &q4_scores);
    let spread = f32_scores.iter().copied().fold(f32::MIN, f32::max)
        - f32_scores.iter().copied().fold(f32::MAX, f32::min);
    println!(
        "20 documents: mean |q4 - f32| {:.2e}, max {:.2e}, f32 score spread {spread:.2e}, Kendall tau {tau:.3}",
        deltas.iter().sum::<f64>() / 20.0,
        deltas.iter().copied().fold(0f64, f64::max)
    );
    // Measured: tau 0.926, largest move 1.90e-2 on a spread of 6.76e-2. Bounds near those, and
    // the 4-bit scores must keep most of the spread, so an output that collapses to a near
    // constant fails even where its moves are small.
    let q4_spread = q4_scores.iter().copied().fold(f32::MIN, f32::max)
        - q4_scores.iter().copied().fold(f32::MAX, f32::min);
    assert!(tau >= 0.85, "Kendall tau {tau}");
    assert!(
        deltas.iter().all(|&d| d < 0.025),
        "a 4-bit score moved by more than 0.025"
    );
    assert!(
        (0.75..1.33).contains(&(q4_spread / spread)),
        "4-bit spread {q4_spread} against f32 {spread}"
    );
}

/// The page's *Measure speed* model, made in memory, is the bytes `sift bench --random` writes
/// (with the same tokenizer), loads as a download does, and is timed on the workload, read back
/// synchronously (the CLI) and asynchronously (the page).
#[test]
fn a_random_model_made_in_memory_equals_the_written_one_and_is_timed() {
    use sift::bench::{
        Formats, ModelSize, WeightStyle, Workload, load_in_memory, random_q4_model, time_workload,
        time_workload_async, write_random_model,
    };
    let work = tempfile::tempdir().unwrap();
    let written = write_random_model(
        ModelSize::Tiny,
        WeightStyle::default(),
        None,
        work.path(),
        Formats::Q4,
    )
    .unwrap();
    let mut reported = Vec::new();
    let model = random_q4_model(ModelSize::Tiny, &Device::flex(), |done, total| {
        reported.push((done, total))
    })
    .unwrap();
    assert!(reported.last().is_some_and(|(done, total)| done == total));
    let on_disk = sift::Manifest::from_json(
        &std::fs::read(written.q4_dir.join(sift::MANIFEST)).unwrap(),
        &written.q4_dir,
    )
    .unwrap();
    assert_eq!(on_disk, model.manifest);
    for (entry, bytes) in model.manifest.shards.iter().zip(&model.shards) {
        assert!(
            std::fs::read(written.q4_dir.join(&entry.file)).unwrap() == *bytes,
            "{}",
            entry.file
        );
    }
    let mut shards_loaded = 0;
    let reranker = load_in_memory(
        model,
        &Device::flex(),
        RerankOptions::default(),
        |done, _| shards_loaded = done,
    )
    .unwrap();
    assert!(shards_loaded > 0);
    let text = time_workload(&reranker, Workload::Text, 2, 1, false).unwrap();
    assert_eq!((text.documents, text.tokens_per_pair), (2, 313));
    let image = pollster::block_on(time_workload_async(&reranker, Workload::Image, 1, 1)).unwrap();
    assert!(image.ms_per_pair > 0.0 && image.tokens_per_pair > 768);
}
