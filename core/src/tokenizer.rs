//! Events → model tokens.
//!
//! Token `t` joins the request-time fields of event `t` (when: hour, weekday, gap since the
//! previous event; where: surface, device, country) with the post-action fields of event `t−1`
//! (what: item and action). The model therefore never sees the answer it must predict: the
//! output at token `t` scores event `t`'s item. At serving time the last token pairs the last
//! history event with the request's context (surface, time, device, country).

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::catalog::ItemVocabulary;
use crate::data::events::{DeviceType, Event, Surface, country_index};

/// Item slot meaning "no token here" (right padding).
pub const PAD_ITEM: u32 = 0;
/// Item slot meaning "no previous event" (start of a history).
pub const START_ITEM: u32 = 1;
/// Offset of the first catalog item in the item slots (slot = dense index + 2).
pub const ITEM_OFFSET: u32 = 2;
/// Number of time-gap buckets.
pub const GAP_BUCKETS: usize = 16;

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

/// The token features of one member's sequence (all vectors have the same length).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenSequence {
    /// Item slot of the previous event ([`START_ITEM`] for the first token).
    pub prev_item: Vec<u32>,
    /// Action of the previous event + 1 (0 for the first token).
    pub prev_action: Vec<u32>,
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

    fn push(&mut self, prev: Option<(&Event, u32)>, ctx: &Context, target: Option<u32>) {
        let (item, action, gap) = match prev {
            None => (START_ITEM, 0, 0),
            Some((e, slot)) => (
                slot,
                e.action.index() as u32 + 1,
                gap_bucket(ctx.timestamp - e.timestamp),
            ),
        };
        self.prev_item.push(item);
        self.prev_action.push(action);
        self.surface.push(ctx.surface.index() as u32);
        self.device.push(ctx.device.index() as u32);
        self.country.push(country_index(&ctx.country) as u32);
        self.hour
            .push(ctx.timestamp.rem_euclid(86_400) as u32 / 3600);
        self.weekday
            .push((ctx.timestamp.div_euclid(86_400) + 4).rem_euclid(7) as u32);
        self.gap.push(gap);
        self.target.push(target);
    }

    /// The tokens `range` of this sequence.
    pub fn window(&self, start: usize, end: usize) -> TokenSequence {
        TokenSequence {
            prev_item: self.prev_item[start..end].to_vec(),
            prev_action: self.prev_action[start..end].to_vec(),
            surface: self.surface[start..end].to_vec(),
            device: self.device[start..end].to_vec(),
            country: self.country[start..end].to_vec(),
            hour: self.hour[start..end].to_vec(),
            weekday: self.weekday[start..end].to_vec(),
            gap: self.gap[start..end].to_vec(),
            target: self.target[start..end].to_vec(),
        }
    }
}

/// Bucket of a time gap in seconds: 0 is reserved for "no previous event"; then
/// 1 + ⌊log2(1 + minutes)⌋, capped at 15.
pub fn gap_bucket(seconds: i64) -> u32 {
    let minutes = seconds.max(0) as f64 / 60.0;
    1 + ((1.0 + minutes).log2().floor() as u32).min(GAP_BUCKETS as u32 - 2)
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

/// Turns member histories into token sequences; `max_len` is the model's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventTokenizer {
    /// Longest token sequence the model accepts.
    pub max_len: usize,
}

impl EventTokenizer {
    /// A tokenizer for a model with this window.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    fn slots(&self, catalog: &ItemVocabulary, events: &[Event]) -> Result<Vec<u32>, UnknownItem> {
        events
            .iter()
            .enumerate()
            .map(|(position, e)| {
                catalog
                    .index_of(e.item)
                    .map(|i| i as u32)
                    .ok_or(UnknownItem {
                        position,
                        item: e.item,
                    })
            })
            .collect()
    }

    /// Training tokens: one per event, each predicting its event's item. Histories longer than
    /// the window are cut into windows of `max_len` overlapping by half.
    pub fn training_windows(
        &self,
        catalog: &ItemVocabulary,
        events: &[Event],
    ) -> Result<Vec<TokenSequence>, UnknownItem> {
        let idx = self.slots(catalog, events)?;
        let mut seq = TokenSequence::default();
        for (i, e) in events.iter().enumerate() {
            let prev = (i > 0).then(|| (&events[i - 1], idx[i - 1] + ITEM_OFFSET));
            seq.push(prev, &Context::of(e), Some(idx[i]));
        }
        let n = seq.len();
        if n <= self.max_len {
            return Ok(if n == 0 { vec![] } else { vec![seq] });
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
        Ok(out)
    }

    /// Serving tokens: the most recent `max_len − 1` events, then the request token whose output
    /// scores the next item.
    pub fn serving_sequence(
        &self,
        catalog: &ItemVocabulary,
        events: &[Event],
        request: &Context,
    ) -> Result<TokenSequence, UnknownItem> {
        let idx = self.slots(catalog, events)?;
        let keep = events.len().min(self.max_len.saturating_sub(1));
        let first = events.len() - keep;
        let mut seq = TokenSequence::default();
        for i in first..events.len() {
            let prev = (i > 0).then(|| (&events[i - 1], idx[i - 1] + ITEM_OFFSET));
            seq.push(prev, &Context::of(&events[i]), None);
        }
        let last = events
            .last()
            .map(|e| (e, idx[events.len() - 1] + ITEM_OFFSET));
        seq.push(last, request, None);
        Ok(seq)
    }
}

/// A right-padded batch of token sequences as tensors of shape `[batch, seq]`.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Previous item slots.
    pub prev_item: Tensor<2, Int>,
    /// Previous actions.
    pub prev_action: Tensor<2, Int>,
    /// Surfaces.
    pub surface: Tensor<2, Int>,
    /// Devices.
    pub device: Tensor<2, Int>,
    /// Countries.
    pub country: Tensor<2, Int>,
    /// Hours of day.
    pub hour: Tensor<2, Int>,
    /// Days of week.
    pub weekday: Tensor<2, Int>,
    /// Time-gap buckets.
    pub gap: Tensor<2, Int>,
    /// Dense target index per token, 0 where there is none (see `target_mask`).
    pub target: Tensor<2, Int>,
    /// 1.0 where `target` is a real target, 0.0 on padding.
    pub target_mask: Tensor<2>,
    /// Real length of each sequence.
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    /// Pads `seqs` on the right to the longest one and uploads them to `device`.
    pub fn new(seqs: &[TokenSequence], device: &Device) -> Self {
        let b = seqs.len();
        let s = seqs
            .iter()
            .map(TokenSequence::len)
            .max()
            .unwrap_or(0)
            .max(1);
        let ints = |f: &dyn Fn(&TokenSequence) -> &Vec<u32>| {
            let mut v = vec![0i64; b * s];
            for (r, seq) in seqs.iter().enumerate() {
                for (c, &x) in f(seq).iter().enumerate() {
                    v[r * s + c] = x as i64;
                }
            }
            Tensor::<2, Int>::from_data(TensorData::new(v, [b, s]), device)
        };
        let mut target = vec![0i64; b * s];
        let mut mask = vec![0f32; b * s];
        for (r, seq) in seqs.iter().enumerate() {
            for (c, t) in seq.target.iter().enumerate() {
                if let Some(t) = t {
                    target[r * s + c] = *t as i64;
                    mask[r * s + c] = 1.0;
                }
            }
        }
        Self {
            prev_item: ints(&|q| &q.prev_item),
            prev_action: ints(&|q| &q.prev_action),
            surface: ints(&|q| &q.surface),
            device: ints(&|q| &q.device),
            country: ints(&|q| &q.country),
            hour: ints(&|q| &q.hour),
            weekday: ints(&|q| &q.weekday),
            gap: ints(&|q| &q.gap),
            target: Tensor::from_data(TensorData::new(target, [b, s]), device),
            target_mask: Tensor::from_data(TensorData::new(mask, [b, s]), device),
            lengths: seqs.iter().map(TokenSequence::len).collect(),
        }
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
}
