//! Any text as a query and a document: the prompt built, tokenized by the real Qwen
//! tokenizer (`tests/golden/fetch_tokenizer.sh` fetches it) and truncated.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sift_inputs::prompt::{PromptTokenizer, SideContent, prompt_text};

static TOKENIZER: LazyLock<PromptTokenizer> = LazyLock::new(|| {
    PromptTokenizer::from_bytes(include_bytes!(
        "../../tests/golden/tokenizer/tokenizer.json"
    ))
    .unwrap()
});

fuzz_target!(|bytes: &[u8]| {
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
});
