//! The prompt's beginning that a query's documents share (system, instruction, the query with
//! its images), learned from the first two documents and computed once
//! ([`sift_model::Prefix`]); every later document is scored after it.

use std::sync::Mutex;

use sift_model::{ModelInput, Prefix, RerankerModel};

/// What is known of a query's shared prefix, kept with the prepared query.
pub(crate) struct SharedPrefix(Mutex<State>);

enum State {
    /// No document scored yet.
    Unknown,
    /// The first document's prompt, and where its own images and videos start.
    First {
        input_ids: Vec<u32>,
        own_start: usize,
    },
    /// Computed, from the first two documents' common tokens.
    Ready(Prefix),
    /// Nothing worth sharing (or its computation failed): each pair is computed whole.
    Unshared,
}

impl SharedPrefix {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(State::Unknown))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tokens of the prefix, once computed.
    pub(crate) fn len(&self) -> Option<usize> {
        match &*self.state() {
            State::Ready(prefix) => Some(prefix.len()),
            _ => None,
        }
    }

    /// Gives back the prefix [`take`](Self::take) took, for the next document.
    pub(crate) fn keep(&self, prefix: Prefix) {
        *self.state() = State::Ready(prefix);
    }

    /// The prefix to score `input` after, taken out (give it back with [`keep`](Self::keep)):
    /// the one computed, or one computed now from the tokens `input` shares with the first
    /// document. `query_items` is the number of the query's images and videos, which come
    /// before the document's own. `None` when the pair is computed whole.
    pub(crate) fn take(
        &self,
        model: &RerankerModel,
        input: &ModelInput,
        query_items: usize,
    ) -> Option<Prefix> {
        let own_start = model.visual_item_start(input, query_items);
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Unshared) {
            State::Ready(prefix) if prefix.fits(input) => Some(prefix),
            State::Ready(prefix) => {
                *state = State::Ready(prefix);
                None
            }
            State::Unknown => {
                *state = State::First {
                    input_ids: input.input_ids.clone(),
                    own_start,
                };
                None
            }
            State::First {
                input_ids,
                own_start: first_start,
            } => {
                let common = input_ids
                    .iter()
                    .zip(&input.input_ids)
                    .take_while(|(a, b)| a == b)
                    .count();
                // Both prompts must go on after the prefix, and a document's own images and
                // videos are never in it (their pad tokens are alike, their pixels are not).
                let len = common
                    .min(own_start)
                    .min(first_start)
                    .min(input_ids.len() - 1)
                    .min(input.input_ids.len() - 1);
                // A failure leaves `Unshared`: the pair is then computed whole.
                (len > 0).then(|| model.prefix(input, len).ok()).flatten()
            }
            State::Unshared => None,
        }
    }
}
