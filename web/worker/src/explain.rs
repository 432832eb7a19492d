//! The library's errors in the page's words: which file, what is wrong with it, and what to do
//! in the page. The CLI keeps its own wording (paths, flags, ffmpeg command lines, "image 0 of
//! the document"); a person using the page has none of those.

use sift::pdf::PdfError;
use sift::{DocError, ImageError, TokenizerError, VideoError};
use sift_web_protocol::Side;

/// What every document of a run whose query failed says (the reason is said once, by the
/// query).
pub const NOT_SCORED: &str = "not scored: the query could not be read";

/// How to get a video this page reads.
const CONVERT_VIDEO: &str = "Convert it to MP4 (H.264) or WebM (VP9) with a video converter, \
                             remove it here and add the converted file.";

/// Where the settings that bound videos and text are, in the page.
const SETTINGS: &str = "under Query, \"Instruction and settings\"";

/// The files of one side, to name them in messages.
#[derive(Clone, Copy)]
pub struct Names<'a> {
    side: &'a Side,
    query: bool,
}

impl<'a> Names<'a> {
    pub fn query(side: &'a Side) -> Self {
        Self { side, query: true }
    }

    pub fn document(side: &'a Side) -> Self {
        Self { side, query: false }
    }

    /// "sky.jpg", or "The query image sky.jpg".
    pub fn image(&self, index: usize) -> String {
        self.name(
            self.side.images.get(index).map(|m| m.name.as_str()),
            "image",
        )
    }

    pub fn video(&self, index: usize) -> String {
        self.name(
            self.side.videos.get(index).map(|m| m.name.as_str()),
            "video",
        )
    }

    fn name(&self, file: Option<&str>, kind: &str) -> String {
        let file = file.unwrap_or("a file");
        if self.query {
            format!("The query {kind} {file}")
        } else {
            file.to_string()
        }
    }

    /// "This document", or "The query".
    fn whole(&self) -> &'static str {
        if self.query {
            "The query"
        } else {
            "This document"
        }
    }
}

/// A document's (or the query's) error, for the person who added the files.
pub fn doc_error(error: &DocError, names: Names) -> String {
    match error {
        DocError::Image { index, error, .. } => image_error(&names.image(*index), error.cause()),
        DocError::Video { index, error, .. } => video_error(&names.video(*index), error),
        DocError::TooManyVisualTokens { tokens, limit } => format!(
            "{} and the query together hold {tokens} image and video tokens, more than the \
             {limit} the model takes in one pair. Lower \"Frames per second\" or \"Most \
             frames\" ({SETTINGS}), or use smaller images.",
            names.whole()
        ),
        DocError::TooManyVisuals { count, limit, .. } => format!(
            "{} has {count} images and videos, more than the {limit} the model takes on one \
             side. Split it into several documents.",
            names.whole()
        ),
        DocError::Tokenizer(TokenizerError::TooManySpecialTokens { count, max_length }) => {
            format!(
                "The text holds {count} special tokens (strings such as <|im_end|> written in \
                 it), more than the text-length limit of {max_length} tokens, so it cannot be \
                 cut to fit. Remove those strings from the text, or raise \"Text length \
                 limit\" ({SETTINGS})."
            )
        }
        DocError::Tokenizer(e) => format!("The model's tokenizer could not read the text ({e})."),
        DocError::Model(e) => format!(
            "The model failed on {} ({e}). Press Rerank to try again; if it fails again, reload \
             the page.",
            names.whole().to_lowercase()
        ),
        DocError::Query(_) => NOT_SCORED.to_string(),
        DocError::Pdf { name, page, error } => pdf_error(name, *page, error),
        DocError::Crashed(e) => format!(
            "The model stopped on {} ({e}). Press Rerank to try again; if it happens again, \
             reload the page.",
            names.whole().to_lowercase()
        ),
    }
}

/// An image's error (`error` is the cause, not a wrapper naming a path).
fn image_error(name: &str, error: &ImageError) -> String {
    match error {
        ImageError::Empty => {
            format!("{name} is empty (0 bytes). Remove it and add the whole file.")
        }
        ImageError::UnsupportedFormat { found } => format!(
            "{name} is not an image this page can read (it looks like {found}). Save it as PNG, \
             JPEG or WebP in an image editor, remove it here and add the saved file."
        ),
        ImageError::Corrupt { format, detail } => format!(
            "{name} is a damaged or incomplete {format} file ({detail}). Remove it and add a \
             complete copy, or one saved again as PNG."
        ),
        ImageError::TooLarge {
            width,
            height,
            limit,
            ..
        } => format!(
            "{name} is {width}×{height} pixels, more than the {} megapixels this page decodes \
             (the model sees at most 1.8 megapixels of any image). Scale it down, remove it \
             here and add the smaller copy.",
            megapixels(*limit)
        ),
        ImageError::AspectRatio {
            width,
            height,
            ratio,
            max,
        } => format!(
            "{name} is {width}×{height} pixels, {ratio:.0} times as long as it is wide; the \
             model takes images up to {max} to 1. Crop it, remove it here and add the cropped \
             image."
        ),
        ImageError::FileTooLarge { size, limit, .. } => format!(
            "{name} is {} MB, more than the {} MB this page reads for one image. Scale it down \
             or compress it, remove it here and add the smaller copy.",
            size / 1_000_000,
            limit / 1_000_000
        ),
        ImageError::Io { source, .. } => format!(
            "{name} could not be read ({source}). It may have been moved or changed since it \
             was added: remove it and add it again."
        ),
        other => format!("{name} cannot be used: {other}."),
    }
}

/// A video's error; `name` as [`Names::video`] gives it.
pub fn video_error(name: &str, error: &VideoError) -> String {
    match error {
        VideoError::Unreadable { detail } => {
            format!("{name} is not a video this page can read ({detail}). {CONVERT_VIDEO}")
        }
        VideoError::NoVideoStream => {
            format!("{name} has no picture, only sound. Add a file with video in it.")
        }
        VideoError::UnsupportedCodec { codec } => {
            format!("{name} is in {codec}, which this page cannot read. {CONVERT_VIDEO}")
        }
        VideoError::NoFrames => {
            format!("{name} holds no frames. Add a video with at least 2 frames.")
        }
        VideoError::TooFewFrames { total_frames } => format!(
            "{name} has {total_frames} frame(s); the model needs at least 2 of a video. Add that \
             frame as an image instead."
        ),
        VideoError::NoFrameRate { .. } => format!(
            "{name} does not say its frame rate, so its frames cannot be placed in time. \
             {CONVERT_VIDEO}"
        ),
        VideoError::Corrupt { detail } => {
            format!("{name} is damaged or incomplete ({detail}). {CONVERT_VIDEO}")
        }
        VideoError::FrameTooLarge {
            width,
            height,
            limit,
            ..
        } => format!(
            "{name} has frames of {width}×{height} pixels, more than the {} megapixels this \
             page decodes per frame (the model sees at most 0.8 megapixels of a frame). Scale \
             it down to 1080p, remove it here and add the smaller file.",
            megapixels(*limit)
        ),
        VideoError::Frame(e) => image_error(&format!("A frame of {name}"), e.cause()),
        VideoError::InvalidOptions(detail) => format!(
            "The video settings cannot be used ({detail}). Set \"Frames per second\" and \"Most \
             frames\" {SETTINGS}."
        ),
        VideoError::TooManyTokens {
            frames,
            width,
            height,
            tokens,
            limit,
        } => format!(
            "{name}: {frames} frames of {width}×{height} pixels make {tokens} video tokens, \
             more than the {limit} the model takes in one pair. Lower \"Frames per second\" or \
             \"Most frames\" ({SETTINGS}) and rerank."
        ),
        VideoError::NotPlayable { detail } => format!("{name}: {detail}"),
        other => format!("{name} cannot be used: {other}."),
    }
}

/// How to get a PDF this page opens.
const PRINT_PDF: &str = "Open it in a PDF reader and print it to a new PDF (\"Save as PDF\"), \
                         remove it here and add the new file.";
const PRINT_PDF_LOWER: &str = "open it in a PDF reader and print it to a new PDF (\"Save as \
                               PDF\"), remove it here and add the new file.";

/// A PDF's error (`page` None: the file as a whole), for the person who added it.
pub fn pdf_error(name: &str, page: Option<u32>, error: &PdfError) -> String {
    let place = match page {
        Some(page) => format!("Page {page} of {name}"),
        None => name.to_string(),
    };
    match error.cause() {
        PdfError::Empty => format!("{name} is empty (0 bytes). Remove it and add the whole file."),
        PdfError::NotPdf { found } => format!(
            "{name} is not a PDF (it starts with \"{found}\"; a PDF starts with \"%PDF-\"). \
             Remove it here; add an image or text as what it is."
        ),
        PdfError::TooLarge { size, limit } => format!(
            "{name} is {} MB, more than the {} MB this page opens. Split it into smaller PDFs \
             in a PDF editor, remove it here and add the parts.",
            size / 1_000_000,
            limit / 1_000_000
        ),
        PdfError::Encrypted => format!(
            "{name} is protected by a password, and this page takes no passwords. Open it in a \
             PDF reader with its password and print it to a new PDF (\"Save as PDF\"), remove \
             it here and add the new file."
        ),
        PdfError::UnsupportedEncryption { detail } => {
            format!("{name} is encrypted in a way this page cannot read ({detail}). {PRINT_PDF}")
        }
        PdfError::Damaged => format!(
            "{name} is damaged: no page could be read from it (its page index is missing or \
             broken). Download or export it again, remove it here and add the new copy."
        ),
        PdfError::NoPages => format!("{name} has no pages. Remove it here."),
        PdfError::PageOutOfRange { page, pages } => format!(
            "{name} has no page {page} (it has {pages}): it changed since it was added. Remove \
             its pages here and add it again."
        ),
        PdfError::PageAspectRatio { ratio, max, .. } => format!(
            "{place} is {ratio:.0} times as long as it is wide; the model takes pages up to \
             {max} to 1. Remove this page here; the others are ranked."
        ),
        PdfError::PageTooLarge { width, height, .. } => format!(
            "{place} would be drawn at {width}×{height} pixels, more than this page decodes. \
             Remove this page here; the others are ranked."
        ),
        PdfError::PageImageTooLarge {
            width,
            height,
            limit,
            ..
        } => format!(
            "{place} holds an image of {width}×{height} pixels, more than the {} megapixels \
             this page decodes per image. Remove this page here; the others are ranked.",
            megapixels(*limit)
        ),
        PdfError::PageDecodesTooLarge { limit, .. } => format!(
            "{place} would unpack to more than {} MB of data, far more than real pages hold: \
             the file is damaged or built to exhaust memory. Remove this page here; the others \
             are ranked.",
            limit / 1_000_000
        ),
        PdfError::PageTooComplex { .. } => format!(
            "{place} reaches more parts (fonts, images, drawings) than any real page: the file \
             is damaged or hostile. Remove this page here; or, for all its pages, \
             {PRINT_PDF_LOWER}"
        ),
        PdfError::RenderTimedOut { limit, .. } => format!(
            "{place} took longer than {} s to draw. Remove this page here; or, for all its \
             pages, {PRINT_PDF_LOWER}",
            limit.as_secs()
        ),
        PdfError::RenderFailed { detail, .. } => format!(
            "{place} stopped the PDF renderer ({detail}): the page is damaged or uses \
             something the renderer does not handle. Remove this page here; or, for all its \
             pages, {PRINT_PDF_LOWER}"
        ),
        other => format!("{place} cannot be used: {other}."),
    }
}

fn megapixels(pixels: u64) -> String {
    format!("{:.0}", pixels as f64 / 1e6)
}
