//! Arbitrary event sequences (any item, including ones the catalog lacks, any time, any
//! duration, any context) through the tokenizer with an arbitrary window, roll-up and window
//! step: an unknown item is refused by position; otherwise every token field indexes inside its
//! embedding table, training windows hold at most `max_len` tokens and cover the sequence, a
//! history rolled up in two pieces equals it rolled up at once, and the serving window holds at
//! most `max_len` tokens ending in the request.
#![no_main]

use encore_core::data::catalog::ItemVocabulary;
use encore_core::tokenizer::{Context, TokenField};
use encore_core::{Action, DeviceType, Event, EventTokenizer, Surface};
use libfuzzer_sys::fuzz_target;

const ITEMS: u32 = 12;
const COUNTRIES: [&str; 4] = ["US", "FR", "", "ZZZ"];

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fn event(data: &mut &[u8]) -> Option<Event> {
    let [item, action, surface, device, country] = take::<5>(data)?;
    let timestamp = i64::from_le_bytes(take::<8>(data)?);
    let duration_s = f32::from_le_bytes(take::<4>(data)?);
    Some(Event {
        member: 1,
        // Ids 100..100 + ITEMS are in the catalog; a few past it are not.
        item: 100 + u32::from(item) % (ITEMS + 2),
        timestamp,
        action: Action::ALL[usize::from(action) % Action::ALL.len()],
        duration_s,
        surface: Surface::ALL[usize::from(surface) % Surface::ALL.len()],
        country: COUNTRIES[usize::from(country) % COUNTRIES.len()].to_string(),
        device: DeviceType::ALL[usize::from(device) % DeviceType::ALL.len()],
        // The action byte's high bits: none (0) or a rating 1 to 15.
        rating: Some(action >> 4).filter(|&r| r > 0),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some([max_len, rollup, step, split]) = take::<4>(&mut data) else {
        return;
    };
    let max_len = 1 + usize::from(max_len) % 40;
    let tokenizer = EventTokenizer::new(max_len)
        .with_rollup(u64::from(rollup) * 97)
        .with_window_step(usize::from(step));
    let catalog = ItemVocabulary::new((100..100 + ITEMS).collect()).unwrap();
    let mut events = Vec::new();
    while let Some(e) = event(&mut data) {
        events.push(e);
    }

    let rolled = match tokenizer.roll_up(&catalog, &events) {
        Ok(rolled) => rolled,
        Err(unknown) => {
            assert_eq!(events[unknown.position].item, unknown.item);
            assert!(unknown.item >= 100 + ITEMS);
            assert!(
                events[..unknown.position]
                    .iter()
                    .all(|e| e.item < 100 + ITEMS)
            );
            return;
        }
    };
    assert!(rolled.len() <= events.len());
    assert_eq!(
        rolled.iter().map(|r| r.count as usize).sum::<usize>(),
        events.len()
    );
    // In two pieces, the same.
    let cut = usize::from(split).min(events.len());
    let mut pieces = Vec::new();
    tokenizer
        .roll_up_onto(&catalog, &events[..cut], 0, &mut pieces)
        .unwrap();
    tokenizer
        .roll_up_onto(&catalog, &events[cut..], cut, &mut pieces)
        .unwrap();
    assert_eq!(pieces, rolled);

    let in_tables = |input: &[u32; 10]| {
        TokenField::ALL
            .iter()
            .zip(input)
            .all(|(field, &v)| (v as usize) < field.rows(ITEMS as usize))
    };
    let sequence = tokenizer.training_sequence(&catalog, &events).unwrap();
    assert_eq!(sequence.len(), rolled.len());
    for token in &sequence.tokens {
        assert!(in_tables(&token.input), "{token:?}");
        let target = token.target.expect("a training token has a target");
        assert!(target.item < ITEMS);
    }
    let windows = tokenizer.windows(sequence.clone());
    assert!(windows.iter().all(|w| !w.is_empty() && w.len() <= max_len));
    let covered: usize = windows.iter().map(|w| w.len()).sum();
    assert!(covered >= sequence.len());
    if let (Some(first), Some(last)) = (windows.first(), windows.last()) {
        assert_eq!(first.tokens[0], sequence.tokens[0]);
        assert_eq!(last.tokens.last(), sequence.tokens.last());
    }

    let request = events.last().map(Context::of).unwrap_or(Context {
        timestamp: 0,
        surface: Surface::ALL[0],
        device: DeviceType::ALL[0],
        country: String::new(),
    });
    let serving = tokenizer
        .serving_sequence(&catalog, &events, &request)
        .unwrap();
    assert!(!serving.is_empty() && serving.len() <= max_len);
    assert_eq!(
        serving.len(),
        rolled.len() - tokenizer.window_start(rolled.len()) + 1
    );
    assert!(
        serving
            .tokens
            .iter()
            .all(|t| in_tables(&t.input) && t.target.is_none())
    );
});
