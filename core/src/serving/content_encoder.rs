//! The item content encoder's serving form: metadata (genres, kind, language, release year,
//! arrival time and an optional external content vector) → an item vector, in host memory, so
//! that a title the bundle does not contain can be scored from what a server says about it.
//!
//! The vector is the training-side item encoder's for an item without an ID embedding:
//! `σ(gate[age]) · unknown + (1 − σ(gate[age])) · content(metadata)`, where `content` sums a
//! genre projection, kind, language and release-year rows and the projected external vector,
//! and `age` buckets the time from the title's arrival to the encoder's reference time (the
//! end of its training data, where training measured every item's age: a title that arrived
//! later counts as just arrived); with `normalize`, the vector is then L2-normalised as the
//! bundled item rows are. The bucket functions here are the ones training uses, so both sides
//! bucket alike.

use serde::{Deserialize, Serialize};

use super::LinearWeights;
use crate::data::catalog::ItemKind;
use crate::runtime::engines::cpu::math::{Start, Strided, matmul};

/// Number of item-age buckets (⌊log2(1 + days in the catalog)⌋, capped).
pub const AGE_BUCKETS: usize = 12;
/// Number of release-year buckets (0 = unknown, then 5-year spans from 1930).
pub const YEAR_BUCKETS: usize = 21;
/// Number of hashed language buckets.
pub const LANGUAGE_BUCKETS: usize = 16;

/// Bucket of a release year (0: unknown).
pub fn year_bucket(year: u16) -> u32 {
    if year == 0 {
        0
    } else {
        (1 + (i32::from(year) - 1930).max(0) / 5).min(YEAR_BUCKETS as i32 - 1) as u32
    }
}

/// Bucket of an item's age in seconds (negative ages, i.e. not yet arrived, count as 0).
pub fn age_bucket(age_s: i64) -> u32 {
    let days = age_s.max(0) as f64 / 86_400.0;
    ((1.0 + days).log2().floor() as u32).min(AGE_BUCKETS as u32 - 1)
}

/// Bucket of an ISO 639-1 language code (FNV-1a hash).
pub fn language_bucket(code: &str) -> u32 {
    let h = code.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h % LANGUAGE_BUCKETS as u32
}

/// The shape of a stored content encoder (the bundle part's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentEncoderSpec {
    /// Output width: the foundation model's width.
    pub d_model: usize,
    /// Genre names, in the order of the genre projection's rows.
    pub genres: Vec<String>,
    /// Width of the external content vector (0: the encoder reads none).
    pub content_dim: usize,
    /// Whether item vectors are L2-normalised (as the bundled item rows are).
    pub normalize: bool,
    /// Unix time (s) item ages are measured to: the last training event's, as in training.
    pub reference_time: i64,
}

impl ContentEncoderSpec {
    /// Names and shapes of the encoder's tensors, as the training-side encoder names them.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.d_model;
        let mut out = vec![
            ("genre.weight".to_string(), vec![self.genres.len(), d]),
            ("kind.weight".to_string(), vec![ItemKind::ALL.len(), d]),
            ("language.weight".to_string(), vec![LANGUAGE_BUCKETS, d]),
            ("year.weight".to_string(), vec![YEAR_BUCKETS, d]),
            ("gate.weight".to_string(), vec![AGE_BUCKETS, 1]),
            ("unknown".to_string(), vec![1, d]),
        ];
        if self.content_dim > 0 {
            out.push(("content.weight".to_string(), vec![self.content_dim, d]));
            out.push(("content.bias".to_string(), vec![d]));
        }
        out
    }
}

/// What a server says about a title it pushes as a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleMetadata {
    /// Genre names (from the bundle's genre list; repeats count once).
    pub genres: Vec<String>,
    /// Movie, series, documentary or kids title.
    pub kind: ItemKind,
    /// ISO 639-1 language code of the original audio.
    pub language: String,
    /// Year of release (0: unknown).
    pub release_year: u16,
    /// Unix time (s) at which the title arrived in the catalog.
    pub added_at: i64,
    /// The external content vector (e.g. a text embedding), when the bundle's encoder reads one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<f32>>,
    /// The title's name (at most [`MAX_TITLE_BYTES`] bytes): the words a search matches. The
    /// contextual ranker reads it; the item vector does not depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Longest title name [`TitleMetadata::title`] may hold, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;

/// Why a title's metadata cannot be embedded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetadataError {
    /// A genre the bundle's encoder does not know.
    #[error("unknown genre {genre:?} (the bundle knows: {known})")]
    UnknownGenre {
        /// The genre given.
        genre: String,
        /// The genres the bundle knows, comma-separated.
        known: String,
    },
    /// A content vector of the wrong width, or one the encoder does not read.
    #[error("content vector of {found} values; the bundle's encoder reads {expected}")]
    ContentWidth {
        /// Values given.
        found: usize,
        /// Values expected (0: the encoder reads no content vector).
        expected: usize,
    },
    /// A content value that is NaN or infinite.
    #[error("content value {index} is not finite")]
    NonFiniteContent {
        /// Index in the content vector.
        index: usize,
    },
    /// An arrival time beyond ±[`MAX_TIMESTAMP_S`](crate::data::events::MAX_TIMESTAMP_S).
    #[error("added_at {added_at} is out of range")]
    AddedAtOutOfRange {
        /// The time given.
        added_at: i64,
    },
    /// A title name over [`MAX_TITLE_BYTES`].
    #[error("the title is {bytes} bytes long (at most {MAX_TITLE_BYTES})")]
    TitleTooLong {
        /// Its length in bytes.
        bytes: usize,
    },
}

/// The item content encoder in host memory (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ServingContentEncoder {
    /// Its shape.
    pub spec: ContentEncoderSpec,
    /// Genre projection `[n_genres, d]` (no bias).
    pub genre: Vec<f32>,
    /// Kind rows `[kinds, d]`.
    pub kind: Vec<f32>,
    /// Language-bucket rows `[LANGUAGE_BUCKETS, d]`.
    pub language: Vec<f32>,
    /// Release-year-bucket rows `[YEAR_BUCKETS, d]`.
    pub year: Vec<f32>,
    /// Gate logit per age bucket `[AGE_BUCKETS]`: σ(gate) is the unknown-ID vector's share.
    /// Training writes its one unknown-ID gate into every bucket.
    pub gate: Vec<f32>,
    /// The ID vector of a title without an ID embedding `[d]`.
    pub unknown: Vec<f32>,
    /// Projection of the external content vector `[content_dim, d]` + bias (when it reads one).
    pub content: Option<LinearWeights>,
    /// For experiments: the unknown vector's share in place of σ(gate[age]) (`None`: the
    /// gate, as training defines the vector; not stored in a bundle).
    pub unknown_share: Option<f32>,
}

impl ServingContentEncoder {
    /// Checks `metadata` against the encoder: genres it knows, a content vector of its width
    /// (or none), an arrival time in range, a title name of at most [`MAX_TITLE_BYTES`].
    pub fn check(&self, metadata: &TitleMetadata) -> Result<(), MetadataError> {
        for genre in &metadata.genres {
            if !self.spec.genres.contains(genre) {
                return Err(MetadataError::UnknownGenre {
                    genre: genre.clone(),
                    known: self.spec.genres.join(", "),
                });
            }
        }
        if let Some(c) = &metadata.content {
            if c.len() != self.spec.content_dim {
                return Err(MetadataError::ContentWidth {
                    found: c.len(),
                    expected: self.spec.content_dim,
                });
            }
            if let Some(index) = c.iter().position(|v| !v.is_finite()) {
                return Err(MetadataError::NonFiniteContent { index });
            }
        }
        if !crate::data::events::timestamp_in_range(metadata.added_at) {
            return Err(MetadataError::AddedAtOutOfRange {
                added_at: metadata.added_at,
            });
        }
        if let Some(title) = &metadata.title
            && title.len() > MAX_TITLE_BYTES
        {
            return Err(MetadataError::TitleTooLong { bytes: title.len() });
        }
        Ok(())
    }

    /// The item vector `[d]` of a title described by `metadata` (its age measured to the
    /// spec's reference time, as training measured it). A title without a content vector gets
    /// the projection's bias alone for that term.
    pub fn vector(&self, metadata: &TitleMetadata) -> Result<Vec<f32>, MetadataError> {
        self.check(metadata)?;
        Ok(self.vectors(&[metadata]))
    }

    /// The item vectors `[m, d]` of titles already [checked](ServingContentEncoder::check),
    /// as [`ServingContentEncoder::vector`] gives them one by one: the content projections of
    /// all of them in one matrix product.
    pub fn vectors(&self, titles: &[&TitleMetadata]) -> Vec<f32> {
        let d = self.spec.d_model;
        let m = titles.len();
        let mut x = vec![0f32; m * d];
        if let Some(proj) = &self.content {
            let cd = self.spec.content_dim;
            // Titles without a content vector contribute a zero row (the bias alone).
            let mut content = vec![0f32; m * cd];
            for (row, t) in content.chunks_exact_mut(cd).zip(titles) {
                if let Some(c) = &t.content {
                    row.copy_from_slice(c);
                }
            }
            if m > 0 && cd > 0 {
                matmul(
                    m,
                    d,
                    cd,
                    &mut x,
                    d,
                    Start::Zero,
                    Strided::rows(&content, cd),
                    Strided::rows(&proj.weight, d),
                );
            }
            for row in x.chunks_exact_mut(d) {
                add(row, &proj.bias);
            }
        }
        for (row, t) in x.chunks_exact_mut(d).zip(titles) {
            let mut genres: Vec<usize> = t
                .genres
                .iter()
                .filter_map(|g| self.spec.genres.iter().position(|k| k == g))
                .collect();
            genres.sort_unstable();
            genres.dedup();
            for g in genres {
                add(row, table_row(&self.genre, g, d));
            }
            add(row, table_row(&self.kind, t.kind.index(), d));
            add(
                row,
                table_row(&self.language, language_bucket(&t.language) as usize, d),
            );
            add(
                row,
                table_row(&self.year, year_bucket(t.release_year) as usize, d),
            );
            let age = self.spec.reference_time.saturating_sub(t.added_at);
            let g = self
                .unknown_share
                .unwrap_or_else(|| 1.0 / (1.0 + (-self.gate[age_bucket(age) as usize]).exp()));
            for (v, u) in row.iter_mut().zip(&self.unknown) {
                *v = g * u + (1.0 - g) * *v;
            }
            if self.spec.normalize {
                let norm = row.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-6);
                row.iter_mut().for_each(|a| *a /= norm);
            }
        }
        x
    }
}

/// Row `r` of a row-major table of width `d`.
fn table_row(table: &[f32], r: usize, d: usize) -> &[f32] {
    &table[r * d..(r + 1) * d]
}

/// `acc += x`, element by element.
fn add(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_ranges() {
        assert_eq!(year_bucket(0), 0);
        assert_eq!(year_bucket(1900), 1);
        assert_eq!(year_bucket(1995), 14);
        assert_eq!(year_bucket(2100) as usize, YEAR_BUCKETS - 1);
        assert_eq!(age_bucket(-5), 0);
        assert_eq!(age_bucket(86_400), 1);
        assert_eq!(age_bucket(i64::MAX / 2) as usize, AGE_BUCKETS - 1);
        assert!((language_bucket("en") as usize) < LANGUAGE_BUCKETS);
    }
}
