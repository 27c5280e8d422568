//! MovieLens-1M and MovieLens-100K, parsed from the files' bytes into a [`Catalog`] and events.
//!
//! Every rating becomes one implicit interaction (a `play` on the home surface; the rating value
//! is not used). Titles are decoded as Latin-1, the files' encoding. A title arrives in the
//! catalog at its first rating. Content vectors (e.g. `movie_text_emb.f32`) are attached with
//! [`attach_content_vectors`].

use super::catalog::{Catalog, Item, ItemKind};
use super::events::Event;
use super::source::{DataError, LineOptions, LineReader};

/// A MovieLens data set: the catalog and every rating as an event, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct MovieLens {
    /// Every movie of the movie file, in file order.
    pub catalog: Catalog,
    /// One event per rating, in file order.
    pub events: Vec<Event>,
    /// Lines skipped as malformed (only when [`LineOptions::skip_bad_lines`] is set).
    pub skipped_lines: usize,
}

/// The 18 MovieLens-1M genres, in the README's order.
pub const ML1M_GENRES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The 19 MovieLens-100K genres (`u.genre` order): "unknown", then the 18 of MovieLens-1M.
pub fn ml100k_genres() -> impl Iterator<Item = &'static str> {
    std::iter::once("unknown").chain(ML1M_GENRES)
}

/// Decodes Latin-1 bytes (every byte is the code point of the same value).
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The year at the end of a MovieLens title, "Heat (1995)" → 1995.
fn year_of_title(title: &str) -> Option<u16> {
    let t = title.trim_end();
    let open = t.rfind('(')?;
    t[open + 1..].strip_suffix(')')?.parse().ok()
}

/// Parses `user SEP item SEP rating SEP timestamp` lines into implicit events carrying their
/// rating, in file order.
/// Returns the events and the number of skipped lines.
fn parse_ratings(
    file: &str,
    bytes: &[u8],
    sep: &str,
    options: LineOptions,
) -> Result<(Vec<Event>, usize), DataError> {
    let mut events = Vec::new();
    let mut reader = LineReader::new(file, bytes, options);
    while let Some((n, raw)) = reader.next_line() {
        let parsed = (|| {
            let text = std::str::from_utf8(raw).map_err(|_| "not ASCII text".to_string())?;
            let f: Vec<&str> = text.split(sep).collect();
            if f.len() != 4 {
                return Err(format!(
                    "expected 4 fields separated by {sep:?}, found {}",
                    f.len()
                ));
            }
            let rating = parse_u32(f[2], "rating")?;
            if !(1..=5).contains(&rating) {
                return Err(format!("rating {rating} is outside 1..=5"));
            }
            Ok(Event {
                rating: Some(rating as u8),
                ..Event::implicit(
                    parse_u32(f[0], "user id")?,
                    parse_u32(f[1], "movie id")?,
                    parse_timestamp(f[3])?,
                )
            })
        })();
        if let Some(e) = reader.accept(n, parsed)? {
            events.push(e);
        }
    }
    Ok((events, reader.skipped()))
}

/// A MovieLens movie (arrival time set later from its first rating).
fn movie(id: u32, title: &str, genres: Vec<u8>, release_year: u16) -> Item {
    Item {
        id,
        title: title.to_string(),
        kind: ItemKind::Movie,
        genres,
        language: "en".into(),
        release_year,
        added_at: 0,
        content: None,
    }
}

fn parse_u32(field: &str, what: &str) -> Result<u32, String> {
    field
        .trim()
        .parse()
        .map_err(|_| format!("{what} {field:?} is not a non-negative integer"))
}

fn parse_i64(field: &str, what: &str) -> Result<i64, String> {
    field
        .trim()
        .parse()
        .map_err(|_| format!("{what} {field:?} is not an integer"))
}

/// A timestamp field: an integer within ±[`MAX_TIMESTAMP_S`](super::events::MAX_TIMESTAMP_S).
fn parse_timestamp(field: &str) -> Result<i64, String> {
    let t = parse_i64(field, "timestamp")?;
    if super::events::timestamp_in_range(t) {
        Ok(t)
    } else {
        Err(format!(
            "timestamp {t} is outside ±{} seconds",
            super::events::MAX_TIMESTAMP_S
        ))
    }
}

/// Sets each catalog item's `added_at` to its first event among `events` (items without
/// events: the last event's time). MovieLens has no release dates on the service, so a
/// title's arrival is its first rating.
///
/// The parsers set it from every rating in the file; an experiment that holds ratings out
/// must set it again from its training events alone, or a title rated only as a held-out
/// target (or withheld for cold start) would keep an age derived from that held-out rating.
pub fn set_arrival_times<'a>(catalog: &mut Catalog, events: impl IntoIterator<Item = &'a Event>) {
    let mut first = vec![i64::MAX; catalog.len()];
    let mut last = i64::MIN;
    for e in events {
        last = last.max(e.timestamp);
        if let Some(i) = catalog.index_of(e.item) {
            first[i] = first[i].min(e.timestamp);
        }
    }
    let last = if last == i64::MIN { 0 } else { last };
    for (item, t) in catalog.items.iter_mut().zip(first) {
        item.added_at = if t == i64::MAX { last } else { t };
    }
}

fn build<'a>(
    genres: impl IntoIterator<Item = &'a str>,
    items: Vec<Item>,
    events: Vec<Event>,
    ratings_file: &str,
    skipped_lines: usize,
) -> Result<MovieLens, DataError> {
    let ids = super::catalog::ItemVocabulary::new(items.iter().map(|i| i.id).collect())
        .map_err(|e| DataError::whole_file("movie file", e.to_string()))?;
    if let Some((n, e)) = events
        .iter()
        .enumerate()
        .find(|(_, e)| ids.index_of(e.item).is_none())
    {
        return Err(DataError::whole_file(
            ratings_file,
            format!(
                "rating {} names movie {}, which the movie file does not list",
                n + 1,
                e.item
            ),
        ));
    }
    let mut catalog = Catalog::new(genres.into_iter().map(str::to_string).collect(), items)
        .map_err(|e| DataError::whole_file("movie file", e.to_string()))?;
    set_arrival_times(&mut catalog, &events);
    Ok(MovieLens {
        catalog,
        events,
        skipped_lines,
    })
}

/// Parses MovieLens-1M: `movies.dat` (`MovieID::Title (Year)::Genre|Genre`, Latin-1) and
/// `ratings.dat` (`UserID::MovieID::Rating::Timestamp`).
pub fn parse_ml1m(
    movies: &[u8],
    ratings: &[u8],
    options: LineOptions,
) -> Result<MovieLens, DataError> {
    let mut items = Vec::new();
    let mut reader = LineReader::new("movies.dat", movies, options);
    while let Some(line) = reader.next_line() {
        let (n, raw) = line;
        let text = latin1(raw);
        let parsed = (|| {
            let f: Vec<&str> = text.split("::").collect();
            if f.len() != 3 {
                return Err(format!(
                    "expected 3 fields separated by '::', found {}",
                    f.len()
                ));
            }
            let id = parse_u32(f[0], "movie id")?;
            let mut genres = Vec::new();
            for g in f[2].split('|').filter(|g| !g.is_empty()) {
                let i = ML1M_GENRES
                    .iter()
                    .position(|k| *k == g)
                    .ok_or_else(|| format!("unknown genre {g:?}"))?;
                genres.push(i as u8);
            }
            Ok(movie(id, f[1], genres, year_of_title(f[1]).unwrap_or(0)))
        })();
        if let Some(item) = reader.accept(n, parsed)? {
            items.push(item);
        }
    }
    let mut skipped = reader.skipped();
    let (events, bad) = parse_ratings("ratings.dat", ratings, "::", options)?;
    skipped += bad;
    build(ML1M_GENRES, items, events, "ratings.dat", skipped)
}

/// Parses MovieLens-100K: `u.item` (`id|title|release date|video date|url|19 genre flags`,
/// Latin-1) and `u.data` (`user \t item \t rating \t timestamp`).
pub fn parse_ml100k(
    items_file: &[u8],
    data: &[u8],
    options: LineOptions,
) -> Result<MovieLens, DataError> {
    let mut items = Vec::new();
    let mut reader = LineReader::new("u.item", items_file, options);
    while let Some((n, raw)) = reader.next_line() {
        let text = latin1(raw);
        let parsed = (|| {
            let f: Vec<&str> = text.split('|').collect();
            if f.len() != 6 + ML1M_GENRES.len() {
                return Err(format!(
                    "expected 24 fields separated by '|', found {}",
                    f.len()
                ));
            }
            let mut genres = Vec::new();
            for (g, flag) in f[5..].iter().enumerate() {
                match *flag {
                    "1" => genres.push(g as u8),
                    "0" => {}
                    other => return Err(format!("genre flag {other:?} is not 0 or 1")),
                }
            }
            let year = f[2]
                .rsplit('-')
                .next()
                .and_then(|y| y.parse().ok())
                .or_else(|| year_of_title(f[1]))
                .unwrap_or(0);
            Ok(movie(parse_u32(f[0], "movie id")?, f[1], genres, year))
        })();
        if let Some(item) = reader.accept(n, parsed)? {
            items.push(item);
        }
    }
    let mut skipped = reader.skipped();
    let (events, bad) = parse_ratings("u.data", data, "\t", options)?;
    skipped += bad;
    build(ml100k_genres(), items, events, "u.data", skipped)
}

/// Attaches external content vectors: `vectors` is little-endian f32, row-major, one row of
/// `dim` values per line of `ids` (one item id per line). Every catalog item must get a row.
pub fn attach_content_vectors(
    catalog: &mut Catalog,
    ids: &[u8],
    vectors: &[u8],
    dim: usize,
) -> Result<(), DataError> {
    let mut order = Vec::new();
    let mut reader = LineReader::new("content ids", ids, LineOptions::default());
    while let Some((n, raw)) = reader.next_line() {
        let parsed = std::str::from_utf8(raw)
            .map_err(|_| "not ASCII text".to_string())
            .and_then(|t| parse_u32(t, "item id"));
        if let Some(id) = reader.accept(n, parsed)? {
            order.push(id);
        }
    }
    if dim == 0 || vectors.len() != order.len() * dim * 4 {
        return Err(DataError::whole_file(
            "content vectors",
            format!(
                "{} bytes, but {} ids × {dim} f32 values need {}",
                vectors.len(),
                order.len(),
                order.len() * dim * 4
            ),
        ));
    }
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; catalog.len()];
    for (r, id) in order.iter().enumerate() {
        let row: Vec<f32> = vectors[r * dim * 4..(r + 1) * dim * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(DataError::at(
                "content vectors",
                r + 1,
                format!("value {j} of item {id} is not finite"),
            ));
        }
        if let Some(i) = catalog.index_of(*id) {
            rows[i] = Some(row);
        }
    }
    if let Some(i) = rows.iter().position(Option::is_none) {
        return Err(DataError::whole_file(
            "content ids",
            format!("catalog item {} has no content vector", catalog.items[i].id),
        ));
    }
    for (item, row) in catalog.items.iter_mut().zip(rows) {
        item.content = row;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOVIES: &[u8] = b"1::Toy Story (1995)::Animation|Children's|Comedy\n2::Caf\xe9 (1999)::Drama\n3::Unrated (2000)::Horror\n";
    const RATINGS: &[u8] = b"1::2::5::978300760\n1::1::3::978300700\n2::1::4::978300800\n";

    #[test]
    fn ml1m_parses_titles_as_latin1_and_ratings_in_file_order() {
        let ml = parse_ml1m(MOVIES, RATINGS, LineOptions::default()).unwrap();
        assert_eq!(ml.catalog.len(), 3);
        let cafe = ml.catalog.get(2).unwrap();
        assert_eq!(cafe.title, "Café (1999)");
        assert_eq!(cafe.release_year, 1999);
        assert_eq!(cafe.genres, vec![7]);
        assert_eq!(ml.catalog.get(1).unwrap().genres, vec![2, 3, 4]);
        assert_eq!(
            ml.events
                .iter()
                .map(|e| (e.member, e.item))
                .collect::<Vec<_>>(),
            vec![(1, 2), (1, 1), (2, 1)]
        );
        // Each event keeps its rating (for tasks; the model does not read it).
        assert_eq!(
            ml.events.iter().map(|e| e.rating).collect::<Vec<_>>(),
            vec![Some(5), Some(3), Some(4)]
        );
        assert_eq!(ml.catalog.get(1).unwrap().added_at, 978300700);
        assert_eq!(ml.catalog.get(3).unwrap().added_at, 978300800);
    }

    #[test]
    fn arrival_times_come_from_the_events_given_only() {
        let mut ml = parse_ml1m(MOVIES, RATINGS, LineOptions::default()).unwrap();
        // Without the rating of movie 2 (say, a held-out target), movie 2 has no event left:
        // it arrives with the last remaining event, like the never-rated movie 3.
        let training: Vec<Event> = ml.events.iter().filter(|e| e.item != 2).cloned().collect();
        set_arrival_times(&mut ml.catalog, &training);
        let at = |c: &Catalog| [1, 2, 3].map(|id| c.get(id).unwrap().added_at);
        assert_eq!(at(&ml.catalog), [978300700, 978300800, 978300800]);
        set_arrival_times(&mut ml.catalog, &[]);
        assert_eq!(at(&ml.catalog), [0, 0, 0]);
    }

    #[test]
    fn bad_lines_name_file_and_line_or_are_skipped_and_counted() {
        let bad = b"1::2::5::978300760\n1::x::3::978300700\n2::1::9::978300800\n";
        let err = parse_ml1m(MOVIES, bad, LineOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ratings.dat line 2: movie id \"x\" is not a non-negative integer"
        );
        let ml = parse_ml1m(
            MOVIES,
            bad,
            LineOptions {
                skip_bad_lines: true,
            },
        )
        .unwrap();
        assert_eq!((ml.events.len(), ml.skipped_lines), (1, 2));
        let unknown = b"1::7::5::978300760\n";
        let err = parse_ml1m(MOVIES, unknown, LineOptions::default()).unwrap_err();
        assert!(err.to_string().contains("movie 7"), "{err}");
    }

    #[test]
    fn ml100k_reads_genre_flags() {
        let item =
            b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
        let data = b"196\t1\t3\t881250949\n";
        let ml = parse_ml100k(item, data, LineOptions::default()).unwrap();
        assert_eq!(ml.catalog.items[0].genres, vec![3, 4, 5]);
        assert_eq!(ml.catalog.items[0].release_year, 1995);
        assert_eq!(ml.events[0].member, 196);
    }

    #[test]
    fn content_vectors_attach_by_id_and_sizes_are_checked() {
        let mut ml = parse_ml1m(MOVIES, RATINGS, LineOptions::default()).unwrap();
        let ids = b"3\n1\n2\n";
        let vectors: Vec<u8> = [3.0f32, 3.5, 1.0, 1.5, 2.0, 2.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        attach_content_vectors(&mut ml.catalog, ids, &vectors, 2).unwrap();
        assert_eq!(ml.catalog.get(1).unwrap().content, Some(vec![1.0, 1.5]));
        assert_eq!(ml.catalog.get(3).unwrap().content, Some(vec![3.0, 3.5]));
        assert!(attach_content_vectors(&mut ml.catalog, ids, &vectors[..20], 2).is_err());
        assert!(attach_content_vectors(&mut ml.catalog, b"3\n1\n", &vectors[..16], 2).is_err());
    }
}
