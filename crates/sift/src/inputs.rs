//! A request read into what the model reads: each side's images and videos decoded and
//! preprocessed (counted against the limits as they are read), the prompt tokenized and cut,
//! and the multimodal position ids.

use std::borrow::Cow;
use std::sync::Arc;

use sift_inputs::positions::{PositionError, VisionTokenIds, rope_index};
use sift_inputs::prompt::{DEFAULT_INSTRUCTION, PromptTokenizer, SideContent, prompt_text};
use sift_inputs::video::{
    VideoError, VideoFrames, VideoSampling, read_video, sample_frame_list, video_from_frames,
};
use sift_inputs::{ImageError, ProcessorConfig, RgbImage, load_image, load_image_path};
use sift_model::{ModelConfig, ModelError, ModelInput, VisualItem, VisualKind};

use crate::error::DocError;
use crate::options::RerankOptions;
use crate::prefix::SharedPrefix;
use crate::request::{Content, ImageSource, Request, Video, VideoSource};

/// A request's query, instruction and video sampling, read once and used for each document
/// ([`Reranker::prepare_query`](crate::Reranker::prepare_query)).
pub struct PreparedQuery {
    pub(crate) instruction: String,
    pub(crate) sampling: VideoSampling,
    /// The query's content, or why it cannot be used (then every document reports it).
    pub(crate) side: Result<PreparedSide, Arc<DocError>>,
    /// The prompt's beginning its documents share, learned from the first two.
    pub(crate) shared: SharedPrefix,
}

impl PreparedQuery {
    /// Tokens of the prompt's beginning computed once for its documents, once known (after
    /// two documents that share one).
    pub fn shared_prefix_len(&self) -> Option<usize> {
        self.shared.len()
    }

    /// Why the query cannot be used, if it cannot: then every document's result is
    /// [`DocError::Query`] with this error, and a host may say so once, before reading any.
    pub fn error(&self) -> Option<&DocError> {
        self.side.as_ref().err().map(|e| e.as_ref())
    }

    /// The number of the query's images and videos, which come first in every prompt.
    pub(crate) fn visual_items(&self) -> usize {
        self.side.as_ref().map_or(0, |side| side.visuals.len())
    }
}

/// One side's prompt content and the visual inputs it contributes, in prompt order.
pub(crate) struct PreparedSide {
    content: SideContent,
    visuals: Vec<VisualItem>,
    /// Image and video tokens of `visuals`.
    visual_tokens: usize,
}

/// What reads a request's sides: the model's tokenizer, preprocessor and configuration, and
/// the options' limits.
pub(crate) struct PairReader<'a> {
    pub tokenizer: &'a PromptTokenizer,
    pub processor: &'a ProcessorConfig,
    pub config: &'a ModelConfig,
    pub options: &'a RerankOptions,
}

impl PairReader<'_> {
    /// The request's query (its images and videos decoded and preprocessed once), its
    /// instruction and its video sampling. The request's own documents are not read.
    pub fn query(&self, request: &Request) -> PreparedQuery {
        let sampling = request.video_sampling();
        PreparedQuery {
            instruction: request
                .instruction
                .clone()
                .unwrap_or_else(|| DEFAULT_INSTRUCTION.to_string()),
            side: self
                .side(&request.query, "query", &sampling, 0)
                .map_err(Arc::new),
            sampling,
            shared: SharedPrefix::new(),
        }
    }

    /// What the model reads for one document against a prepared query.
    pub fn document(
        &self,
        query: &PreparedQuery,
        document: &Content,
    ) -> Result<ModelInput, DocError> {
        let side = query
            .side
            .as_ref()
            .map_err(|e| DocError::Query(Arc::clone(e)))?;
        let document = self.side(document, "document", &query.sampling, side.visual_tokens)?;
        self.pair(&query.instruction, side, document)
    }

    /// Reads a side's videos, then its images (the prompt's order), into prompt content and
    /// vision-tower inputs, one at a time: the pair's visual tokens (`already` from the other
    /// side) are counted as each is read, and a side over the limit is refused at once, so
    /// no more is decoded than the limit allows.
    fn side(
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
            let grid = item
                .grid_thw
                .iter()
                .fold(1usize, |p, &n| p.saturating_mul(n));
            tokens = tokens.saturating_add(grid / merge);
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
            let frames = self.video(video, sampling).map_err(video_error)?;
            let prepared = frames
                .prepare(self.processor)
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
            let decoded = match source {
                #[cfg(feature = "pdf")]
                ImageSource::PdfPage(page) => Cow::Owned(page.render(opts, self.processor)?),
                source => self.image(source).map_err(image_error)?,
            };
            let input = sift_inputs::preprocess_image(&decoded, opts, self.processor)
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
    fn image<'a>(&self, source: &'a ImageSource) -> Result<Cow<'a, RgbImage>, ImageError> {
        let opts = &self.options.image;
        match source {
            ImageSource::Path(path) => load_image_path(path, opts).map(Cow::Owned),
            ImageSource::Bytes(bytes) => load_image(bytes, opts).map(Cow::Owned),
            ImageSource::Pixels(pixels) => Ok(Cow::Borrowed(pixels)),
            // A document's PDF page is rendered by `side`, which names its file and page.
            #[cfg(feature = "pdf")]
            ImageSource::PdfPage(page) => Err(ImageError::InvalidOptions(format!(
                "{} is a PDF page, which can be a document but not a video frame",
                crate::pdf::place(&page.name, page.page)
            ))),
        }
    }

    /// A video's frames as `fetch_video` returns them. A file's own sampling wins over the
    /// request's. A frame list keeps at most its own `max_frames`, else 64: as in the reference,
    /// where the call's `max_frames` reaches files only and lists use the reranker's default.
    fn video<'a>(
        &self,
        video: &'a Video,
        sampling: &VideoSampling,
    ) -> Result<Cow<'a, VideoFrames>, VideoError> {
        match &video.source {
            VideoSource::Path(path) => read_video(
                path,
                &video.sampling(sampling),
                self.options.max_visual_tokens,
                self.options.image.max_decoded_pixels,
            )
            .map(Cow::Owned),
            VideoSource::Frames(sources) => {
                let max_frames = video
                    .max_frames
                    .unwrap_or(VideoSampling::default().max_frames);
                let indices = sample_frame_list(sources.len(), max_frames)?;
                let images = indices
                    .iter()
                    .map(|&i| self.image(&sources[i]).map_err(VideoError::Frame));
                video_from_frames(indices.len(), images, self.options.max_visual_tokens)
                    .map(Cow::Owned)
            }
            VideoSource::Sampled(frames) => Ok(Cow::Borrowed(frames)),
        }
    }

    /// The pair's prompt tokenized and cut, with the query's visuals then the document's.
    fn pair(
        &self,
        instruction: &str,
        query: &PreparedSide,
        document: PreparedSide,
    ) -> Result<ModelInput, DocError> {
        let text = prompt_text(instruction, &query.content, &document.content);
        let ids = self.tokenizer.encode(&text)?;
        // The reference's cut, refused where special tokens in the text would escape it.
        let visual_specials = query
            .content
            .visual_special_tokens()
            .saturating_add(document.content.visual_special_tokens());
        let input_ids =
            self.tokenizer
                .truncate_bounded(ids, self.options.max_length, visual_specials)?;
        // Prompt order: the query's visuals (shared by every document, so copied), then the
        // document's own (moved: an image's pixels are 19 MB).
        let visuals: Vec<VisualItem> = query
            .visuals
            .iter()
            .cloned()
            .chain(document.visuals)
            .collect();
        let position_ids = position_ids(self.config, &input_ids, &visuals)
            .map_err(|e| ModelError::Input(e.to_string()))?;
        Ok(ModelInput {
            input_ids,
            position_ids,
            visuals,
        })
    }
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
