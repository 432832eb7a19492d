//! What each fuzz target does with its input, as plain functions: `fuzz_targets/*.rs` hand them
//! libFuzzer's inputs, and the workspace's `tests/fuzz_corpus.rs` (which includes this file)
//! replays every committed input through them without libFuzzer's instrumented build.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sift_inputs::prompt::{PromptTokenizer, SideContent, prompt_text};
use sift_inputs::video::{SamplePlan, VideoSampling, check_sample_tokens, probe_container};
use sift_inputs::{ImageOptions, ProcessorConfig, load_image, preprocess_image};
use sift_model::{Device, RerankerModel, ScoreTokens};
use sift_quant::{Manifest, TensorAssembler};
use std::sync::LazyLock;

/// A target's name (as `fuzz/run.sh` and the corpus folders give it) and its code.
pub type Target = (&'static str, fn(&[u8]));

pub const TARGETS: &[Target] = &[
    ("image", image),
    ("video_container", video_container),
    ("request_json", request_json),
    ("model_config", model_config),
    ("model_directory", model_directory),
    ("checkpoint", checkpoint),
    ("q4_model", q4_model),
    ("tokenize", tokenize),
    ("batch", batch),
    #[cfg(feature = "pdf")]
    ("pdf", pdf),
];

/// Image bytes of any format sift sniffs, decoded and preprocessed as a document's image is:
/// every failure must be an `ImageError`.
pub fn image(bytes: &[u8]) {
    let options = ImageOptions::default();
    if let Ok(image) = load_image(bytes, &options) {
        let _ = preprocess_image(&image, &options, &ProcessorConfig::default());
    }
}

/// PDF bytes opened, and their first two pages rendered at a small budget (64 patches of
/// 32 × 32 pixels; images up to 4 megapixels), each page bounded as a document's page is (what
/// its streams decode to, the objects it reaches, a deadline): every failure must be a
/// `PdfError`. Panics inside hayro and the crates it uses are caught by sift and cost only their
/// page (the fuzzing binary lets those through, see `fuzz_targets/pdf.rs`).
#[cfg(feature = "pdf")]
pub fn pdf(bytes: &[u8]) {
    use sift_inputs::pdf::{PdfDocument, PdfOptions};
    let options = PdfOptions {
        max_page_decoded_bytes: 64 << 20,
        render_timeout: std::time::Duration::from_secs(10),
        ..PdfOptions::default()
    };
    let Ok(document) = PdfDocument::from_bytes(bytes.to_vec(), &options) else {
        return;
    };
    let image = ImageOptions {
        max_pixels: 64 * 32 * 32,
        max_decoded_pixels: 4_000_000,
        ..ImageOptions::default()
    };
    for page in 1..=document.page_count().min(2) {
        let _ = document.render_page(page, &image, &ProcessorConfig::default());
    }
}

/// A video file's container (MP4/MOV, WebM/Matroska) probed for its frame times, rate and
/// size, then sampled and budgeted as the page does before it plays a frame.
pub fn video_container(bytes: &[u8]) {
    let Ok(info) = probe_container(std::io::Cursor::new(bytes)) else {
        return;
    };
    let sampling = VideoSampling::default();
    if SamplePlan::new(info.frame_times.len(), info.fps, &sampling).is_ok() {
        let _ = check_sample_tokens(info.height, info.width, sampling.max_frames, 32_768);
    }
}

/// A `sift rerank --batch` input, read as the batch reads it, and the same bytes as a results
/// file to resume. The first byte sets the longest line (1 to 64 bytes), the second the read
/// buffer (1 to 16 bytes), so that lines cross buffers and bounds; the rest is the input. The
/// lines must be what splitting the input at `\n` gives (without a `\r` before it), a line over
/// the bound `TooLong`, every byte consumed; each line that fits is read as a request.
pub fn batch(bytes: &[u8]) {
    use sift::batch::{Line, LineReader, parse_line, read_done_lines};
    let [max, capacity, input @ ..] = bytes else {
        return;
    };
    let max = 1 + usize::from(max % 64);
    let mut reader = LineReader::new(
        std::io::BufReader::with_capacity(1 + usize::from(capacity % 16), input),
        max,
    );
    let read: Vec<Line> = std::iter::from_fn(|| reader.next_line().expect("in memory")).collect();
    let mut expected: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if expected.last().is_some_and(|last| last.is_empty()) {
        expected.pop();
    }
    let expected: Vec<Line> = expected
        .into_iter()
        .map(|line| match line.len() > max {
            true => Line::TooLong,
            false => Line::Complete(line.strip_suffix(b"\r").unwrap_or(line).to_vec()),
        })
        .collect();
    assert_eq!(read, expected, "the lines read");
    assert_eq!(reader.consumed(), input.len() as u64, "bytes consumed");
    for line in read {
        if let Line::Complete(line) = line {
            let _ = parse_line(&line, std::path::Path::new("/nonexistent"));
        }
    }
    if let Ok(done) = read_done_lines(input) {
        let whole = done.whole_bytes as usize;
        assert!(
            whole == 0 || input[whole - 1] == b'\n',
            "whole lines end at a newline"
        );
    }
}

/// A rerank request as `sift rerank` and `--batch` read it.
pub fn request_json(bytes: &[u8]) {
    if let Ok(json) = std::str::from_utf8(bytes) {
        let _ = sift::Request::from_json(json, std::path::Path::new("/nonexistent"));
    }
}

/// A model's `config.json`: parsed and validated, then checked against a golden checkpoint's
/// weights as a load checks it, before anything of the config's sizes is built (building the
/// network of any valid config would let a config of 2^24 layers take gigabytes): the
/// `model_directory` target with that checkpoint's header. (A zero byte cannot be in a valid
/// config; the config ends at the first.)
pub fn model_config(bytes: &[u8]) {
    let config = bytes.split(|&b| b == 0).next().unwrap_or_default();
    let header_len = u64::from_le_bytes(GOLDEN_CHECKPOINT[..8].try_into().unwrap()) as usize;
    let header = &GOLDEN_CHECKPOINT[8..8 + header_len];
    model_directory(&[config, &[0], header].concat());
}

static GOLDEN_CHECKPOINT: &[u8] =
    include_bytes!("../../tests/golden/models/untied-one-kv/model.safetensors");

/// The most data a `model_directory` input's header may describe: its file is sparse, so this
/// takes no disk, and a header may claim tensors of 2^24 × 1536 values, as a lying config does.
const SPARSE_DATA_LIMIT: u64 = 1 << 36;

/// A model directory as a download lays it out, `config.json` beside `model.safetensors`,
/// checked as a load checks it before it builds anything of the config's sizes
/// (`sift_model::check_model_directory`): none of a config's sizes or counts may allocate more
/// than the weights hold. The input is `config.json`, a zero byte, then the safetensors header
/// (JSON). The file is made of them: the header's length, the header, and a data section as
/// long as the header describes (up to 64 GB, left sparse), so the fuzzer reaches the shapes
/// rather than stopping at the file's length.
pub fn model_directory(bytes: &[u8]) {
    use std::io::Write;
    let split = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (config, header) = (&bytes[..split], bytes.get(split + 1..).unwrap_or_default());
    let data_len = serde_json::from_slice::<Value>(header)
        .ok()
        .and_then(|header| {
            let tensors = header.as_object()?.values();
            tensors
                .filter_map(|entry| entry.pointer("/data_offsets/1")?.as_u64())
                .max()
        })
        .unwrap_or(0)
        .min(SPARSE_DATA_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let mut file = std::fs::File::create(dir.path().join("model.safetensors")).unwrap();
    file.write_all(&(header.len() as u64).to_le_bytes())
        .unwrap();
    file.write_all(header).unwrap();
    file.set_len(8 + header.len() as u64 + data_len).unwrap();
    drop(file);
    let _ = sift_model::check_model_directory(dir.path(), &Device::flex());
}

const CHECKPOINT_CONFIG: &str = include_str!("../../tests/golden/models/untied-one-kv/config.json");

/// A checkpoint's `model.safetensors` (its header, shapes, dtypes and data) loaded beside a
/// fixed golden `config.json`, as `sift rerank` loads a downloaded model.
pub fn checkpoint(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), CHECKPOINT_CONFIG).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    let tokens = ScoreTokens {
        yes: 1500,
        no: 1501,
    };
    let _ = RerankerModel::load_checkpoint(dir.path(), tokens, &Device::flex(), Some(1 << 30));
}

/// A 4-bit model as the page receives it: the manifest (`sift-q4.json`), then a shard. The
/// input is the manifest, a zero byte, then the shard; the manifest's first shard entry is
/// given the shard's true size and sha256 first, so the fuzzer reaches the shard's parsing
/// (a checksum it cannot forge would stop it earlier).
pub fn q4_model(bytes: &[u8]) {
    let split = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (json, shard) = (&bytes[..split], bytes.get(split + 1..).unwrap_or_default());
    let Ok(mut manifest) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    if let Some(Value::Object(first)) = manifest.pointer_mut("/shards/0") {
        first.insert("bytes".into(), shard.len().into());
        first.insert(
            "sha256".into(),
            sift_quant::hex(&Sha256::digest(shard)).into(),
        );
    }
    let path = std::path::Path::new("sift-q4.json");
    let Ok(manifest) = Manifest::from_json(manifest.to_string().as_bytes(), path) else {
        return;
    };
    let _ = sift_model::Requirements::of(&manifest);
    let mut assembler = TensorAssembler::new(manifest, "fuzz");
    let read = assembler.add_shard::<sift_quant::QuantError>(0, shard, |_, _, values| {
        let _ = values.to_f32();
        Ok(())
    });
    if read.is_ok() {
        let _ = assembler.finish();
    }
}

static TOKENIZER: LazyLock<PromptTokenizer> = LazyLock::new(|| {
    PromptTokenizer::from_bytes(include_bytes!(
        "../../tests/golden/tokenizer/tokenizer.json"
    ))
    .unwrap()
});

/// Any text as a query and a document: the prompt built, tokenized by the real Qwen
/// tokenizer (`tests/golden/fetch_tokenizer.sh` fetches it) and truncated.
pub fn tokenize(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let (query, document) = text.split_at(text.floor_char_boundary(text.len() / 2));
    let side = |text: &str| SideContent {
        texts: vec![text.to_string()],
        ..SideContent::default()
    };
    let prompt = prompt_text("Judge the document.", &side(query), &side(document));
    if let Ok(ids) = TOKENIZER.encode(&prompt) {
        let _ = TOKENIZER.truncate(ids, 64);
    }
}
