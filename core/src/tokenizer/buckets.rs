//! Discrete buckets of the continuous event values a token carries: the time since the previous
//! event, the seconds watched and the roll-up count.

/// Number of time-gap buckets (0 = unknown / no previous event).
pub const GAP_BUCKETS: usize = 16;
/// Number of watch-duration buckets (0 = nothing watched or no previous event).
pub const DURATION_BUCKETS: usize = 12;
/// Number of roll-up count buckets (0 = no previous event, then 1…7, the last meaning "7 or more").
pub const COUNT_BUCKETS: usize = 8;

/// Bucket of a time gap in seconds: 0 is reserved for "no previous event"; then
/// 1 + ⌊log2(1 + minutes)⌋, capped at 15.
pub fn gap_bucket(seconds: i64) -> u32 {
    let minutes = seconds.max(0) as f64 / 60.0;
    1 + ((1.0 + minutes).log2().floor() as u32).min(GAP_BUCKETS as u32 - 2)
}

/// Bucket of a watch duration: 0 for nothing watched, then 1 + ⌊log2(1 + minutes)⌋, capped at 11.
pub fn duration_bucket(seconds: f32) -> u32 {
    if !(seconds > 0.0) {
        return 0;
    }
    let minutes = f64::from(seconds) / 60.0;
    1 + ((1.0 + minutes).log2().floor() as u32).min(DURATION_BUCKETS as u32 - 2)
}

/// Bucket of a roll-up count: the count itself, capped at [`COUNT_BUCKETS`]` - 1`.
pub fn count_bucket(count: u32) -> u32 {
    count.min(COUNT_BUCKETS as u32 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_buckets_are_monotone_and_bounded() {
        assert_eq!(gap_bucket(0), 1);
        assert_eq!(gap_bucket(60), 2);
        let mut last = 0;
        for s in [0, 30, 600, 3600, 86_400, 864_000, i64::MAX / 2] {
            let b = gap_bucket(s);
            assert!(b >= last && (b as usize) < GAP_BUCKETS);
            last = b;
        }
    }

    #[test]
    fn duration_buckets_are_monotone_and_bounded() {
        assert_eq!(duration_bucket(0.0), 0);
        assert_eq!(duration_bucket(f32::NAN), 0);
        let mut last = 0;
        for s in [1.0, 60.0, 600.0, 3600.0, 36_000.0, 1e9] {
            let b = duration_bucket(s);
            assert!(b >= last && (b as usize) < DURATION_BUCKETS);
            last = b;
        }
    }

    #[test]
    fn count_buckets_cap_at_the_last() {
        assert_eq!([0, 1, 6, 7, 8, 1000].map(count_bucket), [0, 1, 6, 7, 7, 7]);
    }
}
