//! Query text as hashed features: lowercase words and the character trigrams of each word
//! (with `#` marking its ends), each hashed (FNV-1a) into a fixed number of buckets, so that
//! misspellings and prefixes share most of their features with the words they stand for.

/// Bucket 0 is padding; hashes fall in `1..buckets`.
pub const PADDING_BUCKET: u32 = 0;

/// Longest query read, in bytes (the rest is ignored).
pub const MAX_QUERY_BYTES: usize = 256;

/// FNV-1a over `bytes`, seeded by `kind` (so a word and a trigram with the same letters
/// land in different buckets).
fn fnv1a(kind: u8, bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in std::iter::once(&kind).chain(bytes) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The lowercase words of `text` (alphanumeric runs), read up to [`MAX_QUERY_BYTES`].
pub fn query_words(text: &str) -> Vec<String> {
    let mut end = text.len().min(MAX_QUERY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end]
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The hashed features of `text` in `1..buckets`: one per word and one per character trigram
/// of `#word#`, in order, at most `max_features` (the rest dropped). An empty or all-symbol
/// query has none.
///
/// # Panics
/// If `buckets < 2`.
pub fn query_features(text: &str, buckets: u32, max_features: usize) -> Vec<u32> {
    assert!(buckets >= 2, "query features need at least 2 buckets");
    let bucket = |h: u32| 1 + h % (buckets - 1);
    let mut out = Vec::new();
    for word in query_words(text) {
        out.push(bucket(fnv1a(b'w', word.as_bytes())));
        let marked: Vec<char> = std::iter::once('#')
            .chain(word.chars())
            .chain(std::iter::once('#'))
            .collect();
        for tri in marked.windows(3) {
            let s: String = tri.iter().collect();
            out.push(bucket(fnv1a(b't', s.as_bytes())));
        }
        if out.len() >= max_features {
            out.truncate(max_features);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn set(text: &str) -> HashSet<u32> {
        query_features(text, 1 << 16, 64).into_iter().collect()
    }

    fn overlap(a: &str, b: &str) -> f64 {
        let (a, b) = (set(a), set(b));
        a.intersection(&b).count() as f64 / a.union(&b).count() as f64
    }

    #[test]
    fn features_are_deterministic_bounded_and_case_blind() {
        let f = query_features("Star Wars", 1000, 64);
        // 2 words + trigrams of "#star#" (4) and "#wars#" (4).
        assert_eq!(f.len(), 10);
        assert!(f.iter().all(|&b| (1..1000).contains(&b)));
        assert_eq!(f, query_features("star  WARS!", 1000, 64));
        assert_eq!(query_features("Star Wars", 1000, 3), f[..3].to_vec());
        assert!(query_features("", 1000, 64).is_empty());
        assert!(query_features(" -- !! ", 1000, 64).is_empty());
    }

    #[test]
    fn misspellings_and_prefixes_share_features_unrelated_words_do_not() {
        // Jaccard overlap of the feature sets: "star" shares its word and 4 trigrams, a
        // swapped pair inside a word keeps the trigrams away from it.
        let typo = overlap("star wars", "star wras");
        let long_typo = overlap("the godfather", "the godfahter");
        let prefix = overlap("star wars", "star wa");
        let other = overlap("star wars", "toy story");
        assert!(typo > 0.3, "typo {typo}");
        assert!(long_typo > 0.4, "typo in a longer word {long_typo}");
        assert!(prefix > 0.45, "prefix {prefix}");
        assert!(other < 0.1, "unrelated {other}");
    }

    #[test]
    fn overlong_and_multibyte_queries_are_cut_at_a_character() {
        let long = "é".repeat(1000);
        let words = query_words(&long);
        assert_eq!(words.len(), 1);
        assert!(words[0].len() <= MAX_QUERY_BYTES);
        assert_eq!(query_features(&long, 97, 8).len(), 8);
    }
}
