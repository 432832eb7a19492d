//! Converting a checkpoint holds a row group at a time, whatever the size of its files: the
//! peak of memory allocated while quantizing a 1 GiB source file is the same few megabytes as
//! for a 64 MiB one. (Its own test binary: the allocator that counts is process-wide.)

use std::io::Write;
use std::path::Path;

mod counting;

/// Writes a bf16 checkpoint of one `[rows, 4096]` matrix and a norm, in 8 MiB steps.
fn write_checkpoint(dir: &Path, rows: usize) {
    let cols = 4096;
    let matrix = "model.language_model.layers.0.mlp.down_proj.weight";
    let norm = "model.language_model.norm.weight";
    let bytes = rows * cols * 2;
    let header = format!(
        r#"{{"{matrix}":{{"dtype":"BF16","shape":[{rows},{cols}],"data_offsets":[0,{bytes}]}},"{norm}":{{"dtype":"BF16","shape":[{cols}],"data_offsets":[{bytes},{}]}}}}"#,
        bytes + cols * 2
    );
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(dir.join("model.safetensors")).unwrap());
    file.write_all(&(header.len() as u64).to_le_bytes())
        .unwrap();
    file.write_all(header.as_bytes()).unwrap();
    // bf16 values of a few magnitudes, different from row to row.
    let step: Vec<u8> = (0..4 << 20)
        .flat_map(|i: u32| half::bf16::from_f32(((i % 997) as f32 - 498.0) * 1e-3).to_le_bytes())
        .collect();
    let mut left = bytes + cols * 2;
    while left > 0 {
        let n = left.min(step.len());
        file.write_all(&step[..n]).unwrap();
        left -= n;
    }
    file.flush().unwrap();
}

/// Peak bytes allocated while converting a checkpoint of `rows` rows.
fn conversion_peak(rows: usize) -> usize {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    write_checkpoint(&source, rows);
    let ((), peak, _) = counting::measure(|| {
        sift_quant::quantize_model(&source, &work.path().join("q4"), &[]).unwrap();
    });
    peak
}

#[test]
fn converting_a_1_gib_file_takes_no_more_memory_than_a_64_mib_one() {
    let small = conversion_peak(8 * 1024); // 64 MiB of bf16
    let large = conversion_peak(128 * 1024); // 1 GiB
    eprintln!(
        "peak allocated while converting: {:.1} MiB for a 64 MiB file, {:.1} MiB for 1 GiB",
        small as f64 / (1 << 20) as f64,
        large as f64 / (1 << 20) as f64
    );
    assert!(large < 32 << 20, "{large} bytes for a 1 GiB file");
    assert!(large <= small + (1 << 20), "{large} vs {small}");
}
