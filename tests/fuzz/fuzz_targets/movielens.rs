//! Arbitrary bytes split into MovieLens-1M and -100K files (titles, then ratings): a data set or
//! an error naming file and line, never a panic.
#![no_main]

use encore_core::data::movielens::{parse_ml1m, parse_ml100k};
use encore_core::data::source::LineOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where the titles end and the ratings begin.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let at = (usize::from(cut) * rest.len()) / 256;
    let (titles, ratings) = rest.split_at(at);
    for skip_bad_lines in [false, true] {
        let options = LineOptions { skip_bad_lines };
        let _ = parse_ml1m(titles, ratings, options);
        let _ = parse_ml100k(titles, ratings, options);
    }
});
