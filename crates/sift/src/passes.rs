//! A query's documents grouped into forward passes: read as they are needed, packed after the
//! shared prefix while a pass's widest activation fits the budget, and scored one at a time
//! where packing fails.

use sift_model::{ModelError, ModelInput, Prefix, RerankerModel};

use crate::error::DocError;
use crate::inputs::{PairReader, PreparedQuery};
use crate::memory::{InputMemory, input_bytes};
use crate::ranking::Scored;
use crate::request::Content;

/// Most documents in one forward pass: enough to fill a GPU with text documents, few enough
/// that progress is reported and a server's cancelled request stops within a pass or two.
const MAX_PASS_DOCUMENTS: usize = 32;

/// The scores of one forward pass, each its own pair's result.
pub(crate) type Scores = Vec<Result<sift_model::Score, ModelError>>;

/// The model and what reads its inputs, for forming and scoring passes.
pub(crate) struct Passes<'a> {
    pub model: &'a RerankerModel,
    pub reader: PairReader<'a>,
}

impl<'a> Passes<'a> {
    /// `documents` read as they are needed and grouped into passes, each one forward pass
    /// after the shared prefix: documents join while the pass's widest activation fits
    /// [`limit`](Self::limit), 32 at most, and another is read only while the request's
    /// memory budget holds the worst case of one more ([`InputMemory`]). A document that
    /// cannot be read stays in its place with its error.
    pub fn of(
        &'a self,
        query: &'a PreparedQuery,
        documents: &'a [Content],
    ) -> impl Iterator<Item = Vec<Result<ModelInput, DocError>>> + 'a {
        let limit = self.limit();
        let memory = InputMemory::of(self.reader.options, self.reader.processor);
        let mut read = documents
            .iter()
            .map(|document| self.reader.document(query, document))
            .peekable();
        std::iter::from_fn(move || {
            let mut pass = Vec::new();
            let (mut inputs, mut tokens, mut patches, mut held) = (0, 0, 0, 0);
            while pass.is_empty() || memory.room_for_another(held) {
                let Some(next) = read.peek() else { break };
                if let Ok(input) = next {
                    let with = (
                        tokens + input.input_ids.len(),
                        patches + input.patch_count(),
                    );
                    let full = inputs >= MAX_PASS_DOCUMENTS
                        || self.model.pass_bytes(with.0, with.1) > limit;
                    if inputs > 0 && full {
                        break;
                    }
                    inputs += 1;
                    (tokens, patches) = with;
                    held += input_bytes(input);
                }
                pass.push(read.next().expect("peeked"));
            }
            (!pass.is_empty()).then_some(pass)
        })
    }

    /// The most bytes one forward pass's widest activation may take.
    fn limit(&self) -> u64 {
        let binding = sift_model::binding_limit(self.model.device()).unwrap_or(u64::MAX);
        self.reader.options.batch_bytes.min(binding)
    }

    /// Scores one pass of documents' inputs: after the shared prefix in one call of `forward`
    /// where they have one, else one at a time. If the packed call fails (burn panics where
    /// the GPU runs out of memory), its documents are scored one at a time.
    /// `forward(prefix, inputs)` scores inputs packed after a prefix, or one input whole.
    pub async fn score(
        &self,
        query: &PreparedQuery,
        pass: Vec<Result<ModelInput, DocError>>,
        forward: impl AsyncFn(Option<&Prefix>, &[&ModelInput]) -> Result<Scores, DocError>,
    ) -> Vec<Result<Scored, DocError>> {
        let mut results: Vec<Option<Result<Scored, DocError>>> = Vec::with_capacity(pass.len());
        // The documents read, with their places in `results`: packed after the prefix below,
        // or scored alone.
        let mut alone = Vec::with_capacity(pass.len());
        for read in pass {
            match read {
                Ok(input) => {
                    alone.push((results.len(), input));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if alone.len() > 1
            && let Some(prefix) = self.shared_prefix_of(query, &alone)
        {
            let (after, rest): (Vec<_>, Vec<_>) =
                alone.into_iter().partition(|(_, input)| prefix.fits(input));
            let packed: Vec<&ModelInput> = after.iter().map(|(_, input)| input).collect();
            let scored = forward(Some(&prefix), &packed).await;
            query.shared.keep(prefix);
            alone = rest;
            match scored {
                Ok(scores) => {
                    for ((index, input), score) in after.iter().zip(scores) {
                        results[*index] = Some(scored_pair(score.map_err(DocError::from), input));
                    }
                }
                Err(_) => alone.extend(after),
            }
        }
        for (index, input) in alone {
            let scored = match self.shared_prefix(query, &input) {
                Some(prefix) => {
                    let scored = forward(Some(&prefix), &[&input]).await;
                    query.shared.keep(prefix);
                    scored
                }
                None => forward(None, &[&input]).await,
            };
            let score = scored.and_then(|mut scores| Ok(scores.pop().expect("one score")?));
            results[index] = Some(scored_pair(score, &input));
        }
        results
            .into_iter()
            .map(|r| r.expect("every document scored"))
            .collect()
    }

    /// The prefix that a pass's documents share with the query's others (learned from the
    /// first two documents the query sees), taken out of `query`.
    fn shared_prefix_of(
        &self,
        query: &PreparedQuery,
        pass: &[(usize, ModelInput)],
    ) -> Option<Prefix> {
        pass.iter()
            .take(2)
            .find_map(|(_, input)| self.shared_prefix(query, input))
    }

    /// The prefix to score `input` after, taken out of `query` (given back with
    /// `query.shared.keep`); `None` when the pair is computed whole.
    fn shared_prefix(&self, query: &PreparedQuery, input: &ModelInput) -> Option<Prefix> {
        if !self.reader.options.reuse_prefix {
            return None;
        }
        query.shared.take(self.model, input, query.visual_items())
    }
}

/// A document's result with the length of its prompt.
fn scored_pair(
    score: Result<sift_model::Score, DocError>,
    input: &ModelInput,
) -> Result<Scored, DocError> {
    let score = score?;
    Ok(Scored {
        score: score.score,
        logit: score.logit,
        tokens: input.input_ids.len(),
    })
}
