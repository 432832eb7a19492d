//! `Reranker`: a loaded model that scores every document of a request against its query, as
//! the reference's `Qwen3VLReranker.process` does, with the prompt's shared beginning computed
//! once and the documents after it packed into forward passes.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sift_inputs::positions::{PositionError, VisionTokenIds, rope_index};
use sift_inputs::prompt::{
    DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH, PromptTokenizer, SideContent, TokenizerError,
    prompt_text,
};
use sift_inputs::video::{
    VideoError, VideoFrames, VideoSampling, frame_list_indices, read_video, video_from_frames,
};
use sift_inputs::{
    ImageError, ImageOptions, ProcessorConfig, RgbImage, load_image, load_image_path,
};
use sift_model::{
    Device, ModelConfig, ModelError, ModelInput, Prefix, RerankerModel, ScoreTokens, VisualItem,
    VisualKind,
};

use crate::request::{Content, ImageSource, Request, Video, VideoSource};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (`flex`).
    #[default]
    Cpu,
    /// burn's wgpu backend: Vulkan, Metal or DirectX 12 (needs the `wgpu` feature).
    Gpu,
    /// The GPU if wgpu finds a hardware one (not a CPU rasteriser such as lavapipe), else the
    /// CPU.
    Auto,
}

/// The type the linear layers and attention multiply in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 throughout: the reference's scores within 1e-5.
    #[default]
    F32,
    /// The linear layers and attention in f16, accumulating in f32 (norms, the residual stream
    /// and the score in f32): faster on GPUs with f16 (tensor cores through Vulkan's SPIR-V);
    /// on the golden requests, scores within 6e-5 of f32. Where a GPU's kernels are WGSL,
    /// attention stays f32 (burn's f16 attention there is slower than its f32).
    F16,
}

#[derive(Debug, Clone)]
pub struct RerankOptions {
    pub backend: Backend,
    pub precision: Precision,
    /// Tokens kept before the 5-token suffix (reference: 10240).
    pub max_length: usize,
    pub image: ImageOptions,
    /// Most image and video tokens in one (query, document) pair. The reference has no limit;
    /// sift refuses a pair above it with a message instead of running out of memory.
    pub max_visual_tokens: usize,
    /// Most images and videos on one side of a pair, refused before any is decoded.
    pub max_visuals_per_side: usize,
    /// Compute the prompt's beginning that a query's documents share once per query, not once
    /// per document ([`sift_model::Prefix`]); the scores are the same.
    pub reuse_prefix: bool,
    /// Documents after a shared prefix are computed together, packed into one forward pass (32
    /// at most), while the pass's widest activation (an MLP's inner layer) stays within this
    /// many bytes and the GPU's binding limit; a document larger than that is computed alone.
    pub batch_bytes: u64,
}

/// The default `max_visuals_per_side`.
pub const DEFAULT_MAX_VISUALS_PER_SIDE: usize = 64;

/// The default `max_visual_tokens`: room for a 64-frame 1080p video (23,040 tokens, spec §4.2)
/// beside a few full-size images.
pub const DEFAULT_MAX_VISUAL_TOKENS: usize = 32_768;

/// The default `batch_bytes`: 32 text documents (the cap) or 10 images of the workload in one
/// pass of the 2B model; peak GPU memory a few times this.
pub const DEFAULT_BATCH_BYTES: u64 = 512 << 20;

/// Most documents in one forward pass: enough to fill a GPU with text documents, few enough
/// that progress is reported and a server's cancelled request stops within a pass or two.
const MAX_PASS_DOCUMENTS: usize = 32;

impl Default for RerankOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Cpu,
            precision: Precision::F32,
            max_length: DEFAULT_MAX_LENGTH,
            image: ImageOptions::default(),
            max_visual_tokens: DEFAULT_MAX_VISUAL_TOKENS,
            max_visuals_per_side: DEFAULT_MAX_VISUALS_PER_SIDE,
            reuse_prefix: true,
            batch_bytes: DEFAULT_BATCH_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{}: {error}", path.display())]
    Processor { path: PathBuf, error: ImageError },
    #[error(
        "this build of sift has no {0} backend; rebuild with `--features {0}` or choose another device"
    )]
    BackendNotBuilt(&'static str),
    #[error(transparent)]
    Quant(#[from] sift_quant::QuantError),
    #[error(
        "tokenizer.json has {tokens} tokens but the model's token table only {vocab}: the \
         tokenizer belongs to another model; use the model's own tokenizer.json"
    )]
    TokenizerMismatch { tokens: usize, vocab: usize },
}

/// Every id the tokenizer can produce must be a row of the model's token table.
pub(crate) fn check_vocabulary(
    tokenizer: &PromptTokenizer,
    config: &ModelConfig,
) -> Result<(), LoadError> {
    let [vocab, _] = config.token_table_shape();
    let tokens = tokenizer.vocab_size();
    if tokens > vocab {
        return Err(LoadError::TokenizerMismatch { tokens, vocab });
    }
    Ok(())
}

/// Why one document could not be scored. The other documents are still scored.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("image {index} of the {side}: {error}")]
    Image {
        side: &'static str,
        index: usize,
        error: ImageError,
    },
    #[error("video {index} of the {side}: {error}")]
    Video {
        side: &'static str,
        index: usize,
        error: VideoError,
    },
    #[error(
        "the pair has {tokens} image and video tokens, over the limit of {limit}; lower the \
         request's \"fps\" or \"max_frames\", use smaller images, or raise the limit \
         (`--max-visual-tokens`, `RerankOptions::max_visual_tokens`) if the GPU has the memory"
    )]
    TooManyVisualTokens { tokens: usize, limit: usize },
    #[error(
        "the {side} has {count} images and videos, over the limit of {limit}; split it, or \
         raise the limit (`--max-visuals-per-side`, `RerankOptions::max_visuals_per_side`)"
    )]
    TooManyVisuals {
        side: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("the prompt: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("the model: {0}")]
    Model(#[from] ModelError),
    #[error("the query cannot be used, so no document can be scored: {0}")]
    Query(String),
    #[error(
        "the model stopped on this document ({0}); the other documents are still scored, and \
         the model is loaded again before the next request. If it happens again, restart sift: \
         the GPU may be in a bad state"
    )]
    Crashed(String),
}

/// A request's query, instruction and video sampling, read once and used for each document
/// ([`Reranker::prepare_query`]).
pub struct PreparedQuery {
    instruction: String,
    sampling: VideoSampling,
    /// The query's content, or why it cannot be used (then every document reports it).
    side: Result<PreparedSide, String>,
    /// The prompt's beginning its documents share, learned from the first two.
    shared: Mutex<SharedPrefix>,
}

/// What is known of the prompt's beginning that a query's documents share.
enum SharedPrefix {
    /// No document scored yet.
    Unknown,
    /// The first document's prompt, and where its own images and videos start.
    First {
        input_ids: Vec<u32>,
        own_start: usize,
    },
    /// Computed, from the first two documents' common tokens.
    Ready(Prefix),
    /// Nothing worth sharing (or its computation failed): each pair is computed whole.
    Unshared,
}

impl PreparedQuery {
    /// Tokens of the prompt's beginning computed once for its documents, once known (after
    /// two documents that share one).
    pub fn shared_prefix_len(&self) -> Option<usize> {
        match &*self.shared.lock().unwrap_or_else(|e| e.into_inner()) {
            SharedPrefix::Ready(prefix) => Some(prefix.len()),
            _ => None,
        }
    }

    /// Gives back the prefix [`Reranker::shared_prefix`] took, for the next document.
    fn keep(&self, prefix: Prefix) {
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = SharedPrefix::Ready(prefix);
    }
}

/// One side's prompt content and the visual inputs it contributes, in prompt order.
struct PreparedSide {
    content: SideContent,
    visuals: Vec<VisualItem>,
    /// Image and video tokens of `visuals`.
    visual_tokens: usize,
}

/// One document's score and the length of the prompt that produced it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f32,
    /// Tokens in the (query, document) prompt, visual tokens included.
    pub tokens: usize,
}

pub struct Reranker {
    model: RerankerModel,
    tokenizer: PromptTokenizer,
    processor: ProcessorConfig,
    options: RerankOptions,
    device_name: String,
    /// The directory it was loaded from, to load it again after a crash.
    model_dir: Option<PathBuf>,
    /// Set when a forward pass panicked: the model's device state may be damaged.
    crashed: AtomicBool,
}

/// The device a backend choice resolves to, and its name for people.
fn device_for(backend: Backend) -> Result<(Device, String), LoadError> {
    match backend {
        Backend::Cpu => cpu_device(),
        #[cfg(feature = "wgpu")]
        Backend::Gpu => {
            let device = sift_model::gpu_device()?;
            let name = gpu_name(&device);
            Ok((device, name))
        }
        #[cfg(not(feature = "wgpu"))]
        Backend::Gpu => Err(LoadError::BackendNotBuilt("wgpu")),
        #[cfg(feature = "wgpu")]
        Backend::Auto if sift_model::hardware_gpu_present() => device_for(Backend::Gpu),
        Backend::Auto => cpu_device(),
    }
}

fn cpu_device() -> Result<(Device, String), LoadError> {
    #[cfg(feature = "flex")]
    return Ok((Device::flex(), "the CPU".to_string()));
    #[cfg(not(feature = "flex"))]
    Err(LoadError::BackendNotBuilt("flex"))
}

#[cfg(feature = "wgpu")]
fn gpu_name(device: &Device) -> String {
    sift_model::gpu_info(device).map_or_else(|| "the GPU".to_string(), |i| i.name)
}

impl Reranker {
    /// Loads a Hugging Face model directory: `config.json`, the safetensors weights,
    /// `tokenizer.json` and (if present) `preprocessor_config.json`.
    pub fn load(model_dir: &Path, options: RerankOptions) -> Result<Self, LoadError> {
        let tokenizer = PromptTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
        let processor_path = model_dir.join("preprocessor_config.json");
        let processor = if processor_path.exists() {
            ProcessorConfig::from_path(&processor_path).map_err(|error| LoadError::Processor {
                path: processor_path,
                error,
            })?
        } else {
            ProcessorConfig::default()
        };
        let (device, device_name) = device_for(options.backend)?;
        let tokens = ScoreTokens {
            yes: tokenizer.yes_id,
            no: tokenizer.no_id,
        };
        let model = RerankerModel::load(model_dir, tokens, &device)?;
        check_vocabulary(&tokenizer, model.config())?;
        Ok(Self {
            model_dir: Some(model_dir.to_path_buf()),
            ..Self::from_parts(model, tokenizer, processor, options, device_name)?
        })
    }

    /// Whether a forward pass has panicked since the model was loaded ([`DocError::Crashed`]):
    /// burn's state on the device may be damaged, so the model should be loaded again.
    pub fn needs_reload(&self) -> bool {
        self.crashed.load(Ordering::Relaxed)
    }

    /// The reranker loaded again from its directory if [`needs_reload`](Self::needs_reload),
    /// else itself. The damaged model is dropped first, so its GPU memory is free for the new
    /// one. A reranker assembled from parts (a browser's) has no directory and is returned as
    /// it is: a browser restarts its worker instead.
    pub fn reloaded(self) -> Result<Self, LoadError> {
        match self.model_dir.clone().filter(|_| self.needs_reload()) {
            Some(dir) => {
                let options = self.options.clone();
                drop(self);
                Self::load(&dir, options)
            }
            None => Ok(self),
        }
    }

    /// The reranker of a loaded model, switched to the options' precision (from a directory
    /// or, in a browser, from parts: both ways honour it).
    pub(crate) fn from_parts(
        mut model: RerankerModel,
        tokenizer: PromptTokenizer,
        processor: ProcessorConfig,
        options: RerankOptions,
        device_name: String,
    ) -> Result<Self, LoadError> {
        if options.precision == Precision::F16 {
            model.compute_in_f16()?;
        }
        Ok(Self {
            model,
            tokenizer,
            processor,
            options,
            device_name,
            model_dir: None,
            crashed: AtomicBool::new(false),
        })
    }

    /// The options it was loaded with.
    pub fn options(&self) -> &RerankOptions {
        &self.options
    }

    /// The device the model runs on, for people: "the CPU" or the GPU's name and API.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Scores every document against the query, in request order. A document that cannot be
    /// read gets its own error; the others are still scored. If the query itself cannot be
    /// used, every document reports why.
    pub fn score(&self, request: &Request) -> Vec<Result<f32, DocError>> {
        self.score_each(request, |_, _| {})
    }

    /// Like [`Reranker::score`], calling `progress(done, total)` as documents are scored.
    pub fn score_each(
        &self,
        request: &Request,
        mut progress: impl FnMut(usize, usize),
    ) -> Vec<Result<f32, DocError>> {
        let query = self.prepare_query(request);
        let total = request.documents.len();
        self.score_documents(&query, &request.documents, |done| {
            progress(done, total);
            true
        })
        .into_iter()
        .map(|scored| scored.map(|s| s.score))
        .collect()
    }

    /// Reads the request's query (its images and videos decoded and preprocessed once), its
    /// instruction and its video sampling, for scoring its documents with
    /// [`score_documents`](Self::score_documents) or one at a time. The request's own
    /// documents are not read.
    pub fn prepare_query(&self, request: &Request) -> PreparedQuery {
        let sampling = request.video_sampling();
        PreparedQuery {
            instruction: request
                .instruction
                .clone()
                .unwrap_or_else(|| DEFAULT_INSTRUCTION.to_string()),
            side: self
                .prepare(&request.query, "query", &sampling, 0)
                .map_err(|e| e.to_string()),
            sampling,
            shared: Mutex::new(SharedPrefix::Unknown),
        }
    }

    /// Scores `documents` against a prepared query, in order, in batches: the documents after
    /// the prompt's shared prefix are packed into one forward pass while they fit
    /// [`RerankOptions::batch_bytes`]. Each document is read only when its batch is formed,
    /// so no more than one batch of pixels is held. `progress(done)` is called after each
    /// batch; when it returns false, scoring stops and only the documents done are returned.
    pub fn score_documents(
        &self,
        query: &PreparedQuery,
        documents: &[Content],
        mut progress: impl FnMut(usize) -> bool,
    ) -> Vec<Result<Scored, DocError>> {
        let mut results = Vec::with_capacity(documents.len());
        for pass in self.passes(query, documents) {
            // The synchronous forward pass never waits, so one poll of its future finishes.
            results.extend(pollster::block_on(self.score_pass(
                query,
                pass,
                async |prefix, inputs| {
                    self.guarded(|| match prefix {
                        Some(prefix) => Ok(self.model.score_after(prefix, inputs)?),
                        None => Ok(vec![self.model.score(inputs[0])]),
                    })
                },
            )));
            if !progress(results.len()) {
                break;
            }
        }
        results
    }

    /// [`score_documents`](Self::score_documents) with an asynchronous readback, for browsers
    /// (a Web Worker on WebGPU): one readback per batch, no progress within the call.
    pub async fn score_documents_async(
        &self,
        query: &PreparedQuery,
        documents: &[Content],
    ) -> Vec<Result<Scored, DocError>> {
        let mut results = Vec::with_capacity(documents.len());
        for pass in self.passes(query, documents) {
            let scored = self
                .score_pass(query, pass, async |prefix, inputs| match prefix {
                    Some(prefix) => Ok(self.model.score_after_async(prefix, inputs).await?),
                    None => Ok(vec![self.model.score_async(inputs[0]).await]),
                })
                .await;
            results.extend(scored);
        }
        results
    }

    /// `documents` read as they are needed and grouped into batches, each one forward pass
    /// after the shared prefix: documents join while the pass's widest activation fits
    /// [`batch_limit`](Self::batch_limit), 32 at most. A document that cannot be read stays in
    /// its place with its error.
    fn passes<'a>(
        &'a self,
        query: &'a PreparedQuery,
        documents: &'a [Content],
    ) -> impl Iterator<Item = Vec<Result<ModelInput, DocError>>> + 'a {
        let limit = self.batch_limit();
        let mut read = documents
            .iter()
            .map(|document| self.document_input(query, document))
            .peekable();
        std::iter::from_fn(move || {
            let mut pass = Vec::new();
            let (mut inputs, mut tokens, mut patches) = (0, 0, 0);
            while let Some(next) = read.peek() {
                if let Ok(input) = next {
                    let with = (
                        tokens + input.input_ids.len(),
                        patches + input.patch_count(),
                    );
                    let full = inputs >= MAX_PASS_DOCUMENTS
                        || self.model.pass_bytes(with.0, with.1) > limit;
                    if inputs > 0 && full {
                        break;
                    }
                    inputs += 1;
                    (tokens, patches) = with;
                }
                pass.push(read.next().expect("peeked"));
            }
            (!pass.is_empty()).then_some(pass)
        })
    }

    /// The most bytes one forward pass's widest activation may take.
    fn batch_limit(&self) -> u64 {
        let binding = sift_model::binding_limit(self.model.device()).unwrap_or(u64::MAX);
        self.options.batch_bytes.min(binding)
    }

    /// Scores one batch of documents' inputs: after the shared prefix in one pass of
    /// `forward` where they have one, else one at a time. If the batch's pass fails (burn
    /// panics where the GPU runs out of memory), its documents are scored one at a time.
    /// `forward(prefix, inputs)` scores inputs packed after a prefix, or one input whole.
    async fn score_pass(
        &self,
        query: &PreparedQuery,
        pass: Vec<Result<ModelInput, DocError>>,
        forward: impl AsyncFn(Option<&Prefix>, &[&ModelInput]) -> Result<Scores, DocError>,
    ) -> Vec<Result<Scored, DocError>> {
        let mut results: Vec<Option<Result<Scored, DocError>>> = Vec::with_capacity(pass.len());
        // The documents read, with their places in `results`: packed after the prefix below,
        // or scored alone.
        let mut alone = Vec::with_capacity(pass.len());
        for read in pass {
            match read {
                Ok(input) => {
                    alone.push((results.len(), input));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if alone.len() > 1
            && let Some(prefix) = self.shared_prefix_of(query, &alone)
        {
            let (after, rest): (Vec<_>, Vec<_>) =
                alone.into_iter().partition(|(_, input)| prefix.fits(input));
            let packed: Vec<&ModelInput> = after.iter().map(|(_, input)| input).collect();
            let scored = forward(Some(&prefix), &packed).await;
            query.keep(prefix);
            alone = rest;
            match scored {
                Ok(scores) => {
                    for ((index, input), score) in after.iter().zip(scores) {
                        results[*index] = Some(scored_pair(score.map_err(DocError::from), input));
                    }
                }
                Err(_) => alone.extend(after),
            }
        }
        for (index, input) in alone {
            let scored = match self.shared_prefix(query, &input) {
                Some(prefix) => {
                    let scored = forward(Some(&prefix), &[&input]).await;
                    query.keep(prefix);
                    scored
                }
                None => forward(None, &[&input]).await,
            };
            let score = scored.and_then(|mut scores| Ok(scores.pop().expect("one score")?));
            results[index] = Some(scored_pair(score, &input));
        }
        results
            .into_iter()
            .map(|r| r.expect("every document scored"))
            .collect()
    }

    /// `forward` run so that a panic (burn's way to report a lost GPU or an allocation that
    /// failed) is an error of the documents it computes, not the end of the process (a batch,
    /// a server); the model is then marked for reload.
    fn guarded<T>(&self, forward: impl FnOnce() -> Result<T, DocError>) -> Result<T, DocError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Tests make this forward pass panic, as burn does when the GPU fails.
            #[cfg(feature = "failpoints")]
            fail::fail_point!("sift::forward");
            forward()
        }))
        .map_err(|panic| {
            self.crashed.store(true, Ordering::Relaxed);
            DocError::Crashed(panic_message(panic.as_ref()))
        })?
    }

    /// The prefix that a batch's documents share with the query's others (learned from the
    /// first two documents the query sees), taken out of `query`.
    fn shared_prefix_of(
        &self,
        query: &PreparedQuery,
        batch: &[(usize, ModelInput)],
    ) -> Option<Prefix> {
        batch
            .iter()
            .take(2)
            .find_map(|(_, input)| self.shared_prefix(query, input))
    }

    /// The score of one document against a prepared query. Reads the result back
    /// synchronously: in a browser, use [`score_documents_async`](Self::score_documents_async).
    pub fn score_document(
        &self,
        query: &PreparedQuery,
        document: &Content,
    ) -> Result<f32, DocError> {
        self.score_pair(query, document).map(|scored| scored.score)
    }

    /// [`score_document`](Self::score_document), with the prompt's length (a server's usage).
    pub fn score_pair(
        &self,
        query: &PreparedQuery,
        document: &Content,
    ) -> Result<Scored, DocError> {
        let mut results = self.score_documents(query, std::slice::from_ref(document), |_| true);
        results.pop().expect("one document, one result")
    }

    /// The prefix to score `input` after, taken out of `query` (give it back with
    /// [`PreparedQuery::keep`]): the one computed, or one computed now from the tokens
    /// `input` shares with the first document. `None` when the pair is computed whole.
    fn shared_prefix(&self, query: &PreparedQuery, input: &ModelInput) -> Option<Prefix> {
        if !self.options.reuse_prefix {
            return None;
        }
        // Where this document's own images and videos start: the query's come first.
        let query_items = query.side.as_ref().map_or(0, |side| side.visuals.len());
        let own_start = self.model.visual_item_start(input, query_items);
        let mut shared = query.shared.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *shared, SharedPrefix::Unshared) {
            SharedPrefix::Ready(prefix) if prefix.fits(input) => Some(prefix),
            SharedPrefix::Ready(prefix) => {
                *shared = SharedPrefix::Ready(prefix);
                None
            }
            SharedPrefix::Unknown => {
                *shared = SharedPrefix::First {
                    input_ids: input.input_ids.clone(),
                    own_start,
                };
                None
            }
            SharedPrefix::First {
                input_ids,
                own_start: first_start,
            } => {
                let common = input_ids
                    .iter()
                    .zip(&input.input_ids)
                    .take_while(|(a, b)| a == b)
                    .count();
                // Both prompts must go on after the prefix, and a document's own images and
                // videos are never in it (their pad tokens are alike, their pixels are not).
                let len = common
                    .min(own_start)
                    .min(first_start)
                    .min(input_ids.len() - 1)
                    .min(input.input_ids.len() - 1);
                // A failure leaves `Unshared`: the pair is then computed whole.
                (len > 0)
                    .then(|| self.model.prefix(input, len).ok())
                    .flatten()
            }
            SharedPrefix::Unshared => None,
        }
    }

    /// What the model reads for one document against a prepared query.
    fn document_input(
        &self,
        query: &PreparedQuery,
        document: &Content,
    ) -> Result<ModelInput, DocError> {
        let side = query
            .side
            .as_ref()
            .map_err(|e| DocError::Query(e.clone()))?;
        let document = self.prepare(document, "document", &query.sampling, side.visual_tokens)?;
        self.pair_input(&query.instruction, side, document)
    }

    /// Reads a side's videos, then its images (the prompt's order), into prompt content and
    /// vision-tower inputs, one at a time: the pair's visual tokens (`already` from the other
    /// side) are counted as each is read, and a side over the limit is refused at once, so
    /// no more is decoded than the limit allows.
    fn prepare(
        &self,
        content: &Content,
        side: &'static str,
        sampling: &VideoSampling,
        already: usize,
    ) -> Result<PreparedSide, DocError> {
        let count = content.videos.len() + content.images.len();
        let limit = self.options.max_visuals_per_side;
        if count > limit {
            return Err(DocError::TooManyVisuals { side, count, limit });
        }
        let merge = self.processor.merge_size * self.processor.merge_size;
        let mut tokens = already;
        let mut count_tokens = |item: &VisualItem| {
            tokens += item.grid_thw.iter().product::<usize>() / merge;
            let limit = self.options.max_visual_tokens;
            match tokens > limit {
                true => Err(DocError::TooManyVisualTokens { tokens, limit }),
                false => Ok(()),
            }
        };
        let mut visuals = Vec::new();
        let mut videos = Vec::new();
        for (index, video) in content.videos.iter().enumerate() {
            let video_error = |error| DocError::Video { side, index, error };
            let frames = self.read_video(video, sampling).map_err(video_error)?;
            let prepared = frames
                .prepare(&self.processor)
                .map_err(|e| video_error(VideoError::Frame(e)))?;
            videos.push(prepared.placeholder);
            let item = VisualItem {
                kind: VisualKind::Video,
                pixel_values: prepared.input.pixel_values,
                grid_thw: prepared.input.grid_thw,
            };
            count_tokens(&item)?;
            visuals.push(item);
        }
        let mut image_tokens = Vec::new();
        for (index, source) in content.images.iter().enumerate() {
            let image_error = |error| DocError::Image { side, index, error };
            let opts = &self.options.image;
            let decoded = self.decode_image(source).map_err(image_error)?;
            let input = sift_inputs::preprocess_image(&decoded, opts, &self.processor)
                .map_err(image_error)?;
            image_tokens.push(input.num_tokens(self.processor.merge_size));
            let item = VisualItem {
                kind: VisualKind::Image,
                pixel_values: input.pixel_values,
                grid_thw: input.grid_thw,
            };
            count_tokens(&item)?;
            visuals.push(item);
        }
        Ok(PreparedSide {
            content: SideContent {
                videos,
                images: image_tokens,
                texts: content.texts.clone(),
            },
            visuals,
            visual_tokens: tokens - already,
        })
    }

    /// Decoded pixels of an image source; pixels given as such are borrowed, not copied.
    fn decode_image<'a>(&self, source: &'a ImageSource) -> Result<Cow<'a, RgbImage>, ImageError> {
        let opts = &self.options.image;
        match source {
            ImageSource::Path(path) => load_image_path(path, opts).map(Cow::Owned),
            ImageSource::Bytes(bytes) => load_image(bytes, opts).map(Cow::Owned),
            ImageSource::Pixels(pixels) => Ok(Cow::Borrowed(pixels)),
        }
    }

    /// A video's frames as `fetch_video` returns them. A file's own sampling wins over the
    /// request's. A frame list keeps at most its own `max_frames`, else 64: as in the reference,
    /// where the call's `max_frames` reaches files only and lists use the reranker's default.
    fn read_video<'a>(
        &self,
        video: &'a Video,
        sampling: &VideoSampling,
    ) -> Result<Cow<'a, VideoFrames>, VideoError> {
        match &video.source {
            VideoSource::Path(path) => read_video(
                path,
                &video.sampling(sampling),
                self.options.max_visual_tokens,
            )
            .map(Cow::Owned),
            VideoSource::Frames(sources) => {
                let max_frames = video
                    .max_frames
                    .unwrap_or(VideoSampling::default().max_frames);
                let indices = frame_list_indices(sources.len(), max_frames);
                let images = indices
                    .iter()
                    .map(|&i| self.decode_image(&sources[i]).map_err(VideoError::Frame));
                video_from_frames(indices.len(), images, self.options.max_visual_tokens)
                    .map(Cow::Owned)
            }
            VideoSource::Sampled(frames) => Ok(Cow::Borrowed(frames)),
        }
    }

    /// The model input of document `index`, exactly what [`Reranker::score`] feeds the model:
    /// for comparing token ids and pixels with the reference.
    pub fn model_input(&self, request: &Request, index: usize) -> Result<ModelInput, DocError> {
        self.document_input(&self.prepare_query(request), &request.documents[index])
    }

    fn pair_input(
        &self,
        instruction: &str,
        query: &PreparedSide,
        document: PreparedSide,
    ) -> Result<ModelInput, DocError> {
        let text = prompt_text(instruction, &query.content, &document.content);
        let ids = self.tokenizer.encode(&text)?;
        let input_ids = self.tokenizer.truncate(ids, self.options.max_length);
        // Prompt order: the query's visuals (shared by every document, so copied), then the
        // document's own (moved: an image's pixels are 19 MB).
        let visuals: Vec<VisualItem> = query
            .visuals
            .iter()
            .cloned()
            .chain(document.visuals)
            .collect();
        let position_ids = position_ids(self.model.config(), &input_ids, &visuals)
            .map_err(|e| ModelError::Input(e.to_string()))?;
        Ok(ModelInput {
            input_ids,
            position_ids,
            visuals,
        })
    }
}

/// The scores of one forward pass, each its own pair's result.
type Scores = Vec<Result<sift_model::Score, ModelError>>;

/// A document's result with the length of its prompt.
fn scored_pair(
    score: Result<sift_model::Score, DocError>,
    input: &ModelInput,
) -> Result<Scored, DocError> {
    Ok(Scored {
        score: score?.score,
        tokens: input.input_ids.len(),
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The multimodal position ids (`get_rope_index`) of a prompt whose visual items are given in
/// prompt order.
pub fn position_ids(
    config: &ModelConfig,
    input_ids: &[u32],
    visuals: &[VisualItem],
) -> Result<[Vec<i64>; 3], PositionError> {
    let grids = |kind| {
        visuals
            .iter()
            .filter(|v| v.kind == kind)
            .map(|v| v.grid_thw)
            .collect::<Vec<_>>()
    };
    let ids = VisionTokenIds {
        image_token_id: config.image_token_id,
        video_token_id: config.video_token_id,
        vision_start_token_id: config.vision_start_token_id,
        spatial_merge_size: config.vision_config.spatial_merge_size,
    };
    let positions = rope_index(
        input_ids,
        &grids(VisualKind::Image),
        &grids(VisualKind::Video),
        &ids,
    )?;
    Ok(positions.axes)
}
