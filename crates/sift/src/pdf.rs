//! PDF pages as documents (feature `pdf`): a request's `{"pdf": FILE, "pages": "1-5,9"}` is one
//! document per page, each an image that `sift_inputs::pdf` renders at the size the model reads
//! it when its document is read (docs/pdf.md).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use sift_inputs::pdf::{PageRange, PdfDocument, PdfError, PdfOptions, looks_like_pdf};
use sift_inputs::{ImageOptions, ProcessorConfig, RgbImage};

use crate::error::DocError;

/// Most PDF pages one request may rank, over all its PDFs (each PDF at most
/// [`PdfOptions::max_pages`]).
pub const MAX_REQUEST_PDF_PAGES: usize = 1000;

/// One page of a PDF, as a document's image.
#[derive(Clone)]
pub struct PdfPage {
    /// The file as the request names it, shown beside the page's result.
    pub name: String,
    /// The page, 1-based; `None` where the file could not be used at all.
    pub page: Option<u32>,
    /// The opened document, shared by its pages, or why it could not be used.
    document: Result<Arc<PdfDocument>, Arc<PdfError>>,
}

impl fmt::Debug for PdfPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdfPage")
            .field("name", &self.name)
            .field("page", &self.page)
            .field("opened", &self.document.is_ok())
            .finish()
    }
}

impl PdfPage {
    /// The pages of the PDF at `path` that `pages` selects (every page without it), in the
    /// range's order. A file that cannot be opened, or a range that does not fit it, is one
    /// page source holding the error, so that it is that document's error alone.
    pub fn pages_of(path: &Path, name: &str, pages: Option<&str>, opts: &PdfOptions) -> Vec<Self> {
        Self::select(name, pages, PdfDocument::open_path(path, opts))
    }

    /// The pages of a PDF held in memory (an upload, a file the browser read), as
    /// [`PdfPage::pages_of`] selects them from a file.
    pub fn pages_of_bytes(
        bytes: Vec<u8>,
        name: &str,
        pages: Option<&str>,
        opts: &PdfOptions,
    ) -> Vec<Self> {
        Self::select(name, pages, PdfDocument::from_bytes(bytes, opts))
    }

    fn select(name: &str, pages: Option<&str>, opened: Result<PdfDocument, PdfError>) -> Vec<Self> {
        let opened = opened.and_then(|document| {
            let range = pages.map(PageRange::parse).transpose()?;
            let selected = document.pages(range.as_ref())?;
            Ok((Arc::new(document), selected))
        });
        match opened {
            Ok((document, selected)) => selected
                .into_iter()
                .map(|page| Self {
                    name: name.to_string(),
                    page: Some(page),
                    document: Ok(Arc::clone(&document)),
                })
                .collect(),
            Err(error) => vec![Self {
                name: name.to_string(),
                page: None,
                document: Err(Arc::new(error)),
            }],
        }
    }

    /// The page drawn at the size the model reads it.
    pub fn render(
        &self,
        opts: &ImageOptions,
        processor: &ProcessorConfig,
    ) -> Result<RgbImage, DocError> {
        let failed = |error| DocError::Pdf {
            name: self.name.clone(),
            page: self.page,
            error,
        };
        let document = self.document.as_ref().map_err(|e| failed(Arc::clone(e)))?;
        let page = self
            .page
            .expect("an opened document's source names its page");
        document
            .render_page(page, opts, processor)
            .map_err(|e| failed(Arc::new(e)))
    }
}

/// "report.pdf, page 3" (or the file alone).
pub(crate) fn place(name: &str, page: Option<u32>) -> String {
    match page {
        Some(page) => format!("{name}, page {page}"),
        None => name.to_string(),
    }
}
