//! The interaction event: when (timestamp), where (country, device, surface), what (item,
//! action, duration).

use serde::{Deserialize, Serialize};

/// Where on the service a request or interaction happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// The home page rows.
    Home,
    /// Search results.
    Search,
    /// The kids profile.
    Kids,
    /// The mobile feed.
    MobileFeed,
}

impl Surface {
    /// Every surface, in index order.
    pub const ALL: [Surface; 4] = [
        Surface::Home,
        Surface::Search,
        Surface::Kids,
        Surface::MobileFeed,
    ];

    /// Dense index used by the model's embedding tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lowercase name used in files, the CLI and JavaScript (`home`, `search`, `kids`, `mobile_feed`).
    pub fn name(self) -> &'static str {
        match self {
            Surface::Home => "home",
            Surface::Search => "search",
            Surface::Kids => "kids",
            Surface::MobileFeed => "mobile_feed",
        }
    }

    /// Parses a name as written by [`Surface::name`].
    pub fn from_name(name: &str) -> Option<Surface> {
        Surface::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What the member did with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Watched (part of) the title.
    Play,
    /// Watched the trailer only.
    Trailer,
    /// Added the title to their list.
    AddToList,
}

impl Action {
    /// Every action, in index order.
    pub const ALL: [Action; 3] = [Action::Play, Action::Trailer, Action::AddToList];

    /// Dense index used by the model's embedding tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lowercase name used in files and JavaScript.
    pub fn name(self) -> &'static str {
        match self {
            Action::Play => "play",
            Action::Trailer => "trailer",
            Action::AddToList => "add_to_list",
        }
    }

    /// Parses a name as written by [`Action::name`].
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The kind of device the member used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// A television or set-top box.
    Tv,
    /// A phone.
    Mobile,
    /// A desktop web browser.
    Web,
    /// A tablet.
    Tablet,
}

impl DeviceType {
    /// Every device type, in index order.
    pub const ALL: [DeviceType; 4] = [
        DeviceType::Tv,
        DeviceType::Mobile,
        DeviceType::Web,
        DeviceType::Tablet,
    ];

    /// Dense index used by the model's embedding tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lowercase name used in files and JavaScript.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Tv => "tv",
            DeviceType::Mobile => "mobile",
            DeviceType::Web => "web",
            DeviceType::Tablet => "tablet",
        }
    }

    /// Parses a name as written by [`DeviceType::name`].
    pub fn from_name(name: &str) -> Option<DeviceType> {
        DeviceType::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Number of country slots the model reserves (ISO codes are mapped by [`country_index`]).
pub const MAX_COUNTRIES: usize = 32;

/// The countries the synthetic world uses, in index order; any other code maps to slot 0 ("other").
pub const KNOWN_COUNTRIES: [&str; 8] = ["??", "US", "GB", "DE", "FR", "BR", "JP", "IN"];

/// Dense index of an ISO country code, 0 for an unknown one.
pub fn country_index(code: &str) -> usize {
    KNOWN_COUNTRIES.iter().position(|c| *c == code).unwrap_or(0)
}

/// The largest magnitude a timestamp may have (Unix seconds, about 31.7 million years either
/// side of 1970): every parser and the runtime refuse times beyond it, so differences of two
/// times never overflow.
pub const MAX_TIMESTAMP_S: i64 = 1_000_000_000_000_000;

/// The UTC hour of Unix time `t`, 0 to 23.
pub fn hour_of_day(t: i64) -> u32 {
    (t.rem_euclid(86_400) / 3600) as u32
}

/// The UTC weekday of Unix time `t`, 0 = Sunday to 6 = Saturday (1 January 1970 was a
/// Thursday).
pub fn weekday(t: i64) -> u32 {
    (t.div_euclid(86_400) + 4).rem_euclid(7) as u32
}

/// True when `t` (Unix seconds) lies within ±[`MAX_TIMESTAMP_S`].
pub fn timestamp_in_range(t: i64) -> bool {
    t.checked_abs().is_some_and(|a| a <= MAX_TIMESTAMP_S)
}

/// One interaction of a member with an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The member (external id).
    pub member: u32,
    /// The item (external id, as in the catalog).
    pub item: u32,
    /// Unix time in seconds (UTC).
    pub timestamp: i64,
    /// What the member did.
    pub action: Action,
    /// Seconds watched (0 for actions that are not plays).
    pub duration_s: f32,
    /// Where it happened.
    pub surface: Surface,
    /// ISO 3166 alpha-2 country code.
    pub country: String,
    /// The device used.
    pub device: DeviceType,
    /// The member's explicit rating of the item (MovieLens: 1 to 5 stars), when the log has
    /// one. The model does not read it; tasks and metrics may (e.g. "the next item rated 4 or
    /// more").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<u8>,
}

impl Event {
    /// An implicit interaction with no context (a rating, a purchase): a `play` on the home
    /// surface, from an unknown country on the web.
    pub fn implicit(member: u32, item: u32, timestamp: i64) -> Self {
        Self {
            member,
            item,
            timestamp,
            action: Action::Play,
            duration_s: 0.0,
            surface: Surface::Home,
            country: "??".into(),
            device: DeviceType::Web,
            rating: None,
        }
    }
}
