//! The CPU engine's work buffers for a step through the layers, kept between calls so that a
//! step neither allocates nor zeroes them again.

/// The buffers of a step through the layers. Each grows to the largest step seen; a step
/// writes every element it reads, so nothing is cleared between steps.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    /// Normalised rows `[m, d]`.
    pub normed: Vec<f32>,
    /// Query rows `[nq, d]`.
    pub query: Vec<f32>,
    /// The attention's output rows `[nq, d]`.
    pub context: Vec<f32>,
    /// A projection's output rows `[nq, d]`, before they join the residual stream.
    pub projected: Vec<f32>,
    /// The feed-forward's hidden rows `[nq, d_ff]`.
    pub hidden: Vec<f32>,
    /// A block of attention scores `[block, keys]`.
    pub scores: Vec<f32>,
    /// One head's keys, transposed `[head_dim, keys]`.
    pub keys_transposed: Vec<f32>,
    /// [`attend_absorbed`](super::attend_absorbed)'s two vectors `[2, d]`: a head's query
    /// through the keys' weights, and the rows summed by their scores.
    pub absorbed: Vec<f32>,
}

/// The first `len` elements of `buffer`, which grows (with zeros) when it is shorter.
#[inline(always)]
pub(super) fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}
