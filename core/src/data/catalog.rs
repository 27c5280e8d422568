//! The catalog of titles the model can recommend.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::serving::TitleMetadata;

/// What sort of title an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A feature film.
    Movie,
    /// A series; members play it episode after episode.
    Series,
    /// A documentary.
    Documentary,
    /// A title made for children.
    Kids,
}

impl ItemKind {
    /// Every kind, in index order.
    pub const ALL: [ItemKind; 4] = [
        ItemKind::Movie,
        ItemKind::Series,
        ItemKind::Documentary,
        ItemKind::Kids,
    ];

    /// Dense index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name: `movie`, `series`, `documentary` or `kids`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Movie => "movie",
            Self::Series => "series",
            Self::Documentary => "documentary",
            Self::Kids => "kids",
        }
    }

    /// The kind named `name` (see [`ItemKind::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// External id (what servers and event logs use).
    pub id: u32,
    /// Human-readable title.
    pub title: String,
    /// Movie, series, documentary or kids title.
    pub kind: ItemKind,
    /// Indices into [`Catalog::genres`].
    pub genres: Vec<u8>,
    /// ISO 639-1 language code of the original audio.
    pub language: String,
    /// Year of release.
    pub release_year: u16,
    /// Unix time (s) at which the title arrived in the catalog.
    pub added_at: i64,
    /// Optional external content vector (e.g. a text embedding); all items share one length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<f32>>,
}

/// Errors building a catalog.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    /// Two items share an external id.
    #[error("catalog item id {0} appears more than once")]
    DuplicateId(u32),
    /// An item names a genre index past the genre list.
    #[error("catalog item {item} has genre index {genre}, but only {count} genres are defined")]
    UnknownGenre {
        /// External item id.
        item: u32,
        /// The offending genre index.
        genre: u8,
        /// Number of genres defined.
        count: usize,
    },
    /// An item's `added_at` lies outside ±[`MAX_TIMESTAMP_S`](super::events::MAX_TIMESTAMP_S).
    #[error(
        "catalog item {item} has added_at {added_at}, outside ±{} seconds",
        super::events::MAX_TIMESTAMP_S
    )]
    AddedAtOutOfRange {
        /// External item id.
        item: u32,
        /// The offending time.
        added_at: i64,
    },
    /// Two items' content vectors have different widths.
    #[error(
        "catalog item {item} has a content vector of {len} values, but item {first} has {expected}: \
         every content vector must have the same width"
    )]
    ContentWidth {
        /// External id of the item whose vector differs.
        item: u32,
        /// Its width.
        len: usize,
        /// External id of the first item with a content vector.
        first: u32,
        /// The width of that first vector.
        expected: usize,
    },
}

/// The item ids a model knows, in dense-index order, with the reverse lookup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemVocabulary {
    ids: Vec<u32>,
    index: IdLookup,
}

/// External id → dense index: a direct table when the ids are compact (the usual case: a few
/// lookups per candidate cost nanoseconds), a hash map otherwise.
#[derive(Debug, Clone, PartialEq)]
enum IdLookup {
    /// `table[id - min]` is the dense index, or `u32::MAX`.
    Table { min: u32, table: Vec<u32> },
    /// Any ids.
    Map(HashMap<u32, usize>),
}

impl Default for IdLookup {
    fn default() -> Self {
        IdLookup::Table {
            min: 0,
            table: Vec::new(),
        }
    }
}

/// Dense item rows of external ids: a model's [`ItemVocabulary`], or one extended by titles a
/// request described (rows after the vocabulary's).
pub trait ItemRows {
    /// The dense row of `id`, if known.
    fn row_of(&self, id: u32) -> Option<usize>;
}

impl ItemRows for ItemVocabulary {
    fn row_of(&self, id: u32) -> Option<usize> {
        self.index_of(id)
    }
}

impl ItemVocabulary {
    /// Builds the lookup; fails on the first repeated id.
    pub fn new(ids: Vec<u32>) -> Result<Self, CatalogError> {
        let (min, max) = ids
            .iter()
            .fold((u32::MAX, 0), |(lo, hi), &id| (lo.min(id), hi.max(id)));
        // u64: the span of u32 ids does not fit a 32-bit usize (wasm32).
        let span = if ids.is_empty() {
            0
        } else {
            u64::from(max - min) + 1
        };
        let index = if span <= 4 * ids.len() as u64 + 1024 {
            let mut table = vec![u32::MAX; span as usize];
            for (i, &id) in ids.iter().enumerate() {
                let slot = &mut table[(id - min) as usize];
                if *slot != u32::MAX {
                    return Err(CatalogError::DuplicateId(id));
                }
                *slot = i as u32;
            }
            IdLookup::Table { min, table }
        } else {
            let mut map = HashMap::with_capacity(ids.len());
            for (i, &id) in ids.iter().enumerate() {
                if map.insert(id, i).is_some() {
                    return Err(CatalogError::DuplicateId(id));
                }
            }
            IdLookup::Map(map)
        };
        Ok(Self { ids, index })
    }

    /// Dense index of an external id.
    pub fn index_of(&self, id: u32) -> Option<usize> {
        match &self.index {
            IdLookup::Table { min, table } => id
                .checked_sub(*min)
                .and_then(|k| table.get(k as usize))
                .filter(|&&i| i != u32::MAX)
                .map(|&i| i as usize),
            IdLookup::Map(map) => map.get(&id).copied(),
        }
    }

    /// External ids in dense order.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The set of titles, with a lookup from external id to dense index (0-based, catalog order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Genre names; items refer to them by index.
    pub genres: Vec<String>,
    /// The titles, in dense-index order.
    pub items: Vec<Item>,
    #[serde(skip)]
    vocabulary: ItemVocabulary,
}

impl Catalog {
    /// Builds a catalog, checking ids are unique, genres exist, `added_at` times are in range
    /// and every content vector has the same width.
    pub fn new(genres: Vec<String>, items: Vec<Item>) -> Result<Self, CatalogError> {
        let vocabulary = ItemVocabulary::new(items.iter().map(|i| i.id).collect())?;
        let mut first_content: Option<(u32, usize)> = None;
        for item in &items {
            if let Some(&g) = item.genres.iter().find(|&&g| g as usize >= genres.len()) {
                return Err(CatalogError::UnknownGenre {
                    item: item.id,
                    genre: g,
                    count: genres.len(),
                });
            }
            if !super::events::timestamp_in_range(item.added_at) {
                return Err(CatalogError::AddedAtOutOfRange {
                    item: item.id,
                    added_at: item.added_at,
                });
            }
            if let Some(c) = &item.content {
                match first_content {
                    None => first_content = Some((item.id, c.len())),
                    Some((first, expected)) if c.len() != expected => {
                        return Err(CatalogError::ContentWidth {
                            item: item.id,
                            len: c.len(),
                            first,
                            expected,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Self {
            genres,
            items,
            vocabulary,
        })
    }

    /// The id lookup of this catalog.
    pub fn vocabulary(&self) -> &ItemVocabulary {
        &self.vocabulary
    }

    /// Rebuilds the id lookup (needed after deserializing).
    pub fn reindexed(self) -> Result<Self, CatalogError> {
        Self::new(self.genres, self.items)
    }

    /// Number of titles.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the catalog has no titles.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Dense index of an external id.
    pub fn index_of(&self, id: u32) -> Option<usize> {
        self.vocabulary.index_of(id)
    }

    /// The item with this external id.
    pub fn get(&self, id: u32) -> Option<&Item> {
        self.index_of(id).map(|i| &self.items[i])
    }

    /// What a server would push about title `id` ([`TitleMetadata`]: genre names, kind,
    /// language, release year, arrival time, content vector, title name), if the catalog has it.
    pub fn metadata(&self, id: u32) -> Option<TitleMetadata> {
        let item = self.get(id)?;
        Some(TitleMetadata {
            genres: item
                .genres
                .iter()
                .map(|&g| self.genres[g as usize].clone())
                .collect(),
            kind: item.kind,
            language: item.language.clone(),
            release_year: item.release_year,
            added_at: item.added_at,
            content: item.content.clone(),
            title: Some(item.title.clone()),
        })
    }

    /// External ids in dense-index order (the order the weight file stores items in).
    pub fn ids(&self) -> Vec<u32> {
        self.items.iter().map(|i| i.id).collect()
    }
}

#[cfg(test)]
mod vocabulary_tests {
    use super::*;

    fn item(id: u32, added_at: i64, content: Option<Vec<f32>>) -> Item {
        Item {
            id,
            title: format!("t{id}"),
            kind: ItemKind::Movie,
            genres: vec![0],
            language: "en".into(),
            release_year: 2000,
            added_at,
            content,
        }
    }

    #[test]
    fn far_arrival_times_and_content_vectors_of_another_width_are_refused_by_item() {
        let genres = vec!["drama".to_string()];
        let ok = Catalog::new(
            genres.clone(),
            vec![
                item(1, 5, Some(vec![0.0; 3])),
                item(2, -5, None),
                item(3, 9, Some(vec![1.0; 3])),
            ],
        );
        assert!(ok.is_ok());
        let e = Catalog::new(
            genres.clone(),
            vec![item(1, 0, None), item(2, i64::MAX, None)],
        )
        .unwrap_err();
        assert_eq!(
            e,
            CatalogError::AddedAtOutOfRange {
                item: 2,
                added_at: i64::MAX
            }
        );
        let e = Catalog::new(
            genres,
            vec![
                item(4, 0, Some(vec![0.0; 3])),
                item(5, 0, None),
                item(6, 0, Some(vec![0.0; 2])),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "catalog item 6 has a content vector of 2 values, but item 4 has 3: every content \
             vector must have the same width"
        );
    }

    #[test]
    fn compact_and_sparse_ids_look_up_alike() {
        for ids in [
            vec![1000, 1002, 1001, 1005],
            vec![7, 4_000_000_000, 12, 99_999],
            vec![0, u32::MAX],
        ] {
            let v = ItemVocabulary::new(ids.clone()).unwrap();
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(v.index_of(id), Some(i));
            }
            for absent in [3, 1003, 1006, 13, 4_000_000_001] {
                if !ids.contains(&absent) {
                    assert_eq!(v.index_of(absent), None, "{absent} in {ids:?}");
                }
            }
            let mut twice = ids.clone();
            twice.push(ids[1]);
            assert_eq!(
                ItemVocabulary::new(twice),
                Err(CatalogError::DuplicateId(ids[1]))
            );
        }
        assert_eq!(ItemVocabulary::new(vec![]).unwrap().index_of(0), None);
    }
}
