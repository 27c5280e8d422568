//! Grouping events into member histories and the leave-last-out evaluation split.

use super::events::Event;

/// One member's events in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHistory {
    /// External member id.
    pub member: u32,
    /// Events sorted by timestamp (ties keep their input order).
    pub events: Vec<Event>,
}

/// A held-out next event: the model sees `history` and must rank `target.item` high.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutEvent {
    /// External member id.
    pub member: u32,
    /// Everything the member did before the target.
    pub history: Vec<Event>,
    /// The event to predict.
    pub target: Event,
}

/// Groups events by member (ascending id); each member's events are sorted by time, stably.
pub fn group_by_member(events: &[Event]) -> Vec<MemberHistory> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| (e.member, e.timestamp));
    let mut out: Vec<MemberHistory> = Vec::new();
    for e in sorted {
        match out.last_mut() {
            Some(h) if h.member == e.member => h.events.push(e.clone()),
            _ => out.push(MemberHistory {
                member: e.member,
                events: vec![e.clone()],
            }),
        }
    }
    out
}

/// Holds out each member's last event. Members with fewer than two events stay in training only.
/// Returns (training histories without the held-out events, held-out events).
pub fn leave_last_out(histories: &[MemberHistory]) -> (Vec<MemberHistory>, Vec<HeldOutEvent>) {
    let mut train = Vec::with_capacity(histories.len());
    let mut test = Vec::new();
    for h in histories {
        if h.events.len() >= 2 {
            let (target, history) = h.events.split_last().expect("len >= 2");
            train.push(MemberHistory {
                member: h.member,
                events: history.to_vec(),
            });
            test.push(HeldOutEvent {
                member: h.member,
                history: history.to_vec(),
                target: target.clone(),
            });
        } else {
            train.push(h.clone());
        }
    }
    (train, test)
}
