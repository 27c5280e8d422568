//! What the models learn from: events, impressions (for the ranker), the catalog, the synthetic world that generates both,
//! and loaders for public data sets and generic event logs.

pub mod catalog;
pub mod event_log;
pub mod events;
pub mod impressions;
pub mod movielens;
pub mod source;
pub mod split;
pub mod synthetic;
