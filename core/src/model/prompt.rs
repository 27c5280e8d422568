//! Soft prompts: a set of learned vectors that steers the frozen foundation model for one
//! surface or task, chosen per request.
//!
//! **Placement.** A prompt sits between the member's history and the request token (the last
//! token, whose state is the user representation). Attention is causal, so no history token
//! sees the prompt: the history's keys and values are the same under every prompt, and a
//! session that switches prompts encodes the prompt's positions and the request token only.
//! The request token keeps the position it has without a prompt, so a model without a prompt
//! computes exactly what it computed before prompts existed.
//!
//! The other placement, [`PromptPlacement::BeforeHistory`] (a prefix before the whole
//! sequence, as prefix tuning places it), exists on the training side only, to measure what
//! the choice costs in quality: under it every history token sees the prompt, so a swap would
//! re-encode the whole window. Bundles and engines serve [`PromptPlacement::BeforeRequest`].
//!
//! **Forms.**
//! - [`PromptForm::Input`]: `P` vectors in the embedding's output space, run through every
//!   layer as tokens between the history and the request token (they have no position of
//!   their own).
//! - [`PromptForm::Deep`]: per layer, `P` keys and `P` values (prefix tuning) that the request
//!   token attends to besides the history; nothing runs through the layers for them.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

/// Most vectors a prompt set may hold.
pub const MAX_PROMPT_LENGTH: usize = 16;

/// Where a prompt set's vectors enter the model (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PromptForm {
    /// Vectors run through the layers as tokens before the request token.
    Input,
    /// Per-layer keys and values the request token attends to.
    Deep,
}

impl PromptForm {
    /// Both forms.
    pub const ALL: [PromptForm; 2] = [PromptForm::Input, PromptForm::Deep];

    /// The form's name (`input`, `deep`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Deep => "deep",
        }
    }

    /// Parses a name as written by [`PromptForm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Where a prompt sits in the sequence (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PromptPlacement {
    /// Between the history and the request token: the history never sees the prompt (what
    /// bundles and engines serve).
    BeforeRequest,
    /// Before the history: every token sees the prompt (training side only, for comparison).
    BeforeHistory,
}

impl PromptPlacement {
    /// Both placements.
    pub const ALL: [PromptPlacement; 2] = [Self::BeforeRequest, Self::BeforeHistory];

    /// The placement's name (`before-request`, `before-history`).
    pub fn name(self) -> &'static str {
        match self {
            Self::BeforeRequest => "before-request",
            Self::BeforeHistory => "before-history",
        }
    }

    /// Parses a name as written by [`PromptPlacement::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Shape of a [`PromptSet`].
#[derive(Config, Debug, PartialEq)]
pub struct PromptSetConfig {
    /// Where the vectors enter the model.
    pub form: PromptForm,
    /// Width of the model the prompt steers.
    pub d_model: usize,
    /// Layers of that model (the deep form holds keys and values for each).
    pub n_layers: usize,
    /// Vectors per prompt `P` (1 to [`MAX_PROMPT_LENGTH`]); the deep form holds `P` keys and
    /// `P` values in every layer.
    #[config(default = 4)]
    pub length: usize,
    /// Standard deviation of the initial vectors (normal, mean 0).
    #[config(default = 0.02)]
    pub init_std: f64,
}

impl PromptSetConfig {
    /// A prompt set of this shape with fresh random vectors on `device`.
    ///
    /// # Panics
    /// If `length` is 0 or above [`MAX_PROMPT_LENGTH`].
    pub fn init(&self, device: &Device) -> PromptSet {
        assert!(
            (1..=MAX_PROMPT_LENGTH).contains(&self.length),
            "a prompt holds 1 to {MAX_PROMPT_LENGTH} vectors, not {}",
            self.length
        );
        let normal = Distribution::Normal(0.0, self.init_std);
        let (p, d, l) = (self.length, self.d_model, self.n_layers);
        match self.form {
            PromptForm::Input => PromptSet {
                input: Some(Param::from_tensor(Tensor::random([p, d], normal, device))),
                keys: None,
                values: None,
            },
            PromptForm::Deep => PromptSet {
                input: None,
                keys: Some(Param::from_tensor(Tensor::random(
                    [l, p, d],
                    normal,
                    device,
                ))),
                values: Some(Param::from_tensor(Tensor::random(
                    [l, p, d],
                    normal,
                    device,
                ))),
            },
        }
    }
}

/// One prompt's learned vectors: `input` for [`PromptForm::Input`], `keys` and `values` for
/// [`PromptForm::Deep`].
#[derive(Module, Debug)]
pub struct PromptSet {
    /// Input form: the prompt tokens' embeddings `[P, d_model]`.
    pub input: Option<Param<Tensor<2>>>,
    /// Deep form: every layer's keys `[n_layers, P, d_model]` (heads side by side, as the key
    /// projection's output).
    pub keys: Option<Param<Tensor<3>>>,
    /// Deep form: every layer's values `[n_layers, P, d_model]`.
    pub values: Option<Param<Tensor<3>>>,
}

impl PromptSet {
    /// The form of this prompt.
    pub fn form(&self) -> PromptForm {
        if self.input.is_some() {
            PromptForm::Input
        } else {
            PromptForm::Deep
        }
    }

    /// Vectors in the prompt (`P`).
    pub fn length(&self) -> usize {
        match (&self.input, &self.keys) {
            (Some(input), _) => input.val().dims()[0],
            (None, Some(keys)) => keys.val().dims()[1],
            (None, None) => 0,
        }
    }

    /// Prompt tokens that run through the layers before the request token (`P` for the input
    /// form, 0 for the deep form).
    pub fn tokens(&self) -> usize {
        match self.form() {
            PromptForm::Input => self.length(),
            PromptForm::Deep => 0,
        }
    }

    /// Keys and values each layer holds for the prompt (`P` for the deep form, 0 for the
    /// input form).
    pub fn deep_keys(&self) -> usize {
        match self.form() {
            PromptForm::Input => 0,
            PromptForm::Deep => self.length(),
        }
    }

    /// The input form's tokens `[1, P, d_model]`; `None` for the deep form.
    pub fn input_tokens(&self) -> Option<Tensor<3>> {
        self.input.as_ref().map(|p| p.val().unsqueeze_dim(0))
    }

    /// The deep form's keys and values of `layer`, split into `n_heads` heads:
    /// `[1, heads, P, head_dim]` each; `None` for the input form.
    pub fn layer_keys_values(
        &self,
        layer: usize,
        n_heads: usize,
    ) -> Option<(Tensor<4>, Tensor<4>)> {
        let heads = |t: &Param<Tensor<3>>| {
            let [_, p, d] = t.val().dims();
            t.val()
                .narrow(0, layer, 1)
                .reshape([1, p, n_heads, d / n_heads])
                .swap_dims(1, 2)
        };
        match (&self.keys, &self.values) {
            (Some(k), Some(v)) => Some((heads(k), heads(v))),
            _ => None,
        }
    }

    /// Every stored tensor by name, with its values (the names a bundle's prompt part uses:
    /// `input`, or `keys` and `values`).
    pub fn named_tensors(&self) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
        let mut out = Vec::new();
        if let Some(p) = &self.input {
            out.push((
                "input",
                p.val().dims().to_vec(),
                super::host_values(p.val()),
            ));
        }
        if let (Some(k), Some(v)) = (&self.keys, &self.values) {
            out.push(("keys", k.val().dims().to_vec(), super::host_values(k.val())));
            out.push((
                "values",
                v.val().dims().to_vec(),
                super::host_values(v.val()),
            ));
        }
        out
    }
}

/// A prompt set with the name requests select it by.
#[derive(Debug, Clone)]
pub struct NamedPromptSet {
    /// The name: any non-empty string (a surface or task of the application).
    pub name: String,
    /// The vectors.
    pub prompt: PromptSet,
}
