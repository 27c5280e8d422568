//! Keys and values of already-encoded tokens, kept so that appending tokens costs only their
//! own forward pass.

use burn::tensor::Tensor;

/// One layer's cached keys and values, each `[1, heads, len, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

impl LayerCache {
    /// Appends the new tokens' keys and values (`[1, heads, m, head_dim]` each) and returns
    /// all of them, cached first.
    pub fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let kv = match self.kv.take() {
            None => (k, v),
            Some((ck, cv)) => (Tensor::cat(vec![ck, k], 2), Tensor::cat(vec![cv, v], 2)),
        };
        self.kv = Some(kv.clone());
        kv
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dims()[2])
    }

    /// The cached keys and values (`[1, heads, len, head_dim]` each), if any.
    pub fn keys_values(&self) -> Option<(Tensor<4>, Tensor<4>)> {
        self.kv.clone()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `len` tokens.
    pub fn truncate(&mut self, len: usize) {
        if len == 0 {
            self.kv = None;
        } else if len < self.len() {
            let (k, v) = self.kv.take().expect("non-empty");
            self.kv = Some((k.narrow(2, 0, len), v.narrow(2, 0, len)));
        }
    }
}

/// Every layer's [`LayerCache`] for one member's token sequence.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// One cache per transformer layer.
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    /// An empty cache for a model with `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); n_layers],
        }
    }

    /// Number of cached tokens (the same in every layer).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `len` tokens in every layer.
    pub fn truncate(&mut self, len: usize) {
        for layer in &mut self.layers {
            layer.truncate(len);
        }
    }
}
