//! Prompt tuning: a prompt set (see [`encore_core::model::PromptSet`]) learned for one task
//! while the foundation model stays frozen.
//!
//! `task` says which next events a task is about, `tune` learns the prompt's vectors on them,
//! `surfaces` tunes one per surface into a bundle.

pub mod surfaces;
pub mod task;
pub mod tune;

pub use surfaces::with_surface_prompts;
pub use task::PromptTask;
pub use tune::{
    PromptTuneConfig, TopLayerAndHead, TuneExample, TunedPrompt, examples, fine_tune_on_task,
    linear_head_on_task, top_layer_and_head_on_task, tune,
};
