//! The messages between sift's page and its model worker. Each is a serde enum sent with
//! `postMessage`; files and pixels ride along as JavaScript objects (`File`s are passed by
//! reference, frame pixels are transferred, never copied).

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

/// Where the page asks for a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ModelSource {
    /// A 4-bit model directory served over HTTP(S): `sift-q4.json` and its files under it.
    Url(String),
    /// A 4-bit model directory the user picked or dropped: its files, found by name.
    Files(#[serde(with = "serde_wasm_bindgen::preserve")] js_sys::Array),
    /// A model already in the browser's storage, by its key.
    Stored(String),
    /// An official Hugging Face checkpoint, converted to 4 bits in the browser: the folder URL
    /// its files are under (`https://huggingface.co/<repo>/resolve/<revision>/`), and a name
    /// for it (the repository id).
    Hub { url: String, name: String },
}

/// How a converted Hugging Face model is named in storage and in messages.
pub fn hub_label(name: &str) -> String {
    format!("{name} (Hugging Face)")
}

/// An image or video the user added, by the page's id for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Media {
    pub id: u32,
    pub name: String,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub file: web_sys::Blob,
}

/// One side of a pair, as the user entered it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Side {
    pub texts: Vec<String>,
    pub images: Vec<Media>,
    pub videos: Vec<Media>,
    /// A page of a PDF: the whole document (the library's PDF documents hold nothing else).
    #[serde(default)]
    pub pdf: Option<PdfPart>,
}

/// A page of a PDF the user added: the file (`media.id` names the document's part) and the
/// page, 1-based; `None` for a PDF that could not be opened (the page holds why).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PdfPart {
    pub media: Media,
    pub page: Option<u32>,
}

/// What sets the size a PDF page is drawn at: the loaded model's image budget
/// (`ImageOptions`) and its `preprocessor_config.json`, so that the renderer draws the page at
/// exactly the size the model reads, as natively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderSettings {
    pub min_pixels: u64,
    pub max_pixels: u64,
    pub max_decoded_pixels: u64,
    /// The text of the model's `preprocessor_config.json`; `None`: the reference's defaults.
    pub processor: Option<String>,
}

/// A PDF as the renderer opened it, with the library's limits on pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfInfo {
    pub pages: u32,
    /// Most pages taken from one PDF (`PdfOptions::max_pages`).
    pub max_pages: u32,
    /// Most PDF pages one rerank takes, over all its PDFs (`MAX_REQUEST_PDF_PAGES`).
    pub max_run_pages: u32,
}

/// A rerank request: the query against every document, in the CLI's request shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RerankJob {
    pub job: u32,
    /// `None`: the model's default instruction.
    pub instruction: Option<String>,
    pub query: Side,
    pub documents: Vec<Side>,
    /// Frames sampled per second of a video.
    pub fps: f64,
    /// Most frames sampled from a video.
    pub max_frames: usize,
}

/// The model shape the page's speed measurement times (random 4-bit weights made in the
/// worker, nothing downloaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BenchShape {
    /// Qwen3-VL-Reranker-2B's.
    B2,
    /// The same architecture, tiny (`?bench=tiny`; about 200 times fewer parameters): for a
    /// CPU-emulated GPU, as in CI.
    Tiny,
}

/// One row of the speed measurement: `documents` documents of a workload against one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedRow {
    /// "text" (about 256 tokens of text) or "image" (one 1024×768 image).
    pub workload: String,
    pub documents: usize,
    pub ms_per_pair: f64,
    pub tokens_per_pair: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToWorker {
    /// Set up the GPU and look at storage; answered by `Probed`.
    Probe,
    /// Download or read the model into storage if needed, then load it, its linear layers in
    /// f16 if `f16` (where the GPU has `shader-f16`); answered by `Progress` messages, then
    /// `Loaded` or `LoadFailed`.
    Load {
        source: ModelSource,
        f16: bool,
        /// Tokens of a prompt kept before its 5-token suffix (`RerankOptions::max_length`):
        /// longer document text is cut. `None`: the reference's default.
        max_length: Option<usize>,
    },
    /// To a worker of its own (the model worker's model stays): time `sift bench`'s workload
    /// on random weights of `shape`, its linear layers in f16 if `f16` (where the GPU has it);
    /// answered by `Progress`, a `SpeedRow` per row, then `SpeedDone` or `SpeedFailed`.
    MeasureSpeed {
        shape: BenchShape,
        f16: bool,
    },
    /// Delete the stored model with this key; answered by `Probed`.
    Remove(String),
    Rerank(RerankJob),
    /// Frame `index` of the frames requested by `NeedFrames`: RGBA pixels.
    Frame {
        job: u32,
        video: u32,
        index: usize,
        width: u32,
        height: u32,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        rgba: js_sys::Uint8Array,
    },
    /// The page could not capture a video's frames: why, as a sentence for the user.
    FramesFailed {
        job: u32,
        video: u32,
        message: String,
    },
    /// To the renderer (the page's second worker): open a PDF and count its pages; answered
    /// by `PdfOpened`.
    OpenPdf {
        request: u32,
        name: String,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        file: web_sys::Blob,
    },
    /// To the renderer: draw page `page` of the PDF the page calls `pdf` (an opened document
    /// is kept for its next page); answered by `PageRendered` or `PageNotRendered`.
    RenderPage {
        request: u32,
        pdf: u32,
        name: String,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        file: web_sys::Blob,
        page: u32,
        settings: RenderSettings,
    },
    /// To the model worker: the PDF page `NeedPage` asked for, as RGB pixels.
    Page {
        job: u32,
        media: u32,
        width: u32,
        height: u32,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        rgb: js_sys::Uint8Array,
    },
    /// To the model worker: the page could not be drawn: why, as a sentence for the user.
    PageFailed {
        job: u32,
        media: u32,
        message: String,
    },
}

/// What the GPU offers, as the worker found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// The adapter's name and driver, as the browser reports them.
    pub name: String,
    /// `maxStorageBufferBindingSize` (capped by `maxBufferSize`), in bytes.
    pub max_binding: u64,
    /// Whether the GPU computes in f16 (`shader-f16`).
    pub f16: bool,
}

/// The origin's storage, from `navigator.storage.estimate()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageInfo {
    pub used: u64,
    pub quota: u64,
}

/// A model kept in the browser's storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    /// The key it is stored under, for `Remove`.
    pub key: String,
    /// The URL or folder it came from.
    pub source: String,
    /// What its files take in storage, measured file by file.
    pub bytes: u64,
    /// Every file is there and checked.
    pub complete: bool,
}

/// What the worker is doing, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Reading the manifest and checking the device.
    Checking,
    /// Fetching files into storage (`done`/`total` in bytes).
    Downloading,
    /// Copying picked files into storage (bytes).
    Copying,
    /// Fetching a checkpoint and converting it to 4 bits into storage (source bytes).
    Converting,
    /// Reading shards from storage onto the GPU (bytes).
    Loading,
    /// The first pass: compiling the GPU kernels.
    WarmingUp,
    /// Scoring documents (`done`/`total` in documents).
    Scoring,
    /// Making random weights for the speed measurement (values).
    MakingWeights,
    /// Timing the speed measurement's rows (rows).
    Measuring,
}

/// What a loaded model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The key it is stored under.
    pub key: String,
    pub source: String,
    pub layers: usize,
    pub hidden_size: usize,
    pub gpu_weight_bytes: u64,
    pub storage_bytes: u64,
    /// Whether the files came from storage with no network request.
    pub from_storage: bool,
    /// Whether its linear layers compute in f16.
    pub f16: bool,
    /// Tokens of a prompt kept before its suffix (longer document text is cut).
    pub max_length: usize,
}

/// What a model needs of the machine, and whether this one has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub storage_bytes: u64,
    pub gpu_weight_bytes: u64,
    pub largest_buffer: u64,
    /// Why this device cannot run it, if it cannot.
    pub problem: Option<String>,
}

/// How a video was sampled, as the reference samples it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSample {
    pub video: u32,
    /// Frames in the file and its rate, from its container.
    pub total_frames: usize,
    pub fps: f64,
    /// Indices of the sampled frames, and the timestamp of each 2-frame group in the prompt.
    pub indices: Vec<usize>,
    pub timestamps: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's code is running (messages sent before this are lost), with the default
    /// instruction of the reranker.
    Ready {
        default_instruction: String,
        /// The reranker's default `max_length` (the reference's), shown as the setting's
        /// placeholder.
        default_max_length: usize,
    },
    Probed {
        /// The GPU, or why there is none (a sentence for the user).
        gpu: Result<GpuInfo, String>,
        storage: StorageInfo,
        models: Vec<StoredModel>,
    },
    /// The requirements of the model being loaded, before anything large is downloaded.
    Fit(Fit),
    Progress {
        stage: Stage,
        done: u64,
        total: u64,
        /// What is being worked on (a file name, a tensor).
        detail: String,
    },
    Loaded(ModelSummary),
    LoadFailed(String),
    /// Capture these frames of video `video`: seek the element to each time (seconds) in
    /// turn and send each frame's pixels.
    NeedFrames {
        job: u32,
        video: u32,
        seek_times: Vec<f64>,
    },
    /// Draw the PDF page of document part `media` at these settings and send its pixels
    /// (`Page`), or why it cannot be drawn (`PageFailed`).
    NeedPage {
        job: u32,
        media: u32,
        settings: RenderSettings,
    },
    /// From the renderer: a PDF's page count, or why it cannot be opened (a sentence for the
    /// user).
    PdfOpened {
        request: u32,
        result: Result<PdfInfo, String>,
    },
    /// From the renderer: a page drawn at the model's size, as RGB pixels, and the same page
    /// as a PNG to show.
    PageRendered {
        request: u32,
        width: u32,
        height: u32,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        rgb: js_sys::Uint8Array,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        preview: web_sys::Blob,
    },
    /// From the renderer: why the page cannot be drawn, a sentence for the user.
    PageNotRendered {
        request: u32,
        message: String,
    },
    /// How the query's videos were sampled, once they are read.
    QueryVideos {
        job: u32,
        videos: Vec<VideoSample>,
    },
    /// The query cannot be used: why, once, in the page's words. Every document is then
    /// `Scored` with an error saying it was not scored.
    QueryFailed {
        job: u32,
        message: String,
    },
    /// Document `index` is scored (or why it is not, in the page's words). `order` ranks the
    /// documents scored so far, best first, failures last; `videos` tells how the document's
    /// own videos were sampled.
    Scored {
        job: u32,
        index: usize,
        result: Result<f32, String>,
        order: Vec<usize>,
        videos: Vec<VideoSample>,
    },
    /// All documents are done: the results in the CLI's JSON shape, for export.
    Done {
        job: u32,
        results_json: String,
    },
    /// A row of the speed measurement, as soon as it is timed.
    SpeedRow(SpeedRow),
    /// The speed measurement is done: the GPU it ran on, and whether in f16.
    SpeedDone {
        gpu: String,
        f16: bool,
    },
    /// The speed measurement stopped: why, a sentence for the user.
    SpeedFailed(String),
    /// The worker cannot go on (a GPU lost or out of memory, a bug): the page restarts it.
    Fatal(String),
}

/// A message as a JavaScript value, for `postMessage`.
pub fn encode<T: Serialize>(message: &T) -> JsValue {
    serde_wasm_bindgen::to_value(message).expect("protocol messages always serialise")
}

/// A message received with `postMessage`, or why it is not one.
pub fn decode<T: for<'de> Deserialize<'de>>(value: JsValue) -> Result<T, String> {
    serde_wasm_bindgen::from_value(value).map_err(|e| e.to_string())
}
