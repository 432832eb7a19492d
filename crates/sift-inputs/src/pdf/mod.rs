//! PDF pages as images (feature `pdf`): each page is rendered with hayro, a pure-Rust renderer,
//! so that native builds and the browser's wasm32 build draw the same pixels from the same file.
//!
//! A page is rendered straight at the size the model reads it: the size `smart_resize` gives
//! for the page drawn at any resolution above the budget (`ImageOptions::max_pixels`), so that
//! [`crate::resize_for_model`] keeps it as it is instead of resampling a print-resolution
//! render. See docs/pdf.md for the renderer's limits and the measured agreement with poppler.

mod budget;
mod deadline;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_syntax::{DecryptionError, LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings, render_into};
use image::RgbImage;

use crate::file::{BoundedFile, OpenError};
use crate::visual::{ImageError, ImageOptions, MAX_ASPECT_RATIO, ProcessorConfig, smart_resize};

/// The default [`PdfOptions::max_bytes`]: 256 MiB. The renderer holds the whole file in
/// memory; scanned books run to a few hundred MB, reports and slides to a few MB.
pub const DEFAULT_MAX_PDF_BYTES: u64 = 256 << 20;

/// The default [`PdfOptions::max_pages`]: 100 pages rendered from one document, each one
/// document for the model (up to 1,800 visual tokens each at the default budget).
pub const DEFAULT_MAX_PDF_PAGES: u32 = 100;

/// The default [`PdfOptions::max_page_decoded_bytes`]: 256 MiB, the size of the largest file
/// taken. A 50-megapixel RGB image (the decoding limit) is 150 MB; text and vector pages decode
/// to a few MB. A Flate stream expands up to 1,032-fold, and chained filters multiply that, so a
/// few kilobytes of a hostile file could otherwise ask for terabytes.
pub const DEFAULT_MAX_PAGE_DECODED_BYTES: u64 = 256 << 20;

/// The default [`PdfOptions::render_timeout`]: 30 seconds. A page of the test set takes about
/// 0.3 s; a dense technical drawing a few seconds.
pub const DEFAULT_RENDER_TIMEOUT: Duration = Duration::from_secs(30);

pub use budget::MAX_PAGE_OBJECTS;
pub use deadline::MAX_ABANDONED_RENDERS;

/// A PDF's header, `%PDF-`, must start within its first 1024 bytes (PDF 32000-1:2008, annex H).
const HEADER_WINDOW: usize = 1024;

/// The renderer's largest canvas side (vello_cpu sizes are `u16`).
const MAX_SIDE: u32 = u16::MAX as u32;

/// Limits for opening a PDF and rendering its pages. Defaults are [`DEFAULT_MAX_PDF_BYTES`],
/// [`DEFAULT_MAX_PDF_PAGES`], [`DEFAULT_MAX_PAGE_DECODED_BYTES`] and
/// [`DEFAULT_RENDER_TIMEOUT`]; the pixels of each page and of each image in it are bounded by
/// [`ImageOptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfOptions {
    /// Largest PDF accepted, in bytes.
    pub max_bytes: u64,
    /// Most pages rendered from one document: [`PdfDocument::pages`] refuses a selection
    /// (the whole document when no range is given) of more pages.
    pub max_pages: u32,
    /// Most bytes the streams one page reaches (content, fonts, images, forms, patterns, ...)
    /// may decode to, in all, measured before the page is drawn.
    pub max_page_decoded_bytes: u64,
    /// Longest a page may take to render. Past it the page is an error and its render is left
    /// to finish on its own thread (natively; on wasm32 the page renders inline, and the page's
    /// worker is what a deadline stops).
    pub render_timeout: Duration,
}

impl Default for PdfOptions {
    fn default() -> Self {
        PdfOptions {
            max_bytes: DEFAULT_MAX_PDF_BYTES,
            max_pages: DEFAULT_MAX_PDF_PAGES,
            max_page_decoded_bytes: DEFAULT_MAX_PAGE_DECODED_BYTES,
            render_timeout: DEFAULT_RENDER_TIMEOUT,
        }
    }
}

/// Why a PDF, a page of it, or a page range could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PdfError {
    /// The input has no bytes at all.
    #[error("the PDF data is empty (0 bytes); pass the complete bytes of a PDF file")]
    Empty,

    /// No `%PDF-` header in the first 1024 bytes.
    #[error(
        "not a PDF file: it starts with \"{found}\", and a PDF starts with \"%PDF-\"; pass a PDF \
         file (an image goes in as an image)"
    )]
    NotPdf {
        /// The first bytes, escaped.
        found: String,
    },

    /// Larger than [`PdfOptions::max_bytes`].
    #[error(
        "the PDF is {size} bytes, over the limit of {limit} bytes; split it (e.g. `qpdf in.pdf \
         --pages . 1-50 -- out.pdf`), or raise the limit (`PdfOptions::max_bytes`) if the file \
         is trusted"
    )]
    TooLarge {
        /// The size in bytes (or what was read before the bound).
        size: u64,
        /// The bound in bytes.
        limit: u64,
    },

    /// Encrypted with a user password, which sift does not take.
    #[error(
        "the PDF is protected by a password; sift takes no passwords: save an unprotected copy \
         (e.g. `qpdf --password=PASSWORD --decrypt in.pdf out.pdf`) and pass that"
    )]
    Encrypted,

    /// Encrypted in a way the renderer cannot decrypt, even without a password.
    #[error(
        "the PDF's encryption cannot be read ({detail}); save an unencrypted copy (e.g. `qpdf \
         --decrypt in.pdf out.pdf`) and pass that"
    )]
    UnsupportedEncryption {
        /// What is wrong with it.
        detail: &'static str,
    },

    /// Neither the cross-reference table nor a scan of the file's objects gave a page tree.
    #[error(
        "the PDF is damaged: no page could be read from it (its cross-reference table or page \
         tree is missing or broken, and repairing it found no page); re-export or re-download \
         the file, or try `qpdf in.pdf repaired.pdf`"
    )]
    Damaged,

    /// The document opened but has no page.
    #[error("the PDF has no pages; pass a PDF with at least one page")]
    NoPages,

    /// More pages selected than [`PdfOptions::max_pages`].
    #[error(
        "{selected} pages of the PDF's {pages} would be rendered, over the limit of {limit} pages \
         per document; choose fewer with a page range (e.g. \"1-{limit}\"), or raise the limit \
         (`PdfOptions::max_pages`)"
    )]
    TooManyPages {
        /// Pages selected (all of them when no range was given).
        selected: u32,
        /// Pages in the document.
        pages: u32,
        /// The limit.
        limit: u32,
    },

    /// A 1-based page number past the document's end (or 0).
    #[error("page {page} does not exist: the PDF has {pages} pages, numbered 1 to {pages}")]
    PageOutOfRange {
        /// The page asked for, 1-based.
        page: u32,
        /// Pages in the document.
        pages: u32,
    },

    /// A page range that does not parse.
    #[error(
        "invalid page range \"{range}\": \"{part}\" {reason}; write 1-based pages and ranges \
         separated by commas, e.g. \"1-5,9\" or \"3-\" (page 3 to the last)"
    )]
    PageRange {
        /// The range as given.
        range: String,
        /// The part at fault.
        part: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The page's shape is beyond the model's aspect-ratio limit.
    #[error(
        "page {page} is {width:.0}x{height:.0} points, an aspect ratio of {ratio:.1}:1, over the \
         model's limit of {max}:1; leave it out with a page range, or crop it (e.g. set its \
         CropBox) to a less elongated part"
    )]
    PageAspectRatio {
        /// The page, 1-based.
        page: u32,
        /// Width in points, after /Rotate.
        width: f64,
        /// Height in points, after /Rotate.
        height: f64,
        /// `max(w, h) / min(w, h)`.
        ratio: f64,
        /// The limit (200).
        max: u32,
    },

    /// The render size is over the decoding limit or the renderer's largest canvas.
    #[error(
        "page {page} would be rendered at {width}x{height} pixels, over the limit of {limit} \
         pixels and {MAX_SIDE} per side; lower `ImageOptions::max_pixels` (the model's budget \
         is 1,843,200), or raise `ImageOptions::max_decoded_pixels` if the file is trusted"
    )]
    PageTooLarge {
        /// The page, 1-based.
        page: u32,
        /// Render width.
        width: u64,
        /// Render height.
        height: u64,
        /// `ImageOptions::max_decoded_pixels`.
        limit: u64,
    },

    /// The page draws an image that declares more pixels than the decoding limit: refused
    /// before the renderer decodes it, since it trusts a declared size.
    #[error(
        "page {page} draws an image of {width}x{height} pixels, over the limit of {limit} pixels \
         per image; leave the page out with a page range, or raise \
         `ImageOptions::max_decoded_pixels` (--max-image-pixels) if the file is trusted"
    )]
    PageImageTooLarge {
        /// The page, 1-based.
        page: u32,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// `ImageOptions::max_decoded_pixels`.
        limit: u64,
    },

    /// The page's streams decode to more bytes, in all, than the limit: refused before the
    /// renderer, which decodes every stream whole, is given them.
    #[error(
        "page {page}'s compressed streams (content, fonts, images) decode to more than {limit} \
         bytes, the limit per page: a decompression bomb, or a page far heavier than documents \
         are; leave the page out with a page range, or raise `PdfOptions::max_page_decoded_bytes` \
         if the file is trusted"
    )]
    PageDecodesTooLarge {
        /// The page, 1-based.
        page: u32,
        /// `PdfOptions::max_page_decoded_bytes`.
        limit: u64,
    },

    /// The page reaches more objects than the walk that checks it visits.
    #[error(
        "page {page} reaches more than {limit} PDF objects (resources, fonts, annotations), more \
         than any real page: the file is damaged or hostile; leave the page out with a page \
         range, or print the PDF to a new PDF and pass that"
    )]
    PageTooComplex {
        /// The page, 1-based.
        page: u32,
        /// [`MAX_PAGE_OBJECTS`].
        limit: u64,
    },

    /// Rendering the page took longer than [`PdfOptions::render_timeout`].
    #[error(
        "page {page} took longer than {}s to render, the limit per page: it is too complex, or \
         the file is hostile; leave the page out with a page range, or raise \
         `PdfOptions::render_timeout` if the file is trusted", limit.as_secs_f64()
    )]
    RenderTimedOut {
        /// The page, 1-based.
        page: u32,
        /// `PdfOptions::render_timeout`.
        limit: Duration,
    },

    /// Too many earlier renders passed their deadline and are still running.
    #[error(
        "page {page} was not rendered: {running} renders of earlier pages passed their time \
         limit and are still running, the most allowed at once (so that hostile files cannot \
         pile up threads); try again once they finish, and leave out the pages that time out"
    )]
    RendersStuck {
        /// The page, 1-based.
        page: u32,
        /// Renders past their deadline still running.
        running: usize,
    },

    /// The renderer panicked: a page it cannot handle, caught so that it costs only this page.
    #[error(
        "the PDF renderer failed on page {page} ({detail}); the page is damaged or uses \
         something the renderer does not handle: leave it out with a page range, or print the \
         PDF to a new PDF and pass that"
    )]
    RenderFailed {
        /// The page, 1-based.
        page: u32,
        /// The panic's message.
        detail: String,
    },

    /// Options the page size cannot be computed from (a zero patch size, `min_pixels >
    /// max_pixels`, a budget too small for the page).
    #[error("{0}")]
    Options(ImageError),

    /// The file could not be read.
    #[error("cannot read the PDF file {}: {source}; check that the path exists and is readable", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The path is not a regular file (a FIFO, a device, a directory): refused before reading.
    #[error(
        "the PDF path {} is {kind}; a regular file is needed (copy the data to a file and pass \
         that)", path.display()
    )]
    NotRegularFile {
        /// The path as given.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },

    /// The file was read but its content failed; the path is named, the cause is inside.
    #[error("PDF file {}: {source}", path.display())]
    File {
        /// The path as given.
        path: PathBuf,
        /// What went wrong with the content.
        #[source]
        source: Box<PdfError>,
    },
}

impl PdfError {
    /// The error itself, or for [`PdfError::File`] the error about the file's content.
    pub fn cause(&self) -> &PdfError {
        match self {
            PdfError::File { source, .. } => source.cause(),
            other => other,
        }
    }
}

/// A selection of pages, 1-based: numbers and ranges separated by commas, e.g. `"1-5,9"`;
/// `"3-"` runs to the last page. Parsed without the document; [`PageRange::resolve`] checks it
/// against a page count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRange {
    spec: String,
    /// First and last page of each part; `None`: to the last page.
    parts: Vec<(u32, Option<u32>)>,
}

impl PageRange {
    /// Parses `"1-5,9"`, `"3-"`, `" 2 , 4-6 "`. Errors name the part at fault.
    pub fn parse(spec: &str) -> Result<Self, PdfError> {
        let bad = |part: &str, reason| PdfError::PageRange {
            range: spec.to_owned(),
            part: part.trim().to_owned(),
            reason,
        };
        let number = |part: &str, text: &str| -> Result<u32, PdfError> {
            let text = text.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(part, "is not a page number or a range of them"));
            }
            match text.parse::<u32>() {
                Ok(0) => Err(bad(part, "names page 0, and pages are numbered from 1")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(part, "names a page past any PDF's end")),
            }
        };
        if spec.trim().is_empty() {
            return Err(bad(spec, "is empty"));
        }
        let mut parts = Vec::new();
        for part in spec.split(',') {
            if part.trim().is_empty() {
                return Err(bad(
                    part,
                    "is an empty part (two commas in a row, or one at an end)",
                ));
            }
            let range = match part.split_once('-') {
                None => {
                    let n = number(part, part)?;
                    (n, Some(n))
                }
                Some((first, _)) if first.trim().is_empty() => {
                    return Err(bad(part, "has no first page (write \"1-5\", not \"-5\")"));
                }
                Some((first, last)) if last.trim().is_empty() => (number(part, first)?, None),
                Some((first, last)) => {
                    let (first, last) = (number(part, first)?, number(part, last)?);
                    if last < first {
                        return Err(bad(part, "runs backwards (write the lower page first)"));
                    }
                    (first, Some(last))
                }
            };
            parts.push(range);
        }
        Ok(PageRange {
            spec: spec.to_owned(),
            parts,
        })
    }

    /// The pages selected in a document of `pages` pages, 1-based, in the order given, each
    /// once. A page past the end is an error rather than silently left out.
    pub fn resolve(&self, pages: u32) -> Result<Vec<u32>, PdfError> {
        let mut seen = vec![false; pages as usize];
        let mut out = Vec::new();
        for &(first, last) in &self.parts {
            let last = last.unwrap_or(pages);
            for page in [first, last] {
                if page > pages {
                    return Err(PdfError::PageOutOfRange { page, pages });
                }
            }
            for page in first..=last {
                let seen = &mut seen[page as usize - 1];
                if !*seen {
                    *seen = true;
                    out.push(page);
                }
            }
        }
        Ok(out)
    }
}

impl FromStr for PageRange {
    type Err = PdfError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PageRange::parse(s)
    }
}

impl fmt::Display for PageRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// An open PDF: its page count, and each page rendered at the model's size.
pub struct PdfDocument {
    /// Shared with renders that passed their deadline and still run on their own threads.
    pdf: Arc<Pdf>,
    max_pages: u32,
    max_page_decoded_bytes: u64,
    render_timeout: Duration,
}

impl fmt::Debug for PdfDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfDocument")
            .field("pages", &self.page_count())
            .finish_non_exhaustive()
    }
}

/// Whether `head`, a file's first bytes, has the `%PDF-` header within its first 1024 bytes,
/// where readers accept it.
pub fn looks_like_pdf(head: &[u8]) -> bool {
    head[..head.len().min(HEADER_WINDOW)]
        .windows(5)
        .any(|w| w == b"%PDF-")
}

/// Refuses data without a `%PDF-` header in its first 1024 bytes.
fn check_header(head: &[u8]) -> Result<(), PdfError> {
    if head.is_empty() {
        return Err(PdfError::Empty);
    }
    if looks_like_pdf(head) {
        return Ok(());
    }
    Err(PdfError::NotPdf {
        found: head[..head.len().min(16)].escape_ascii().to_string(),
    })
}

/// The message of a caught panic.
fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl PdfDocument {
    /// Opens a PDF held in memory. Refuses it, before parsing, if it is empty, over
    /// `opts.max_bytes`, or has no `%PDF-` header in its first 1024 bytes; then if it is encrypted with a password,
    /// damaged beyond repair (hayro rebuilds a broken cross-reference table by scanning the
    /// file's objects first), or has no page. A PDF encrypted with an owner password only
    /// (printing or copying restricted) opens, as in PDF readers.
    pub fn from_bytes(bytes: Vec<u8>, opts: &PdfOptions) -> Result<Self, PdfError> {
        if bytes.is_empty() {
            return Err(PdfError::Empty);
        }
        let size = bytes.len() as u64;
        if size > opts.max_bytes {
            return Err(PdfError::TooLarge {
                size,
                limit: opts.max_bytes,
            });
        }
        check_header(&bytes)?;
        // hayro-syntax is written not to panic on bad input; a panic here would still be a
        // bug on a hostile file, so it costs this document only. (No unwinding on wasm32,
        // where a panic aborts the worker instead.)
        let pdf = catch_unwind(AssertUnwindSafe(|| Pdf::new(bytes)))
            .map_err(|_| PdfError::Damaged)?
            .map_err(|e| match e {
                LoadPdfError::Decryption(DecryptionError::PasswordProtected) => PdfError::Encrypted,
                LoadPdfError::Decryption(e) => PdfError::UnsupportedEncryption {
                    detail: match e {
                        DecryptionError::MissingIDEntry => "its trailer has no /ID, the key needs",
                        DecryptionError::UnsupportedAlgorithm => "an unsupported algorithm",
                        _ => "an invalid encryption dictionary",
                    },
                },
                LoadPdfError::Invalid => PdfError::Damaged,
            })?;
        let doc = PdfDocument {
            pdf: Arc::new(pdf),
            max_pages: opts.max_pages,
            max_page_decoded_bytes: opts.max_page_decoded_bytes,
            render_timeout: opts.render_timeout,
        };
        if doc.page_count() == 0 {
            return Err(PdfError::NoPages);
        }
        Ok(doc)
    }

    /// Reads a file and opens it like [`PdfDocument::from_bytes`]; errors name the path. The
    /// path must be a regular file (a FIFO, a device or a directory is refused before it is
    /// read) of at most `opts.max_bytes`, which is checked before reading and again while
    /// reading, in case the file grows.
    pub fn open_path(path: &Path, opts: &PdfOptions) -> Result<Self, PdfError> {
        let open_error = |e: OpenError| match e {
            OpenError::Io(source) => PdfError::Io {
                path: path.to_path_buf(),
                source,
            },
            OpenError::NotRegular(kind) => PdfError::NotRegularFile {
                path: path.to_path_buf(),
                kind,
            },
            OpenError::TooLarge { size, limit } => PdfError::File {
                path: path.to_path_buf(),
                source: Box::new(PdfError::TooLarge { size, limit }),
            },
        };
        let in_file = |e: PdfError| PdfError::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        let mut file = BoundedFile::open(path, opts.max_bytes).map_err(open_error)?;
        // A file that is no PDF (a video named .pdf) is refused from its first 64 KiB.
        check_header(file.header().map_err(open_error)?).map_err(in_file)?;
        let bytes = file.rest().map_err(open_error)?;
        Self::from_bytes(bytes, opts).map_err(in_file)
    }

    /// Pages in the document.
    pub fn page_count(&self) -> u32 {
        u32::try_from(self.pdf.pages().len()).unwrap_or(u32::MAX)
    }

    /// The pages to render, 1-based: those of `range`, or all of them; refused if more than
    /// [`PdfOptions::max_pages`].
    pub fn pages(&self, range: Option<&PageRange>) -> Result<Vec<u32>, PdfError> {
        let pages = self.page_count();
        let selected = match range {
            Some(range) => range.resolve(pages)?,
            None => (1..=pages).collect(),
        };
        if selected.len() as u64 > u64::from(self.max_pages) {
            return Err(PdfError::TooManyPages {
                selected: selected.len() as u32,
                pages,
                limit: self.max_pages,
            });
        }
        Ok(selected)
    }

    fn page(&self, page: u32) -> Result<&hayro::hayro_syntax::page::Page<'_>, PdfError> {
        let pages = self.pdf.pages();
        page.checked_sub(1)
            .and_then(|i| pages.get(i as usize))
            .ok_or(PdfError::PageOutOfRange {
                page,
                pages: self.page_count(),
            })
    }

    /// The page's size in points (1/72 inch) as shown: its crop box, turned by its /Rotate.
    pub fn page_size(&self, page: u32) -> Result<(f64, f64), PdfError> {
        let (w, h) = self.page(page)?.render_dimensions();
        Ok((f64::from(w), f64::from(h)))
    }

    /// The size [`PdfDocument::render_page`] renders `page` at, `(width, height)`: what
    /// `smart_resize` makes of the page drawn at twice the linear scale that fills
    /// `opts.max_pixels`, so a multiple of `proc.resize_factor()` on each side, at most
    /// `opts.max_pixels` in all, and the same size the model would give a render of the page at
    /// any higher resolution. [`crate::resize_for_model`] keeps an image of this size as it is.
    pub fn render_size(
        &self,
        page: u32,
        opts: &ImageOptions,
        proc: &ProcessorConfig,
    ) -> Result<(u32, u32), PdfError> {
        let (w, h) = self.page_size(page)?;
        proc.validate().map_err(PdfError::Options)?;
        let factor = u32::try_from(proc.resize_factor()).map_err(|_| {
            PdfError::Options(ImageError::InvalidOptions(
                "patch_size * merge_size is too large".into(),
            ))
        })?;
        let ratio = w.max(h) / w.min(h);
        if ratio > f64::from(MAX_ASPECT_RATIO) {
            return Err(PdfError::PageAspectRatio {
                page,
                width: w,
                height: h,
                ratio,
                max: MAX_ASPECT_RATIO,
            });
        }
        // At twice the scale that fills the budget the page is over it, so smart_resize takes
        // its scaling-down branch: floor(side * sqrt(max / area) / factor) * factor, which no
        // longer depends on the starting resolution (up to the rounding to whole pixels here).
        let scale = 2.0 * (opts.max_pixels as f64 / (w * h)).sqrt();
        // `as` saturates: a budget too large for u32 sides ends in the size check below.
        let (height, width) = smart_resize(
            ((h * scale).round() as u32).max(1),
            ((w * scale).round() as u32).max(1),
            factor,
            opts.min_pixels,
            opts.max_pixels,
        )
        .map_err(PdfError::Options)?;
        if u64::from(width) * u64::from(height) > opts.max_decoded_pixels
            || width > MAX_SIDE
            || height > MAX_SIDE
        {
            return Err(PdfError::PageTooLarge {
                page,
                width: u64::from(width),
                height: u64::from(height),
                limit: opts.max_decoded_pixels,
            });
        }
        Ok((width, height))
    }

    /// Renders `page` (1-based) on white at [`PdfDocument::render_size`]: the page's crop box
    /// fills the image, stretched by at most half a `resize_factor` on each side as
    /// `smart_resize` stretches any image. Annotations with an appearance (form fields, stamps)
    /// are drawn, as in PDF readers.
    ///
    /// Before anything is drawn, everything the page can make the renderer decode is measured:
    /// refused if its streams decode to more than [`PdfOptions::max_page_decoded_bytes`]
    /// ([`PdfError::PageDecodesTooLarge`]), if an image anywhere in it declares more than
    /// `opts.max_decoded_pixels` ([`PdfError::PageImageTooLarge`]), or if it reaches more than
    /// [`MAX_PAGE_OBJECTS`] ([`PdfError::PageTooComplex`]). A render that takes longer than
    /// [`PdfOptions::render_timeout`] is [`PdfError::RenderTimedOut`] (natively; it finishes on
    /// its own thread, and while [`MAX_ABANDONED_RENDERS`] such are running, renders are
    /// refused with [`PdfError::RendersStuck`]). A panic of the renderer is caught and returned
    /// as [`PdfError::RenderFailed`] for this page.
    pub fn render_page(
        &self,
        page: u32,
        opts: &ImageOptions,
        proc: &ProcessorConfig,
    ) -> Result<RgbImage, PdfError> {
        let (width, height) = self.render_size(page, opts, proc)?;
        self.page(page)?;
        let job = RenderJob {
            pdf: Arc::clone(&self.pdf),
            page,
            width,
            height,
            limits: budget::Limits {
                page,
                decoded_bytes: self.max_page_decoded_bytes,
                image_pixels: opts.max_decoded_pixels,
            },
        };
        deadline::run(page, self.render_timeout, move || job.run())?
    }
}

/// What a render needs, owned, so that a render past its deadline can finish on its own thread.
struct RenderJob {
    pdf: Arc<Pdf>,
    page: u32,
    width: u32,
    height: u32,
    limits: budget::Limits,
}

impl RenderJob {
    fn run(self) -> Result<RgbImage, PdfError> {
        let RenderJob {
            pdf,
            page,
            width,
            height,
            limits,
        } = self;
        // `render_page` checked that the page exists.
        let pdf_page = &pdf.pages()[page as usize - 1];
        // hayro's interpreter is written not to panic, but it is young and parses untrusted
        // fonts, images and content streams; a panic on one page must not cost the others.
        // (No unwinding on wasm32, where a panic aborts the worker instead.)
        let pixmap = catch_unwind(AssertUnwindSafe(|| {
            budget::check_page(pdf_page, &limits)?;
            let (w, h) = pdf_page.render_dimensions();
            let transform = Affine::scale_non_uniform(
                f64::from(width) / f64::from(w),
                f64::from(height) / f64::from(h),
            ) * pdf_page.initial_transform(true).to_kurbo();
            // Sizes were checked against MAX_SIDE by `render_size`.
            let (width, height) = (width as u16, height as u16);
            let mut ctx = RenderContext::new(width, height);
            let cache = RenderCache::new();
            render_into(
                pdf_page,
                &cache,
                &InterpreterSettings::default(),
                &RenderSettings {
                    // Without /Interpolate, hayro scales images up by nearest neighbour, which
                    // turns a scan into blocks at the model's size; PDF readers (and poppler)
                    // smooth, and so does the reference's bicubic resize of a rendered page.
                    force_image_interpolation: true,
                    ..RenderSettings::default()
                },
                &mut ctx,
                transform,
            );
            ctx.flush();
            let mut pixmap = Pixmap::new(width, height);
            ctx.render_with(
                &mut pixmap,
                &mut Resources::default(),
                RasterizerSettings {
                    target_init: TargetInit::Clear(WHITE),
                    ..Default::default()
                },
            );
            Ok(pixmap)
        }))
        .map_err(|payload| PdfError::RenderFailed {
            page,
            detail: panic_detail(payload.as_ref()),
        })??;
        // The pixmap is premultiplied; painted over opaque white every pixel stays opaque, but
        // compositing onto white again (c + 255 - a) is exact either way.
        let rgb = pixmap
            .data()
            .iter()
            .flat_map(|p| {
                let under = 255 - p.a;
                [p.r, p.g, p.b].map(|c| c.saturating_add(under))
            })
            .collect();
        Ok(RgbImage::from_raw(width, height, rgb).expect("the pixmap has width * height pixels"))
    }
}
