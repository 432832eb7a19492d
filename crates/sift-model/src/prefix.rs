//! The documents of one request share the prompt's beginning (system, instruction, the query
//! with its images): its keys and values are computed once and every document's tokens attend
//! to them, instead of one full forward pass per pair. Causal attention makes this exact: a
//! token's keys and values depend only on the tokens before it.

use burn::tensor::{Int, Tensor, TensorData};

use crate::text::LayerKeys;
use crate::{ModelError, ModelInput, RerankerModel, Score, Trace};

/// Every decoder layer's keys and values of a prompt's first tokens
/// ([`RerankerModel::prefix`]), for scoring prompts that begin with the same tokens
/// ([`RerankerModel::score_after`]).
pub struct Prefix {
    input_ids: Vec<u32>,
    position_ids: [Vec<i64>; 3],
    /// Images and videos whose pad tokens lie in the prefix.
    visual_items: usize,
    layers: Vec<LayerKeys>,
}

impl Prefix {
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
}

/// How many of `input`'s visual items have all their pad tokens among the first `len` tokens;
/// an error if one straddles `len`.
fn items_before(
    model: &RerankerModel,
    input: &ModelInput,
    len: usize,
) -> Result<usize, ModelError> {
    let merge = model.config().vision_config.spatial_merge_size;
    let mut pads = model.pad_positions(&input.input_ids);
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
fn part(
    input: &ModelInput,
    range: std::ops::Range<usize>,
    items: std::ops::Range<usize>,
) -> ModelInput {
    ModelInput {
        input_ids: input.input_ids[range.clone()].to_vec(),
        position_ids: std::array::from_fn(|axis| input.position_ids[axis][range.clone()].to_vec()),
        visuals: input.visuals[items].to_vec(),
    }
}

impl RerankerModel {
    /// The keys and values of `input`'s first `len` tokens (which must not split an image's
    /// or a video's pad tokens), their images and videos run through the vision tower once.
    pub fn prefix(&self, input: &ModelInput, len: usize) -> Result<Prefix, ModelError> {
        if len == 0 || len >= input.input_ids.len() {
            return Err(ModelError::Input(format!(
                "a prefix of {len} tokens of a {}-token prompt leaves nothing after it",
                input.input_ids.len()
            )));
        }
        let visual_items = items_before(self, input, len)?;
        let head = part(input, 0..len, 0..visual_items);
        let whole = 0..len;
        let (_, layers) = self.forward_after(&head, None, &[whole], true, &mut Trace::off())?;
        Ok(Prefix {
            input_ids: head.input_ids,
            position_ids: head.position_ids,
            visual_items,
            layers,
        })
    }

    /// The scores of `inputs`, which all begin with `prefix` ([`Prefix::fits`]), from one
    /// forward pass: only the tokens after the prefix (and their images and videos) are
    /// computed, packed into one sequence in which each prompt attends to the prefix and to
    /// itself alone. A score that is not finite is its own pair's error; an error for the
    /// whole pass is returned as such.
    pub fn score_after(
        &self,
        prefix: &Prefix,
        inputs: &[&ModelInput],
    ) -> Result<Vec<Result<Score, ModelError>>, ModelError> {
        let logits = self.logits_after(prefix, inputs)?;
        let data = crate::profile::stage("score readback", self.device(), || logits.into_data());
        Ok(Score::from_logits(data))
    }

    /// [`score_after`](Self::score_after), reading the results back asynchronously (browsers).
    pub async fn score_after_async(
        &self,
        prefix: &Prefix,
        inputs: &[&ModelInput],
    ) -> Result<Vec<Result<Score, ModelError>>, ModelError> {
        let data = self
            .logits_after(prefix, inputs)?
            .into_data_async()
            .await
            .map_err(|e| ModelError::Gpu(format!("reading the scores back failed: {e:?}")))?;
        Ok(Score::from_logits(data))
    }

    /// `[inputs.len(), 1]` logits of prompts packed after `prefix`.
    fn logits_after(
        &self,
        prefix: &Prefix,
        inputs: &[&ModelInput],
    ) -> Result<Tensor<2>, ModelError> {
        let mut packed = ModelInput {
            input_ids: Vec::new(),
            position_ids: Default::default(),
            visuals: Vec::new(),
        };
        let mut segments = Vec::with_capacity(inputs.len());
        for input in inputs {
            if !prefix.fits(input) {
                return Err(ModelError::Input(
                    "the prompt does not begin with the prefix it is scored after".into(),
                ));
            }
            let tail = part(
                input,
                prefix.len()..input.input_ids.len(),
                prefix.visual_items..input.visuals.len(),
            );
            let start = packed.input_ids.len();
            packed.input_ids.extend(tail.input_ids);
            for (axis, positions) in tail.position_ids.into_iter().enumerate() {
                packed.position_ids[axis].extend(positions);
            }
            packed.visuals.extend(tail.visuals);
            segments.push(start..packed.input_ids.len());
        }
        let (hidden, _) = self.forward_after(
            &packed,
            Some(&prefix.layers),
            &segments,
            false,
            &mut Trace::off(),
        )?;
        let lasts: Vec<i64> = segments.iter().map(|s| s.end as i64 - 1).collect();
        let lasts =
            Tensor::<1, Int>::from_data(TensorData::new(lasts, [inputs.len()]), self.device());
        Ok(self.logits_of(hidden.select(0, lasts)))
    }
}
