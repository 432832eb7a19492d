//! The page's *Measure speed*, run in a worker of its own: `sift bench`'s workload (text and
//! image pairs, 1 and 16 documents against one query) on random 4-bit weights made here, so
//! nothing is downloaded; each row is sent as soon as it is timed.

use sift::bench::{ModelSize, Workload, load_in_memory, random_q4_model, time_workload_async};
use sift::{Device, GpuInfo, Precision, RerankOptions};
use sift_web_protocol::{BenchShape, FromWorker, SpeedRow, Stage};

use crate::reply::{Progress, post};

/// The rows of `shape`, in the order they are timed: the quick ones first. The tiny shape's
/// last row is 2 images, not 16: on a CPU-emulated GPU (CI's) an image pair takes 14 s.
fn rows(shape: BenchShape) -> [(Workload, usize); 4] {
    let images = match shape {
        BenchShape::B2 => 16,
        BenchShape::Tiny => 2,
    };
    [
        (Workload::Text, 1),
        (Workload::Text, 16),
        (Workload::Image, 1),
        (Workload::Image, images),
    ]
}

/// Times the workload on random weights of `shape` on `device`, in f16 if `f16` and the GPU
/// has it, posting each row, then `SpeedDone`, or `SpeedFailed` with what went wrong.
pub async fn measure(shape: BenchShape, f16: bool, device: &Device, gpu: &GpuInfo) {
    let f16 = f16 && gpu.f16;
    match run(shape, f16, device).await {
        Ok(()) => post(&FromWorker::SpeedDone {
            gpu: gpu.name.clone(),
            f16,
        }),
        Err(e) => post(&FromWorker::SpeedFailed(e)),
    }
}

async fn run(shape: BenchShape, f16: bool, device: &Device) -> Result<(), String> {
    let size = match shape {
        BenchShape::B2 => ModelSize::B2,
        BenchShape::Tiny => ModelSize::Tiny,
    };
    let mut making = Progress::new(Stage::MakingWeights, 0);
    making.detail(&format!("the {} shape", size.name()));
    let model = random_q4_model(size, device, |done, total| {
        making.total = total;
        making.set(done);
    })
    .map_err(|e| format!("the random weights could not be made: {e}"))?;
    let mut loading = Progress::new(Stage::Loading, model.shards.len() as u64);
    let options = RerankOptions {
        precision: if f16 { Precision::F16 } else { Precision::F32 },
        ..RerankOptions::default()
    };
    let reranker = load_in_memory(model, device, options, |done, _| loading.set(done as u64))
        .map_err(|e| format!("the random weights could not be loaded onto the GPU: {e}"))?;
    let rows = rows(shape);
    let mut measuring = Progress::new(Stage::Measuring, rows.len() as u64);
    for (done, (workload, documents)) in rows.into_iter().enumerate() {
        let what = format!(
            "{}, {documents} document{}",
            workload.name(),
            if documents == 1 { "" } else { "s" }
        );
        measuring.detail(&what);
        // One request unmeasured (kernels compile), one timed: a laptop takes seconds per
        // image pair.
        let timing = time_workload_async(&reranker, workload, documents, 1)
            .await
            .map_err(|e| format!("timing {what} failed: {e}"))?;
        post(&FromWorker::SpeedRow(SpeedRow {
            workload: workload.name().into(),
            documents: timing.documents,
            ms_per_pair: timing.ms_per_pair,
            tokens_per_pair: timing.tokens_per_pair,
        }));
        measuring.set(done as u64 + 1);
    }
    Ok(())
}
