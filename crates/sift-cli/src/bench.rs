//! `sift bench`: the workload of `docs/performance.md` timed on a model you have or on random
//! weights at a real shape, with the kernels' baselines behind flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sift::bench::{
    AttentionKernels, FlashAttention, Formats, ModelSize, Q4Kernels, WeightStyle, Workload,
    attention_measurements, time_workload, use_attention_kernels, use_flash_attention,
    use_q4_kernels, write_random_model,
};
use sift::{Precision, RerankOptions, Reranker};

use crate::model_source;
use crate::options::ModelOptions;

#[derive(Args)]
pub struct BenchArgs {
    /// A model directory or Hugging Face id to time.
    #[arg(long, required_unless_present = "random", conflicts_with = "random")]
    model: Option<String>,
    /// Time random weights at a real shape instead (speed does not depend on their values).
    #[arg(long, value_enum)]
    random: Option<ModelSize>,
    /// With --random: the directory holding the Qwen `tokenizer.json`. Without it, a word-level
    /// tokenizer of the workload's words (the page's *Measure speed* uses the same): prompts
    /// of the same structure, 313 tokens for the text pair against 342 with Qwen's.
    #[arg(long, requires = "random", conflicts_with = "model")]
    tokenizer: Option<PathBuf>,
    /// With --random: the weights to time, f32 (a bf16 checkpoint computed in f32) or q4.
    #[arg(long, value_enum, default_value_t = Weights::F32)]
    weights: Weights,
    /// With --random: where the random model is written and found again next time (a
    /// temporary directory, removed afterwards, by default).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Documents per query, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    documents: Vec<usize>,
    /// Workloads, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Workload::ALL)]
    workloads: Vec<Workload>,
    /// Requests timed per measurement, after one unmeasured request that compiles kernels.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// One JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
    /// Compute every pair whole, without reusing the prompt's shared beginning: the baseline
    /// that prefix reuse is measured against.
    #[arg(long)]
    whole_pairs: bool,
    /// Score a query's documents one at a time after the shared prefix, not packed into
    /// batches: the baseline that batching is measured against.
    #[arg(long)]
    unbatched: bool,
    /// After each measurement, one more request with the time of each stage (vision tower,
    /// decoder layers, attention, dequantization, readback), the device awaited around each.
    #[arg(long)]
    profile: bool,
    /// Attention's kernels on GPUs: for each class of shapes the faster of burn's op and the
    /// formula written out (measured on first use), or either alone, the baselines the choice
    /// is measured against. With --profile, the measurements are listed at the end.
    #[arg(long, value_enum, default_value_t = AttentionKernels::Measured)]
    attention: AttentionKernels,
    /// Linear layers with 4-bit weights on GPUs: sift's fused kernel where they multiply in f32
    /// and burn's dequantize then f16 matmul where they multiply in f16 (measured), sift's
    /// kernel for all, or burn's dequantize then matmul for all, the baseline.
    #[arg(long, value_enum, default_value_t = Q4Kernels::Measured)]
    q4_kernel: Q4Kernels,
    /// Which attention goes through sift's flash kernel on GPUs: none (every one through the
    /// kernels `--attention` chooses, the baseline), the attention without a mask (the vision
    /// tower's; the decoder's through `--attention`'s), or all of it.
    #[arg(long, value_enum, default_value_t = FlashAttention::All)]
    flash_attention: FlashAttention,
    #[command(flatten)]
    model_options: ModelOptions,
}

/// The weights `--random` times: which of the random model's directories.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Weights {
    /// A bf16 checkpoint, computed in f32.
    F32,
    /// sift's 4-bit format.
    Q4,
}

/// Times the workload on the model `args` names, printing a table or JSON lines.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let temporary;
    let (model_dir, label) = match (&args.model, args.random) {
        (Some(model), _) => (model_source::resolve(model)?, model.clone()),
        (None, Some(size)) => {
            let tokenizer = args.tokenizer.as_deref();
            // A model made with the Qwen tokenizer and one made without differ in their
            // tokenizer, so each has its own place in the cache.
            let kept_as = match tokenizer {
                Some(_) => size.name().to_string(),
                None => format!("{}-workload-tokenizer", size.name()),
            };
            let out = match &args.cache {
                Some(dir) => dir.join(kept_as),
                None => {
                    temporary = tempfile::tempdir()
                        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
                    temporary.path().to_path_buf()
                }
            };
            let with_f32 = args.weights == Weights::F32;
            let wanted = if with_f32 {
                "f32/model.safetensors"
            } else {
                "q4/sift-q4.json"
            };
            if !out.join(wanted).is_file() {
                eprintln!(
                    "writing random {} weights to {} ...",
                    size.name(),
                    out.display()
                );
                let formats = if with_f32 { Formats::F32 } else { Formats::Q4 };
                write_random_model(size, WeightStyle::default(), tokenizer, &out, formats)
                    .map_err(|e| e.to_string())?;
            }
            let dir = out.join(if with_f32 { "f32" } else { "q4" });
            let weights = if with_f32 { "f32" } else { "4-bit" };
            (dir, format!("random {} ({weights})", size.name()))
        }
        (None, None) => unreachable!("clap requires --model or --random"),
    };
    let loading = std::time::Instant::now();
    let defaults = args.model_options.rerank_options();
    let options = RerankOptions {
        reuse_prefix: !args.whole_pairs,
        batch_bytes: if args.unbatched {
            0
        } else {
            defaults.batch_bytes
        },
        ..defaults
    };
    let reranker = Reranker::load(&model_dir, options).map_err(|e| e.to_string())?;
    let load_s = loading.elapsed().as_secs_f64();
    use_attention_kernels(args.attention);
    use_q4_kernels(args.q4_kernel);
    use_flash_attention(args.flash_attention);
    let mut label = label;
    if args.model_options.precision == Precision::F16 {
        label.push_str(", f16");
    }
    if args.whole_pairs {
        label.push_str(", whole pairs");
    } else if args.unbatched {
        label.push_str(", one document at a time");
    }
    label.push_str(match args.attention {
        AttentionKernels::Measured => "",
        AttentionKernels::BurnOp => ", burn's attention op",
        AttentionKernels::Formula => ", attention as the formula",
    });
    label.push_str(match args.q4_kernel {
        Q4Kernels::Measured => "",
        Q4Kernels::Fused => ", sift's 4-bit kernel",
        Q4Kernels::Wide => ", sift's 4-bit kernel in 128-wide tiles",
        Q4Kernels::Dequantize => ", 4-bit weights dequantized",
    });
    label.push_str(match args.flash_attention {
        FlashAttention::All => "",
        FlashAttention::Off => ", no flash attention",
        FlashAttention::Unmasked => ", flash attention in the vision tower only",
    });
    if !args.json {
        println!(
            "{label} on {}, loaded in {load_s:.1} s; {} timed request(s) per row after one unmeasured",
            reranker.device_name(),
            args.rounds
        );
        println!(
            "{:<8} {:>9} {:>8} {:>11} {:>13} {:>9} {:>9}",
            "workload", "documents", "tokens", "ms per pair", "host ms/pair", "pairs/s", "tokens/s"
        );
    }
    for &workload in &args.workloads {
        for &documents in &args.documents {
            let t = time_workload(&reranker, workload, documents, args.rounds, args.profile)
                .map_err(|e| format!("{} with {documents} documents: {e}", workload.name()))?;
            let pairs_per_s = 1e3 / t.ms_per_pair;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "model": label, "device": reranker.device_name(),
                        "workload": workload.name(), "documents": t.documents,
                        "tokens_per_pair": t.tokens_per_pair, "ms_per_pair": t.ms_per_pair,
                        "host_ms_per_pair": t.host_ms_per_pair, "rounds": t.rounds,
                        "stages_ms_per_pair": t.stages.iter().map(|(name, ms)| (name.to_string(), serde_json::json!(ms)))
                            .collect::<serde_json::Map<_, _>>(),
                    })
                );
            } else {
                println!(
                    "{:<8} {:>9} {:>8} {:>11.1} {:>13.1} {:>9.2} {:>9.0}",
                    workload.name(),
                    t.documents,
                    t.tokens_per_pair,
                    t.ms_per_pair,
                    t.host_ms_per_pair,
                    pairs_per_s,
                    pairs_per_s * t.tokens_per_pair as f64
                );
                for (stage, ms) in &t.stages {
                    println!("    {stage:<36} {ms:>9.1} ms per pair (profiled)");
                }
            }
        }
    }
    if args.profile && !args.json {
        let measured = attention_measurements();
        if !measured.is_empty() {
            println!("attention kernels measured on first use (classes of shapes, powers of two):");
            for line in measured {
                println!("    {line}");
            }
        }
    }
    Ok(())
}
