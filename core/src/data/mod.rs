//! What the model learns from: events, the catalog, and the synthetic world that generates both.

pub mod catalog;
pub mod events;
pub mod split;
pub mod synthetic;
