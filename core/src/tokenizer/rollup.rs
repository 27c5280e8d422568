//! Hierarchical tokenization's first step: consecutive interactions with one item become one
//! rolled event (see [`EventTokenizer`]).

use super::EventTokenizer;
use crate::data::catalog::ItemRows;
use crate::data::events::{Action, DeviceType, Event, Surface};

/// The request context of a token: when and where the member asked.
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
    /// The last rating among the rolled interactions (none when none was rated).
    pub rating: Option<u8>,
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

/// How strongly an action signals interest: play > add to list > trailer.
fn action_strength(a: Action) -> u8 {
    match a {
        Action::Trailer => 0,
        Action::AddToList => 1,
        Action::Play => 2,
    }
}

impl EventTokenizer {
    /// Rolls up a history (oldest first) into tokens' "what" parts.
    pub fn roll_up(
        &self,
        catalog: &(impl ItemRows + ?Sized),
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
        catalog: &(impl ItemRows + ?Sized),
        events: &[Event],
        offset: usize,
        out: &mut Vec<RolledEvent>,
    ) -> Result<(), UnknownItem> {
        for (k, e) in events.iter().enumerate() {
            let item = catalog.row_of(e.item).ok_or(UnknownItem {
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
                last.rating = e.rating.or(last.rating);
                continue;
            }
            out.push(RolledEvent {
                context: Context::of(e),
                item,
                action: e.action,
                duration_s: e.duration_s.max(0.0),
                count: 1,
                last_timestamp: e.timestamp,
                rating: e.rating,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::catalog::ItemVocabulary;
    use crate::data::synthetic::{SyntheticWorld, SyntheticWorldConfig};
    use crate::tokenizer::{ITEM_OFFSET, TokenField, duration_bucket, gap_bucket};

    pub(crate) fn ev(item: u32, t: i64, action: Action, duration_s: f32) -> Event {
        Event {
            member: 1,
            item,
            timestamp: t,
            action,
            duration_s,
            surface: Surface::Home,
            country: "US".into(),
            device: DeviceType::Tv,
            rating: None,
        }
    }

    #[test]
    fn rolling_up_in_pieces_equals_rolling_up_at_once() {
        let w = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 5,
            titles: 50,
            days: 60,
            ..Default::default()
        });
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
        assert_eq!(tail, full.slice(full.len() - 4..full.len()));
        assert_eq!(tok.serving_tokens(&whole, first, &ctx), full);
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
        let t1 = &seq.tokens[1];
        assert_eq!(t1.get(TokenField::PrevCount), 3);
        assert_eq!(t1.get(TokenField::PrevDuration), duration_bucket(4860.0));
        assert_eq!(
            t1.get(TokenField::PrevAction),
            Action::Play.index() as u32 + 1
        );
        // The gap runs from the end of the rolled group (6000) to the next request (7000).
        assert_eq!(t1.get(TokenField::Gap), gap_bucket(1000));
        let next_gaps: Vec<u32> = seq
            .tokens
            .iter()
            .map(|t| t.target.as_ref().unwrap().next_gap)
            .collect();
        assert_eq!(
            next_gaps,
            [gap_bucket(1000), gap_bucket(100), gap_bucket(20_000), 0]
        );
        assert_eq!(seq.target_items(), vec![Some(0), Some(1), Some(0), Some(0)]);

        let req = Context {
            timestamp: 30_000,
            surface: Surface::Search,
            device: DeviceType::Web,
            country: "US".into(),
        };
        let serving = tok.serving_sequence(&vocab, &events, &req).unwrap();
        assert_eq!(serving.len(), 5);
        let prev_items = serving.column(TokenField::PrevItem);
        assert_eq!(prev_items[..4], seq.column(TokenField::PrevItem)[..]);
        assert_eq!(prev_items[4], ITEM_OFFSET);
        assert!(serving.tokens.iter().all(|t| t.target.is_none()));
    }
}
