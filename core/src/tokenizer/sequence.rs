//! Tokens: the model's input fields of one position, a training token's targets, and a
//! member's sequence of them.

use super::buckets::{
    COUNT_BUCKETS, DURATION_BUCKETS, GAP_BUCKETS, count_bucket, duration_bucket, gap_bucket,
};
use super::rollup::{Context, RolledEvent};
use crate::data::events::{
    Action, DeviceType, MAX_COUNTRIES, Surface, country_index, hour_of_day, weekday,
};

/// Item slot meaning "no token here" (right padding).
pub const PAD_ITEM: u32 = 0;
/// Item slot meaning "no previous event" (start of a history).
pub const START_ITEM: u32 = 1;
/// Offset of the first catalog item in the item slots (slot = dense index + 2).
pub const ITEM_OFFSET: u32 = 2;

/// Number of per-token input fields (see [`TokenField`]).
pub const TOKEN_FIELDS: usize = 10;

/// One input field of a token. [`TokenField::ALL`] is the one list of them: the order a token
/// stores its fields in, the order the embedding stacks its tables in, and the order of the
/// tables in a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenField {
    /// Item slot of the previous event ([`START_ITEM`] for the first token).
    PrevItem,
    /// Action of the previous event + 1 (0 for the first token).
    PrevAction,
    /// Duration bucket of the previous event.
    PrevDuration,
    /// Roll-up count bucket of the previous event.
    PrevCount,
    /// Surface index of this token's request.
    Surface,
    /// Device index of this token's request.
    Device,
    /// Country index of this token's request.
    Country,
    /// Hour of day (UTC) of this token's request, 0–23.
    Hour,
    /// Day of week of this token's request, 0 = Sunday.
    Weekday,
    /// Bucket of the time since the previous event (0 for the first token).
    Gap,
}

impl TokenField {
    /// Every field, in token order.
    pub const ALL: [TokenField; TOKEN_FIELDS] = [
        Self::PrevItem,
        Self::PrevAction,
        Self::PrevDuration,
        Self::PrevCount,
        Self::Surface,
        Self::Device,
        Self::Country,
        Self::Hour,
        Self::Weekday,
        Self::Gap,
    ];

    /// Rows of this field's embedding table in a model over `n_items` catalog items.
    pub fn rows(self, n_items: usize) -> usize {
        match self {
            Self::PrevItem => n_items + ITEM_OFFSET as usize,
            Self::PrevAction => Action::ALL.len() + 1,
            Self::PrevDuration => DURATION_BUCKETS,
            Self::PrevCount => COUNT_BUCKETS,
            Self::Surface => Surface::ALL.len(),
            Self::Device => DeviceType::ALL.len(),
            Self::Country => MAX_COUNTRIES,
            Self::Hour => 24,
            Self::Weekday => 7,
            Self::Gap => GAP_BUCKETS,
        }
    }

    /// Name of this field's embedding table in the model (`embedding.{name}.weight` in a
    /// weight file).
    pub fn table_name(self) -> &'static str {
        match self {
            Self::PrevItem => "item",
            Self::PrevAction => "action",
            Self::PrevDuration => "duration",
            Self::PrevCount => "count",
            Self::Surface => "surface",
            Self::Device => "device_type",
            Self::Country => "country",
            Self::Hour => "hour",
            Self::Weekday => "weekday",
            Self::Gap => "gap",
        }
    }
}

/// What a training token predicts: its own event (the next one after the token's "what").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTarget {
    /// Dense index of the item to predict.
    pub item: u32,
    /// Time of the target event (multi-token prediction's time decay).
    pub timestamp: i64,
    /// Action index of the target event.
    pub action: u32,
    /// Duration bucket of the target event.
    pub duration: u32,
    /// Gap bucket from the target event to the one after it (0 = none).
    pub next_gap: u32,
    /// The target event's rating, when its log has one (read by tasks, never by the model).
    pub rating: Option<u8>,
}

/// One position of a sequence: the model's input fields and, in training, the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    /// The input fields in [`TokenField::ALL`] order.
    pub input: [u32; TOKEN_FIELDS],
    /// What this token predicts (training tokens only).
    pub target: Option<TokenTarget>,
}

impl Token {
    /// The token whose "what" is `prev` (none at the start of a history) and whose request is
    /// `context`, predicting `target` when given.
    pub fn new(
        prev: Option<&RolledEvent>,
        context: &Context,
        target: Option<&RolledEvent>,
    ) -> Self {
        let (item, action, duration, count, gap) = match prev {
            None => (START_ITEM, 0, 0, 0, 0),
            Some(e) => (
                e.item + ITEM_OFFSET,
                e.action.index() as u32 + 1,
                duration_bucket(e.duration_s),
                count_bucket(e.count),
                gap_bucket(context.timestamp.saturating_sub(e.last_timestamp)),
            ),
        };
        let t = context.timestamp;
        Self {
            input: [
                item,
                action,
                duration,
                count,
                context.surface.index() as u32,
                context.device.index() as u32,
                country_index(&context.country) as u32,
                hour_of_day(t),
                weekday(t),
                gap,
            ],
            target: target.map(|e| TokenTarget {
                item: e.item,
                timestamp: e.context.timestamp,
                action: e.action.index() as u32,
                duration: duration_bucket(e.duration_s),
                next_gap: 0,
                rating: e.rating,
            }),
        }
    }

    /// The value of one input field.
    pub fn get(&self, field: TokenField) -> u32 {
        self.input[field as usize]
    }

    /// The input fields as the model's integer inputs, in [`TokenField::ALL`] order.
    pub fn fields(&self) -> [i64; TOKEN_FIELDS] {
        self.input.map(i64::from)
    }
}

/// One member's tokens, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenSequence {
    /// The tokens.
    pub tokens: Vec<Token>,
}

impl TokenSequence {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Every token's input fields, in order.
    pub fn field_rows(&self) -> Vec<[i64; TOKEN_FIELDS]> {
        self.tokens.iter().map(Token::fields).collect()
    }

    /// One field of every token, in order.
    pub fn column(&self, field: TokenField) -> Vec<u32> {
        self.tokens.iter().map(|t| t.get(field)).collect()
    }

    /// Number of tokens with a target.
    pub fn n_targets(&self) -> usize {
        self.tokens.iter().filter(|t| t.target.is_some()).count()
    }

    /// Every token's target item (`None` on serving tokens).
    pub fn target_items(&self) -> Vec<Option<u32>> {
        self.tokens
            .iter()
            .map(|t| t.target.map(|t| t.item))
            .collect()
    }

    /// True when token `i` of `self` and token `j` of `other` have the same input fields (the
    /// training-only targets are not compared).
    pub fn same_input(&self, i: usize, other: &Self, j: usize) -> bool {
        self.tokens[i].input == other.tokens[j].input
    }

    /// Appends `other`'s tokens.
    pub fn extend(&mut self, other: &Self) {
        self.tokens.extend_from_slice(&other.tokens);
    }

    /// The tokens in `range`, as a sequence of their own.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            tokens: self.tokens[range].to_vec(),
        }
    }

    /// Appends a token (see [`Token::new`]).
    pub fn push(
        &mut self,
        prev: Option<&RolledEvent>,
        context: &Context,
        target: Option<&RolledEvent>,
    ) {
        self.tokens.push(Token::new(prev, context, target));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_its_own_table_name_and_a_table_that_holds_its_values() {
        let names: std::collections::HashSet<_> =
            TokenField::ALL.iter().map(|f| f.table_name()).collect();
        assert_eq!(names.len(), TOKEN_FIELDS);
        for (i, f) in TokenField::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "ALL is in declaration order");
        }
        // A token at an extreme time and context stays inside every table.
        let ctx = Context {
            timestamp: i64::MAX / 4,
            surface: *Surface::ALL.last().unwrap(),
            device: *DeviceType::ALL.last().unwrap(),
            country: "ZZ".into(),
        };
        let prev = RolledEvent {
            context: ctx.clone(),
            item: 9,
            action: *Action::ALL.last().unwrap(),
            duration_s: 1e12,
            count: 1000,
            last_timestamp: 0,
            rating: None,
        };
        let token = Token::new(Some(&prev), &ctx, None);
        for f in TokenField::ALL {
            assert!(
                (token.get(f) as usize) < f.rows(10),
                "{f:?} = {}",
                token.get(f)
            );
        }
        assert_eq!(token.get(TokenField::PrevItem), 9 + ITEM_OFFSET);
        assert_eq!(token.get(TokenField::PrevCount), COUNT_BUCKETS as u32 - 1);
        // The gap saturates instead of wrapping around at the ends of the time range.
        let far = RolledEvent {
            last_timestamp: i64::MIN,
            ..prev.clone()
        };
        let late = Context {
            timestamp: i64::MAX,
            ..ctx.clone()
        };
        let token = Token::new(Some(&far), &late, None);
        assert_eq!(token.get(TokenField::Gap), GAP_BUCKETS as u32 - 1);
        let first = Token::new(None, &ctx, None);
        assert_eq!(first.input[..4], [START_ITEM, 0, 0, 0]);
        assert_eq!(first.get(TokenField::Gap), 0);
    }

    #[test]
    fn hour_and_weekday_follow_utc() {
        let at = |timestamp: i64| {
            let ctx = Context {
                timestamp,
                surface: Surface::Home,
                device: DeviceType::Tv,
                country: "US".into(),
            };
            let t = Token::new(None, &ctx, None);
            (t.get(TokenField::Hour), t.get(TokenField::Weekday))
        };
        // 1970-01-01 was a Thursday; 2026-12-06 13:30 UTC is a Sunday.
        assert_eq!(at(0), (0, 4));
        assert_eq!(at(1_796_563_800), (13, 0));
        assert_eq!(at(-1), (23, 3));
    }
}
