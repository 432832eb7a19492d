//! `Reranker`: a loaded model that scores every document of a request against its query, as
//! the reference's `Qwen3VLReranker.process` does, with the prompt's shared beginning computed
//! once and the documents after it packed into forward passes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sift_inputs::ProcessorConfig;
use sift_inputs::prompt::PromptTokenizer;
use sift_model::{ModelConfig, ModelInput, RerankerModel, ScoreTokens};

use crate::device::device_for;
use crate::error::{DocError, LoadError};
use crate::inputs::{PairReader, PreparedQuery};
use crate::memory::InputMemory;
use crate::options::{Precision, RerankOptions};
use crate::passes::Passes;
use crate::ranking::Scored;
use crate::request::{Content, Request};

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

impl Reranker {
    /// Loads a Hugging Face model directory: `config.json`, the safetensors weights,
    /// `tokenizer.json` and (if present) `preprocessor_config.json`; or a directory that
    /// `sift quantize` wrote.
    pub fn load(model_dir: &Path, options: RerankOptions) -> Result<Self, LoadError> {
        let tokenizer = PromptTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
        let processor_path = model_dir.join("preprocessor_config.json");
        let processor_found = processor_path.exists();
        let processor = if processor_found {
            ProcessorConfig::from_path(&processor_path).map_err(|error| LoadError::Processor {
                path: processor_path.clone(),
                error,
            })?
        } else {
            ProcessorConfig::default()
        };
        // Before the weights are read. A config.json that cannot be read or parsed is reported
        // by the model's loader, which reads it again.
        let config_path = model_dir.join("config.json");
        if let Some(config) = std::fs::read_to_string(&config_path)
            .ok()
            .and_then(|json| ModelConfig::from_json(&json).ok())
        {
            LoadError::check_processor(
                &processor,
                &processor_path.display().to_string(),
                processor_found,
                &config,
                &config_path.display().to_string(),
            )?;
        }
        // After the preprocessor is known to fit the model: its patch sizes set the budget's.
        InputMemory::of(&options, &processor).check()?;
        let (device, device_name) = device_for(options.backend)?;
        let tokens = ScoreTokens {
            yes: tokenizer.yes_id,
            no: tokenizer.no_id,
        };
        let model = RerankerModel::load(model_dir, tokens, &device)?;
        LoadError::check_vocabulary(&tokenizer, model.config())?;
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
        self.reader().query(request)
    }

    /// Scores `documents` against a prepared query, in order, in passes: the documents after
    /// the prompt's shared prefix are packed into one forward pass while they fit
    /// [`RerankOptions::batch_bytes`]. Each document is read only when its pass is formed,
    /// so no more than one pass of pixels is held. `progress(done)` is called after each
    /// pass; when it returns false, scoring stops and only the documents done are returned.
    pub fn score_documents(
        &self,
        query: &PreparedQuery,
        documents: &[Content],
        mut progress: impl FnMut(usize) -> bool,
    ) -> Vec<Result<Scored, DocError>> {
        let passes = self.passes();
        let mut results = Vec::with_capacity(documents.len());
        for pass in passes.of(query, documents) {
            // The synchronous forward pass never waits, so one poll of its future finishes.
            results.extend(pollster::block_on(passes.score(
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
    /// (a Web Worker on WebGPU): one readback per pass, no progress within the call.
    pub async fn score_documents_async(
        &self,
        query: &PreparedQuery,
        documents: &[Content],
    ) -> Vec<Result<Scored, DocError>> {
        let passes = self.passes();
        let mut results = Vec::with_capacity(documents.len());
        for pass in passes.of(query, documents) {
            let scored = passes
                .score(query, pass, async |prefix, inputs| match prefix {
                    Some(prefix) => Ok(self.model.score_after_async(prefix, inputs).await?),
                    None => Ok(vec![self.model.score_async(inputs[0]).await]),
                })
                .await;
            results.extend(scored);
        }
        results
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

    /// The model input of document `index`, exactly what [`Reranker::score`] feeds the model:
    /// for comparing token ids and pixels with the reference.
    pub fn model_input(&self, request: &Request, index: usize) -> Result<ModelInput, DocError> {
        let reader = self.reader();
        reader.document(&reader.query(request), &request.documents[index])
    }

    fn reader(&self) -> PairReader<'_> {
        PairReader {
            tokenizer: &self.tokenizer,
            processor: &self.processor,
            config: self.model.config(),
            options: &self.options,
        }
    }

    fn passes(&self) -> Passes<'_> {
        Passes {
            model: &self.model,
            reader: self.reader(),
        }
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
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}
