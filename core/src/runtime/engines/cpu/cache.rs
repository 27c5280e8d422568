//! The CPU engine's key/value cache in host memory.

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::{KvCache, host_values};

/// Every layer's keys and values of the tokens encoded so far, each `[len, d_model]` (heads
/// side by side), in buffers allocated (and touched) once for a whole window, so that an
/// append writes in place: no reallocation, no copy, no page fault.
#[derive(Debug, Clone, Default)]
pub struct CpuKvCache {
    /// Per layer: keys and values, `[room, d_model]` each; the first `len` rows are in use.
    pub(super) layers: Vec<(Vec<f32>, Vec<f32>)>,
    d_model: usize,
    len: usize,
}

impl CpuKvCache {
    /// An empty cache of `layers` layers of width `d_model`, with room for `room` tokens.
    pub fn new(layers: usize, d_model: usize, room: usize) -> Self {
        Self {
            layers: vec![(vec![0.0; room * d_model], vec![0.0; room * d_model]); layers],
            d_model,
            len: 0,
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens the buffers have room for.
    pub fn room(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |(k, _)| k.len() / self.d_model.max(1))
    }

    /// Every layer's key and value buffers, first layer first.
    pub(super) fn layers_mut(&mut self) -> impl Iterator<Item = (&mut Vec<f32>, &mut Vec<f32>)> {
        self.layers.iter_mut().map(|(k, v)| (k, v))
    }

    /// Marks the first `len` tokens as in use (after a step wrote their keys and values).
    pub(super) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    /// Keeps the first `len` tokens.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Reads a device cache back (`[1, heads, len, head_dim]` per layer → `[len, d_model]`)
    /// into buffers with room for `room` tokens.
    ///
    /// # Panics
    /// If the device cache holds more than `room` tokens.
    pub fn from_device(cache: &KvCache, d_model: usize, room: usize) -> Self {
        let mut host = Self::new(cache.layers.len(), d_model, room);
        host.len = cache.len();
        assert!(
            host.len <= room,
            "{} cached tokens, room for {room}",
            host.len
        );
        for (layer, (keys, values)) in cache.layers.iter().zip(&mut host.layers) {
            if let Some((k, v)) = layer.keys_values() {
                let [_, h, n, hd] = k.dims();
                let rows = |t: Tensor<4>| host_values(t.swap_dims(1, 2).reshape([n * h * hd]));
                keys[..n * d_model].copy_from_slice(&rows(k));
                values[..n * d_model].copy_from_slice(&rows(v));
            }
        }
        host
    }

    /// Uploads the cache to `device` as a [`KvCache`] of `heads`-headed layers.
    pub fn to_device(&self, heads: usize, device: &Device) -> KvCache {
        let mut cache = KvCache::new(self.layers.len());
        let n = self.len();
        if n == 0 {
            return cache;
        }
        let hd = self.d_model / heads;
        let used = n * self.d_model;
        for ((k, v), layer) in self.layers.iter().zip(&mut cache.layers) {
            let up = |rows: &[f32]| {
                Tensor::<3>::from_data(
                    TensorData::new(rows[..used].to_vec(), [1, n, self.d_model]),
                    device,
                )
                .reshape([1, n, heads, hd])
                .swap_dims(1, 2)
            };
            layer.append(up(k), up(v));
        }
        cache
    }
}
