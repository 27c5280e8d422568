//! Events → model tokens.
//!
//! Token `t` joins the request-time fields of event `t` (when: hour, weekday, gap since the
//! previous event; where: surface, device, country) with the post-action fields of event `t−1`
//! (what: item and action). The model therefore never sees the answer it must predict: the
//! output at token `t` scores event `t`'s item. At serving time the last token pairs the last
//! history event with the request's context (surface, time, device, country).
//!
//! `buckets` discretises continuous values, `rollup` merges repeated interactions, `sequence`
//! holds tokens and their one field list ([`TokenField`]), `batch` pads sequences for a
//! device; this module cuts histories into training windows and serving windows.

mod batch;
mod buckets;
mod rollup;
mod sequence;

pub use batch::TokenBatch;
pub use buckets::{
    COUNT_BUCKETS, DURATION_BUCKETS, GAP_BUCKETS, count_bucket, duration_bucket, gap_bucket,
};
pub use rollup::{Context, RolledEvent, UnknownItem};
pub use sequence::{
    ITEM_OFFSET, PAD_ITEM, START_ITEM, TOKEN_FIELDS, Token, TokenField, TokenSequence, TokenTarget,
};

use crate::data::catalog::{ItemRows, ItemVocabulary};
use crate::data::events::Event;

/// Turns member histories into token sequences.
///
/// Hierarchical tokenization: consecutive interactions with the same item, each within
/// `rollup_window_s` of the previous one (episodes of a series, replays), become one token that
/// keeps the first interaction's context, the strongest action, the summed duration and the count.
/// `rollup_window_s = 0` gives one token per event. A pre-training and a fine-tuning profile are
/// two values of this struct.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventTokenizer {
    /// Longest token sequence the model accepts.
    pub max_len: usize,
    /// Roll-up window in seconds (0: no roll-up).
    pub rollup_window_s: u64,
    /// How far the serving window moves at a time once a history outgrows it (1: by every
    /// event; see [`EventTokenizer::window_start`]).
    pub window_step: usize,
}

impl EventTokenizer {
    /// A tokenizer for a model with this window, no roll-up, and a serving window that slides
    /// by one event.
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            rollup_window_s: 0,
            window_step: 1,
        }
    }

    /// The same tokenizer with a serving window that moves `step` events at a time, clamped
    /// to `1..=max_len - 1` (see [`EventTokenizer::window_start`]).
    pub fn with_window_step(self, step: usize) -> Self {
        Self {
            window_step: step.clamp(1, self.max_len.saturating_sub(1).max(1)),
            ..self
        }
    }

    /// The same tokenizer rolling up repeats within `seconds`.
    pub fn with_rollup(self, seconds: u64) -> Self {
        Self {
            rollup_window_s: seconds,
            ..self
        }
    }

    /// Training tokens: one per rolled event, each predicting its item. Histories longer than
    /// the window are cut into windows of `max_len` overlapping by half.
    pub fn training_windows(
        &self,
        catalog: &ItemVocabulary,
        events: &[Event],
    ) -> Result<Vec<TokenSequence>, UnknownItem> {
        Ok(self.windows(self.training_sequence(catalog, events)?))
    }

    /// The whole history as one training sequence (one token per rolled event), not windowed.
    pub fn training_sequence(
        &self,
        catalog: &ItemVocabulary,
        events: &[Event],
    ) -> Result<TokenSequence, UnknownItem> {
        let rolled = self.roll_up(catalog, events)?;
        let mut seq = TokenSequence::default();
        for (i, e) in rolled.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| &rolled[p]);
            seq.push(prev, &e.context, Some(e));
            if let (Some(next), Some(target)) = (rolled.get(i + 1), &mut seq.tokens[i].target) {
                target.next_gap =
                    gap_bucket(next.context.timestamp.saturating_sub(e.last_timestamp));
            }
        }
        Ok(seq)
    }

    /// Cuts a sequence into windows of `max_len` overlapping by half (one window if it fits,
    /// none if it is empty).
    pub fn windows(&self, seq: TokenSequence) -> Vec<TokenSequence> {
        let n = seq.len();
        if n <= self.max_len {
            return if n == 0 { vec![] } else { vec![seq] };
        }
        let stride = (self.max_len / 2).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let s = start.min(n - self.max_len);
            out.push(seq.slice(s..s + self.max_len));
            if s + self.max_len >= n {
                break;
            }
            start += stride;
        }
        out
    }

    /// Serving tokens: the most recent `max_len − 1` rolled events, then the request token
    /// whose output scores the next item.
    pub fn serving_sequence(
        &self,
        catalog: &(impl ItemRows + ?Sized),
        events: &[Event],
        request: &Context,
    ) -> Result<TokenSequence, UnknownItem> {
        let rolled = self.roll_up(catalog, events)?;
        let first = self.window_start(rolled.len());
        Ok(self.serving_tokens(&rolled, first, request))
    }

    /// Index of the first rolled event inside the serving window of a history that rolled up
    /// into `rolled` events. The window holds at most `max_len - 1` events, plus the request.
    /// With a window step of 1 it keeps the most recent `max_len - 1`; with a step `s` its start
    /// is the smallest multiple of `s` that fits, so it holds `max_len - s` to `max_len - 1`
    /// events and moves only once every `s` new events (a session re-encodes its window only
    /// then). The start depends on `rolled` alone, so a stateless rerank and a session agree.
    pub fn window_start(&self, rolled: usize) -> usize {
        let over = rolled.saturating_sub(self.max_len.saturating_sub(1));
        let step = self.window_step.max(1);
        (over.div_ceil(step) * step).min(rolled)
    }

    /// The serving tokens of rolled events `from..` (each with its predecessor's "what") and
    /// the request token. With `from` = [`EventTokenizer::window_start`] this is the whole
    /// serving sequence; a larger `from` gives its tail.
    pub fn serving_tokens(
        &self,
        rolled: &[RolledEvent],
        from: usize,
        request: &Context,
    ) -> TokenSequence {
        let mut seq = TokenSequence::default();
        for i in from..rolled.len() {
            let prev = i.checked_sub(1).map(|p| &rolled[p]);
            seq.push(prev, &rolled[i].context, None);
        }
        seq.push(rolled.last(), request, None);
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::events::{DeviceType, Surface};
    use crate::data::synthetic::{SyntheticWorld, SyntheticWorldConfig};

    fn world() -> SyntheticWorld {
        SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 5,
            titles: 50,
            days: 60,
            ..Default::default()
        })
    }

    #[test]
    fn a_window_step_moves_the_serving_window_in_jumps() {
        // max_len 11: up to 10 events and the request.
        let one = EventTokenizer::new(11);
        let starts: Vec<usize> = (0..=16).map(|r| one.window_start(r)).collect();
        assert_eq!(starts, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
        let four = one.with_window_step(4);
        let starts: Vec<usize> = (0..=19).map(|r| four.window_start(r)).collect();
        assert_eq!(
            starts,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12]
        );
        for r in 0..200 {
            let held = r - four.window_start(r);
            assert!(
                held <= 10 && (r < 10 || held >= 7),
                "{r} rolled: {held} held"
            );
        }
        // The step is clamped to the window: 0 acts as 1, more than max_len - 1 as max_len - 1.
        assert_eq!(one.with_window_step(0).window_step, 1);
        assert_eq!(one.with_window_step(50).window_step, 10);
        let whole = one.with_window_step(50);
        assert_eq!((whole.window_start(11), whole.window_start(20)), (10, 10));
        assert_eq!(whole.window_start(21), 20);
    }

    #[test]
    fn token_t_sees_event_t_minus_1_and_predicts_event_t() {
        let w = world();
        let events: Vec<_> = w.events.iter().filter(|e| e.member == 1).cloned().collect();
        let seq = EventTokenizer::new(1000)
            .training_windows(w.catalog.vocabulary(), &events)
            .unwrap()
            .remove(0);
        assert_eq!(seq.len(), events.len());
        assert_eq!(seq.tokens[0].get(TokenField::PrevItem), START_ITEM);
        let slot = |i: usize| w.catalog.index_of(events[i].item).unwrap() as u32;
        for i in 1..events.len() {
            let token = &seq.tokens[i];
            assert_eq!(token.get(TokenField::PrevItem), slot(i - 1) + ITEM_OFFSET);
            let target = token.target.unwrap();
            assert_eq!(target.item, slot(i));
            assert_eq!(target.timestamp, events[i].timestamp);
            assert_eq!(target.action, events[i].action.index() as u32);
            assert_eq!(
                token.get(TokenField::Surface),
                events[i].surface.index() as u32
            );
        }
    }

    #[test]
    fn windows_cover_the_history_and_overlap() {
        let w = world();
        let events: Vec<_> = w.events.iter().filter(|e| e.member == 1).cloned().collect();
        let n = events.len();
        assert!(n > 12, "member 1 has {n} events");
        let wins = EventTokenizer::new(8)
            .training_windows(w.catalog.vocabulary(), &events)
            .unwrap();
        assert!(wins.iter().all(|s| s.len() == 8));
        let full = EventTokenizer::new(10_000)
            .training_windows(w.catalog.vocabulary(), &events)
            .unwrap()
            .remove(0);
        assert_eq!(wins.last().unwrap().tokens, full.tokens[n - 8..]);
        assert_eq!(wins[0].tokens, full.tokens[..8]);
        // Windows start every 4 tokens (half the window), the last one flush with the end.
        assert_eq!(wins[1].tokens, full.tokens[4..12]);
        assert_eq!(wins.len(), (n - 8).div_ceil(4) + 1);
    }

    #[test]
    fn serving_keeps_the_most_recent_events_and_ends_with_the_request() {
        let w = world();
        let events: Vec<_> = w.events.iter().filter(|e| e.member == 1).cloned().collect();
        let req = Context {
            timestamp: events.last().unwrap().timestamp + 7200,
            surface: Surface::Kids,
            device: DeviceType::Tv,
            country: "JP".into(),
        };
        let seq = EventTokenizer::new(6)
            .serving_sequence(w.catalog.vocabulary(), &events, &req)
            .unwrap();
        assert_eq!(seq.len(), 6);
        let last = seq.tokens.last().unwrap();
        assert_eq!(last.get(TokenField::Surface), Surface::Kids.index() as u32);
        assert_eq!(
            last.get(TokenField::PrevItem),
            w.catalog.index_of(events.last().unwrap().item).unwrap() as u32 + ITEM_OFFSET
        );
        assert_eq!(last.get(TokenField::Gap), gap_bucket(7200));
        let mut bad = events.clone();
        bad[2].item = 999_999;
        assert_eq!(
            EventTokenizer::new(6)
                .serving_sequence(w.catalog.vocabulary(), &bad, &req)
                .unwrap_err(),
            UnknownItem {
                position: 2,
                item: 999_999
            }
        );
    }
}
