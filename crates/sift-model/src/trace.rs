//! Optional capture of intermediate tensors, so a mismatch with the reference says where it is.

use burn::tensor::Tensor;

/// Records named intermediates when switched on; does nothing (and keeps nothing alive) when off.
pub struct Trace {
    tensors: Option<Vec<(String, Tensor<2>)>>,
}

impl Trace {
    /// A trace that records nothing: what the scoring path uses.
    pub fn off() -> Self {
        Self { tensors: None }
    }

    /// A trace that keeps every recorded intermediate.
    pub fn on() -> Self {
        Self {
            tensors: Some(Vec::new()),
        }
    }

    pub(crate) fn record(&mut self, name: impl FnOnce() -> String, tensor: &Tensor<2>) {
        if let Some(tensors) = &mut self.tensors {
            tensors.push((name(), tensor.clone()));
        }
    }

    /// The recorded intermediates, in the order the forward pass produced them.
    pub fn into_tensors(self) -> Vec<(String, Tensor<2>)> {
        self.tensors.unwrap_or_default()
    }
}
