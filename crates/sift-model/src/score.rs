//! The score: which two vocabulary ids it compares ([`ScoreTokens`]) and what it is for one
//! pair ([`Score`]), read back from the device.

use burn::tensor::TensorData;

use crate::config::ModelConfig;
use crate::error::ModelError;

/// The vocabulary ids whose logit difference is the score (`"yes"` and `"no"`).
#[derive(Debug, Clone, Copy)]
pub struct ScoreTokens {
    pub yes: u32,
    pub no: u32,
}

impl ScoreTokens {
    /// Both ids must be rows of the model's token table.
    pub fn check(&self, config: &ModelConfig) -> Result<(), ModelError> {
        let [vocab, _] = config.token_table_shape();
        match [self.yes, self.no]
            .into_iter()
            .find(|&id| id as usize >= vocab)
        {
            Some(id) => Err(ModelError::Weights(format!(
                "the score reads token {id}, outside the model's {vocab} tokens: the \
                 tokenizer.json belongs to another model; use the model's own"
            ))),
            None => Ok(()),
        }
    }
}

/// The reranker's output for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// `logit_yes − logit_no`.
    pub logit: f32,
    /// `sigmoid(logit)`, in [0, 1].
    pub score: f32,
}

impl Score {
    /// The score of a one-element logit read back from the device.
    pub(crate) fn from_logit(data: TensorData) -> Result<Self, ModelError> {
        Self::from_logits(data)
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Input("empty logit".into()))?
    }

    /// The score of each logit read back from the device. A NaN or infinite logit (overflow on
    /// the GPU) is that pair's error, never a score that sorts first.
    pub(crate) fn from_logits(data: TensorData) -> Vec<Result<Self, ModelError>> {
        data.iter::<f32>()
            .map(|logit| {
                if !logit.is_finite() {
                    return Err(ModelError::NotFinite(logit));
                }
                Ok(Score {
                    logit,
                    score: 1.0 / (1.0 + (-logit).exp()),
                })
            })
            .collect()
    }
}
