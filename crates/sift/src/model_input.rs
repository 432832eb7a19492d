//! What the model reads for one (query, document) pair, for comparing with the reference:
//! [`Reranker::model_input`](crate::Reranker::model_input) gives a request's, and
//! [`position_ids`] computes the multimodal position ids of a prompt given as token ids.

pub use sift_model::{ModelInput, VisualItem, VisualKind};

pub use crate::inputs::position_ids;
