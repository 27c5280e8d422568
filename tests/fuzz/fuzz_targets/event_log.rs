//! Arbitrary bytes as a CSV and as a JSON Lines event log against a small catalog, strict and
//! skipping bad lines: events or an error naming file and line, never a panic.
#![no_main]

use std::sync::LazyLock;

use encore_core::data::event_log::{LogFormat, parse_event_log};
use encore_core::data::source::LineOptions;
use encore_core::{Catalog, SyntheticWorld, SyntheticWorldConfig};
use libfuzzer_sys::fuzz_target;

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    SyntheticWorld::generate(&SyntheticWorldConfig {
        members: 5,
        titles: 20,
        days: 3,
        seed: 1,
        ..Default::default()
    })
    .catalog
});

fuzz_target!(|data: &[u8]| {
    for format in [LogFormat::Csv, LogFormat::JsonLines] {
        for skip_bad_lines in [false, true] {
            if let Ok((events, skipped)) = parse_event_log(
                "fuzz",
                data,
                format,
                &CATALOG,
                LineOptions { skip_bad_lines },
            ) {
                assert!(skipped == 0 || skip_bad_lines);
                for e in &events {
                    assert!(encore_core::data::events::timestamp_in_range(e.timestamp));
                    assert!(CATALOG.index_of(e.item).is_some());
                }
            }
        }
    }
});
