//! An official checkpoint straight into storage as a 4-bit model: its small files fetched
//! whole, then each safetensors file with one plain GET, read as a stream and converted as the
//! bytes arrive (sift's converter, the same as `sift quantize`, writing each shard at planned
//! offsets). The source is never stored; after each source file the conversion so far is
//! saved, so a stopped conversion resumes at the first file not yet done.

use futures::StreamExt;
use sift::quantize::{CHECKPOINT_INDEX, COPIED_FILES, Conversion, HeaderReader, QuantError};
use sift::{Device, FileEntry, GpuInfo, Manifest, Requirements};
use sift_web_protocol::{FromWorker, Stage};

use crate::fit::fit;
use crate::reply::{Progress, post};
use crate::source::{Source, chunk_bytes};
use crate::storage::{self, ModelDir, State};

/// The checkpoint's single file, when it has no index.
const SINGLE: &str = "model.safetensors";

/// Converts the checkpoint `source` names into `dir`, resuming what `state` records; writes
/// the manifest last. Refuses first, with the numbers, a model this device or this browser's
/// storage cannot hold.
pub async fn convert(
    source: &Source,
    dir: &ModelDir,
    state: &mut State,
    device: &Device,
    gpu: &GpuInfo,
) -> Result<(), String> {
    let mut checking = Progress::new(Stage::Checking, 0);
    checking.detail("config.json and the tokenizer");
    // The small files first: the tokenizer names the head rows kept, the config the shapes.
    let mut files = Vec::new();
    let mut config = None;
    let mut tokenizer = None;
    for name in COPIED_FILES {
        let Some(bytes) = source.read_optional(name).await? else {
            continue;
        };
        let (size, sha256) = dir.write(name, &bytes).await?;
        files.push(FileEntry {
            file: name.to_string(),
            bytes: size,
            sha256,
        });
        match *name {
            "config.json" => config = Some(bytes),
            "tokenizer.json" => tokenizer = Some(bytes),
            _ => {}
        }
    }
    let missing = |name: &str| {
        format!(
            "{} has no {name}: it is not a Hugging Face model repository, or not a Qwen3-VL \
             reranker",
            source.label()
        )
    };
    let config = config.ok_or_else(|| missing("config.json"))?;
    let tokenizer = tokenizer.ok_or_else(|| missing("tokenizer.json"))?;
    let head_rows = sift::quantize::head_rows(&tokenizer).map_err(|e| e.to_string())?;

    // What the 4-bit model will need, from the config alone, before any weight is fetched.
    let mut planned = sift::quantize::planned_manifest(&config, head_rows, device)
        .map_err(|e| format!("{}: {e}", source.label()))?;
    planned.files = files.clone();
    let requirements = Requirements::of(&planned);
    let fit = fit(
        &requirements,
        gpu,
        state,
        &planned,
        storage::estimate().await,
    );
    post(&FromWorker::Fit(fit.clone()));
    if let Some(problem) = fit.problem {
        return Err(problem);
    }

    let index = source.read_optional(CHECKPOINT_INDEX).await?;
    let sources = match &index {
        Some(index) => sift::quantize::checkpoint_shards(index).map_err(|e| e.to_string())?,
        None => vec![SINGLE.to_string()],
    };
    let mut conversion = match state.conversion.take() {
        Some(done) if done.head_rows == head_rows => done,
        _ => Conversion::new(&head_rows),
    };
    // Progress in source bytes: the index's total, else the model's size in bf16 (how the
    // official checkpoints ship) until the file's own header says.
    let total = index
        .and_then(|i| serde_json::from_slice::<serde_json::Value>(&i).ok())
        .and_then(|i| i["metadata"]["total_size"].as_u64())
        .unwrap_or_else(|| {
            planned
                .tensors
                .values()
                .map(|t| t.shape.iter().product::<usize>() as u64 * 2)
                .sum()
        });
    let mut progress = Progress::new(Stage::Converting, total);
    progress.set(conversion.source_bytes);
    for name in &sources {
        if conversion.sources.contains(name) {
            continue;
        }
        convert_file(source, dir, name, &mut conversion, &mut progress).await?;
        state.conversion = Some(conversion.clone());
        dir.save_state(state).await?;
    }

    // The manifest last: a folder with it is complete.
    let manifest: Manifest = conversion.manifest(files);
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
    dir.write(sift::MANIFEST, &json).await?;
    state.verified = manifest
        .files
        .iter()
        .chain(&manifest.shards)
        .map(|f| (f.file.clone(), f.sha256.clone()))
        .collect();
    state.bytes = manifest.total_bytes();
    state.conversion = None;
    state.complete = true;
    dir.save_state(state).await
}

/// Streams source file `name` through the converter into its shards, and records them.
async fn convert_file(
    source: &Source,
    dir: &ModelDir,
    name: &str,
    conversion: &mut Conversion,
    progress: &mut Progress,
) -> Result<(), String> {
    let in_file = |e: QuantError| format!("{name} from {}: {e}", source.label());
    let start = progress.done;
    progress.detail(name);
    let mut chunks = source.open(name).await?.into_stream();
    let mut header = HeaderReader::default();
    let (plan, rest) = loop {
        let Some(chunk) = chunks.next().await else {
            return Err(format!(
                "{name} from {} ended inside its header: the transfer was cut short; try again",
                source.label()
            ));
        };
        let chunk = chunk_bytes(chunk, name)?;
        if let Some((tensors, used)) = header.push(&chunk).map_err(in_file)? {
            let plan = conversion.plan(tensors).map_err(in_file)?;
            if name == SINGLE {
                progress.total = plan.data_len;
            }
            break (plan, chunk[used..].to_vec());
        }
    };
    let names: Vec<String> = plan.shards.iter().map(|s| s.file.clone()).collect();
    let mut shards = dir.shards(&names).await?;
    let mut writer = plan.into_writer();
    writer.feed(&rest, &mut shards).map_err(in_file)?;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk_bytes(chunk, name)?;
        writer.feed(&chunk, &mut shards).map_err(in_file)?;
        let tensor = writer
            .plan()
            .tensor_at(writer.position())
            .unwrap_or_default();
        progress.note(&format!("{name}: {tensor}"));
        progress.set(start + writer.position());
    }
    let plan = writer.finish(&mut shards).map_err(in_file)?;
    shards.flush()?;
    drop(shards);
    let mut written = Vec::new();
    for file in &names {
        written.push(dir.entry(file).await?);
    }
    conversion.record(name, &plan, written).map_err(in_file)
}
