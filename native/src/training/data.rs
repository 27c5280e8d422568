//! Training data: members' histories tokenized into windows, each item's share of the
//! targets, and one epoch's batches.

use anyhow::Context as _;
use encore_core::data::split::MemberHistory;
use encore_core::{Catalog, EventTokenizer, TokenSequence};

use super::distill::TeacherCache;
use super::model::objectives::ItemDistribution;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The training inputs derived from the data: windows (in memory; empty for a streamed
/// source, whose windows are read afresh every epoch), item shares and the items negatives are
/// drawn from (those that had arrived by the latest event), which items were seen, the latest
/// event time, the number of target tokens and of steps per epoch and, when distilling, the
/// teacher's outputs.
pub(super) struct TrainingData {
    pub(super) windows: Vec<TokenSequence>,
    pub(super) steps_per_epoch: usize,
    pub(super) items: ItemDistribution,
    pub(super) seen: Vec<bool>,
    pub(super) reference_time: i64,
    pub(super) total_tokens: usize,
    /// Distillation: the teacher's outputs for every window (set after [`prepare`]).
    pub(super) teacher: Option<TeacherCache>,
}

/// Members' histories read afresh for every pass over them (the statistics pass, then each
/// epoch), one member at a time: a source too large for memory (Parquet shards).
pub trait MemberStream: Sync {
    /// The members, in a fixed order, each with their events in time order.
    fn members(
        &self,
    ) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<MemberHistory>> + '_>>;
}

/// Where training windows come from.
pub(super) enum WindowSource<'a> {
    /// Histories in memory: tokenized once, shuffled over the whole set every epoch.
    Memory(&'a [MemberHistory]),
    /// A stream read every epoch, its windows gathered into chunks of about `chunk` windows,
    /// each chunk shuffled and batched on its own.
    Stream {
        /// The members.
        members: &'a dyn MemberStream,
        /// Windows per chunk (at least one member's windows).
        chunk: usize,
    },
}

/// One member's training windows; with `stats` (target counts per item, latest event time),
/// also adds the member's latest event time and each rolled event's target item once (even
/// where windows overlap).
fn member_windows(
    h: &MemberHistory,
    items: &encore_core::data::catalog::ItemVocabulary,
    tokenizer: &EventTokenizer,
    stats: Option<(&mut [f32], &mut i64)>,
) -> anyhow::Result<Vec<TokenSequence>> {
    let full = tokenizer
        .training_sequence(items, &h.events)
        .with_context(|| format!("member {}", h.member))?;
    if let Some((counts, reference_time)) = stats {
        for e in &h.events {
            *reference_time = (*reference_time).max(e.timestamp);
        }
        for t in full.tokens.iter().filter_map(|t| t.target) {
            counts[t.item as usize] += 1.0;
        }
    }
    Ok(tokenizer.windows(full))
}

/// The training data of `source`: for histories in memory, every window; for a stream, one
/// pass that counts targets, steps and the latest time, holding one chunk at a time.
pub(super) fn prepare(
    source: &WindowSource<'_>,
    catalog: &Catalog,
    tokenizer: &EventTokenizer,
    batch_size: usize,
) -> anyhow::Result<TrainingData> {
    let items = catalog.vocabulary();
    let mut windows: Vec<TokenSequence> = Vec::new();
    let mut counts = vec![0f32; catalog.len()];
    let mut reference_time = i64::MIN;
    let (steps_per_epoch, total_tokens) = match source {
        WindowSource::Memory(histories) => {
            for h in *histories {
                let stats = Some((&mut counts[..], &mut reference_time));
                windows.extend(member_windows(h, items, tokenizer, stats)?);
            }
            let tokens = windows.iter().map(TokenSequence::n_targets).sum();
            (windows.len().div_ceil(batch_size), tokens)
        }
        WindowSource::Stream { members, chunk } => {
            let (mut steps, mut tokens, mut in_chunk) = (0, 0, 0);
            for h in members.members()? {
                let stats = Some((&mut counts[..], &mut reference_time));
                let w = member_windows(&h?, items, tokenizer, stats)?;
                tokens += w.iter().map(TokenSequence::n_targets).sum::<usize>();
                in_chunk += w.len();
                if in_chunk >= *chunk {
                    steps += in_chunk.div_ceil(batch_size);
                    in_chunk = 0;
                }
            }
            (steps + in_chunk.div_ceil(batch_size), tokens)
        }
    };
    anyhow::ensure!(steps_per_epoch > 0, "no training events");
    let total: f32 = counts.iter().sum();
    Ok(TrainingData {
        windows,
        steps_per_epoch,
        items: ItemDistribution::with_drawable(
            counts.iter().map(|c| c / total.max(1.0)).collect(),
            catalog
                .items
                .iter()
                .map(|i| i.added_at <= reference_time)
                .collect(),
        ),
        seen: counts.iter().map(|&c| c > 0.0).collect(),
        reference_time,
        total_tokens,
        teacher: None,
    })
}

/// A stream's windows in the chunks [`prepare`] counted: members tokenized in stream order,
/// a chunk closed once it holds `chunk` windows or more.
pub(super) fn stream_chunks<'a>(
    members: &'a dyn MemberStream,
    chunk: usize,
    catalog: &'a Catalog,
    tokenizer: &'a EventTokenizer,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Vec<TokenSequence>>> + 'a> {
    let mut members = members.members()?;
    Ok(std::iter::from_fn(move || {
        let mut windows = Vec::new();
        for h in members.by_ref() {
            let w = h.and_then(|h| member_windows(&h, catalog.vocabulary(), tokenizer, None));
            match w {
                Ok(w) => windows.extend(w),
                Err(e) => return Some(Err(e)),
            }
            if windows.len() >= chunk {
                return Some(Ok(windows));
            }
        }
        (!windows.is_empty()).then_some(Ok(windows))
    }))
}

/// One epoch's batches of window indices. Shuffled uniformly; with `by_length`, the shuffled
/// windows are stably sorted by length (so equal lengths stay in random order), cut into
/// batches, and the batches shuffled, so a batch pads to little more than its own windows.
pub(super) fn epoch_batches(
    windows: &[TokenSequence],
    batch_size: usize,
    by_length: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.shuffle(rng);
    if !by_length {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    order.sort_by_key(|&i| std::cmp::Reverse(windows[i].len()));
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    batches.shuffle(rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn window(len: usize) -> TokenSequence {
        let token = encore_core::tokenizer::Token {
            input: [0; encore_core::tokenizer::TOKEN_FIELDS],
            target: None,
        };
        TokenSequence {
            tokens: vec![token; len],
        }
    }

    #[test]
    fn length_batches_cover_every_window_once_and_pad_little() {
        let lengths: Vec<usize> = (0..1000).map(|i| 1 + (i * 37) % 200).collect();
        let windows: Vec<TokenSequence> = lengths.iter().map(|&n| window(n)).collect();
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap())
                .sum()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let by_length = epoch_batches(&windows, 64, true, &mut rng);
        let uniform = epoch_batches(&windows, 64, false, &mut rng);
        for batches in [&by_length, &uniform] {
            let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..1000).collect::<Vec<_>>());
            assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 64));
        }
        let real: usize = lengths.iter().sum();
        // Sorted batches pad to within one batch's spread; uniform ones to ≈ the maximum.
        assert!(
            padded(&by_length) < real * 11 / 10,
            "{}",
            padded(&by_length)
        );
        assert!(padded(&uniform) > real * 3 / 2, "{}", padded(&uniform));
        // The same seed gives the same batches; the order of batches is shuffled.
        let again = epoch_batches(&windows, 64, true, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(again, by_length);
        let first_lengths: Vec<usize> = by_length.iter().map(|b| lengths[b[0]]).collect();
        assert!(first_lengths.windows(2).any(|w| w[0] < w[1]));
        assert!(first_lengths.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn negatives_are_drawn_among_the_titles_that_arrived_by_the_last_training_event() {
        use encore_core::data::catalog::{Item, ItemKind};
        use encore_core::data::events::Event;
        let item = |id: u32, added_at: i64| Item {
            id,
            title: format!("t{id}"),
            kind: ItemKind::Movie,
            genres: vec![],
            language: "en".into(),
            release_year: 2000,
            added_at,
            content: None,
        };
        // Title 3 has no events but was in the catalog; title 4 arrives after the last event.
        let catalog = Catalog::new(
            vec![],
            vec![item(1, 0), item(2, 0), item(3, 50), item(4, 301)],
        )
        .unwrap();
        let events = [(1, 100), (2, 200), (1, 300)]
            .map(|(i, t)| Event::implicit(7, i, t))
            .to_vec();
        let histories = [MemberHistory { member: 7, events }];
        let data = prepare(
            &WindowSource::Memory(&histories),
            &catalog,
            &EventTokenizer::new(8),
            4,
        )
        .unwrap();
        assert_eq!(data.reference_time, 300);
        assert_eq!(data.seen, [true, true, false, false]);
        assert_eq!(data.items.drawable, [true, true, true, false]);
        assert_eq!(data.items.n_drawable(), 3);
        // Three targets (1, 2, 1): shares by item.
        assert_eq!(data.items.share, [2.0 / 3.0, 1.0 / 3.0, 0.0, 0.0]);
    }
}
