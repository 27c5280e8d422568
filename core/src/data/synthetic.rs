//! A deterministic synthetic streaming service: a catalog with genres, series, kids titles and
//! titles arriving over time, and members whose tastes drift, who binge series episode after
//! episode, follow daily rhythms and use several surfaces, countries and devices.
//!
//! Each surface behaves its own way, so that what a request's surface asks for is known by
//! construction: **kids** shows kids titles only (kids profiles use it always, and "family"
//! adult profiles in 15% of their sessions); **search** sessions look for one genre, drawn by
//! the member's taste (titles of that genre weigh 80× the others, popularity less); the
//! **mobile feed** (mobile devices) favours series and short titles (3× against 0.3× for films),
//! its plays last half as long and its sessions fall at commute hours (8:00 and 18:00 ± 1 h);
//! **home** follows the member's drifting taste and popularity.
//!
//! The same [`SyntheticWorldConfig`] (seed included) always yields the same world, on every
//! platform: it is the embedded default for the CLI, the tests and the web demo.

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Item, ItemKind};
use super::events::{Action, DeviceType, Event, KNOWN_COUNTRIES, Surface};

/// Genre names of the synthetic catalog.
pub const GENRES: [&str; 14] = [
    "Action",
    "Comedy",
    "Drama",
    "Thriller",
    "Romance",
    "Sci-Fi",
    "Horror",
    "Documentary",
    "Animation",
    "Family",
    "Crime",
    "Fantasy",
    "Mystery",
    "Adventure",
];
const DOCUMENTARY: u8 = 7;
const ANIMATION: u8 = 8;
const FAMILY: u8 = 9;
const LANGUAGES: [&str; 7] = ["en", "es", "fr", "de", "ja", "pt", "hi"];
const ADJECTIVES: [&str; 32] = [
    "Silent",
    "Crimson",
    "Hidden",
    "Last",
    "Broken",
    "Golden",
    "Midnight",
    "Wild",
    "Frozen",
    "Burning",
    "Lost",
    "Electric",
    "Hollow",
    "Secret",
    "Distant",
    "Velvet",
    "Iron",
    "Paper",
    "Restless",
    "Quiet",
    "Savage",
    "Little",
    "Endless",
    "Northern",
    "Bitter",
    "Bright",
    "Dark",
    "Final",
    "Crooked",
    "Gentle",
    "Scarlet",
    "Shattered",
];
const NOUNS: [&str; 32] = [
    "Harbor",
    "Circus",
    "Kingdom",
    "Signal",
    "Garden",
    "Frontier",
    "Orchard",
    "Empire",
    "River",
    "Lantern",
    "Voyage",
    "Protocol",
    "Mountain",
    "Carnival",
    "Station",
    "Archive",
    "Horizon",
    "Tide",
    "Forest",
    "Machine",
    "Summer",
    "Citadel",
    "Witness",
    "Compass",
    "Island",
    "Engine",
    "Meadow",
    "Heist",
    "Dynasty",
    "Echo",
    "Parade",
    "Labyrinth",
];
const KIDS_NOUNS: [&str; 12] = [
    "Puppies",
    "Dragons",
    "Robots",
    "Pirates",
    "Bunnies",
    "Dinosaurs",
    "Rockets",
    "Penguins",
    "Monsters",
    "Fairies",
    "Trains",
    "Owls",
];

/// Parameters of the synthetic world. Defaults give ~2,000 members and ~600 titles over 90 days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticWorldConfig {
    /// Seed of the generator; the world is a pure function of this config.
    pub seed: u64,
    /// Number of members.
    pub members: usize,
    /// Number of titles in the catalog at the end of the period.
    pub titles: usize,
    /// Length of the simulated period in days.
    pub days: u32,
    /// Unix time (s) of the period's start.
    pub start: i64,
    /// Share of titles that arrive during the period instead of before it.
    pub new_title_share: f64,
    /// Share of members that are kids profiles.
    pub kids_profile_share: f64,
    /// Mean number of viewing sessions per member per week.
    pub sessions_per_week: f64,
    /// Titles each choice weighs: 0 (the default) weighs the whole catalog; N draws N titles
    /// uniformly at random (with replacement) and weighs those, so a choice costs O(N)
    /// whatever the catalog's size (for catalogs of a million titles).
    #[serde(default)]
    pub choice_pool: usize,
}

impl Default for SyntheticWorldConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            members: 2000,
            titles: 600,
            days: 90,
            start: 1_767_225_600, // 2026-01-01T00:00:00Z
            new_title_share: 0.25,
            kids_profile_share: 0.1,
            sessions_per_week: 4.0,
            choice_pool: 0,
        }
    }
}

/// A generated catalog and its members' events (sorted by member, then time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticWorld {
    /// The config that produced this world.
    pub config: SyntheticWorldConfig,
    /// The titles.
    pub catalog: Catalog,
    /// All events, grouped by member and sorted by time within a member.
    pub events: Vec<Event>,
}

/// A title's hidden properties that drive the simulation.
struct TitleTraits {
    popularity: f64,
    episodes: u32,
}

/// A member's hidden properties.
struct Member {
    id: u32,
    country: &'static str,
    language: &'static str,
    device: DeviceType,
    kids: bool,
    /// An adult profile that now and then watches with children, on the kids surface.
    family: bool,
    taste: Vec<f64>,
    peak_hour: f64,
    activity: f64,
}

impl SyntheticWorld {
    /// Generates the world described by `config`.
    pub fn generate(config: &SyntheticWorldConfig) -> Self {
        let mut members = SyntheticMembers::new(config);
        let events = members.by_ref().flatten().collect();
        Self {
            config: config.clone(),
            catalog: members.catalog,
            events,
        }
    }
}

/// The synthetic world generated one member at a time, so a world of any size streams in the
/// memory of one member's events: the catalog first, then each member's events (members
/// 1, 2, … in order, each member's events in the order [`SyntheticWorld::generate`] lists
/// them; the concatenation is exactly its `events`).
pub struct SyntheticMembers {
    /// The world's catalog.
    pub catalog: Catalog,
    traits: Vec<TitleTraits>,
    config: SyntheticWorldConfig,
    rng: ChaCha8Rng,
    next_member: usize,
}

impl SyntheticMembers {
    /// The world of `config`, before its first member.
    pub fn new(config: &SyntheticWorldConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let (catalog, traits) = generate_catalog(config, &mut rng);
        Self {
            catalog,
            traits,
            config: config.clone(),
            rng,
            next_member: 0,
        }
    }
}

impl Iterator for SyntheticMembers {
    /// One member's events.
    type Item = Vec<Event>;

    fn next(&mut self) -> Option<Vec<Event>> {
        if self.next_member == self.config.members {
            return None;
        }
        self.next_member += 1;
        let member = generate_member(self.next_member as u32, &self.config, &mut self.rng);
        let mut events = Vec::new();
        simulate_member(
            &member,
            &self.config,
            &self.catalog,
            &self.traits,
            &mut self.rng,
            &mut events,
        );
        Some(events)
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// The suffix of a title's `n`-th sequel (0: none): " II" to " XI", then " 12", " 13", ….
fn sequel_suffix(n: u32) -> String {
    const ROMAN: [&str; 11] = [
        "", " II", " III", " IV", " V", " VI", " VII", " VIII", " IX", " X", " XI",
    ];
    ROMAN
        .get(n as usize)
        .map_or_else(|| format!(" {}", n + 1), |s| s.to_string())
}

fn generate_catalog(
    config: &SyntheticWorldConfig,
    rng: &mut ChaCha8Rng,
) -> (Catalog, Vec<TitleTraits>) {
    let kind_weights = WeightedIndex::new([55.0, 25.0, 8.0, 12.0]).expect("static weights");
    let lang_weights =
        WeightedIndex::new([60.0, 10.0, 7.0, 6.0, 8.0, 5.0, 4.0]).expect("static weights");
    let end = config.start + config.days as i64 * 86_400;
    let mut seen_titles = std::collections::HashSet::new();
    let mut items = Vec::with_capacity(config.titles);
    let mut traits = Vec::with_capacity(config.titles);
    for i in 0..config.titles {
        let kind = ItemKind::ALL[kind_weights.sample(rng)];
        let mut genres: Vec<u8> = match kind {
            ItemKind::Kids => vec![ANIMATION, FAMILY],
            ItemKind::Documentary => vec![DOCUMENTARY],
            _ => {
                let mut g = vec![];
                let n = rng.random_range(1..=3);
                while g.len() < n {
                    let x = rng.random_range(0..GENRES.len() as u8);
                    if ![DOCUMENTARY, ANIMATION, FAMILY].contains(&x) && !g.contains(&x) {
                        g.push(x);
                    }
                }
                g
            }
        };
        if kind == ItemKind::Documentary && rng.random_bool(0.5) {
            genres.push(*pick(rng, &[10u8, 0, 13]));
        }
        genres.sort_unstable();
        let arriving = rng.random_bool(config.new_title_share);
        let added_at = if arriving {
            config.start + rng.random_range(0..(end - config.start).max(1))
        } else {
            config.start - rng.random_range(0..2 * 365 * 86_400)
        };
        let release_year = if arriving {
            2026
        } else {
            rng.random_range(1975..=2025)
        };
        let base = match kind {
            ItemKind::Kids => format!("The {} {}", pick(rng, &ADJECTIVES), pick(rng, &KIDS_NOUNS)),
            ItemKind::Documentary => format!(
                "Inside the {} {}",
                pick(rng, &ADJECTIVES),
                pick(rng, &NOUNS)
            ),
            _ if rng.random_bool(0.4) => {
                format!("The {} {}", pick(rng, &ADJECTIVES), pick(rng, &NOUNS))
            }
            _ => format!("{} {}", pick(rng, &ADJECTIVES), pick(rng, &NOUNS)),
        };
        let mut title = base.clone();
        let mut k = 1;
        while !seen_titles.insert(title.clone()) {
            title = format!("{base}{}", sequel_suffix(k));
            k += 1;
        }
        if kind == ItemKind::Series {
            title = format!("{title}: Season {}", rng.random_range(1..=4));
        }
        // Heavy-tailed popularity (log-normal).
        let z: f64 = (0..6).map(|_| rng.random::<f64>()).sum::<f64>() - 3.0;
        traits.push(TitleTraits {
            popularity: (1.2 * z).exp(),
            episodes: if kind == ItemKind::Series {
                rng.random_range(4..=12)
            } else {
                1
            },
        });
        items.push(Item {
            id: 1000 + i as u32,
            title,
            kind,
            genres,
            language: LANGUAGES[lang_weights.sample(rng)].to_string(),
            release_year,
            added_at,
            content: None,
        });
    }
    let genres = GENRES.iter().map(|g| g.to_string()).collect();
    (
        Catalog::new(genres, items).expect("generated catalog is consistent"),
        traits,
    )
}

fn generate_member(id: u32, config: &SyntheticWorldConfig, rng: &mut ChaCha8Rng) -> Member {
    let country_weights =
        WeightedIndex::new([0.0, 40.0, 12.0, 10.0, 9.0, 12.0, 9.0, 8.0]).expect("static weights");
    let country = KNOWN_COUNTRIES[country_weights.sample(rng)];
    let language = match country {
        "BR" => "pt",
        "FR" => "fr",
        "DE" => "de",
        "JP" => "ja",
        "IN" => "hi",
        _ => "en",
    };
    let kids = rng.random_bool(config.kids_profile_share);
    let family = !kids && rng.random_bool(0.3);
    let mut taste = vec![0.05; GENRES.len()];
    if kids {
        taste[ANIMATION as usize] = 1.0;
        taste[FAMILY as usize] = 1.0;
    } else {
        for _ in 0..rng.random_range(2..=3) {
            taste[rng.random_range(0..GENRES.len())] += rng.random_range(0.6..1.2);
        }
    }
    let device = *pick(
        rng,
        &[
            DeviceType::Tv,
            DeviceType::Tv,
            DeviceType::Mobile,
            DeviceType::Web,
            DeviceType::Tablet,
        ],
    );
    Member {
        id,
        country,
        language,
        device,
        kids,
        family,
        taste,
        peak_hour: if kids {
            16.0
        } else {
            rng.random_range(18.0..22.5)
        },
        activity: rng.random_range(0.4..1.8),
    }
}

/// Score of a title for a member's current taste (log scale).
fn affinity(taste: &[f64], item: &Item) -> f64 {
    let t: f64 = item.genres.iter().map(|&g| taste[g as usize]).sum::<f64>()
        / item.genres.len().max(1) as f64;
    3.0 * t
}

fn simulate_member(
    m: &Member,
    config: &SyntheticWorldConfig,
    catalog: &Catalog,
    traits: &[TitleTraits],
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Event>,
) {
    let mut taste = m.taste.clone();
    let weeks = config.days as f64 / 7.0;
    let sessions = ((config.sessions_per_week * weeks * m.activity) * rng.random_range(0.6..1.4))
        .round()
        .max(3.0) as usize;
    let mut days: Vec<u32> = (0..sessions)
        .map(|_| rng.random_range(0..config.days))
        .collect();
    days.sort_unstable();
    let mut watched = vec![0u32; catalog.len()]; // plays so far, per title
    let mut in_progress: Option<usize> = None; // series being binged
    let first = out.len();
    for day in days {
        // Daily rhythm: hours around the member's peak, weekends a little earlier.
        let weekday = ((config.start / 86_400 + day as i64 + 4) % 7) as u32; // 0 = Sunday
        let shift = if weekday == 0 || weekday == 6 {
            -2.0
        } else {
            0.0
        };
        let device = if rng.random_bool(0.8) {
            m.device
        } else {
            *pick(rng, &DeviceType::ALL)
        };
        // Each surface behaves its own way (see `choose_title`): kids shows kids titles only
        // (kids profiles, and family profiles now and then), the mobile feed short titles at
        // commute hours, search one genre the member looks for, home the drifting taste.
        let surface = if m.kids || (m.family && rng.random_bool(0.15)) {
            Surface::Kids
        } else if device == DeviceType::Mobile && rng.random_bool(0.6) {
            Surface::MobileFeed
        } else if rng.random_bool(0.2) {
            Surface::Search
        } else {
            Surface::Home
        };
        let hour = if surface == Surface::MobileFeed {
            let commute = if rng.random_bool(0.5) { 8.0 } else { 18.0 };
            (commute + (rng.random::<f64>() - 0.5) * 2.0).clamp(6.0, 23.9)
        } else {
            (m.peak_hour + shift + (rng.random::<f64>() - 0.5) * 5.0).clamp(6.0, 23.9)
        };
        let mut t = config.start + day as i64 * 86_400 + (hour * 3600.0) as i64;
        // What a search session looks for: one genre, drawn by the member's taste.
        let intent = (surface == Surface::Search).then(|| {
            WeightedIndex::new(&taste)
                .map(|d| d.sample(rng))
                .unwrap_or(0)
        });
        // Tastes drift: a small random walk, and now and then a new interest.
        for w in taste.iter_mut() {
            *w = (*w * (1.0 + (rng.random::<f64>() - 0.5) * 0.1)).max(0.01);
        }
        if !m.kids && rng.random_bool(0.04) {
            taste[rng.random_range(0..GENRES.len())] += 0.8;
        }
        let n_events = rng.random_range(1..=4);
        for _ in 0..n_events {
            // A binge goes on where the surface allows it (not in a search, not an adult
            // series on the kids surface).
            let binge = in_progress.filter(|&s| {
                surface != Surface::Search
                    && (surface != Surface::Kids || catalog.items[s].kind == ItemKind::Kids)
            });
            let (idx, action) = match binge {
                Some(s) if rng.random_bool(0.7) => (s, Action::Play),
                _ => {
                    let idx = choose_title(
                        m,
                        &taste,
                        surface,
                        intent,
                        t,
                        catalog,
                        traits,
                        &watched,
                        config.choice_pool,
                        rng,
                    );
                    let r: f64 = rng.random();
                    let action = if r < 0.78 {
                        Action::Play
                    } else if r < 0.92 {
                        Action::Trailer
                    } else {
                        Action::AddToList
                    };
                    (idx, action)
                }
            };
            let item = &catalog.items[idx];
            // The mobile feed's plays are shorter.
            let feed = if surface == Surface::MobileFeed {
                0.5
            } else {
                1.0
            };
            let duration_s = match action {
                Action::Play => match item.kind {
                    ItemKind::Series => rng.random_range(1500.0..3300.0) * feed,
                    ItemKind::Kids => rng.random_range(600.0..1500.0) * feed,
                    _ => rng.random_range(2400.0..8000.0) * feed,
                },
                Action::Trailer => rng.random_range(60.0..150.0),
                Action::AddToList => 0.0,
            };
            if action == Action::Play {
                watched[idx] += 1;
                in_progress =
                    if item.kind == ItemKind::Series && watched[idx] < traits[idx].episodes {
                        Some(idx)
                    } else {
                        None
                    };
            }
            out.push(Event {
                member: m.id,
                item: item.id,
                timestamp: t,
                action,
                duration_s: duration_s as f32,
                surface,
                country: m.country.to_string(),
                device,
                rating: None,
            });
            t += duration_s as i64 + rng.random_range(30..600);
        }
    }
    // A late session can run past the next day's start: keep the member's events in time order.
    out[first..].sort_by_key(|e| e.timestamp);
}

#[allow(clippy::too_many_arguments)]
fn choose_title(
    m: &Member,
    taste: &[f64],
    surface: Surface,
    intent: Option<usize>,
    now: i64,
    catalog: &Catalog,
    traits: &[TitleTraits],
    watched: &[u32],
    choice_pool: usize,
    rng: &mut ChaCha8Rng,
) -> usize {
    // Search is deliberate: the genre looked for and tastes weigh more than popularity.
    let (taste_w, pop_w) = if surface == Surface::Search {
        (1.6, 0.3)
    } else {
        (1.0, 0.7)
    };
    // The titles this choice weighs: the whole catalog, or a uniform pool of it.
    let pool: Option<Vec<usize>> = (choice_pool > 0 && choice_pool < catalog.len()).then(|| {
        (0..choice_pool)
            .map(|_| rng.random_range(0..catalog.len()))
            .collect()
    });
    let indices: Box<dyn Iterator<Item = usize>> = match &pool {
        Some(p) => Box::new(p.iter().copied()),
        None => Box::new(0..catalog.len()),
    };
    let weights: Vec<f64> = indices
        .map(|i| ((&catalog.items[i], &traits[i]), &watched[i]))
        .map(|((item, tr), &w)| {
            let is_kids = item.kind == ItemKind::Kids;
            let kids_only = m.kids || surface == Surface::Kids;
            if item.added_at > now || (kids_only && !is_kids) {
                return 0.0;
            }
            let audience = if !kids_only && is_kids { 0.02 } else { 1.0 };
            let looked_for = match intent {
                Some(g) if item.genres.contains(&(g as u8)) => 8.0,
                Some(_) => 0.1,
                None => 1.0,
            };
            let feed = match (surface, item.kind) {
                (Surface::MobileFeed, ItemKind::Series | ItemKind::Kids) => 3.0,
                (Surface::MobileFeed, _) => 0.3,
                _ => 1.0,
            };
            let age_days = (now - item.added_at) as f64 / 86_400.0;
            let fresh = if age_days < 14.0 { 3.0 } else { 1.0 };
            let lang = if item.language == m.language || item.language == "en" {
                1.0
            } else {
                0.25
            };
            let seen = if w > 0 { 0.05 } else { 1.0 };
            (taste_w * affinity(taste, item)).exp()
                * tr.popularity.powf(pop_w)
                * fresh
                * lang
                * seen
                * audience
                * looked_for
                * feed
        })
        .collect();
    match (WeightedIndex::new(&weights), &pool) {
        (Ok(d), Some(p)) => p[d.sample(rng)],
        (Ok(d), None) => d.sample(rng),
        (Err(_), _) => rng.random_range(0..catalog.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SyntheticWorldConfig {
        SyntheticWorldConfig {
            members: 60,
            titles: 120,
            days: 30,
            ..Default::default()
        }
    }

    #[test]
    fn members_stream_the_generated_world_one_at_a_time() {
        let world = SyntheticWorld::generate(&small());
        let mut members = SyntheticMembers::new(&small());
        assert_eq!(members.catalog, world.catalog);
        let streamed: Vec<Vec<Event>> = members.by_ref().collect();
        assert_eq!(streamed.len(), 60);
        assert!(
            streamed
                .iter()
                .enumerate()
                .all(|(i, m)| m.iter().all(|e| e.member == i as u32 + 1))
        );
        assert_eq!(streamed.concat(), world.events);
    }

    #[test]
    fn a_choice_pool_bounds_each_choice_and_a_big_catalog_gets_unique_titles() {
        let whole = SyntheticWorld::generate(&small());
        // A pool as large as the catalog is the whole catalog: the same world.
        let same = SyntheticWorld::generate(&SyntheticWorldConfig {
            choice_pool: 120,
            ..small()
        });
        assert_eq!(same.events, whole.events);
        let pooled = SyntheticWorldConfig {
            choice_pool: 10,
            ..small()
        };
        let a = SyntheticWorld::generate(&pooled);
        assert_ne!(a.events, whole.events);
        assert_eq!(
            a.events,
            SyntheticWorld::generate(&pooled).events,
            "deterministic"
        );
        assert!(
            a.events
                .iter()
                .all(|e| a.catalog.index_of(e.item).is_some())
        );
        // Far more titles than the name lists give bases for: numbered sequels, all unique.
        let big = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 3,
            titles: 40_000,
            choice_pool: 100,
            ..small()
        });
        let titles: std::collections::HashSet<&str> =
            big.catalog.items.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles.len(), 40_000);
        assert!(!big.events.is_empty());
    }

    #[test]
    fn same_seed_same_world_other_seed_other_world() {
        let a = SyntheticWorld::generate(&small());
        let b = SyntheticWorld::generate(&small());
        assert_eq!(a, b);
        let c = SyntheticWorld::generate(&SyntheticWorldConfig { seed: 8, ..small() });
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn world_has_the_promised_structure() {
        let w = SyntheticWorld::generate(&SyntheticWorldConfig {
            members: 200,
            ..small()
        });
        let cfg = &w.config;
        // Events sorted by member then time, and only titles that had arrived.
        for pair in w.events.windows(2) {
            assert!((pair[0].member, pair[0].timestamp) <= (pair[1].member, pair[1].timestamp));
        }
        for e in &w.events {
            assert!(w.catalog.get(e.item).unwrap().added_at <= e.timestamp);
        }
        // New titles arrive during the period.
        assert!(w.catalog.items.iter().any(|i| i.added_at > cfg.start));
        // Series are played episode after episode (same item, consecutive plays).
        let repeats = w
            .events
            .windows(2)
            .filter(|p| p[0].member == p[1].member && p[0].item == p[1].item)
            .count();
        assert!(repeats > w.events.len() / 20, "too few binges: {repeats}");
        // Every surface, several countries and devices occur.
        for s in Surface::ALL {
            assert!(w.events.iter().any(|e| e.surface == s), "no {s:?} events");
        }
        let countries: std::collections::BTreeSet<_> =
            w.events.iter().map(|e| e.country.as_str()).collect();
        assert!(countries.len() >= 4);
        // Kids surface shows kids titles.
        let kids: Vec<_> = w
            .events
            .iter()
            .filter(|e| e.surface == Surface::Kids)
            .collect();
        let kid_titles = kids
            .iter()
            .filter(|e| w.catalog.get(e.item).unwrap().kind == ItemKind::Kids)
            .count();
        assert!(kid_titles * 10 >= kids.len() * 8);
        // Daily rhythm: most events in the afternoon/evening.
        let evening = w
            .events
            .iter()
            .filter(|e| (e.timestamp % 86_400) / 3600 >= 14)
            .count();
        assert!(evening * 10 > w.events.len() * 7);
        // Titles are readable and unique.
        let names: std::collections::HashSet<_> =
            w.catalog.items.iter().map(|i| i.title.clone()).collect();
        assert_eq!(names.len(), w.catalog.len());
    }
}
