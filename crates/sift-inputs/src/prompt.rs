//! The reranker's prompt and its token ids, as `Qwen3VLReranker` builds them: the chat template
//! around `<Instruct>: …<Query>:…\n<Document>:…`, visual placeholders expanded to one pad token
//! per merged visual token, tokenisation with the model's `tokenizer.json`, and the reference's
//! truncation that keeps every special token and the 5-token suffix.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::Tokenizer;

pub const SYSTEM_PROMPT: &str = "Judge whether the Document meets the requirements based on the \
     Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".";

/// The reranker's default instruction (`Qwen3VLReranker.default_instruction`).
pub const DEFAULT_INSTRUCTION: &str =
    "Given a search query, retrieve relevant candidates that answer the query.";

/// The reference's default `max_length` (tokens before the 5-token suffix).
pub const DEFAULT_MAX_LENGTH: usize = 10240;

/// `<|im_end|>\n<|im_start|>assistant\n`: never truncated.
const SUFFIX_TOKENS: usize = 5;

/// A video's placeholder text: one block of `tokens_per_group` pad tokens per 2-frame group,
/// each preceded by its timestamp in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPlaceholder {
    pub group_timestamps: Vec<f64>,
    pub tokens_per_group: usize,
}

impl VideoPlaceholder {
    /// What the processor puts in place of `<|vision_start|><|video_pad|><|vision_end|>`:
    /// per group `<t seconds><|vision_start|>` pads `<|vision_end|>`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for &seconds in &self.group_timestamps {
            out.push_str(&format!("<{} seconds>", python_format_1f(seconds)));
            out.push_str("<|vision_start|>");
            out.push_str(&"<|video_pad|>".repeat(self.tokens_per_group));
            out.push_str("<|vision_end|>");
        }
        out
    }
}

/// What one side of the pair (query or document) holds. The reference writes a side's videos
/// first, then its images, then its texts, whatever order the user gave them in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideContent {
    pub videos: Vec<VideoPlaceholder>,
    /// Merged visual tokens of each image.
    pub images: Vec<usize>,
    pub texts: Vec<String>,
}

impl SideContent {
    /// The special tokens this side's images and videos put in the prompt: each image's pads
    /// and each video group's, with one `<|vision_start|>` and one `<|vision_end|>` around
    /// each block.
    pub fn visual_special_tokens(&self) -> usize {
        let images = self.images.iter().fold(0usize, |sum, &tokens| {
            sum.saturating_add(tokens).saturating_add(2)
        });
        self.videos.iter().fold(images, |sum, video| {
            let groups = video.group_timestamps.len();
            sum.saturating_add(groups.saturating_mul(video.tokens_per_group.saturating_add(2)))
        })
    }

    fn is_empty(&self) -> bool {
        self.videos.is_empty() && self.images.is_empty() && self.texts.is_empty()
    }

    fn write(&self, out: &mut String) {
        if self.is_empty() {
            out.push_str("NULL");
            return;
        }
        for video in &self.videos {
            out.push_str(&video.text());
        }
        for &tokens in &self.images {
            out.push_str("<|vision_start|>");
            out.push_str(&"<|image_pad|>".repeat(tokens));
            out.push_str("<|vision_end|>");
        }
        for text in &self.texts {
            out.push_str(text);
        }
    }
}

/// Python's `f"{x:.1f}"`: the exact binary value rounded half to even (0.25 → "0.2").
fn python_format_1f(x: f64) -> String {
    // Rust's float formatting also rounds the exact binary value, ties to even.
    format!("{x:.1}")
}

/// The prompt with its placeholders expanded, exactly the text the reference tokenises:
/// the Qwen3-VL chat template with a system message, one user message and the generation prompt.
pub fn prompt_text(instruction: &str, query: &SideContent, document: &SideContent) -> String {
    let mut out = String::new();
    out.push_str("<|im_start|>system\n");
    out.push_str(SYSTEM_PROMPT);
    out.push_str("<|im_end|>\n<|im_start|>user\n<Instruct>: ");
    out.push_str(instruction);
    out.push_str("<Query>:");
    query.write(&mut out);
    out.push_str("\n<Document>:");
    document.write(&mut out);
    out.push_str("<|im_end|>\n<|im_start|>assistant\n");
    out
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(
        "cannot load the tokenizer {path}: {message}. The model directory needs the \
         tokenizer.json that comes with the model."
    )]
    Load { path: String, message: String },
    #[error("the tokenizer has no token {0:?}; is this a Qwen3-VL tokenizer?")]
    MissingToken(&'static str),
    #[error("tokenizing the prompt failed: {0}")]
    Encode(String),
    /// The text holds more special tokens than `max_length`: the reference keeps every special
    /// token when it cuts text, so no cut would bring the prompt within `max_length`.
    #[error(
        "the prompt holds {count} special tokens besides its images' and videos' (strings such \
         as <|im_end|> or <|endoftext|> written in the text are special tokens), over the \
         max_length of {max_length}; the reference keeps every special token when it cuts text \
         to max_length, so this prompt cannot be cut to fit: remove those strings from the text, \
         or raise `--max-length` (`RerankOptions::max_length`)"
    )]
    TooManySpecialTokens { count: usize, max_length: usize },
}

/// The model's tokenizer, with the ids the reranker needs.
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    special_ids: HashSet<u32>,
    pub yes_id: u32,
    pub no_id: u32,
}

impl PromptTokenizer {
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::new(tokenizer)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Load {
            path: "tokenizer.json".into(),
            message: e.to_string(),
        })?;
        Self::new(tokenizer)
    }

    /// Token ids it can produce: its vocabulary with the added tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    fn new(tokenizer: Tokenizer) -> Result<Self, TokenizerError> {
        let id = |token: &'static str| {
            tokenizer
                .token_to_id(token)
                .ok_or(TokenizerError::MissingToken(token))
        };
        let (yes_id, no_id) = (id("yes")?, id("no")?);
        // The added tokens flagged special are the reference's `all_special_ids`: the
        // end-of-text, chat and vision tokens (not `<think>` or the tool-call tokens).
        let special_ids = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, _)| id)
            .collect();
        Ok(Self {
            tokenizer,
            special_ids,
            yes_id,
            no_id,
        })
    }

    /// Token ids of `text`, with no special tokens added (special-token strings inside the
    /// text are matched as special tokens, as in the reference).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// The reference's truncation (`truncate_tokens_optimized`): when the tokens before the
    /// 5-token suffix exceed `max_length`, every special token stays and only the first
    /// `max_length − specials` ordinary tokens are kept; the suffix is always kept.
    pub fn truncate(&self, ids: Vec<u32>, max_length: usize) -> Vec<u32> {
        let body_len = ids.len().saturating_sub(SUFFIX_TOKENS);
        if body_len <= max_length {
            return ids;
        }
        let (body, suffix) = ids.split_at(body_len);
        let specials = body
            .iter()
            .filter(|id| self.special_ids.contains(id))
            .count();
        let mut budget = max_length.saturating_sub(specials);
        let mut kept: Vec<u32> = body
            .iter()
            .copied()
            .filter(|id| {
                if self.special_ids.contains(id) {
                    true
                } else if budget > 0 {
                    budget -= 1;
                    true
                } else {
                    false
                }
            })
            .collect();
        kept.extend_from_slice(suffix);
        kept
    }

    /// [`truncate`](Self::truncate), bounded: special tokens written in the text would escape
    /// the cut (60,000 `<|im_end|>` make a 60,000-token prompt whatever `max_length` is), so a
    /// prompt that needs cutting and holds more than `max_length` special tokens besides the
    /// `visual_specials` its images and videos put there
    /// ([`SideContent::visual_special_tokens`]) is refused. Every prompt this returns is the
    /// reference's, and at most `max_length + visual_specials + 5` tokens long.
    pub fn truncate_bounded(
        &self,
        ids: Vec<u32>,
        max_length: usize,
        visual_specials: usize,
    ) -> Result<Vec<u32>, TokenizerError> {
        let body_len = ids.len().saturating_sub(SUFFIX_TOKENS);
        if body_len > max_length {
            let specials = ids[..body_len]
                .iter()
                .filter(|id| self.special_ids.contains(id))
                .count();
            let count = specials.saturating_sub(visual_specials);
            if count > max_length {
                return Err(TokenizerError::TooManySpecialTokens { count, max_length });
            }
        }
        Ok(self.truncate(ids, max_length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's rendering (§1.2) of a text query against an image + text document (the
    /// spec's example also has a video, whose expanded form is tested below).
    #[test]
    fn prompt_matches_the_reference_rendering() {
        let query = SideContent {
            texts: vec!["A woman playing with her dog on a beach at sunset.".into()],
            ..Default::default()
        };
        let document = SideContent {
            images: vec![1],
            texts: vec!["Some document text.".into()],
            ..Default::default()
        };
        let text = prompt_text(DEFAULT_INSTRUCTION, &query, &document);
        let expected = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n<Instruct>: Given a search query, retrieve relevant candidates that answer the query.<Query>:A woman playing with her dog on a beach at sunset.\n<Document>:<|vision_start|><|image_pad|><|vision_end|>Some document text.<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_side_is_null_but_an_empty_text_is_not() {
        let empty = SideContent::default();
        let blank = SideContent {
            texts: vec![String::new()],
            ..Default::default()
        };
        let text = prompt_text("i", &empty, &blank);
        assert!(
            text.contains("<Query>:NULL\n<Document>:<|im_end|>"),
            "{text}"
        );
    }

    #[test]
    fn a_video_expands_to_one_timestamped_block_per_frame_group() {
        let document = SideContent {
            videos: vec![VideoPlaceholder {
                group_timestamps: vec![0.25, 1.25],
                tokens_per_group: 2,
            }],
            ..Default::default()
        };
        let text = prompt_text("i", &SideContent::default(), &document);
        let pads = "<|video_pad|><|video_pad|>";
        let expected = format!(
            "<Document>:<0.2 seconds><|vision_start|>{pads}<|vision_end|>\
             <1.2 seconds><|vision_start|>{pads}<|vision_end|><|im_end|>"
        );
        assert!(text.contains(&expected), "{text}");
    }

    #[test]
    fn timestamps_format_like_python() {
        assert_eq!(python_format_1f(0.25), "0.2");
        assert_eq!(python_format_1f(0.75), "0.8");
        assert_eq!(python_format_1f(1.25), "1.2");
        assert_eq!(python_format_1f(2.8), "2.8");
        assert_eq!(python_format_1f(9.45), "9.4"); // 9.45 is just below the tie in binary
    }
}
