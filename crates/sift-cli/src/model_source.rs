//! `--model`: a local directory, or a Hugging Face model id resolved through the standard
//! Hugging Face cache (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`), downloading what is
//! missing unless `HF_HUB_OFFLINE=1`.

use std::path::{Path, PathBuf};

use hf_hub::Cache;
use hf_hub::api::sync::ApiBuilder;

/// Files every model directory needs besides its weights.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
const OPTIONAL: &[&str] = &["preprocessor_config.json"];
const INDEX: &str = "model.safetensors.index.json";

pub fn resolve(model: &str) -> Result<PathBuf, String> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let is_hub_id = model.split('/').count() == 2 && !model.starts_with('.') && !path.exists();
    if !is_hub_id {
        return Err(format!(
            "--model {model}: no such directory. Give a downloaded model directory or a Hugging \
             Face id such as Qwen/Qwen3-VL-Reranker-2B"
        ));
    }
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    let cache = Cache::from_env();
    if let Some(dir) = from_cache(&cache, model) {
        return Ok(dir);
    }
    if offline {
        return Err(format!(
            "{model} is not complete in the Hugging Face cache at {} and HF_HUB_OFFLINE is set; \
             unset it to download the model, or give a model directory",
            cache.path().display()
        ));
    }
    download(model)
}

/// The snapshot directory, if the cache holds every file the model needs.
fn from_cache(cache: &Cache, model: &str) -> Option<PathBuf> {
    let repo = cache.model(model.to_string());
    let config = repo.get("config.json")?;
    for file in REQUIRED {
        repo.get(file)?;
    }
    if let Some(index) = repo.get(INDEX) {
        for shard in shard_names(&index)? {
            repo.get(&shard)?;
        }
    } else {
        repo.get("model.safetensors")?;
    }
    config.parent().map(Path::to_path_buf)
}

fn shard_names(index: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(index).ok()?;
    let parsed: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut names: Vec<String> = parsed
        .get("weight_map")?
        .as_object()?
        .values()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

fn download(model: &str) -> Result<PathBuf, String> {
    let fail = |e: hf_hub::api::sync::ApiError| {
        format!("downloading {model} from the Hugging Face Hub failed: {e}")
    };
    let api = ApiBuilder::from_env().build().map_err(fail)?;
    let repo = api.model(model.to_string());
    let mut config = None;
    for file in REQUIRED {
        let path = repo.get(file).map_err(fail)?;
        config.get_or_insert(path);
    }
    for file in OPTIONAL {
        // Absent from some repositories; the defaults are the Qwen3-VL values.
        let _ = repo.get(file);
    }
    match repo.get(INDEX) {
        Ok(index) => {
            let shards = shard_names(&index)
                .ok_or_else(|| format!("{INDEX} of {model} has no weight_map"))?;
            for shard in shards {
                repo.get(&shard).map_err(fail)?;
            }
        }
        Err(_) => {
            repo.get("model.safetensors").map_err(fail)?;
        }
    }
    config
        .and_then(|c| c.parent().map(Path::to_path_buf))
        .ok_or_else(|| format!("{model}: no config.json"))
}
