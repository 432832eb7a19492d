//! The converter the worker runs on a download, in headless Chromium: a 1 GiB source file fed in
//! 64 KiB chunks (as a fetch body arrives) grows the wasm heap by a few megabytes, not by the
//! file; and how fast wasm converts, against the network it has to keep up with.
#![cfg(target_arch = "wasm32")]

use sift_quant::{Conversion, HeaderReader, QuantError, ShardOutput};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Counts what would be written.
struct Counted(u64);

impl ShardOutput for Counted {
    fn write_at(&mut self, _: usize, _: u64, bytes: &[u8]) -> Result<(), QuantError> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
}

fn heap_bytes() -> f64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

#[wasm_bindgen_test]
fn converting_a_1_gib_download_keeps_the_wasm_heap_small() {
    let (rows, cols) = (128 * 1024, 4096);
    let bytes = rows * cols * 2;
    let header = format!(
        r#"{{"model.language_model.layers.0.mlp.down_proj.weight":{{"dtype":"BF16","shape":[{rows},{cols}],"data_offsets":[0,{bytes}]}}}}"#
    );
    let mut front = (header.len() as u64).to_le_bytes().to_vec();
    front.extend(header.as_bytes());
    // One 64 KiB chunk of bf16 values, sent again and again.
    let chunk: Vec<u8> = (0..32 * 1024u32)
        .flat_map(|i| half::bf16::from_f32(((i % 997) as f32 - 498.0) * 1e-3).to_le_bytes())
        .collect();

    let before = heap_bytes();
    let started = js_sys::Date::now();
    let (tensors, used) = HeaderReader::default().push(&front).unwrap().unwrap();
    assert_eq!(used, front.len());
    let plan = Conversion::new(&[]).plan(tensors).unwrap();
    let mut out = Counted(0);
    let mut writer = plan.into_writer();
    for _ in 0..bytes / chunk.len() {
        writer.feed(&chunk, &mut out).unwrap();
    }
    let plan = writer.finish(&mut out).unwrap();
    let seconds = (js_sys::Date::now() - started) / 1e3;
    let growth = heap_bytes() - before;
    console_log!(
        "converted 1 GiB of bf16 in {seconds:.1} s ({:.0} MB/s of source); the wasm heap grew by \
         {:.1} MiB",
        bytes as f64 / seconds / 1e6,
        growth / (1 << 20) as f64
    );
    assert_eq!(out.0, plan.shards.iter().map(|s| s.bytes).sum::<u64>());
    assert!(
        growth < (32 << 20) as f64,
        "the heap grew by {growth} bytes"
    );
}
