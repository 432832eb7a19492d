//! A 4-bit model that arrives piece by piece, as a browser gets it (downloaded, read from
//! storage, or picked by the user): its manifest, its small files, then its shards one at a
//! time. The host holds one shard at a time, never the whole model.

use std::path::PathBuf;

use sift_inputs::ProcessorConfig;
use sift_inputs::prompt::PromptTokenizer;
use sift_model::{Device, ModelConfig, QuantizedLoader, RerankerModel, ScoreTokens};
use sift_quant::{FileEntry, Manifest, QuantError};

use crate::device::device_name;
use crate::error::LoadError;
use crate::memory::InputMemory;
use crate::options::RerankOptions;
use crate::reranker::Reranker;

/// The files a model needs besides its weights, as bytes; each is checked against the
/// manifest's size and sha256.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
    /// `preprocessor_config.json`, where the model has one (else the reference's defaults).
    pub preprocessor_config: Option<Vec<u8>>,
}

impl ModelFiles {
    /// The names of the files a model needs that `manifest` lists, in the order a loader
    /// reads them.
    pub fn names(manifest: &Manifest) -> Vec<&str> {
        ["config.json", "tokenizer.json", "preprocessor_config.json"]
            .into_iter()
            .filter(|name| *name != "preprocessor_config.json" || manifest.file(name).is_some())
            .collect()
    }
}

/// A model being loaded: [`start`](Self::start) from its small files, add every shard, then
/// [`finish`](Self::finish).
pub struct Loading {
    loader: QuantizedLoader,
    tokenizer: PromptTokenizer,
    processor: ProcessorConfig,
    options: RerankOptions,
    device_name: String,
}

fn check(manifest: &Manifest, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    let entry = manifest.file(name).ok_or_else(|| {
        LoadError::Quant(QuantError::BadManifest {
            path: PathBuf::from(sift_quant::MANIFEST),
            detail: format!("it lists no {name}"),
        })
    })?;
    Ok(entry.check(bytes)?)
}

impl Loading {
    /// Starts loading the 4-bit model `manifest` describes onto `device`, from its small
    /// files; its shards follow with [`add_shard`](Self::add_shard). `source` names where the model
    /// comes from (a URL, a folder) in error messages. A model whose buffers the device cannot
    /// bind is refused here, before anything is allocated.
    pub fn start(
        manifest: Manifest,
        source: &str,
        files: ModelFiles,
        device: &Device,
        options: RerankOptions,
    ) -> Result<Self, LoadError> {
        check(&manifest, "config.json", &files.config)?;
        check(&manifest, "tokenizer.json", &files.tokenizer)?;
        let processor = match &files.preprocessor_config {
            Some(bytes) => {
                check(&manifest, "preprocessor_config.json", bytes)?;
                ProcessorConfig::from_json_str(&String::from_utf8_lossy(bytes)).map_err(
                    |error| LoadError::Processor {
                        path: PathBuf::from("preprocessor_config.json"),
                        error,
                    },
                )?
            }
            None => ProcessorConfig::default(),
        };
        let tokenizer = PromptTokenizer::from_bytes(&files.tokenizer)?;
        let config = ModelConfig::from_json(&String::from_utf8_lossy(&files.config))?;
        LoadError::check_processor(
            &processor,
            "preprocessor_config.json",
            files.preprocessor_config.is_some(),
            &config,
            "config.json",
        )?;
        LoadError::check_vocabulary(&tokenizer, &config)?;
        InputMemory::of(&options, &processor).check()?;
        let tokens = ScoreTokens {
            yes: tokenizer.yes_id,
            no: tokenizer.no_id,
        };
        let limit = sift_model::binding_limit(device);
        let loader = QuantizedLoader::new(manifest, source, config, tokens, device, limit)?;
        Ok(Self {
            loader,
            tokenizer,
            processor,
            options,
            device_name: device_name(device),
        })
    }

    /// The shards to add, by index.
    pub fn shards(&self) -> &[FileEntry] {
        &self.loader.manifest().shards
    }

    /// Checks shard `index` (size, sha256) and moves its tensors to the device.
    pub fn add_shard(&mut self, index: usize, bytes: &[u8]) -> Result<(), LoadError> {
        Ok(self.loader.add_shard(index, bytes)?)
    }

    /// The reranker, once every shard has been added, computing in the options' precision (an
    /// error where f16 is asked of a device that has none).
    pub fn finish(self) -> Result<Reranker, LoadError> {
        Reranker::from_parts(
            RerankerModel::from_loader(self.loader)?,
            self.tokenizer,
            self.processor,
            self.options,
            self.device_name,
        )
    }
}
