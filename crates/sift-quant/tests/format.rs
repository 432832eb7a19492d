//! The 4-bit directory format: conversion, the round trip back to f32, determinism, and the
//! named errors for a damaged directory.

use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use sha2::{Digest, Sha256};
use sift_quant::{
    Conversion, Encoding, FileEntry, HeaderReader, MANIFEST, QuantError, QuantizedModel,
    QuantizedWriter, ShardOutput, StoredValues, TensorAssembler, dequantize_model, hex,
    quantize_model,
};

/// Deterministic values of a trained-looking spread: per-row scales and a few large columns.
fn values(rows: usize, cols: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).max(1);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s as f32 / u32::MAX as f32 - 0.5
    };
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let outlier = if c % 29 == 3 { 8.0 } else { 1.0 };
            next() * 0.05 * (1.0 + (r % 7) as f32) * outlier
        })
        .collect()
}

/// A small Hugging Face-style directory: a bf16-free f32 checkpoint with one of each kind.
fn write_source(dir: &Path) {
    let tensors: Vec<(&str, Vec<usize>)> = vec![
        ("model.language_model.embed_tokens.weight", vec![300, 64]),
        (
            "model.language_model.layers.0.mlp.up_proj.weight",
            vec![128, 64],
        ),
        (
            "model.language_model.layers.0.input_layernorm.weight",
            vec![64],
        ),
        ("model.visual.patch_embed.proj.weight", vec![16, 3, 2, 4, 4]),
        ("model.visual.blocks.0.attn.qkv.bias", vec![48]),
        ("model.visual.odd.weight", vec![8, 20]),
        ("lm_head.weight", vec![300, 64]),
    ];
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n: usize = shape.iter().product();
            let rows = shape[0];
            let v = values(rows, n / rows, i as u32 + 1);
            (
                name.to_string(),
                shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = data.iter().map(|(n, s, b)| {
        (
            n.clone(),
            TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
        )
    });
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), "{\"tie_word_embeddings\": false}").unwrap();
}

fn read_f32(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let f = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            (n, f.collect())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn quantize_then_dequantize_keeps_every_tensor_close_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (source, q4, back, again) = (
        dir.path().join("src"),
        dir.path().join("q4"),
        dir.path().join("back"),
        dir.path().join("again"),
    );
    std::fs::create_dir_all(&source).unwrap();
    write_source(&source);
    let report = quantize_model(&source, &q4, &[9, 2]).unwrap();
    assert_eq!(
        (report.tensors, report.q4_tensors, report.shards),
        (7, 3, 1)
    );

    let model = QuantizedModel::open(&q4).unwrap();
    model.verify().unwrap();
    let t = &model.manifest.tensors;
    let enc = |n: &str| t[n].encoding;
    assert_eq!(
        enc("model.language_model.layers.0.mlp.up_proj.weight"),
        Encoding::Q4B32
    );
    assert_eq!(enc("model.visual.patch_embed.proj.weight"), Encoding::Q4B32);
    assert_eq!(
        enc("model.language_model.embed_tokens.weight"),
        Encoding::F16
    );
    assert_eq!(
        enc("model.visual.odd.weight"),
        Encoding::Q4B32,
        "20 columns: one block, padded"
    );
    assert_eq!(
        enc("model.language_model.layers.0.input_layernorm.weight"),
        Encoding::F32
    );
    assert_eq!(t["lm_head.weight"].kept_rows, Some(vec![9, 2]));
    assert_eq!(model.manifest.files[0].file, "config.json");

    dequantize_model(&q4, &back).unwrap();
    let original = read_f32(&source.join("model.safetensors"));
    let restored = read_f32(&back.join("model.safetensors"));
    for ((name, a), (name_b, b)) in original.iter().zip(&restored) {
        assert_eq!(name, name_b);
        let max = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        match enc(name) {
            // Half a step of the largest block: max / 14 at most.
            Encoding::Q4B32 => assert!(worst <= max / 14.0 * 1.001, "{name}: {worst}"),
            Encoding::F16 => assert!(worst <= max * 1e-3, "{name}: {worst}"),
            Encoding::F32 if name == "lm_head.weight" => {
                // Only rows 9 and 2 are kept, exactly.
                let cols = 64;
                for r in [9, 2] {
                    assert_eq!(a[r * cols..(r + 1) * cols], b[r * cols..(r + 1) * cols]);
                }
                assert!(b[0..cols].iter().all(|&v| v == 0.0));
            }
            Encoding::F32 => assert_eq!(a, b, "{name}"),
        }
    }

    // The same input gives the same bytes.
    quantize_model(&source, &again, &[9, 2]).unwrap();
    assert_eq!(
        std::fs::read(q4.join(MANIFEST)).unwrap(),
        std::fs::read(again.join(MANIFEST)).unwrap()
    );
}

fn quantized_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    write_source(&source);
    let q4 = dir.path().join("q4");
    quantize_model(&source, &q4, &[9, 2]).unwrap();
    (dir, q4)
}

#[test]
fn a_truncated_shard_is_named() {
    let (_dir, q4) = quantized_copy();
    let shard = q4.join("q4-00001.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let err = QuantizedModel::open(&q4)
        .unwrap()
        .read_shard(0)
        .unwrap_err();
    assert!(matches!(err, QuantError::SizeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("q4-00001.safetensors"), "{err}");
}

#[test]
fn a_shard_with_other_bytes_fails_its_checksum() {
    let (_dir, q4) = quantized_copy();
    let shard = q4.join("q4-00001.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&shard, &bytes).unwrap();
    let err = QuantizedModel::open(&q4).unwrap().verify().unwrap_err();
    assert!(matches!(err, QuantError::ChecksumMismatch { .. }), "{err}");
}

#[test]
fn a_missing_shard_and_a_missing_manifest_are_named() {
    let (_dir, q4) = quantized_copy();
    std::fs::remove_file(q4.join("q4-00001.safetensors")).unwrap();
    let err = QuantizedModel::open(&q4)
        .unwrap()
        .read_shard(0)
        .unwrap_err();
    assert!(matches!(err, QuantError::MissingShard { .. }), "{err}");
    assert!(err.to_string().contains("q4-00001.safetensors"), "{err}");
    std::fs::remove_file(q4.join(MANIFEST)).unwrap();
    let err = QuantizedModel::open(&q4).unwrap_err();
    assert!(matches!(err, QuantError::NotQuantized { .. }), "{err}");
}

/// A manifest is a file a stranger can hand over: names that leave the directory, shapes whose
/// sizes overflow or exceed the shards, and parts outside their rows are refused when it is
/// read, before anything is allocated.
#[test]
fn a_manifest_that_points_outside_or_claims_more_than_its_shards_is_refused() {
    let (_dir, q4) = quantized_copy();
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(q4.join(MANIFEST)).unwrap()).unwrap();
    const TABLE: &str = "model.language_model.embed_tokens.weight";
    type Defect = fn(&mut serde_json::Value);
    let defects: [(&str, Defect); 6] = [
        ("../../etc/passwd", |m| {
            m["shards"][0]["file"] = "../../etc/passwd".into()
        }),
        ("not a plain file name", |m| {
            m["files"][0]["file"] = "/etc/passwd".into()
        }),
        ("overflows", |m| {
            m["tensors"][TABLE]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40])
        }),
        ("does not fit", |m| {
            m["tensors"][TABLE]["shape"] = serde_json::json!([1 << 20, 4096])
        }),
        ("a part holds rows", |m| {
            m["tensors"][TABLE]["parts"][0]["rows"] = serde_json::json!([0, 1 << 30])
        }),
        ("names shard 7", |m| {
            m["tensors"][TABLE]["parts"][0]["shard"] = 7.into()
        }),
    ];
    for (needle, defect) in defects {
        let mut manifest = original.clone();
        defect(&mut manifest);
        std::fs::write(q4.join(MANIFEST), manifest.to_string()).unwrap();
        let err = QuantizedModel::open(&q4).unwrap_err();
        assert!(matches!(err, QuantError::BadManifest { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{needle:?} not in {err}");
    }
}

/// Tensors split into many parts read back whole: the same stored values as unsplit ones.
#[test]
fn tensors_split_into_parts_read_back_whole() {
    let work = tempfile::tempdir().unwrap();
    let shapes: [(&str, Vec<usize>); 3] = [
        ("a.embed_tokens.weight", vec![300, 64]),
        ("b.mlp.up_proj.weight", vec![128, 64]),
        ("c.norm.weight", vec![64]),
    ];
    let read = |part_bytes: u64| {
        let dir = work.path().join(format!("parts-{part_bytes}"));
        let list: Vec<_> = shapes
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect();
        let conversion = Conversion::new(&[]).with_part_bytes(part_bytes);
        let mut writer = QuantizedWriter::create(&dir, conversion, &list).unwrap();
        for (i, (name, shape)) in shapes.iter().enumerate() {
            let rows = shape[0];
            let n: usize = shape.iter().product();
            writer
                .add(name, shape, values(rows, n / rows, i as u32 + 7))
                .unwrap();
        }
        writer.finish(&dir).unwrap();
        let model = QuantizedModel::open(&dir).unwrap();
        let mut tensors = Vec::new();
        model
            .read_tensors::<QuantError>(|name, entry, stored| {
                tensors.push((name.to_string(), entry.parts.len(), stored));
                Ok(())
            })
            .unwrap();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        tensors
    };
    let (whole, split) = (read(1 << 30), read(1000));
    assert!(
        split.iter().any(|(_, parts, _)| *parts > 10),
        "{:?}",
        split.iter().map(|t| t.1).collect::<Vec<_>>()
    );
    assert_eq!(whole.len(), 3);
    for ((name, _, w), (_, _, s)) in whole.iter().zip(&split) {
        assert_eq!(w, s, "{name}");
    }
}

/// Tensors must be added in name order, so that the bytes do not depend on the source's order.
#[test]
fn the_writer_refuses_tensors_out_of_name_order() {
    let work = tempfile::tempdir().unwrap();
    let list = [("a".to_string(), vec![32]), ("b".to_string(), vec![32])];
    let mut writer = QuantizedWriter::create(work.path(), Conversion::new(&[]), &list).unwrap();
    let error = writer.add("b", &[32], vec![0.0; 32]).unwrap_err();
    assert!(error.to_string().contains("name order"), "{error}");
}

/// Shards given one at a time in any order (as a browser gets them) yield every tensor whole,
/// as reading the directory does; a tensor split across shards is joined into one buffer
/// allocated once; a damaged, repeated or missing shard is named.
#[test]
fn shards_assemble_in_any_order_into_buffers_allocated_once() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("q4");
    let shapes = [
        ("a.embed_tokens.weight", vec![300, 64]),
        ("b.linear.weight", vec![96, 64]),
        ("c.norm.weight", vec![64]),
    ];
    let list: Vec<_> = shapes
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    let conversion = Conversion::new(&[])
        .with_part_bytes(4000)
        .with_shard_bytes(9000);
    let mut writer = QuantizedWriter::create(&dir, conversion, &list).unwrap();
    for (i, (name, shape)) in shapes.iter().enumerate() {
        let rows = shape[0];
        let n: usize = shape.iter().product();
        writer
            .add(name, shape, values(rows, n / rows, i as u32 + 3))
            .unwrap();
    }
    writer.finish(&dir).unwrap();
    let model = QuantizedModel::open(&dir).unwrap();
    let shards = model.manifest.shards.len();
    assert!(shards >= 4, "{shards} shards");
    assert!(model.manifest.tensors["a.embed_tokens.weight"].parts.len() > shards / 2);

    let mut want = Vec::new();
    model
        .read_tensors::<QuantError>(|name, _, stored| {
            want.push((name.to_string(), stored));
            Ok(())
        })
        .unwrap();
    want.sort_by(|a, b| a.0.cmp(&b.0));

    let mut assembler = TensorAssembler::new(model.manifest.clone(), &dir);
    let mut got = Vec::new();
    for shard in (0..shards).rev() {
        let bytes = model.read_shard(shard).unwrap();
        assembler
            .add_shard::<QuantError>(shard, &bytes, |name, _, stored| {
                if let StoredValues::F16(table) = &stored {
                    assert_eq!(table.capacity(), table.len(), "{name} was reallocated");
                }
                got.push((name.to_string(), stored));
                Ok(())
            })
            .unwrap();
    }
    assembler.finish().unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);

    let mut assembler = TensorAssembler::new(model.manifest.clone(), &dir);
    let mut bytes = model.read_shard(0).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let damaged = assembler.add_shard::<QuantError>(0, &bytes, |_, _, _| Ok(()));
    assert!(
        matches!(damaged, Err(QuantError::ChecksumMismatch { ref file, .. }) if file == "q4-00001.safetensors"),
        "{damaged:?}"
    );
    bytes[last] ^= 1;
    assembler
        .add_shard::<QuantError>(0, &bytes, |_, _, _| Ok(()))
        .unwrap();
    let twice = assembler.add_shard::<QuantError>(0, &bytes, |_, _, _| Ok(()));
    assert!(twice.unwrap_err().to_string().contains("given twice"));
    let missing = assembler.finish().unwrap_err().to_string();
    assert!(missing.contains("q4-00002.safetensors"), "{missing}");
}

/// Shards held in memory, written at offsets: what a converter writes, to compare.
#[derive(Default)]
struct MemoryShards(Vec<Vec<u8>>);

impl ShardOutput for MemoryShards {
    fn write_at(&mut self, shard: usize, offset: u64, bytes: &[u8]) -> Result<(), QuantError> {
        if self.0.len() <= shard {
            self.0.resize(shard + 1, Vec::new());
        }
        let file = &mut self.0[shard];
        let end = offset as usize + bytes.len();
        if file.len() < end {
            file.resize(end, 0);
        }
        file[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }
}

/// Streams a source file's bytes through the converter in chunks of `chunk` bytes; the
/// shards it writes (records them in `conversion`).
fn stream(conversion: &mut Conversion, name: &str, bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut chunks = bytes.chunks(chunk);
    let mut header = HeaderReader::default();
    let (plan, rest) = loop {
        let next = chunks.next().expect("the header ends before the file");
        if let Some((tensors, used)) = header.push(next).unwrap() {
            break (conversion.plan(tensors).unwrap(), &next[used..]);
        }
    };
    let mut out = MemoryShards::default();
    let mut writer = plan.into_writer();
    writer.feed(rest, &mut out).unwrap();
    for next in chunks {
        writer.feed(next, &mut out).unwrap();
    }
    let plan = writer.finish(&mut out).unwrap();
    let entries = plan
        .shards
        .iter()
        .zip(&out.0)
        .map(|(s, bytes)| FileEntry {
            file: s.file.clone(),
            bytes: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
        })
        .collect();
    conversion.record(name, &plan, entries).unwrap();
    out.0
}

/// Whatever the chunks a download arrives in (one byte, odd sizes, megabytes), streaming
/// conversion writes the bytes `quantize_model` writes.
#[test]
fn conversion_in_any_chunks_writes_the_bytes_quantize_model_writes() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    write_source(&source);
    let q4 = work.path().join("q4");
    quantize_model(&source, &q4, &[9, 2]).unwrap();
    let manifest = QuantizedModel::open(&q4).unwrap().manifest;
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    for chunk in [1, 7, 4096, 1 << 20] {
        let mut conversion = Conversion::new(&[9, 2]);
        let shards = stream(&mut conversion, "model.safetensors", &bytes, chunk);
        assert_eq!(shards.len(), manifest.shards.len());
        for (entry, got) in manifest.shards.iter().zip(&shards) {
            assert_eq!(
                &std::fs::read(q4.join(&entry.file)).unwrap(),
                got,
                "{chunk}-byte chunks"
            );
        }
        assert_eq!(conversion.manifest(manifest.files.clone()), manifest);
    }
}

/// A sharded checkpoint (`model.safetensors.index.json`) converts file by file: each file's
/// tensors into shards of their own, numbered on; a conversion saved between files (as the
/// browser saves it) goes on to the same bytes; the stored values are the single file's.
#[test]
fn a_sharded_checkpoint_converts_file_by_file_and_resumes_between_files() {
    let work = tempfile::tempdir().unwrap();
    let single = work.path().join("single");
    std::fs::create_dir_all(&single).unwrap();
    write_source(&single);
    let whole = std::fs::read(single.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&whole).unwrap();
    let mut names = tensors.names();
    names.sort();
    // The hub's files interleave names; so do these.
    let sharded = work.path().join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    let mut weight_map = serde_json::Map::new();
    for (file, pick) in [
        ("model-00001-of-00002.safetensors", 0),
        ("model-00002-of-00002.safetensors", 1),
    ] {
        let views: Vec<_> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == pick)
            .map(|(_, n)| (n.to_string(), tensors.tensor(n).unwrap()))
            .collect();
        for (n, _) in &views {
            weight_map.insert(n.clone(), file.into());
        }
        safetensors::serialize_to_file(views, None, &sharded.join(file)).unwrap();
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(single.join("config.json"), sharded.join("config.json")).unwrap();

    let q4 = work.path().join("q4");
    quantize_model(&sharded, &q4, &[9, 2]).unwrap();
    let model = QuantizedModel::open(&q4).unwrap();
    model.verify().unwrap();
    let files = sift_quant::checkpoint_shards(index.to_string().as_bytes()).unwrap();
    let mut conversion = Conversion::new(&[9, 2]);
    let first = stream(
        &mut conversion,
        &files[0],
        &std::fs::read(sharded.join(&files[0])).unwrap(),
        100,
    );
    let saved = serde_json::to_string(&conversion).unwrap();
    let mut resumed: Conversion = serde_json::from_str(&saved).unwrap();
    let second = stream(
        &mut resumed,
        &files[1],
        &std::fs::read(sharded.join(&files[1])).unwrap(),
        100,
    );
    assert!(!first.is_empty() && !second.is_empty());
    for (entry, got) in model
        .manifest
        .shards
        .iter()
        .zip(first.iter().chain(&second))
    {
        assert_eq!(
            &std::fs::read(q4.join(&entry.file)).unwrap(),
            got,
            "{}",
            entry.file
        );
    }
    assert_eq!(
        resumed.manifest(model.manifest.files.clone()),
        model.manifest
    );

    let q4_single = work.path().join("q4-single");
    quantize_model(&single, &q4_single, &[9, 2]).unwrap();
    let read = |dir: &Path| {
        let mut all = Vec::new();
        QuantizedModel::open(dir)
            .unwrap()
            .read_tensors::<QuantError>(|name, _, stored| {
                all.push((name.to_string(), stored));
                Ok(())
            })
            .unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    assert_eq!(read(&q4), read(&q4_single));
}

/// A source cut short, or longer than its header says, is refused with the reason.
#[test]
fn a_source_cut_short_or_too_long_is_named() {
    let work = tempfile::tempdir().unwrap();
    write_source(work.path());
    let bytes = std::fs::read(work.path().join("model.safetensors")).unwrap();
    let plan = |bytes: &[u8]| {
        let (tensors, used) = HeaderReader::default().push(bytes).unwrap().unwrap();
        (Conversion::new(&[9, 2]).plan(tensors).unwrap(), used)
    };
    let (cut, used) = plan(&bytes);
    let mut out = MemoryShards::default();
    let mut writer = cut.into_writer();
    writer
        .feed(&bytes[used..bytes.len() - 10], &mut out)
        .unwrap();
    let error = writer.finish(&mut out).unwrap_err().to_string();
    assert!(error.contains("cut short"), "{error}");

    let (long, used) = plan(&bytes);
    let mut writer = long.into_writer();
    let mut longer = bytes[used..].to_vec();
    longer.push(0);
    let error = writer.feed(&longer, &mut out).unwrap_err().to_string();
    assert!(error.contains("damaged"), "{error}");

    let error = HeaderReader::default()
        .push(&u64::MAX.to_le_bytes())
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a safetensors file"), "{error}");
}
