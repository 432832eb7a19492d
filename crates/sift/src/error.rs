//! What can go wrong: loading a model ([`LoadError`]), or scoring one document
//! ([`DocError`]: the request's other documents are still scored).

use std::path::PathBuf;

use sift_inputs::prompt::{PromptTokenizer, TokenizerError};
use sift_inputs::video::VideoError;
use sift_inputs::{ImageError, ProcessorConfig};
use sift_model::{ModelConfig, ModelError};

use crate::memory::human;

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
    #[error(
        "{processor} has {setting} {processor_value}, but {config} has {field} {config_value}: \
         the preprocessor's patches would not fit the model's vision tower, so no image or video \
         could be read. Use the model's own preprocessor_config.json (without one, sift takes \
         the reference's defaults: patch_size 16, temporal_patch_size 2, merge_size 2)"
    )]
    ProcessorMismatch {
        /// The preprocessor's settings: the file, or that it is absent.
        processor: String,
        setting: &'static str,
        processor_value: usize,
        /// The model's `config.json`.
        config: String,
        field: &'static str,
        config_value: usize,
    },
    #[error(
        "the limits let one request hold {} of inputs, over the memory budget of {} \
         (--memory-budget; RerankOptions::memory_budget): a query and a document at the \
         visual-token limit take {} each (--max-visual-tokens; \
         RerankOptions::max_visual_tokens), and an image at the pixel limit {} while it is \
         decoded (--max-image-pixels; ImageOptions::max_decoded_pixels). Raise the budget, \
         or lower those limits",
        human(*needs), human(*budget), human(*pair), human(*decoding)
    )]
    OverMemoryBudget {
        needs: u64,
        pair: u64,
        decoding: u64,
        budget: u64,
    },
}

impl LoadError {
    /// Every id the tokenizer can produce must be a row of the model's token table.
    pub(crate) fn check_vocabulary(
        tokenizer: &PromptTokenizer,
        config: &ModelConfig,
    ) -> Result<(), Self> {
        let [vocab, _] = config.token_table_shape();
        let tokens = tokenizer.vocab_size();
        if tokens > vocab {
            return Err(Self::TokenizerMismatch { tokens, vocab });
        }
        Ok(())
    }

    /// Refuses a preprocessor whose patches are not the vision tower's: every image and video
    /// would fail to fit its grid. The messages name both files; a preprocessor file that is
    /// not `found` is named as absent, its defaults compared.
    pub(crate) fn check_processor(
        processor: &ProcessorConfig,
        processor_path: &str,
        found: bool,
        config: &ModelConfig,
        config_path: &str,
    ) -> Result<(), Self> {
        let v = &config.vision_config;
        let pairs = [
            (
                "patch_size",
                processor.patch_size,
                "vision_config.patch_size",
                v.patch_size,
            ),
            (
                "temporal_patch_size",
                processor.temporal_patch_size,
                "vision_config.temporal_patch_size",
                v.temporal_patch_size,
            ),
            (
                "merge_size",
                processor.merge_size,
                "vision_config.spatial_merge_size",
                v.spatial_merge_size,
            ),
        ];
        match pairs
            .into_iter()
            .find(|(_, ours, _, theirs)| ours != theirs)
        {
            Some((setting, processor_value, field, config_value)) => Err(Self::ProcessorMismatch {
                processor: match found {
                    true => processor_path.to_string(),
                    false => format!(
                        "{processor_path} is absent, so the reference's defaults apply; the default"
                    ),
                },
                setting,
                processor_value,
                config: config_path.to_string(),
                field,
                config_value,
            }),
            None => Ok(()),
        }
    }
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
    /// The query's own error (its side named "query"), shared by every document.
    #[error("the query cannot be used, so no document can be scored: {0}")]
    Query(std::sync::Arc<DocError>),
    /// A PDF page that could not be rendered, or a PDF that could not be opened (`page` None).
    #[cfg(feature = "pdf")]
    #[error("{}: {}", crate::pdf::place(name, *page), error.cause())]
    Pdf {
        name: String,
        page: Option<u32>,
        error: std::sync::Arc<sift_inputs::pdf::PdfError>,
    },
    #[error(
        "the model stopped on this document ({0}); the other documents are still scored, and \
         the model is loaded again before the next request. If it happens again, restart sift: \
         the GPU may be in a bad state"
    )]
    Crashed(String),
}
