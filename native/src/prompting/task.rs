//! Tasks a prompt is tuned for: which next events count (a surface's, a genre's, recent
//! releases, well-rated ones, weekend requests, members with short histories), read from a
//! short spec.

use encore_core::data::events::Surface;
use encore_core::tokenizer::{Token, TokenField};
use encore_core::{Catalog, Event};

/// Seconds in a (Julian) year, for release ages.
const YEAR_S: f64 = 365.25 * 86_400.0;

/// Which next events a prompt is tuned and measured on.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptTask {
    /// Every next event (the foundation model's own task).
    NextItem,
    /// Next events served on this surface (`surface=NAME`).
    Surface(Surface),
    /// Next events whose title has one of these catalog genres (`genre=A|B`).
    Genre(Vec<String>),
    /// Next events of a title released at most this many years before the event
    /// (`recent=YEARS`).
    RecentRelease(u16),
    /// Next events the member rated at least this much (`rating>=N`; events without a rating
    /// never count).
    MinRating(u8),
    /// Next events on a Saturday or Sunday, UTC (`weekend`).
    Weekend,
    /// Every next event of members with at most this many training events (`history<=N`).
    ShortHistory(usize),
}

impl PromptTask {
    /// Parses a spec: `next`, `surface=NAME`, `genre=A|B`, `recent=YEARS`, `rating>=N`,
    /// `weekend` or `history<=N`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let bad = |why: &str| {
            format!(
                "task {spec:?}: {why} (expected next, surface=NAME, genre=A|B, recent=YEARS, \
                 rating>=N, weekend or history<=N)"
            )
        };
        if spec == "next" {
            return Ok(Self::NextItem);
        }
        if spec == "weekend" {
            return Ok(Self::Weekend);
        }
        if let Some(n) = spec.strip_prefix("rating>=") {
            return match n.parse() {
                Ok(r) if r >= 1 => Ok(Self::MinRating(r)),
                _ => Err(bad("not a rating from 1 to 255")),
            };
        }
        if let Some(n) = spec.strip_prefix("history<=") {
            return n
                .parse()
                .map(Self::ShortHistory)
                .map_err(|_| bad("not a number of events"));
        }
        let Some((key, value)) = spec.split_once('=') else {
            return Err(bad("unknown task"));
        };
        match key {
            "surface" => Surface::from_name(value)
                .map(Self::Surface)
                .ok_or_else(|| bad("unknown surface")),
            "genre" => {
                let names: Vec<String> = value.split('|').map(str::to_string).collect();
                if names.iter().any(String::is_empty) {
                    return Err(bad("empty genre name"));
                }
                Ok(Self::Genre(names))
            }
            "recent" => value
                .parse()
                .map(Self::RecentRelease)
                .map_err(|_| bad("not a number of years")),
            _ => Err(bad("unknown task")),
        }
    }

    /// A prompt set name for this task when none is given: the surface's name, `recent`,
    /// `rated_N`, `weekend`, `short_history`, the genres joined by `+`, or `next`.
    pub fn default_name(&self) -> String {
        match self {
            Self::NextItem => "next".into(),
            Self::Surface(s) => s.name().into(),
            Self::Genre(g) => g.join("+"),
            Self::RecentRelease(_) => "recent".into(),
            Self::MinRating(r) => format!("rated_{r}"),
            Self::Weekend => "weekend".into(),
            Self::ShortHistory(_) => "short_history".into(),
        }
    }

    /// Checks the task against the catalog: every genre it names must exist.
    pub fn check(&self, catalog: &Catalog) -> Result<(), String> {
        if let Self::Genre(names) = self {
            for n in names {
                if !catalog.genres.iter().any(|g| g == n) {
                    return Err(format!(
                        "task genre {n:?} is not one of the catalog's: {:?}",
                        catalog.genres
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a member with `member_events` training events is part of the task at all.
    pub fn accepts_member(&self, member_events: usize) -> bool {
        match self {
            Self::ShortHistory(n) => member_events <= *n,
            _ => true,
        }
    }

    /// Whether the next event `item` (catalog row) at `timestamp` on `surface`, on weekday
    /// `weekday` (0 = Sunday), rated `rating`, is one of the task's targets.
    fn accepts(
        &self,
        catalog: &Catalog,
        item: usize,
        timestamp: i64,
        surface: Surface,
        weekday: u32,
        rating: Option<u8>,
    ) -> bool {
        match self {
            Self::MinRating(min) => rating.is_some_and(|r| r >= *min),
            Self::NextItem | Self::ShortHistory(_) => true,
            Self::Surface(s) => surface == *s,
            Self::Weekend => weekday == 0 || weekday == 6,
            Self::Genre(names) => catalog.items[item].genres.iter().any(|&g| {
                catalog
                    .genres
                    .get(g as usize)
                    .is_some_and(|name| names.contains(name))
            }),
            Self::RecentRelease(years) => {
                let year = 1970.0 + timestamp as f64 / YEAR_S;
                let released = f64::from(catalog.items[item].release_year);
                released > 0.0 && year - released <= f64::from(*years) + 1.0
            }
        }
    }

    /// Whether a training token's target is one of the task's (the token's context fields are
    /// its target event's request; its target item is a catalog row).
    pub fn accepts_token(&self, catalog: &Catalog, token: &Token) -> bool {
        let Some(target) = token.target else {
            return false;
        };
        let surface = Surface::ALL
            .get(token.get(TokenField::Surface) as usize)
            .copied()
            .unwrap_or(Surface::Home);
        let weekday = token.get(TokenField::Weekday);
        self.accepts(
            catalog,
            target.item as usize,
            target.timestamp,
            surface,
            weekday,
            target.rating,
        )
    }

    /// Whether a held-out event is one of the task's targets.
    pub fn accepts_event(&self, catalog: &Catalog, event: &Event) -> bool {
        let Some(item) = catalog.index_of(event.item) else {
            return false;
        };
        let weekday = encore_core::data::events::weekday(event.timestamp);
        self.accepts(
            catalog,
            item,
            event.timestamp,
            event.surface,
            weekday,
            event.rating,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_refused_by_name() {
        assert_eq!(PromptTask::parse("next"), Ok(PromptTask::NextItem));
        assert_eq!(
            PromptTask::parse("surface=kids"),
            Ok(PromptTask::Surface(Surface::Kids))
        );
        assert_eq!(
            PromptTask::parse("genre=Children's|Animation"),
            Ok(PromptTask::Genre(vec![
                "Children's".into(),
                "Animation".into()
            ]))
        );
        assert_eq!(
            PromptTask::parse("recent=2"),
            Ok(PromptTask::RecentRelease(2))
        );
        assert_eq!(PromptTask::parse("weekend"), Ok(PromptTask::Weekend));
        assert_eq!(PromptTask::parse("rating>=4"), Ok(PromptTask::MinRating(4)));
        assert_eq!(
            PromptTask::parse("history<=10"),
            Ok(PromptTask::ShortHistory(10))
        );
        for bad in [
            "surface=moon",
            "genre=",
            "recent=soon",
            "history<=x",
            "rating>=0",
            "rating>=five",
            "rated",
        ] {
            let e = PromptTask::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(
            PromptTask::parse("surface=kids").unwrap().default_name(),
            "kids"
        );
    }

    /// The catalog of a tiny synthetic world.
    fn small_catalog() -> Catalog {
        encore_core::SyntheticWorld::generate(&encore_core::SyntheticWorldConfig {
            members: 2,
            titles: 10,
            days: 5,
            ..Default::default()
        })
        .catalog
    }

    #[test]
    fn the_weekday_of_an_event_is_its_utc_day() {
        let catalog = small_catalog();
        let mut e = Event::implicit(1, catalog.items[0].id, 0); // Thursday 1 January 1970
        assert!(!PromptTask::Weekend.accepts_event(&catalog, &e));
        e.timestamp = 2 * 86_400 + 3600; // Saturday
        assert!(PromptTask::Weekend.accepts_event(&catalog, &e));
        e.timestamp = 3 * 86_400 + 86_399; // Sunday, last second
        assert!(PromptTask::Weekend.accepts_event(&catalog, &e));
        e.timestamp = 4 * 86_400; // Monday
        assert!(!PromptTask::Weekend.accepts_event(&catalog, &e));
    }

    #[test]
    fn a_rating_task_takes_rated_targets_at_or_above_its_bound() {
        let catalog = small_catalog();
        let task = PromptTask::MinRating(4);
        assert_eq!(task.default_name(), "rated_4");
        let ids: Vec<u32> = catalog.items.iter().map(|i| i.id).collect();
        let rated = |item: u32, t: i64, rating: Option<u8>| Event {
            rating,
            ..Event::implicit(1, item, t)
        };
        for (rating, accepted) in [
            (None, false),
            (Some(3), false),
            (Some(4), true),
            (Some(5), true),
        ] {
            assert_eq!(
                task.accepts_event(&catalog, &rated(ids[0], 100, rating)),
                accepted,
                "{rating:?}"
            );
        }
        // Training tokens carry their target's rating: the task picks the rated positions.
        let events = vec![
            rated(ids[0], 100, Some(5)),
            rated(ids[1], 200, Some(2)),
            rated(ids[2], 300, Some(4)),
            rated(ids[3], 400, None),
        ];
        let tokenizer = encore_core::tokenizer::EventTokenizer::new(8);
        let windows = tokenizer
            .training_windows(catalog.vocabulary(), &events)
            .unwrap();
        let picked: Vec<u32> = windows
            .iter()
            .flat_map(|w| &w.tokens)
            .filter(|t| task.accepts_token(&catalog, t))
            .map(|t| t.target.unwrap().item)
            .collect();
        let row = |id: u32| catalog.index_of(id).unwrap() as u32;
        assert_eq!(picked, vec![row(ids[0]), row(ids[2])]);
    }
}
