//! A prompt set's serving form: its vectors in host memory, for the engines that execute the
//! serving description (see `crate::model::PromptSet` for where a prompt sits).

use crate::model::{NamedPromptSet, PromptForm, host_values};

/// One named prompt set in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingPrompt {
    /// The name requests select it by.
    pub name: String,
    /// Where its vectors enter the model.
    pub form: PromptForm,
    /// Vectors per prompt (`P`).
    pub length: usize,
    /// Input form: the prompt tokens' embeddings `[P, d]` (empty for the deep form).
    pub input: Vec<f32>,
    /// Deep form: every layer's keys `[n_layers, P, d]` (empty for the input form).
    pub keys: Vec<f32>,
    /// Deep form: every layer's values `[n_layers, P, d]` (empty for the input form).
    pub values: Vec<f32>,
}

impl ServingPrompt {
    /// The host copy of `named`.
    pub fn of(named: &NamedPromptSet) -> Self {
        let p = &named.prompt;
        Self {
            name: named.name.clone(),
            form: p.form(),
            length: p.length(),
            input: p
                .input
                .as_ref()
                .map_or_else(Vec::new, |t| host_values(t.val())),
            keys: p
                .keys
                .as_ref()
                .map_or_else(Vec::new, |t| host_values(t.val())),
            values: p
                .values
                .as_ref()
                .map_or_else(Vec::new, |t| host_values(t.val())),
        }
    }

    /// Prompt tokens that run through the layers (`P` for the input form, 0 for the deep).
    pub fn tokens(&self) -> usize {
        match self.form {
            PromptForm::Input => self.length,
            PromptForm::Deep => 0,
        }
    }

    /// Keys and values each layer holds for it (`P` for the deep form, 0 for the input).
    pub fn deep_keys(&self) -> usize {
        match self.form {
            PromptForm::Input => 0,
            PromptForm::Deep => self.length,
        }
    }
}
