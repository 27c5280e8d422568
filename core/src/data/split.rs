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

/// Which held-out item of each member a leave-one-out split targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holdout {
    /// Target = the last item; training sees everything before it.
    Test,
    /// Target = the second-to-last item; training sees everything before it (the last item is
    /// never seen), for model selection.
    Validation,
}

/// The leave-one-out protocol: each member's held-out item is the target, the model sees the
/// (up to) `history_window` items before it, and those items are excluded from the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaveOneOut {
    /// Which item is held out.
    pub holdout: Holdout,
    /// How many items before the target the model sees (and the ranking excludes).
    pub history_window: usize,
}

impl LeaveOneOut {
    /// Splits histories: (training histories, held-out cases). Members too short to give both a
    /// target and one history item stay in training only.
    pub fn split(&self, histories: &[MemberHistory]) -> (Vec<MemberHistory>, Vec<HeldOutEvent>) {
        let drop = match self.holdout {
            Holdout::Test => 1,
            Holdout::Validation => 2,
        };
        let mut train = Vec::with_capacity(histories.len());
        let mut cases = Vec::new();
        for h in histories {
            let n = h.events.len();
            if n < drop + 1 {
                train.push(h.clone());
                continue;
            }
            let target = n - drop;
            let from = target.saturating_sub(self.history_window);
            cases.push(HeldOutEvent {
                member: h.member,
                history: h.events[from..target].to_vec(),
                target: h.events[target].clone(),
            });
            train.push(MemberHistory {
                member: h.member,
                events: h.events[..target].to_vec(),
            });
        }
        (train, cases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(member: u32, item: u32, timestamp: i64) -> Event {
        Event::implicit(member, item, timestamp)
    }

    #[test]
    fn equal_timestamps_keep_file_order() {
        let h = group_by_member(&[ev(2, 5, 10), ev(1, 3, 20), ev(1, 4, 10), ev(1, 9, 10)]);
        assert_eq!(
            h[0].events.iter().map(|e| e.item).collect::<Vec<_>>(),
            vec![4, 9, 3]
        );
        assert_eq!(h[1].member, 2);
    }

    #[test]
    fn test_and_validation_targets_and_windows() {
        let h = group_by_member(&(0..6).map(|i| ev(1, 10 + i, i as i64)).collect::<Vec<_>>());
        let test = LeaveOneOut {
            holdout: Holdout::Test,
            history_window: 3,
        };
        let (train, cases) = test.split(&h);
        assert_eq!(cases[0].target.item, 15);
        assert_eq!(
            cases[0].history.iter().map(|e| e.item).collect::<Vec<_>>(),
            vec![12, 13, 14]
        );
        assert_eq!(train[0].events.len(), 5);
        let valid = LeaveOneOut {
            holdout: Holdout::Validation,
            history_window: 200,
        };
        let (train, cases) = valid.split(&h);
        assert_eq!(cases[0].target.item, 14);
        assert_eq!(cases[0].history.len(), 4);
        assert_eq!(train[0].events.last().unwrap().item, 13);
        let short = group_by_member(&[ev(3, 1, 0)]);
        assert_eq!(valid.split(&short).1.len(), 0);
    }
}
