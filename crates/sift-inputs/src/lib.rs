//! Turns a rerank request into what the model reads: prompt, token ids, pixels, position ids.

pub mod positions;
