//! Encore's on-device reranker for web apps: an ES module built with wasm-bindgen.
//!
//! ```js
//! import init, { Reranker } from './pkg/encore_wasm.js';
//! await init();
//! const reranker = await Reranker.load(new Uint8Array(await (await fetch('model.encore')).arrayBuffer()));
//! const { items, scores } = await reranker.rerank(events, candidateIds, 'home');
//! console.log(reranker.backend); // "webgpu" or "cpu"
//!
//! // A member session keeps the model's cached keys and values between reranks:
//! const session = reranker.session(events);
//! session.append({ item: 42, timestamp: Date.now() / 1000 });
//! const next = await session.rerank(candidateIds, 'home'); // encodes two tokens, not 200
//!
//! // A title added after the bundle was exported, pushed with its metadata:
//! const fresh = { id: 90001, genres: ['Drama'], kind: 'movie', language: 'en',
//!                 release_year: 2026, added_at: Date.now() / 1000 };
//! await reranker.rerank(events, [...candidateIds, fresh], 'home');
//! ```
//!
//! Built with the default `webgpu` feature it runs on WebGPU (Encore's WGSL engine through
//! wgpu; burn's GPU backend is not compiled in) and on the CPU; without it
//! (`--no-default-features`, `wasm/build.sh`'s `cpu/` package) on the CPU only.
//!
//! Every failure (bad weight file, unknown ids, empty history, …) rejects the promise with an
//! `Error` whose message says what and where; nothing panics.

//!
//! [`input`] holds the checks of what JavaScript passes (events, requests, load options,
//! pushed titles) on plain Rust values, so that they compile and are fuzzed natively; the
//! JavaScript classes (`web`) exist on wasm32 only.

pub mod input;

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::*;
