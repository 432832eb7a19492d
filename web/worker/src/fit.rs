//! Whether a model fits: what it needs of this device's GPU and of this browser's storage,
//! against what they offer, checked before anything is fetched or converted.

use sift::{GpuInfo, Manifest, Requirements};
use sift_web_protocol::{Fit, StorageInfo};

use crate::storage::State;

/// Whether this device and the storage left can take the model, with the numbers.
pub fn fit(
    requirements: &Requirements,
    gpu: &GpuInfo,
    state: &State,
    manifest: &Manifest,
    storage: StorageInfo,
) -> Fit {
    let stored: u64 = manifest
        .files
        .iter()
        .chain(&manifest.shards)
        .filter(|f| state.verified.get(&f.file) == Some(&f.sha256))
        .map(|f| f.bytes)
        .sum();
    let to_store = requirements.storage_bytes.saturating_sub(stored);
    let free = storage.quota.saturating_sub(storage.used);
    let (name, largest) = &requirements.largest_buffer;
    let problem = if *largest > gpu.max_binding {
        Some(format!(
            "this GPU cannot run the model: its tensor {name} needs a {} buffer, and this \
             browser lets the GPU bind at most {} (maxStorageBufferBindingSize). Use a smaller \
             model, or a browser or GPU with higher limits",
            gigabytes(*largest),
            gigabytes(gpu.max_binding)
        ))
    } else if storage.quota > 0 && to_store > free {
        Some(format!(
            "the model needs {} more of storage, but the browser allows this page only {} \
             more ({} of {} used). Remove stored models, free disk space, or allow this site \
             more storage",
            gigabytes(to_store),
            gigabytes(free),
            gigabytes(storage.used),
            gigabytes(storage.quota)
        ))
    } else {
        None
    };
    Fit {
        storage_bytes: requirements.storage_bytes,
        gpu_weight_bytes: requirements.gpu_weight_bytes,
        largest_buffer: *largest,
        problem,
    }
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}
