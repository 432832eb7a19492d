//! What the model reads for one (query, document) pair: token ids, their multimodal positions
//! and the images and videos whose pad tokens they hold.

use crate::vision::VisualItem;

/// One (query, document) pair as the model reads it.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub input_ids: Vec<u32>,
    /// T, H and W position of every token (`get_rope_index`).
    pub position_ids: [Vec<i64>; 3],
    /// Images and videos in the order their pad tokens appear in `input_ids`.
    pub visuals: Vec<VisualItem>,
}

impl ModelInput {
    /// Patches its images and videos give the vision tower.
    pub fn patch_count(&self) -> usize {
        self.visuals.iter().map(VisualItem::patch_count).sum()
    }
}
