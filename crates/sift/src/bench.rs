//! What `sift bench` measures: random models at the real 2B and 8B shapes (speed does not depend
//! on the weights' values, and real weights cannot be downloaded where sift is developed), the
//! workload of `docs/performance.md` (one query against a 256-token text, a 1024×768 image or
//! 16 frames of 448²), and milliseconds per (query, document) pair.

use std::collections::BTreeMap;
use std::ops::Range;
#[cfg(not(target_family = "wasm"))]
use std::path::Path;
use std::path::PathBuf;
// `std::time::Instant` panics in browsers; web-time's is the same type natively.
use web_time::Instant;

use half::bf16;
use serde_json::json;
use sift_model::{Device, ModelConfig};
use sift_quant::{Conversion, QuantError, QuantizedWriter};
use tokenizers::PreTokenizer;

pub use sift_quant::InMemoryModel;

pub use sift_model::kernels::{FlashAttention, Q4Kernels, use_flash_attention, use_q4_kernels};
pub use sift_model::{AttentionKernels, attention_measurements, use_attention_kernels};

use crate::{
    Content, DocError, ImageSource, LoadError, Loading, ModelFiles, Request, RerankOptions,
    Reranker, RgbImage, Video, VideoSource,
};

/// The real model shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ModelSize {
    /// Qwen3-VL-Reranker-2B.
    #[cfg_attr(feature = "clap", value(name = "2b"))]
    B2,
    /// Qwen3-VL-Reranker-8B.
    #[cfg_attr(feature = "clap", value(name = "8b"))]
    B8,
    /// The same architecture, tiny (2 decoder layers of 64, 2 vision layers of 64, the real
    /// vocabulary; about 200 times fewer parameters than the 2B, most of them the token table):
    /// the workload on a CPU-emulated GPU in CI, where the 2B would take hours.
    #[cfg_attr(feature = "clap", value(name = "tiny"))]
    Tiny,
}

impl ModelSize {
    pub fn name(self) -> &'static str {
        match self {
            Self::B2 => "2B",
            Self::B8 => "8B",
            Self::Tiny => "tiny",
        }
    }

    /// The `config.json` of Qwen3-VL-Reranker-2B or -8B (spec §2), or of the tiny shape.
    pub fn config_json(self) -> String {
        // (hidden, layers, heads, key-value heads, intermediate, head width, rotary sections)
        let (text, vision, tied) = match self {
            Self::B2 => (
                (2048, 28, 16, 8, 6144, 128, [24, 20, 20]),
                (24, 1024, 16, 4096, vec![5, 11, 17]),
                true,
            ),
            Self::B8 => (
                (4096, 36, 32, 8, 12288, 128, [24, 20, 20]),
                (27, 1152, 16, 4304, vec![8, 16, 24]),
                false,
            ),
            Self::Tiny => (
                (64, 2, 4, 2, 128, 16, [4, 2, 2]),
                (2, 64, 2, 128, vec![0, 1]),
                true,
            ),
        };
        let (hidden, layers, heads, kv_heads, intermediate, head_dim, mrope_section) = text;
        let (depth, v_hidden, v_heads, v_intermediate, deepstack) = vision;
        let config = json!({
            "architectures": ["Qwen3VLForConditionalGeneration"],
            "model_type": "qwen3_vl",
            "image_token_id": 151655, "video_token_id": 151656,
            "vision_start_token_id": 151652, "vision_end_token_id": 151653,
            "tie_word_embeddings": tied,
            "text_config": {
                "attention_bias": false, "head_dim": head_dim, "hidden_act": "silu",
                "hidden_size": hidden, "intermediate_size": intermediate,
                "max_position_embeddings": 262144, "num_attention_heads": heads,
                "num_hidden_layers": layers, "num_key_value_heads": kv_heads,
                "rms_norm_eps": 1e-6,
                "rope_scaling": {"mrope_interleaved": true, "mrope_section": mrope_section, "rope_type": "default"},
                "rope_theta": 5000000.0, "tie_word_embeddings": tied, "vocab_size": 151936
            },
            "vision_config": {
                "deepstack_visual_indexes": deepstack, "depth": depth,
                "hidden_act": "gelu_pytorch_tanh", "hidden_size": v_hidden, "in_channels": 3,
                "intermediate_size": v_intermediate, "num_heads": v_heads,
                "num_position_embeddings": 2304, "out_hidden_size": hidden, "patch_size": 16,
                "spatial_merge_size": 2, "temporal_patch_size": 2
            }
        });
        serde_json::to_string_pretty(&config).expect("the config serialises")
    }
}

/// How random weights are drawn: like a trained checkpoint's (a log-normal scale per row, a few
/// outlier columns, bf16-rounded), with these variations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightStyle {
    /// Columns per matrix eight times larger than the rest.
    pub outliers: usize,
    /// Every matrix value scaled by `1 + noise·n`: the same model, perturbed.
    pub noise: f32,
    /// Residual-branch projections drawn 1/√(2·layers) as large, as GPT-2 initialises them.
    pub scaled_residuals: bool,
}

impl Default for WeightStyle {
    fn default() -> Self {
        Self {
            outliers: 4,
            noise: 0.0,
            scaled_residuals: false,
        }
    }
}

/// Which formats [`write_random_model`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formats {
    /// A bf16 checkpoint (`f32/`), computed in f32.
    F32,
    /// sift's 4-bit format (`q4/`).
    Q4,
    Both,
}

/// The directories [`write_random_model`] wrote.
pub struct RandomModel {
    /// `config.json` and the tokenizer, with `model.safetensors` (bf16) when asked for.
    pub f32_dir: PathBuf,
    /// The same weights in sift's 4-bit format, when asked for.
    pub q4_dir: PathBuf,
}

/// Writes a random model of `size` under `out` in `formats`. `tokenizer_dir` holds the Qwen
/// `tokenizer.json` (and `tokenizer_config.json`), which the model is given; without it, the
/// model gets [`workload_tokenizer`]. Deterministic: the same files on every run.
#[cfg(not(target_family = "wasm"))]
pub fn write_random_model(
    size: ModelSize,
    style: WeightStyle,
    tokenizer_dir: Option<&Path>,
    out: &Path,
    formats: Formats,
) -> Result<RandomModel, QuantError> {
    let with_f32 = formats != Formats::Q4;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| QuantError::Source(format!("{}: {e}", path.display()))
    };
    let f32_dir = out.join("f32");
    std::fs::create_dir_all(&f32_dir).map_err(io(&f32_dir))?;
    let config_json = size.config_json();
    std::fs::write(f32_dir.join("config.json"), &config_json).map_err(io(&f32_dir))?;
    match tokenizer_dir {
        Some(dir) => {
            for file in ["tokenizer.json", "tokenizer_config.json"] {
                let from = dir.join(file);
                if from.is_file() {
                    std::fs::copy(&from, f32_dir.join(file)).map_err(io(&from))?;
                }
            }
        }
        None => std::fs::write(f32_dir.join("tokenizer.json"), workload_tokenizer())
            .map_err(io(&f32_dir))?,
    }
    let tokenizer_json = std::fs::read(f32_dir.join("tokenizer.json")).map_err(io(&f32_dir))?;
    let tensors = RandomTensors::new(size, style, &tokenizer_json, &Device::flex())?;
    let q4_dir = out.join("q4");
    let mut writer = match formats {
        Formats::F32 => None,
        _ => Some(QuantizedWriter::create(
            &q4_dir,
            tensors.conversion(),
            &tensors.names,
        )?),
    };
    let mut checkpoint: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (i, (name, shape)) in tensors.names.iter().enumerate() {
        let values = tensors.values(i);
        if with_f32 {
            let bytes = values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect();
            checkpoint.insert(name.clone(), (shape.clone(), bytes));
        }
        if let Some(writer) = &mut writer {
            writer.add(name, shape, values)?;
        }
    }
    if let Some(writer) = writer {
        writer.finish(&f32_dir)?;
    }
    if with_f32 {
        let views = checkpoint
            .iter()
            .map(|(name, (shape, bytes))| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| QuantError::Source(format!("{name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = f32_dir.join("model.safetensors");
        safetensors::serialize_to_file(views, None, &path)
            .map_err(|e| QuantError::Source(format!("{}: {e}", path.display())))?;
    }
    Ok(RandomModel { f32_dir, q4_dir })
}

/// A random 4-bit model of `size` made in memory, with [`workload_tokenizer`]: what a
/// download of its directory would give (manifest, config, tokenizer, shards), for measuring
/// where nothing can be written or downloaded (the page's *Measure speed*). `progress(done,
/// total)` is called after each tensor, in values. The same bytes as `write_random_model`'s
/// `q4/` with that tokenizer. `device` is the one the model is for (nothing is allocated on it).
pub fn random_q4_model(
    size: ModelSize,
    device: &Device,
    mut progress: impl FnMut(u64, u64),
) -> Result<InMemoryModel, QuantError> {
    let tokenizer_json = workload_tokenizer().into_bytes();
    let tensors = RandomTensors::new(size, WeightStyle::default(), &tokenizer_json, device)?;
    let total: u64 = tensors
        .names
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>() as u64)
        .sum();
    let mut writer = QuantizedWriter::in_memory(tensors.conversion(), &tensors.names)?;
    let mut done = 0;
    for (i, (name, shape)) in tensors.names.iter().enumerate() {
        writer.add(name, shape, tensors.values_in_steps(i))?;
        done += shape.iter().product::<usize>() as u64;
        progress(done, total);
    }
    writer.finish_in_memory(vec![
        ("config.json".into(), size.config_json().into_bytes()),
        ("tokenizer.json".into(), tokenizer_json),
    ])
}

/// Loads a model made by [`random_q4_model`] onto `device`, shard by shard as a download is
/// loaded, calling `progress(done, total)` after each shard (in shards).
pub fn load_in_memory(
    model: InMemoryModel,
    device: &Device,
    options: RerankOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Reranker, LoadError> {
    let file = |name: &str| {
        model
            .files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| bytes.clone())
    };
    let files = ModelFiles {
        config: file("config.json").unwrap_or_default(),
        tokenizer: file("tokenizer.json").unwrap_or_default(),
        preprocessor_config: file("preprocessor_config.json"),
    };
    let total = model.shards.len();
    let mut loading = Loading::start(model.manifest, "random weights", files, device, options)?;
    for (index, shard) in model.shards.into_iter().enumerate() {
        loading.add_shard(index, &shard)?;
        progress(index + 1, total);
    }
    loading.finish()
}

/// The tensors of a random model and how each is drawn.
struct RandomTensors {
    config: ModelConfig,
    style: WeightStyle,
    /// Checkpoint names and shapes, in name order.
    names: Vec<(String, Vec<usize>)>,
    /// The score's token ids ("yes", "no"), whose head rows a 4-bit model keeps.
    head_rows: [usize; 2],
}

impl RandomTensors {
    fn new(
        size: ModelSize,
        style: WeightStyle,
        tokenizer_json: &[u8],
        device: &Device,
    ) -> Result<Self, QuantError> {
        let config = ModelConfig::from_json(&size.config_json()).expect("the shapes are valid");
        let names =
            sift_model::checkpoint_tensors(&config, device).expect("the shapes are planned");
        let tokenizer = sift_inputs::prompt::PromptTokenizer::from_bytes(tokenizer_json)
            .map_err(|e| QuantError::Source(e.to_string()))?;
        Ok(Self {
            config,
            style,
            names,
            head_rows: [tokenizer.yes_id as usize, tokenizer.no_id as usize],
        })
    }

    fn conversion(&self) -> Conversion {
        Conversion::new(&self.head_rows)
    }

    /// The values of tensor `i`, row-major.
    #[cfg(not(target_family = "wasm"))]
    fn values(&self, i: usize) -> Vec<f32> {
        self.rows(i, 0..self.row_count(i))
    }

    /// The values of tensor `i` drawn a few rows at a time, so that a large tensor (the 2B's
    /// token table is 1.2 GB in f32) is never held whole.
    fn values_in_steps(&self, i: usize) -> impl Iterator<Item = f32> + '_ {
        const STEP_ROWS: usize = 4096;
        let rows = self.row_count(i);
        (0..rows)
            .step_by(STEP_ROWS)
            .flat_map(move |start| self.rows(i, start..rows.min(start + STEP_ROWS)))
    }

    fn row_count(&self, i: usize) -> usize {
        match self.names[i].1.as_slice() {
            [rows, _, ..] => *rows,
            _ => 1,
        }
    }

    fn rows(&self, i: usize, wanted: Range<usize>) -> Vec<f32> {
        let (name, shape) = &self.names[i];
        let scale = if self.style.scaled_residuals {
            residual_branch_scale(name, &self.config)
        } else {
            1.0
        };
        trained_like(name, shape, i as u64 + 1, self.style, scale, wanted)
    }
}

/// A word-level tokenizer for benchmarks where the Qwen `tokenizer.json` is not at hand (the
/// page's *Measure speed*, `sift bench --random` without `--tokenizer`): the workload's and the
/// prompt's words, and the special tokens, "yes" and "no" at their Qwen ids, so prompts have the
/// same structure and about the same length (a word is about one of Qwen's tokens; other
/// words are one unknown token each). Speed does not depend on which ids the tokens are.
pub fn workload_tokenizer() -> String {
    const SPECIAL: [(&str, u32); 8] = [
        ("<|endoftext|>", 151643),
        ("<|im_start|>", 151644),
        ("<|im_end|>", 151645),
        ("<|vision_start|>", 151652),
        ("<|vision_end|>", 151653),
        ("<|vision_pad|>", 151654),
        ("<|image_pad|>", 151655),
        ("<|video_pad|>", 151656),
    ];
    let mut vocab: BTreeMap<String, u32> = BTreeMap::new();
    vocab.insert("[UNK]".into(), 0);
    vocab.insert("yes".into(), 9693);
    vocab.insert("no".into(), 2152);
    let query = query().texts.concat();
    let document = Workload::Text.document(0).texts.concat();
    let prompt = sift_inputs::prompt::prompt_text(
        crate::DEFAULT_INSTRUCTION,
        &Default::default(),
        &Default::default(),
    );
    // Above "yes" and "no", below the special tokens: no id is taken twice.
    let mut next = 100_000;
    for mut text in [prompt, query, document] {
        // Special tokens are matched before the text is split.
        for (token, _) in SPECIAL {
            text = text.replace(token, " ");
        }
        // Split as the tokenizer itself will split it.
        let mut words = tokenizers::PreTokenizedString::from(text.as_str());
        tokenizers::pre_tokenizers::whitespace::Whitespace
            .pre_tokenize(&mut words)
            .expect("splitting on whitespace cannot fail");
        for (word, _, _) in words.get_splits(
            tokenizers::OffsetReferential::Original,
            tokenizers::OffsetType::Byte,
        ) {
            if !vocab.contains_key(word) {
                vocab.insert(word.to_string(), next);
                next += 1;
            }
        }
    }
    for (token, id) in SPECIAL {
        vocab.insert(token.into(), id);
    }
    let added: Vec<_> = SPECIAL
        .iter()
        .map(|(token, id)| {
            json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    serde_json::to_string(&tokenizer).expect("the tokenizer serialises")
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
/// with a log-normal scale per row and `style.outliers` evenly spaced columns eight times
/// larger (the outliers that make 4-bit blocks coarse); norms near 1; small biases. With
/// `style.noise` > 0, every matrix value is then scaled by `1 + noise·n`, `n` normal from a
/// stream of its own. `scale` multiplies a matrix's values. Only rows `wanted` are drawn
/// (each row the same whichever others are).
fn trained_like(
    name: &str,
    shape: &[usize],
    seed: u64,
    style: WeightStyle,
    scale: f32,
    wanted: Range<usize>,
) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let rows = if shape.len() == 1 { 1 } else { shape[0] };
    let cols = n / rows;
    let first = wanted.start;
    let rows = wanted.len();
    let norm = shape.len() == 1 && name.contains("norm") && name.ends_with("weight");
    let outliers = style.outliers;
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
            if style.noise > 0.0 {
                out.iter_mut()
                    .for_each(|v| *v *= 1.0 + style.noise * perturbation.normal());
            }
        }
        for v in out.iter_mut() {
            *v = bf16::from_f32(*v).to_f32();
        }
    };
    let mut values = vec![0f32; rows * cols];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    if threads == 1 {
        // Browsers have no threads to spawn.
        for (r, out) in values.chunks_mut(cols).enumerate() {
            row(first + r, out);
        }
        return values;
    }
    let rows_per_thread = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, chunk) in values.chunks_mut(rows_per_thread * cols).enumerate() {
            scope.spawn(move || {
                for (i, out) in chunk.chunks_mut(cols).enumerate() {
                    row(first + t * rows_per_thread + i, out);
                }
            });
        }
    });
    values
}

/// GPT-2's initialisation: the projection that ends a residual branch (attention output, MLP
/// down) drawn 1/√(2·layers) as large, so each layer nudges the residual stream instead of
/// replacing it, as in trained models.
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

/// The three documents of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Workload {
    /// About 256 tokens of text.
    Text,
    /// One 1024×768 image: 768 visual tokens.
    Image,
    /// 16 frames of 448×448 given as a frame list: 8 groups of 196 visual tokens.
    Video,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Self::Text, Self::Image, Self::Video];

    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
        }
    }

    /// Document `index` of a request: each one differs from the others from its first token or
    /// pixel on, as a retriever's candidates do, so that no more of them is shared than the
    /// query (identical texts would share all but their last token, and only that would be
    /// computed). Pixels are a pattern: speed does not depend on them.
    pub fn document(self, index: usize) -> Content {
        let seed = u32::try_from(index).unwrap_or(u32::MAX);
        let pattern = |width: u32, height: u32, seed: u32| {
            RgbImage::from_fn(width, height, |x, y| {
                let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed;
                [
                    (v % 256) as u8,
                    ((v >> 3) % 256) as u8,
                    ((x + y) % 256) as u8,
                ]
                .into()
            })
        };
        match self {
            Self::Text => Content::text(format!(
                "{index}. {}",
                "Reranking scores how well each candidate answers a query. A first-stage \
                 retriever returns fifty passages quickly; the reranker reads each one beside \
                 the query and keeps the best five. "
                    .repeat(7)
            )),
            Self::Image => Content {
                images: vec![ImageSource::Pixels(pattern(1024, 768, seed))],
                ..Content::default()
            },
            Self::Video => Content::video(Video {
                source: VideoSource::Frames(
                    (0..16)
                        .map(|i| {
                            ImageSource::Pixels(pattern(
                                448,
                                448,
                                seed.wrapping_mul(16).wrapping_add(i),
                            ))
                        })
                        .collect(),
                ),
                fps: None,
                max_frames: None,
            }),
        }
    }
}

/// The workload's query: a short text (about 60 tokens of prompt with the instruction).
pub fn query() -> Content {
    Content::text("Which passage explains how a reranker chooses the best documents for a query?")
}

/// One measurement: `documents` of a workload's documents scored against one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub workload: Workload,
    pub documents: usize,
    /// Wall time of `Reranker::score` divided by the pairs it scored.
    pub ms_per_pair: f64,
    /// Of which the host's work (prompt, tokens, decoding and resizing pixels) per pair.
    pub host_ms_per_pair: f64,
    /// Prompt tokens per pair, visual tokens included.
    pub tokens_per_pair: usize,
    /// Requests timed (after one unmeasured request that compiles the kernels).
    pub rounds: usize,
    /// With `profile`: milliseconds per pair of each stage of one more request, computed with
    /// the device awaited around every stage (slower than the timed rounds).
    pub stages: Vec<(&'static str, f64)>,
}

/// Times `reranker` on `documents` of `workload`'s documents against [`query`]: the
/// same request first (unmeasured: kernels compile and are tuned), then `rounds` requests.
pub fn time_workload(
    reranker: &Reranker,
    workload: Workload,
    documents: usize,
    rounds: usize,
    profile: bool,
) -> Result<Timing, DocError> {
    let request = workload_request(workload, documents);
    // The request scored, failing on the first document that fails.
    let score = || {
        reranker
            .score(&request)
            .into_iter()
            .try_for_each(|result| result.map(drop))
    };
    // Unmeasured: kernels compile and are tuned for this request's shapes.
    score()?;
    let (host_ms, tokens) = host_share(reranker, &request, HOST_SAMPLES)?;
    let started = Instant::now();
    for _ in 0..rounds.max(1) {
        score()?;
    }
    let pairs = (rounds.max(1) * request.documents.len()) as f64;
    let ms_per_pair = started.elapsed().as_secs_f64() * 1e3 / pairs;
    let mut stages = Vec::new();
    if profile {
        // Awaiting the device between stages splits fused kernels differently: a first
        // profiled request compiles those, unmeasured.
        sift_model::profile::start();
        let warm = score();
        sift_model::profile::start();
        let started = Instant::now();
        let scored = score();
        let whole = started.elapsed();
        // Stopped before any error returns, so no later request is profiled.
        let mut profiled = sift_model::profile::stop();
        warm.and(scored)?;
        let staged: std::time::Duration = profiled.iter().map(|(_, t)| *t).sum();
        profiled.push((
            "outside the stages (host, launches)",
            whole.saturating_sub(staged),
        ));
        let per_pair =
            |t: std::time::Duration| t.as_secs_f64() * 1e3 / request.documents.len() as f64;
        stages = profiled
            .into_iter()
            .map(|(name, t)| (name, per_pair(t)))
            .collect();
    }
    Ok(Timing {
        workload,
        documents: request.documents.len(),
        ms_per_pair,
        host_ms_per_pair: host_ms,
        tokens_per_pair: tokens,
        rounds: rounds.max(1),
        stages,
    })
}

/// [`time_workload`] with the scores read back asynchronously, as a browser must (one
/// readback per pass, as the page scores), without a profile.
pub async fn time_workload_async(
    reranker: &Reranker,
    workload: Workload,
    documents: usize,
    rounds: usize,
) -> Result<Timing, DocError> {
    let request = workload_request(workload, documents);
    let score = async || {
        let query = reranker.prepare_query(&request);
        reranker
            .score_documents_async(&query, &request.documents)
            .await
            .into_iter()
            .try_for_each(|result| result.map(drop))
    };
    score().await?;
    // One build: the page shows no host share, and a browser decodes an image slowly.
    let (host_ms, tokens) = host_share(reranker, &request, 1)?;
    let started = Instant::now();
    for _ in 0..rounds.max(1) {
        score().await?;
    }
    let pairs = (rounds.max(1) * request.documents.len()) as f64;
    Ok(Timing {
        workload,
        documents: request.documents.len(),
        ms_per_pair: started.elapsed().as_secs_f64() * 1e3 / pairs,
        host_ms_per_pair: host_ms,
        tokens_per_pair: tokens,
        rounds: rounds.max(1),
        stages: Vec::new(),
    })
}

/// `documents` of `workload`'s documents (at least one) against [`query`].
fn workload_request(workload: Workload, documents: usize) -> Request {
    Request {
        query: query(),
        documents: (0..documents.max(1))
            .map(|index| workload.document(index))
            .collect(),
        ..Request::default()
    }
}

/// Model inputs built to time the host's share of a pair.
const HOST_SAMPLES: usize = 5;

/// The host's part of a pair (prompt, tokens, decoding and resizing pixels) in ms, and the
/// pair's tokens. Measured after the request was scored once, as the timed ones are (its first
/// allocations of a pair's size fault their pages in, which later requests do not pay),
/// averaged over `samples` builds: one varies by half with what else the cores are doing.
fn host_share(
    reranker: &Reranker,
    request: &Request,
    samples: usize,
) -> Result<(f64, usize), DocError> {
    let host = Instant::now();
    let mut tokens = 0;
    for _ in 0..samples.max(1) {
        tokens = reranker.model_input(request, 0)?.input_ids.len();
    }
    Ok((
        host.elapsed().as_secs_f64() * 1e3 / samples.max(1) as f64,
        tokens,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workload tokenizer gives the prompt its structure: the special tokens, "yes" and
    /// "no" at Qwen's ids, one pad per visual token, and about as many tokens for the text
    /// document as Qwen's (its prompt: 342 tokens).
    #[test]
    fn the_workload_tokenizer_keeps_the_prompts_structure() {
        let tokenizer =
            sift_inputs::prompt::PromptTokenizer::from_bytes(workload_tokenizer().as_bytes())
                .unwrap();
        assert_eq!((tokenizer.yes_id, tokenizer.no_id), (9693, 2152));
        let json: serde_json::Value = serde_json::from_str(&workload_tokenizer()).unwrap();
        let ids: Vec<u64> = json["model"]["vocab"]
            .as_object()
            .unwrap()
            .values()
            .map(|id| id.as_u64().unwrap())
            .collect();
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "every token its own id");
        let image = sift_inputs::prompt::SideContent {
            images: vec![4],
            ..Default::default()
        };
        let ids = tokenizer
            .encode(&sift_inputs::prompt::prompt_text(
                crate::DEFAULT_INSTRUCTION,
                &Default::default(),
                &image,
            ))
            .unwrap();
        let count = |id| ids.iter().filter(|&&i| i == id).count();
        assert_eq!(
            [151644, 151645, 151652, 151653, 151655].map(count),
            [3, 2, 1, 1, 4]
        );
        assert!(
            !ids.contains(&0),
            "every word of the prompt is known: {ids:?}"
        );
        let side = |content: Content| sift_inputs::prompt::SideContent {
            texts: content.texts,
            ..Default::default()
        };
        let (query, text) = (side(query()), side(Workload::Text.document(0)));
        let ids = tokenizer
            .encode(&sift_inputs::prompt::prompt_text(
                crate::DEFAULT_INSTRUCTION,
                &query,
                &text,
            ))
            .unwrap();
        assert!((300..=360).contains(&ids.len()), "{} tokens", ids.len());
    }

    /// Documents that repeated one another would share their tokens past the query, and the
    /// benchmark would time only what follows them (one token for identical texts).
    #[test]
    fn a_requests_documents_differ_from_their_first_token_or_pixel() {
        let first_pixel = |source: &ImageSource| match source {
            ImageSource::Pixels(image) => *image.get_pixel(0, 0),
            other => panic!("a pattern, not {other:?}"),
        };
        let [a, b] = [0, 1].map(|index| Workload::Text.document(index));
        assert_ne!(a.texts[0].chars().next(), b.texts[0].chars().next());
        let [a, b] = [0, 1].map(|index| Workload::Image.document(index));
        assert_ne!(first_pixel(&a.images[0]), first_pixel(&b.images[0]));
        let [a, b] =
            [0, 1].map(
                |index| match Workload::Video.document(index).videos.remove(0).source {
                    VideoSource::Frames(frames) => first_pixel(&frames[0]),
                    _ => panic!("a frame list"),
                },
            );
        assert_ne!(a, b);
    }
}
