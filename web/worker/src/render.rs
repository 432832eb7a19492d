//! The page's PDF renderer: a second instance of this worker that opens PDFs and draws their
//! pages at the size the model reads them (`PdfDocument::render_page`, as natively). It holds
//! no model: wasm32 cannot unwind, so a page that makes the renderer panic or run out of memory
//! ends this instance, and the page restarts it and fails that page alone, as it does when a
//! page takes too long; the model worker and its loaded model are untouched.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array, Uint8ClampedArray};
use sift::RgbImage;
use sift::pdf::{MAX_REQUEST_PDF_PAGES, PdfDocument, PdfError, PdfOptions};
use sift_inputs::{ImageOptions, ProcessorConfig};
use sift_web_protocol::{FromWorker, PdfInfo, RenderSettings};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use crate::explain::pdf_error;
use crate::js::js_error;
use crate::media::read_blob;
use crate::reply::{post, post_with_transfer};

/// The PDF whose pages are being drawn, by the page's id for it: a PDF's pages are asked for
/// one after another, and opening parses the file again.
#[derive(Default)]
pub struct Renderer {
    open: Option<(u32, PdfDocument)>,
}

impl Renderer {
    /// Opens a PDF and sends its page count, or why it cannot be opened.
    pub fn open(&mut self, request: u32, name: &str, file: &Blob) {
        let options = PdfOptions::default();
        let result = open(name, file, &options).map(|document| PdfInfo {
            pages: document.page_count(),
            max_pages: options.max_pages,
            max_run_pages: MAX_REQUEST_PDF_PAGES as u32,
        });
        post(&FromWorker::PdfOpened { request, result });
    }

    /// Draws a page and sends its pixels and a PNG of it, or why it cannot be drawn.
    pub async fn render(
        &mut self,
        request: u32,
        pdf: u32,
        name: &str,
        file: &Blob,
        page: u32,
        settings: &RenderSettings,
    ) {
        let image = match self.draw(pdf, name, file, page, settings) {
            Ok(image) => image,
            Err(message) => {
                post(&FromWorker::PageNotRendered { request, message });
                return;
            }
        };
        let preview = match png(&image).await {
            Ok(preview) => preview,
            Err(e) => {
                post(&FromWorker::PageNotRendered {
                    request,
                    message: format!(
                        "{name}, page {page} was drawn, but this browser could not make a \
                         picture of it ({}). Press Rerank to try again.",
                        js_error(&e)
                    ),
                });
                return;
            }
        };
        let rgb = Uint8Array::from(image.as_raw().as_slice());
        let transfer = Array::of1(&rgb.buffer());
        post_with_transfer(
            &FromWorker::PageRendered {
                request,
                width: image.width(),
                height: image.height(),
                rgb,
                preview,
            },
            &transfer,
        );
    }

    fn draw(
        &mut self,
        pdf: u32,
        name: &str,
        file: &Blob,
        page: u32,
        settings: &RenderSettings,
    ) -> Result<RgbImage, String> {
        let processor = match &settings.processor {
            Some(text) => ProcessorConfig::from_json_str(text).map_err(|e| {
                format!(
                    "{name}, page {page} cannot be drawn: the model's preprocessor_config.json \
                     cannot be read ({e}). Load the model again."
                )
            })?,
            None => ProcessorConfig::default(),
        };
        let image = ImageOptions {
            min_pixels: settings.min_pixels,
            max_pixels: settings.max_pixels,
            max_decoded_pixels: settings.max_decoded_pixels,
        };
        if self.open.as_ref().is_none_or(|(id, _)| *id != pdf) {
            // The last PDF's memory goes before the next is read.
            self.open = None;
            self.open = Some((pdf, open(name, file, &PdfOptions::default())?));
        }
        let (_, document) = self.open.as_ref().expect("just opened");
        document
            .render_page(page, &image, &processor)
            .map_err(|e| pdf_error(name, Some(page), &e))
    }
}

/// The PDF in `file`, read whole, or why not in the page's words. Its size is checked before
/// it is read.
fn open(name: &str, file: &Blob, options: &PdfOptions) -> Result<PdfDocument, String> {
    let size = file.size() as u64;
    let opened = if size > options.max_bytes {
        Err(PdfError::TooLarge {
            size,
            limit: options.max_bytes,
        })
    } else {
        let bytes = read_blob(file).map_err(|detail| {
            format!(
                "{name} could not be read ({detail}). It may have been moved or changed since it \
                 was added: remove it and add it again."
            )
        })?;
        PdfDocument::from_bytes(bytes, options)
    };
    opened.map_err(|e| pdf_error(name, None, &e))
}

/// The page as a PNG, made by the browser (`OffscreenCanvas`, reached by name: the worker's
/// web-sys build has no bindings for it).
async fn png(image: &RgbImage) -> Result<Blob, JsValue> {
    let (width, height) = (image.width(), image.height());
    let rgba: Vec<u8> = image
        .as_raw()
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let global = js_sys::global();
    let class = |name: &str| -> Result<Function, JsValue> {
        Reflect::get(&global, &name.into())?.dyn_into::<Function>()
    };
    let call = |target: &JsValue, method: &str, args: &Array| -> Result<JsValue, JsValue> {
        Reflect::get(target, &method.into())?
            .dyn_into::<Function>()?
            .apply(target, args)
    };
    let pixels = Uint8ClampedArray::new_with_length(rgba.len() as u32);
    pixels.copy_from(&rgba);
    let data = Reflect::construct(
        &class("ImageData")?,
        &Array::of3(&pixels, &width.into(), &height.into()),
    )?;
    let canvas = Reflect::construct(
        &class("OffscreenCanvas")?,
        &Array::of2(&width.into(), &height.into()),
    )?;
    let context = call(&canvas, "getContext", &Array::of1(&"2d".into()))?;
    call(
        &context,
        "putImageData",
        &Array::of3(&data, &0.into(), &0.into()),
    )?;
    let blob = call(&canvas, "convertToBlob", &Array::new())?.dyn_into::<Promise>()?;
    JsFuture::from(blob).await?.dyn_into::<Blob>()
}
