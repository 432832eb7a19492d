//! The host memory a request's inputs may hold at once: [`RerankOptions::memory_budget`].
//!
//! Every input is bounded before it is read (pixels from a header, visual tokens from a
//! header or as each image is read), so what one pair and one decoding can cost is known from
//! the options alone. A request holds its query's inputs, the documents of the forward pass
//! being formed, and the document being read with the image (or video frame) it decodes. The
//! budget is checked on the options when a model is loaded (the query and one document at
//! their limits, and one decoding, must fit), and a pass takes in another document only while
//! what it holds plus that worst case still fits, so a request never holds more.

use sift_inputs::{ProcessorConfig, max_file_bytes};
use sift_model::ModelInput;

use crate::error::LoadError;
use crate::options::RerankOptions;

/// Worst-case bytes of a request's inputs, from the options' limits and the preprocessor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputMemory {
    /// One (query, document) pair's model input at the limits: `max_visual_tokens` of pixel
    /// values (f32) and the token ids and positions of `max_length` plus those tokens.
    pub pair: u64,
    /// One image, or video frame, at the pixel limit while it is decoded and resized: the
    /// file's bytes, what its decoder may allocate (both [`max_file_bytes`]), and two RGB
    /// copies (the decoded image and the resize's intermediate).
    pub decoding: u64,
    pub budget: u64,
}

/// Bytes of one token id and its three positions.
const TOKEN_BYTES: u64 = (size_of::<u32>() + 3 * size_of::<i64>()) as u64;

impl InputMemory {
    pub fn of(options: &RerankOptions, processor: &ProcessorConfig) -> Self {
        let patch_values = 3 * processor.temporal_patch_size * processor.patch_size.pow(2);
        let token_pixels = (processor.merge_size.pow(2) * patch_values * size_of::<f32>()) as u64;
        let tokens = options.max_length as u64 + options.max_visual_tokens as u64;
        let pair = (options.max_visual_tokens as u64)
            .saturating_mul(token_pixels)
            .saturating_add(tokens.saturating_mul(TOKEN_BYTES));
        let pixels = options.image.max_decoded_pixels;
        let decoding = max_file_bytes(&options.image)
            .saturating_mul(2)
            .saturating_add(pixels.saturating_mul(6));
        Self {
            pair,
            decoding,
            budget: options.memory_budget,
        }
    }

    /// What a request holds besides the documents of a pass: its query, the document being
    /// read and the decoding in progress, each at its limit.
    fn fixed(&self) -> u64 {
        self.pair.saturating_mul(2).saturating_add(self.decoding)
    }

    /// Refuses options whose limits let one request hold more than the budget.
    pub fn check(&self) -> Result<(), LoadError> {
        if self.fixed() > self.budget {
            return Err(LoadError::OverMemoryBudget {
                needs: self.fixed(),
                pair: self.pair,
                decoding: self.decoding,
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// Whether a pass holding `held` bytes of documents may read one more.
    pub fn room_for_another(&self, held: u64) -> bool {
        held.saturating_add(self.fixed()) <= self.budget
    }
}

/// Host bytes of a model input: its pixel values, token ids and positions.
pub(crate) fn input_bytes(input: &ModelInput) -> u64 {
    let pixels: usize = input.visuals.iter().map(|v| v.pixel_values.len()).sum();
    (pixels * size_of::<f32>()) as u64 + input.input_ids.len() as u64 * TOKEN_BYTES
}

/// Bytes as a person reads them: "1.6 GiB", "805.3 MiB".
pub(crate) fn human(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    match bytes as f64 / MIB {
        mib if mib >= 1024.0 => format!("{:.1} GiB", mib / 1024.0),
        mib => format!("{mib:.1} MiB"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the defaults (2B's preprocessor), a query and a document at 32,768 visual tokens
    /// (805 MB of pixel values each) and a 50 MP image being decoded (1.27 GB) fit 3 GiB.
    #[test]
    fn the_default_limits_fit_the_default_budget() {
        let memory = InputMemory::of(&RerankOptions::default(), &ProcessorConfig::default());
        assert_eq!(memory.pair, 32_768 * 4 * 1536 * 4 + (10_240 + 32_768) * 28);
        assert_eq!(
            memory.decoding,
            2 * (50_000_000 * 8 + (64 << 20)) + 300_000_000
        );
        memory.check().unwrap();
        assert!(memory.room_for_another(0));
        assert!(!memory.room_for_another(memory.budget));
    }

    #[test]
    fn limits_over_the_budget_are_refused_naming_what_to_change() {
        let options = RerankOptions {
            memory_budget: 1 << 30,
            ..RerankOptions::default()
        };
        let err = InputMemory::of(&options, &ProcessorConfig::default())
            .check()
            .unwrap_err()
            .to_string();
        for flag in [
            "--memory-budget",
            "--max-visual-tokens",
            "--max-image-pixels",
        ] {
            assert!(err.contains(flag), "{err}");
        }
        assert!(err.contains("1.0 GiB"), "{err}");
    }
}
