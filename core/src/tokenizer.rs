//! Events → model tokens.
//!
//! Token `t` joins the request-time fields of event `t` (when: hour, weekday, gap since the
//! previous event; where: surface, device, country) with the post-action fields of event `t−1`
//! (what: item and action). The model therefore never sees the answer it must predict: the
//! output at token `t` scores event `t`'s item. At serving time the last token pairs the last
//! history event with the request's context (surface, time, device, country).

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::catalog::ItemVocabulary;
use crate::data::events::{Action, DeviceType, Event, Surface, country_index};

/// Item slot meaning "no token here" (right padding).
pub const PAD_ITEM: u32 = 0;
/// Item slot meaning "no previous event" (start of a history).
pub const START_ITEM: u32 = 1;
/// Offset of the first catalog item in the item slots (slot = dense index + 2).
pub const ITEM_OFFSET: u32 = 2;
/// Number of time-gap buckets (0 = unknown / no previous event).
pub const GAP_BUCKETS: usize = 16;
/// Number of watch-duration buckets (0 = nothing watched or no previous event).
pub const DURATION_BUCKETS: usize = 12;
/// Number of roll-up count buckets (0 = no previous event, then 1…7, the last meaning "7 or more").
pub const COUNT_BUCKETS: usize = 8;

/// The request context of the token the model predicts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Unix time (s).
    pub timestamp: i64,
    /// Surface of the request.
    pub surface: Surface,
    /// Device of the request.
    pub device: DeviceType,
    /// ISO country code of the request.
    pub country: String,
}

impl Context {
    /// The request-time fields of an event.
    pub fn of(e: &Event) -> Self {
        Self {
            timestamp: e.timestamp,
            surface: e.surface,
            device: e.device,
            country: e.country.clone(),
        }
    }
}

/// One token's "what": interactions with one item rolled up into one (see [`EventTokenizer`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RolledEvent {
    /// Request context of the first interaction.
    pub context: Context,
    /// Dense item index.
    pub item: u32,
    /// The strongest action among the rolled interactions (play > add to list > trailer).
    pub action: Action,
    /// Summed seconds watched.
    pub duration_s: f32,
    /// How many interactions were rolled up.
    pub count: u32,
    /// Time of the last rolled interaction.
    pub last_timestamp: i64,
}

fn action_strength(a: Action) -> u8 {
    match a {
        Action::Trailer => 0,
        Action::AddToList => 1,
        Action::Play => 2,
    }
}

/// The token features of one member's sequence (all vectors have the same length).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenSequence {
    /// Item slot of the previous event ([`START_ITEM`] for the first token).
    pub prev_item: Vec<u32>,
    /// Action of the previous event + 1 (0 for the first token).
    pub prev_action: Vec<u32>,
    /// Duration bucket of the previous event.
    pub prev_duration: Vec<u32>,
    /// Roll-up count bucket of the previous event.
    pub prev_count: Vec<u32>,
    /// Surface index of this token's request.
    pub surface: Vec<u32>,
    /// Device index.
    pub device: Vec<u32>,
    /// Country index.
    pub country: Vec<u32>,
    /// Hour of day (UTC), 0–23.
    pub hour: Vec<u32>,
    /// Day of week, 0 = Sunday.
    pub weekday: Vec<u32>,
    /// Bucket of the time since the previous event (0 for the first token).
    pub gap: Vec<u32>,
    /// Dense index of the item to predict at this token, if known (training).
    pub target: Vec<Option<u32>>,
    /// Training only: time of the target event (for multi-token prediction's time decay).
    pub target_time: Vec<i64>,
    /// Training only: action of the target event.
    pub target_action: Vec<u32>,
    /// Training only: duration bucket of the target event.
    pub target_duration: Vec<u32>,
    /// Training only: gap bucket from the target event to the one after it (0 = none).
    pub next_gap: Vec<u32>,
}

impl TokenSequence {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.prev_item.len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.prev_item.is_empty()
    }

    /// Token `i`'s input fields in [`TOKEN_FIELDS`] order (the model's input for it).
    pub fn fields(&self, i: usize) -> [i64; TOKEN_FIELDS] {
        [
            &self.prev_item,
            &self.prev_action,
            &self.prev_duration,
            &self.prev_count,
            &self.surface,
            &self.device,
            &self.country,
            &self.hour,
            &self.weekday,
            &self.gap,
        ]
        .map(|column| i64::from(column[i]))
    }

    /// Every token's input fields, in order.
    pub fn field_rows(&self) -> Vec<[i64; TOKEN_FIELDS]> {
        (0..self.len()).map(|i| self.fields(i)).collect()
    }

    /// True when token `i` of `self` and token `j` of `other` have the same input fields (the
    /// training-only target fields are not compared).
    pub fn same_input(&self, i: usize, other: &Self, j: usize) -> bool {
        self.fields(i) == other.fields(j)
    }

    /// Appends `other`'s tokens.
    pub fn extend(&mut self, other: &Self) {
        self.prev_item.extend_from_slice(&other.prev_item);
        self.prev_action.extend_from_slice(&other.prev_action);
        self.prev_duration.extend_from_slice(&other.prev_duration);
        self.prev_count.extend_from_slice(&other.prev_count);
        self.surface.extend_from_slice(&other.surface);
        self.device.extend_from_slice(&other.device);
        self.country.extend_from_slice(&other.country);
        self.hour.extend_from_slice(&other.hour);
        self.weekday.extend_from_slice(&other.weekday);
        self.gap.extend_from_slice(&other.gap);
        self.target.extend_from_slice(&other.target);
        self.target_time.extend_from_slice(&other.target_time);
        self.target_action.extend_from_slice(&other.target_action);
        self.target_duration
            .extend_from_slice(&other.target_duration);
        self.next_gap.extend_from_slice(&other.next_gap);
    }

    /// The tokens in `range`, as a sequence of their own.
    pub fn tokens(&self, range: std::ops::Range<usize>) -> Self {
        let r = range;
        Self {
            prev_item: self.prev_item[r.clone()].to_vec(),
            prev_action: self.prev_action[r.clone()].to_vec(),
            prev_duration: self.prev_duration[r.clone()].to_vec(),
            prev_count: self.prev_count[r.clone()].to_vec(),
            surface: self.surface[r.clone()].to_vec(),
            device: self.device[r.clone()].to_vec(),
            country: self.country[r.clone()].to_vec(),
            hour: self.hour[r.clone()].to_vec(),
            weekday: self.weekday[r.clone()].to_vec(),
            gap: self.gap[r.clone()].to_vec(),
            target: self.target[r.clone()].to_vec(),
            target_time: self.target_time[r.clone()].to_vec(),
            target_action: self.target_action[r.clone()].to_vec(),
            target_duration: self.target_duration[r.clone()].to_vec(),
            next_gap: self.next_gap[r].to_vec(),
        }
    }

    fn push(&mut self, prev: Option<&RolledEvent>, ctx: &Context, target: Option<&RolledEvent>) {
        match prev {
            None => {
                self.prev_item.push(START_ITEM);
                self.prev_action.push(0);
                self.prev_duration.push(0);
                self.prev_count.push(0);
                self.gap.push(0);
            }
            Some(e) => {
                self.prev_item.push(e.item + ITEM_OFFSET);
                self.prev_action.push(e.action.index() as u32 + 1);
                self.prev_duration.push(duration_bucket(e.duration_s));
                self.prev_count.push(e.count.min(COUNT_BUCKETS as u32 - 1));
                self.gap.push(gap_bucket(ctx.timestamp - e.last_timestamp));
            }
        }
        self.surface.push(ctx.surface.index() as u32);
        self.device.push(ctx.device.index() as u32);
        self.country.push(country_index(&ctx.country) as u32);
        self.hour
            .push(ctx.timestamp.rem_euclid(86_400) as u32 / 3600);
        self.weekday
            .push((ctx.timestamp.div_euclid(86_400) + 4).rem_euclid(7) as u32);
        self.target.push(target.map(|t| t.item));
        self.target_time
            .push(target.map_or(ctx.timestamp, |t| t.context.timestamp));
        self.target_action
            .push(target.map_or(0, |t| t.action.index() as u32));
        self.target_duration
            .push(target.map_or(0, |t| duration_bucket(t.duration_s)));
        self.next_gap.push(0);
    }

    /// The tokens `start..end` of this sequence.
    pub fn window(&self, start: usize, end: usize) -> TokenSequence {
        TokenSequence {
            prev_item: self.prev_item[start..end].to_vec(),
            prev_action: self.prev_action[start..end].to_vec(),
            prev_duration: self.prev_duration[start..end].to_vec(),
            prev_count: self.prev_count[start..end].to_vec(),
            surface: self.surface[start..end].to_vec(),
            device: self.device[start..end].to_vec(),
            country: self.country[start..end].to_vec(),
            hour: self.hour[start..end].to_vec(),
            weekday: self.weekday[start..end].to_vec(),
            gap: self.gap[start..end].to_vec(),
            target: self.target[start..end].to_vec(),
            target_time: self.target_time[start..end].to_vec(),
            target_action: self.target_action[start..end].to_vec(),
            target_duration: self.target_duration[start..end].to_vec(),
            next_gap: self.next_gap[start..end].to_vec(),
        }
    }
}

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

/// An event whose item the catalog does not know.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("event {position} refers to item id {item}, which is not in the catalog")]
pub struct UnknownItem {
    /// Position of the event in the given history.
    pub position: usize,
    /// The unknown external id.
    pub item: u32,
}

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

    /// Rolls up a history (oldest first) into tokens' "what" parts.
    pub fn roll_up(
        &self,
        catalog: &ItemVocabulary,
        events: &[Event],
    ) -> Result<Vec<RolledEvent>, UnknownItem> {
        let mut out: Vec<RolledEvent> = Vec::with_capacity(events.len());
        self.roll_up_onto(catalog, events, 0, &mut out)?;
        Ok(out)
    }

    /// Continues a roll-up: `events` come right after the ones already rolled into `out`
    /// (`offset` is `events[0]`'s index in the whole history, for errors). Rolling a history in
    /// pieces gives the same result as rolling it at once. On an error, `out` holds the events
    /// before the bad one.
    pub fn roll_up_onto(
        &self,
        catalog: &ItemVocabulary,
        events: &[Event],
        offset: usize,
        out: &mut Vec<RolledEvent>,
    ) -> Result<(), UnknownItem> {
        for (k, e) in events.iter().enumerate() {
            let item = catalog.index_of(e.item).ok_or(UnknownItem {
                position: offset + k,
                item: e.item,
            })? as u32;
            if let Some(last) = out.last_mut()
                && self.rollup_window_s > 0
                && last.item == item
                && e.timestamp.saturating_sub(last.last_timestamp) <= self.rollup_window_s as i64
            {
                if action_strength(e.action) > action_strength(last.action) {
                    last.action = e.action;
                }
                last.duration_s += e.duration_s.max(0.0);
                last.count += 1;
                last.last_timestamp = e.timestamp;
                continue;
            }
            out.push(RolledEvent {
                context: Context::of(e),
                item,
                action: e.action,
                duration_s: e.duration_s.max(0.0),
                count: 1,
                last_timestamp: e.timestamp,
            });
        }
        Ok(())
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
            if let Some(next) = rolled.get(i + 1) {
                seq.next_gap[i] = gap_bucket(next.context.timestamp - e.last_timestamp);
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
            out.push(seq.window(s, s + self.max_len));
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
        catalog: &ItemVocabulary,
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

/// Number of per-token input fields, in [`TokenBatch::fields`] order: previous item slot,
/// previous action, previous duration bucket, previous roll-up count bucket, surface, device,
/// country, hour, weekday, gap bucket.
pub const TOKEN_FIELDS: usize = 10;

/// A right-padded batch of token sequences on a device.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Every token's input fields, `[batch, seq, TOKEN_FIELDS]` (see [`TOKEN_FIELDS`]).
    pub fields: Tensor<3, Int>,
    /// Dense target index per token, 0 where there is none (see `target_mask`): `[batch, seq]`.
    pub target: Tensor<2, Int>,
    /// 1.0 where `target` is a real target, 0.0 on padding: `[batch, seq]`.
    pub target_mask: Tensor<2>,
    /// Real length of each sequence.
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    /// The padded sequence length of a batch of `seqs`: the longest one's (at least 1).
    pub fn padded_len(seqs: &[TokenSequence]) -> usize {
        seqs.iter()
            .map(TokenSequence::len)
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// Pads `seqs` on the right to the longest one and uploads them to `device` (three
    /// transfers: fields, targets, mask).
    pub fn new(seqs: &[TokenSequence], device: &Device) -> Self {
        let (b, s) = (seqs.len(), Self::padded_len(seqs));
        let mut fields = vec![0i64; b * s * TOKEN_FIELDS];
        let mut target = vec![0i64; b * s];
        let mut mask = vec![0f32; b * s];
        for (r, seq) in seqs.iter().enumerate() {
            for c in 0..seq.len() {
                let at = (r * s + c) * TOKEN_FIELDS;
                fields[at..at + TOKEN_FIELDS].copy_from_slice(&seq.fields(c));
                if let Some(t) = seq.target[c] {
                    target[r * s + c] = t as i64;
                    mask[r * s + c] = 1.0;
                }
            }
        }
        Self {
            fields: Tensor::from_data(TensorData::new(fields, [b, s, TOKEN_FIELDS]), device),
            target: Tensor::from_data(TensorData::new(target, [b, s]), device),
            target_mask: Tensor::from_data(TensorData::new(mask, [b, s]), device),
            lengths: seqs.iter().map(TokenSequence::len).collect(),
        }
    }

    /// `[batch, seq]`.
    pub fn dims(&self) -> [usize; 2] {
        let [b, s, _] = self.fields.dims();
        [b, s]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn rolling_up_in_pieces_equals_rolling_up_at_once() {
        let w = world();
        let events: Vec<_> = w.events.iter().filter(|e| e.member == 2).cloned().collect();
        assert!(events.len() > 20);
        let tok = EventTokenizer::new(16).with_rollup(6 * 3600);
        let vocab = w.catalog.vocabulary();
        let whole = tok.roll_up(vocab, &events).unwrap();
        assert!(whole.len() < events.len(), "something rolled up");
        for cut in [0, 1, 7, events.len() / 2, events.len() - 1, events.len()] {
            let mut pieces = tok.roll_up(vocab, &events[..cut]).unwrap();
            tok.roll_up_onto(vocab, &events[cut..], cut, &mut pieces)
                .unwrap();
            assert_eq!(pieces, whole, "cut at {cut}");
        }
        // Errors name the position in the whole history.
        let mut bad = events.clone();
        bad[9].item = 9_999_999;
        let mut out = tok.roll_up(vocab, &bad[..5]).unwrap();
        let err = tok.roll_up_onto(vocab, &bad[5..], 5, &mut out).unwrap_err();
        assert_eq!((err.position, err.item), (9, 9_999_999));
        // The tail of the serving tokens is the serving sequence's tail.
        let ctx = Context::of(events.last().unwrap());
        let full = tok.serving_sequence(vocab, &events, &ctx).unwrap();
        let first = tok.window_start(whole.len());
        let tail = tok.serving_tokens(&whole, whole.len() - 3, &ctx);
        assert_eq!(tail, full.tokens(full.len() - 4..full.len()));
        assert_eq!(tok.serving_tokens(&whole, first, &ctx), full);
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
        assert_eq!(seq.prev_item[0], START_ITEM);
        for i in 1..events.len() {
            assert_eq!(
                seq.prev_item[i],
                w.catalog.index_of(events[i - 1].item).unwrap() as u32 + ITEM_OFFSET
            );
            assert_eq!(
                seq.target[i],
                Some(w.catalog.index_of(events[i].item).unwrap() as u32)
            );
            assert_eq!(seq.surface[i], events[i].surface.index() as u32);
        }
    }

    #[test]
    fn windows_cover_the_history_and_overlap() {
        let w = world();
        let events: Vec<_> = w.events.iter().filter(|e| e.member == 1).cloned().collect();
        let n = events.len();
        assert!(n > 10, "member 1 has {n} events");
        let wins = EventTokenizer::new(8)
            .training_windows(w.catalog.vocabulary(), &events)
            .unwrap();
        assert!(wins.iter().all(|s| s.len() == 8));
        let full = EventTokenizer::new(10_000)
            .training_windows(w.catalog.vocabulary(), &events)
            .unwrap()
            .remove(0);
        assert_eq!(wins.last().unwrap().target, full.target[n - 8..].to_vec());
        assert_eq!(wins[0].target, full.target[..8].to_vec());
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
        assert_eq!(*seq.surface.last().unwrap(), Surface::Kids.index() as u32);
        assert_eq!(
            *seq.prev_item.last().unwrap(),
            w.catalog.index_of(events.last().unwrap().item).unwrap() as u32 + ITEM_OFFSET
        );
        assert_eq!(*seq.gap.last().unwrap(), gap_bucket(7200));
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

    fn ev(item: u32, t: i64, action: Action, duration_s: f32) -> Event {
        Event {
            member: 1,
            item,
            timestamp: t,
            action,
            duration_s,
            surface: Surface::Home,
            country: "US".into(),
            device: DeviceType::Tv,
        }
    }

    #[test]
    fn roll_up_merges_repeats_within_the_window_only() {
        let vocab = ItemVocabulary::new(vec![100, 200]).unwrap();
        let events = [
            ev(100, 0, Action::Trailer, 60.0),
            ev(100, 3000, Action::Play, 2400.0),
            ev(100, 6000, Action::Play, 2400.0),
            ev(200, 7000, Action::Play, 600.0),
            ev(100, 7100, Action::AddToList, 0.0),
            ev(100, 7100 + 20_000, Action::Play, 100.0),
        ];
        let tok = EventTokenizer::new(100).with_rollup(3600);
        let rolled = tok.roll_up(&vocab, &events).unwrap();
        assert_eq!(rolled.len(), 4);
        assert_eq!((rolled[0].item, rolled[0].count), (0, 3));
        assert_eq!(rolled[0].action, Action::Play);
        assert_eq!(rolled[0].duration_s, 4860.0);
        assert_eq!(rolled[0].last_timestamp, 6000);
        assert_eq!(rolled[0].context.timestamp, 0);
        // Item 100 after item 200 is a new token; 20,000 s later is outside the window.
        assert_eq!((rolled[2].item, rolled[2].count), (0, 1));
        assert_eq!(rolled[3].context.timestamp, 27_100);
        assert_eq!(
            EventTokenizer::new(100)
                .roll_up(&vocab, &events)
                .unwrap()
                .len(),
            6
        );

        let seq = tok.training_windows(&vocab, &events).unwrap().remove(0);
        assert_eq!(seq.len(), 4);
        assert_eq!(seq.prev_count[1], 3);
        assert_eq!(seq.prev_duration[1], duration_bucket(4860.0));
        assert_eq!(seq.prev_action[1], Action::Play.index() as u32 + 1);
        // The gap runs from the end of the rolled group (6000) to the next request (7000).
        assert_eq!(seq.gap[1], gap_bucket(1000));
        assert_eq!(seq.next_gap[0], gap_bucket(1000));
        assert_eq!(seq.next_gap[3], 0);
        assert_eq!(seq.target, vec![Some(0), Some(1), Some(0), Some(0)]);

        let req = Context {
            timestamp: 30_000,
            surface: Surface::Search,
            device: DeviceType::Web,
            country: "US".into(),
        };
        let serving = tok.serving_sequence(&vocab, &events, &req).unwrap();
        assert_eq!(serving.len(), 5);
        assert_eq!(serving.prev_item[..4], seq.prev_item[..]);
        assert_eq!(serving.prev_item[4], ITEM_OFFSET);
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
}
