//! Prompt tuning: a prompt set (see [`encore_core::model::PromptSet`]) learned for one task
//! while the foundation model stays frozen.
//!
//! `task` says which next events a task is about, `tune` learns the prompt's vectors on them.

pub mod task;
pub mod tune;

pub use task::PromptTask;
pub use tune::{PromptTuneConfig, TuneExample, TunedPrompt, examples, tune};
