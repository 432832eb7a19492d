//! Getting a 4-bit model ready: its manifest, a check that this device and this browser's
//! storage can hold it, its files into storage (each checked against its sha256; a stopped
//! download resumes at the first file not yet checked), then shard by shard onto the GPU, and
//! a first pass that compiles the GPU kernels.

use std::path::Path;

use sha2::{Digest, Sha256};
use sift::{
    Content, Device, FileEntry, GpuInfo, ImageSource, Loading, Manifest, ModelFiles, Precision,
    Request, Requirements, RerankOptions, Reranker, RgbImage,
};
use sift_web_protocol::{FromWorker, ModelSource, ModelSummary, RenderSettings, Stage};

use crate::fit::fit;
use crate::reply::{Progress, post};
use crate::source::Source;
use crate::storage::{self, ModelDir, State};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Loads the model `source` names onto `device`, downloading or copying what storage lacks; its
/// linear layers in f16 if `f16` and the GPU has it, document text cut at `max_length` tokens
/// (else at the reference's length). With it, how its PDF pages are to be drawn.
pub async fn load(
    source: ModelSource,
    f16: bool,
    max_length: Option<usize>,
    device: &Device,
    gpu: &GpuInfo,
) -> Result<(Reranker, ModelSummary, RenderSettings), String> {
    let source = Source::new(source)?;
    // A URL's model is stored under its URL, so a later visit finds it offline; picked files
    // under their manifest.
    let (dir, manifest_bytes) = match &source {
        Source::Url(url) => {
            let dir = ModelDir::open(&format!("url-{}", hex(url.as_bytes()))).await?;
            (dir, None)
        }
        Source::Picked(..) => {
            let bytes = source.read(sift::MANIFEST).await?;
            let dir = ModelDir::open(&format!("local-{}", hex(&bytes))).await?;
            (dir, Some(bytes))
        }
        Source::Hub(url, _) => {
            let dir = ModelDir::open(&format!("hub-{}", hex(url.as_bytes()))).await?;
            (dir, None)
        }
        Source::Stored(key) => (ModelDir::open(key).await?, None),
    };
    let mut state = dir.state().await;
    let from_storage = state.complete;
    if matches!(source, Source::Hub(..)) && !state.complete {
        state.source = source.label();
        crate::convert::convert(&source, &dir, &mut state, device, gpu).await?;
    }
    let manifest_bytes = match manifest_bytes {
        Some(bytes) => bytes,
        None if state.complete => dir.read(sift::MANIFEST).await?,
        None => source.read(sift::MANIFEST).await?,
    };
    let manifest = Manifest::from_json(&manifest_bytes, Path::new(&source.label()))
        .map_err(|e| e.to_string())?;
    let requirements = Requirements::of(&manifest);
    let fit = fit(
        &requirements,
        gpu,
        &state,
        &manifest,
        storage::estimate().await,
    );
    post(&FromWorker::Fit(fit.clone()));
    if let Some(problem) = fit.problem {
        return Err(problem);
    }

    if !state.complete {
        if !matches!(source, Source::Stored(_)) {
            state.source = source.label();
        }
        state.bytes = manifest.total_bytes();
        store(&source, &dir, &manifest, &manifest_bytes, &mut state).await?;
    }

    let files = ModelFiles {
        config: dir.read("config.json").await?,
        tokenizer: dir.read("tokenizer.json").await?,
        preprocessor_config: match manifest.file("preprocessor_config.json") {
            Some(_) => Some(dir.read("preprocessor_config.json").await?),
            None => None,
        },
    };
    // The renderer parses the same text the loader does.
    let processor = files
        .preprocessor_config
        .as_ref()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    let f16 = f16 && gpu.f16;
    let options = RerankOptions {
        precision: if f16 { Precision::F16 } else { Precision::F32 },
        max_length: max_length.unwrap_or(sift::DEFAULT_MAX_LENGTH),
        ..RerankOptions::default()
    };
    let summary = model_summary(
        &dir.key,
        &files.config,
        &requirements,
        &state,
        from_storage,
        &options,
    );
    let mut loading = Loading::start(manifest.clone(), &state.source, files, device, options)
        .map_err(|e| e.to_string())?;
    let total: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    let mut progress = Progress::new(Stage::Loading, total);
    for (index, shard) in manifest.shards.iter().enumerate() {
        progress.detail(&shard.file);
        let bytes = dir.read(&shard.file).await?;
        if let Err(damaged) = loading.add_shard(index, &bytes) {
            // The stored copy no longer matches (damaged on disk or by the browser): forget
            // it and fetch it again, once; a converted checkpoint is converted again.
            if matches!(source, Source::Hub(..)) {
                dir.save_state(&State {
                    source: state.source.clone(),
                    ..State::default()
                })
                .await?;
                return Err(format!(
                    "{damaged}. The stored copy was damaged: load the model again to convert \
                     it again"
                ));
            }
            state.verified.remove(&shard.file);
            state.complete = false;
            dir.save_state(&state).await?;
            let mut again = Progress::new(stage_of(&source), shard.bytes);
            let sha256 = fetch_file(&source, &dir, shard, &mut again)
                .await
                .map_err(|why| {
                    format!("{damaged}. The stored copy was damaged, and fetching it again failed: {why}")
                })?;
            state.verified.insert(shard.file.clone(), sha256);
            state.complete = true;
            dir.save_state(&state).await?;
            let bytes = dir.read(&shard.file).await?;
            loading
                .add_shard(index, &bytes)
                .map_err(|e| e.to_string())?;
            let done = progress.done;
            progress = Progress::new(Stage::Loading, total);
            progress.set(done);
        }
        progress.add(shard.bytes);
    }
    let reranker = loading.finish().map_err(|e| e.to_string())?;
    warm_up(&reranker).await?;
    let image = &reranker.options().image;
    let render = RenderSettings {
        min_pixels: image.min_pixels,
        max_pixels: image.max_pixels,
        max_decoded_pixels: image.max_decoded_pixels,
        processor,
    };
    Ok((reranker, summary, render))
}

fn stage_of(source: &Source) -> Stage {
    match source {
        Source::Url(_) => Stage::Downloading,
        Source::Picked(..) | Source::Stored(_) => Stage::Copying,
        Source::Hub(..) => Stage::Converting,
    }
}

/// Copies every file the manifest lists into storage unless it is there and checked, saving
/// the state after each so a stopped transfer resumes where it was.
async fn store(
    source: &Source,
    dir: &ModelDir,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    state: &mut State,
) -> Result<(), String> {
    let entries: Vec<_> = manifest.files.iter().chain(&manifest.shards).collect();
    let total = entries.iter().map(|f| f.bytes).sum();
    let mut progress = Progress::new(stage_of(source), total);
    for entry in entries {
        if state.verified.get(&entry.file) == Some(&entry.sha256) {
            progress.add(entry.bytes);
            continue;
        }
        let sha256 = fetch_file(source, dir, entry, &mut progress).await?;
        state.verified.insert(entry.file.clone(), sha256);
        dir.save_state(state).await?;
    }
    // The manifest last: a folder with it is complete.
    dir.write(sift::MANIFEST, manifest_bytes).await?;
    state.complete = true;
    dir.save_state(state).await
}

/// Streams one file into storage and checks it against the manifest; its sha256.
async fn fetch_file(
    source: &Source,
    dir: &ModelDir,
    entry: &FileEntry,
    progress: &mut Progress,
) -> Result<String, String> {
    progress.detail(&entry.file);
    let start = progress.done;
    let mut writer = dir.writer(&entry.file).await?;
    source
        .copy(&entry.file, &mut writer, |n| progress.add(n))
        .await?;
    let (bytes, sha256) = writer.finish()?;
    if bytes != entry.bytes || sha256 != entry.sha256 {
        return Err(format!(
            "{} from {} is {bytes} bytes with sha256 {sha256}, but its manifest says {} bytes \
             with sha256 {}: the copy there is damaged or was changed after the manifest was \
             written. Re-create the model with `sift quantize`, or try again",
            entry.file,
            source.label(),
            entry.bytes,
            entry.sha256
        ));
    }
    progress.set(start + bytes);
    Ok(sha256)
}

fn model_summary(
    key: &str,
    config: &[u8],
    requirements: &Requirements,
    state: &State,
    from_storage: bool,
    options: &RerankOptions,
) -> ModelSummary {
    let config: serde_json::Value = serde_json::from_slice(config).unwrap_or_default();
    let text = &config["text_config"];
    ModelSummary {
        key: key.to_string(),
        source: state.source.clone(),
        layers: text["num_hidden_layers"].as_u64().unwrap_or(0) as usize,
        hidden_size: text["hidden_size"].as_u64().unwrap_or(0) as usize,
        gpu_weight_bytes: requirements.gpu_weight_bytes,
        storage_bytes: requirements.storage_bytes,
        from_storage,
        f16: options.precision == Precision::F16,
        max_length: options.max_length,
    }
}

/// One small text-and-image pair, so the GPU kernels are compiled before the user's first
/// rerank rather than during it.
async fn warm_up(reranker: &Reranker) -> Result<(), String> {
    post(&FromWorker::Progress {
        stage: Stage::WarmingUp,
        done: 0,
        total: 1,
        detail: "compiling GPU kernels".into(),
    });
    let request = Request {
        query: Content::text("warm-up"),
        ..Request::default()
    };
    let image = RgbImage::from_raw(64, 64, vec![128; 64 * 64 * 3]).expect("64x64 RGB");
    let document = Content {
        texts: vec!["warm-up".into()],
        images: vec![ImageSource::Pixels(image)],
        videos: Vec::new(),
    };
    let query = reranker.prepare_query(&request);
    let mut results = reranker
        .score_documents_async(&query, std::slice::from_ref(&document))
        .await;
    results
        .pop()
        .expect("one document, one result")
        .map(drop)
        .map_err(|e| format!("the first pass on this GPU failed: {e}"))
}
