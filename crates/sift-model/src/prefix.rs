//! The documents of one request share the prompt's beginning (system, instruction, the query
//! with its images): its keys and values are computed once and every document's tokens attend
//! to them, instead of one full forward pass per pair. Causal attention makes this exact: a
//! token's keys and values depend only on the tokens before it.
//!
//! Here: what a prefix holds, where a prompt may be cut, and how the prompts after one are
//! packed into one sequence. [`RerankerModel`](crate::RerankerModel) runs the network over
//! them (`prefix`, `score_after`).

use std::ops::Range;

use crate::error::ModelError;
use crate::input::ModelInput;
use crate::text::LayerKeys;

/// Every decoder layer's keys and values of a prompt's first tokens
/// ([`RerankerModel::prefix`](crate::RerankerModel::prefix)), for scoring prompts that begin
/// with the same tokens ([`RerankerModel::score_after`](crate::RerankerModel::score_after)).
pub struct Prefix {
    input_ids: Vec<u32>,
    position_ids: [Vec<i64>; 3],
    /// Images and videos whose pad tokens lie in the prefix.
    visual_items: usize,
    layers: Vec<LayerKeys>,
}

impl Prefix {
    /// The prefix `head` (from [`head`]) whose `visual_items` images and videos it holds, with
    /// its keys and values per layer.
    pub(crate) fn new(head: ModelInput, visual_items: usize, layers: Vec<LayerKeys>) -> Self {
        Self {
            input_ids: head.input_ids,
            position_ids: head.position_ids,
            visual_items,
            layers,
        }
    }

    /// Tokens it covers.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Whether `input` begins with this prefix (its tokens and their positions) and goes on
    /// after it.
    pub fn fits(&self, input: &ModelInput) -> bool {
        let len = self.len();
        input.input_ids.len() > len
            && input.input_ids[..len] == self.input_ids[..]
            && (0..3).all(|axis| input.position_ids[axis][..len] == self.position_ids[axis][..])
            && input.visuals.len() >= self.visual_items
    }

    /// Its keys and values, per decoder layer.
    pub(crate) fn layers(&self) -> &[LayerKeys] {
        &self.layers
    }

    /// The tokens of `inputs` after this prefix (and their images and videos), packed into one
    /// sequence, with the range each prompt's tokens take in it; an error if one does not
    /// begin with the prefix.
    pub(crate) fn pack(
        &self,
        inputs: &[&ModelInput],
    ) -> Result<(ModelInput, Vec<Range<usize>>), ModelError> {
        let mut packed = ModelInput {
            input_ids: Vec::new(),
            position_ids: Default::default(),
            visuals: Vec::new(),
        };
        let mut segments = Vec::with_capacity(inputs.len());
        for input in inputs {
            if !self.fits(input) {
                return Err(ModelError::Input(
                    "the prompt does not begin with the prefix it is scored after".into(),
                ));
            }
            let tail = part(
                input,
                self.len()..input.input_ids.len(),
                self.visual_items..input.visuals.len(),
            );
            let start = packed.input_ids.len();
            packed.input_ids.extend(tail.input_ids);
            for (axis, positions) in tail.position_ids.into_iter().enumerate() {
                packed.position_ids[axis].extend(positions);
            }
            packed.visuals.extend(tail.visuals);
            segments.push(start..packed.input_ids.len());
        }
        Ok((packed, segments))
    }
}

/// `input`'s first `len` tokens, with their images and videos and how many those are; an
/// error if that leaves nothing after it or splits an image's or a video's pad tokens.
/// `pads`: the positions of `input`'s image and video pad tokens, in order; `merge`: the
/// vision tower's spatial merge size.
pub(crate) fn head(
    input: &ModelInput,
    len: usize,
    pads: impl Iterator<Item = usize>,
    merge: usize,
) -> Result<(ModelInput, usize), ModelError> {
    if len == 0 || len >= input.input_ids.len() {
        return Err(ModelError::Input(format!(
            "a prefix of {len} tokens of a {}-token prompt leaves nothing after it",
            input.input_ids.len()
        )));
    }
    let visual_items = items_before(input, len, pads, merge)?;
    Ok((part(input, 0..len, 0..visual_items), visual_items))
}

/// How many of `input`'s visual items have all their pad tokens among the first `len` tokens;
/// an error if one straddles `len`.
fn items_before(
    input: &ModelInput,
    len: usize,
    mut pads: impl Iterator<Item = usize>,
    merge: usize,
) -> Result<usize, ModelError> {
    let mut items = 0;
    for item in &input.visuals {
        let tokens = item.patch_count() / (merge * merge);
        let owned: Vec<usize> = pads.by_ref().take(tokens).collect();
        match (owned.first(), owned.last()) {
            (Some(_), Some(&last)) if last < len => items += 1,
            (Some(&first), _) if first < len => {
                return Err(ModelError::Input(format!(
                    "a prefix of {len} tokens would split an image or video (tokens {first}..)"
                )));
            }
            _ => break,
        }
    }
    Ok(items)
}

/// Tokens `range` of `input`, with their positions and the visual items `items`.
fn part(input: &ModelInput, range: Range<usize>, items: Range<usize>) -> ModelInput {
    ModelInput {
        input_ids: input.input_ids[range.clone()].to_vec(),
        position_ids: std::array::from_fn(|axis| input.position_ids[axis][range.clone()].to_vec()),
        visuals: input.visuals[items].to_vec(),
    }
}
