//! Arbitrary bytes as a weight file: refused with an error or loaded, never a panic, never more
//! than the caller's decoded-size budget allocated.
#![no_main]

use burn::tensor::Device;
use encore_core::Reranker;
use encore_core::weights::WeightFile;
use libfuzzer_sys::fuzz_target;

/// The budget a browser tab might set.
const BUDGET: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = WeightFile::decode(data);
    if let Ok(r) = Reranker::from_bytes_within(data, &Device::flex(), BUDGET) {
        // A file that loads serves a rerank of its first item.
        let first = r.items().ids()[0];
        let event = encore_core::Event {
            member: 0,
            item: first,
            timestamp: 0,
            action: encore_core::Action::Play,
            duration_s: 1.0,
            surface: encore_core::Surface::Home,
            country: "US".into(),
            device: encore_core::DeviceType::Web,
            rating: None,
        };
        let _ = r.rerank(
            &[event],
            &[first],
            &encore_core::RerankRequest::on(encore_core::Surface::Home),
        );
    }
});
