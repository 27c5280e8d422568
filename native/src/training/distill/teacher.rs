//! The teacher: a trained foundation model read from its weight file, checked against the
//! student's catalog and window, run once without autodiff over the student's training
//! windows, its hidden state and top-k items kept per token ([`TeacherCache`]); each batch's
//! share of the cache goes to the device as [`TeacherTargets`].

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use encore_core::data::catalog::ItemVocabulary;
use encore_core::model::host_values;
use encore_core::tokenizer::{ITEM_OFFSET, TokenField};
use encore_core::weights::{LoadedModel, load_model};
use encore_core::{FoundationModelConfig, TokenBatch, TokenSequence};

use super::DistillConfig;

/// The score of a top-k entry that holds no item (padding); the loss leaves such entries out.
pub const PADDED_SCORE: f32 = -1e9;

/// Windows the teacher encodes at once while caching.
const CACHE_CHUNK: usize = 32;

/// A teacher checked against the student it teaches.
pub struct Teacher {
    loaded: LoadedModel,
}

impl Teacher {
    /// Reads the teacher named in `distill` and checks that it fits the student: the same
    /// catalog (the same item ids in the same order), the same roll-up of repeated events, a
    /// window at least the student's. Every refusal names the file and what differs.
    pub fn load(
        distill: &DistillConfig,
        items: &ItemVocabulary,
        student: &FoundationModelConfig,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let path = &distill.teacher;
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the teacher {}", path.display()))?;
        Self::from_bytes(&bytes, path, items, student, device)
    }

    /// [`Teacher::load`] for a weight file already read from `path` (named in errors).
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        items: &ItemVocabulary,
        student: &FoundationModelConfig,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let loaded = load_model(bytes, device).with_context(|| {
            format!("the teacher {} is not a valid weight file", path.display())
        })?;
        let (ours, theirs) = (items.ids(), loaded.items.ids());
        if ours != theirs {
            let at = ours
                .iter()
                .zip(theirs)
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(theirs.len()));
            anyhow::bail!(
                "the teacher {} was trained on another catalog: {} items against the data's {} \
                 (first difference at row {at})",
                path.display(),
                theirs.len(),
                ours.len()
            );
        }
        let t = &loaded.config;
        anyhow::ensure!(
            t.rollup_window_s == student.rollup_window_s,
            "the teacher {} rolls up repeats within {} s, the student within {} s: their tokens \
             would differ",
            path.display(),
            t.rollup_window_s,
            student.rollup_window_s
        );
        anyhow::ensure!(
            t.max_len >= student.max_len,
            "the teacher {} reads windows of {} tokens, shorter than the student's {}",
            path.display(),
            t.max_len,
            student.max_len
        );
        Ok(Self { loaded })
    }

    /// The teacher's shape.
    pub fn config(&self) -> &FoundationModelConfig {
        &self.loaded.config
    }

    /// Refuses a student with more parameters than the teacher.
    pub fn check_student(&self, student_params: usize) -> anyhow::Result<()> {
        let teacher_params = self.loaded.model.num_params();
        anyhow::ensure!(
            student_params <= teacher_params,
            "the student has {student_params} parameters, more than its teacher's \
             {teacher_params}: distill into a smaller shape"
        );
        Ok(())
    }

    /// Runs the teacher over every training window and keeps, per token, its hidden state and
    /// (with `distill.top_k` > 0) its `top_k` highest-scored items, without the items the
    /// token's window held before it when `top_k_skips_history`.
    pub fn cache(
        &self,
        windows: &[TokenSequence],
        distill: &DistillConfig,
        device: &Device,
    ) -> TeacherCache {
        let started = Instant::now();
        let model = &self.loaded.model;
        let d = self.loaded.config.d_model;
        let n = self.loaded.config.n_items;
        let k = distill.top_k.min(n);
        let tables = model.token_tables();
        let item_vectors = model.item_vectors();
        let items = host_values(item_vectors.clone());
        let mut offsets = Vec::with_capacity(windows.len() + 1);
        offsets.push(0);
        for w in windows {
            offsets.push(offsets.last().copied().unwrap_or(0) + w.len());
        }
        let total = offsets.last().copied().unwrap_or(0);
        let mut hidden = Vec::with_capacity(total * d);
        let mut top_items = Vec::with_capacity(total * k);
        let mut top_scores = Vec::with_capacity(total * k);
        let mut seen = vec![false; n];
        let mut forward_seconds = 0.0;
        for chunk in windows.chunks(CACHE_CHUNK) {
            let forward_started = Instant::now();
            let batch = TokenBatch::new(chunk, device);
            let [b, s] = batch.dims();
            let states = model
                .forward(&batch, &tables, None, false)
                .reshape([b * s, d]);
            let states_host = host_values(states.clone());
            forward_seconds += forward_started.elapsed().as_secs_f64();
            let scores =
                (k > 0).then(|| host_values(states.matmul(item_vectors.clone().transpose())));
            let states = states_host;
            for (r, window) in chunk.iter().enumerate() {
                for (c, token) in window.tokens.iter().enumerate() {
                    let row = r * s + c;
                    hidden.extend_from_slice(&states[row * d..(row + 1) * d]);
                    let Some(scores) = &scores else { continue };
                    if distill.top_k_skips_history {
                        let prev = token.get(TokenField::PrevItem);
                        if prev >= ITEM_OFFSET {
                            seen[(prev - ITEM_OFFSET) as usize] = true;
                        }
                    }
                    let best = top_k(&scores[row * n..(row + 1) * n], k, &seen);
                    // Short lists (a catalog barely larger than the history) are padded with
                    // an entry the loss masks out.
                    let padding = std::iter::repeat((0, PADDED_SCORE)).take(k - best.len());
                    for (item, score) in best.into_iter().chain(padding) {
                        top_items.push(item);
                        top_scores.push(score);
                    }
                }
                seen.iter_mut().for_each(|s| *s = false);
            }
        }
        TeacherCache {
            d_model: d,
            k,
            items,
            hidden,
            top_items,
            top_scores,
            offsets,
            seconds: started.elapsed().as_secs_f64(),
            forward_seconds,
        }
    }
}

/// The `k` highest of `scores` (skipping indices marked in `skip`), best first, as
/// (index, score). Fewer than `k` when fewer remain.
fn top_k(scores: &[f32], k: usize, skip: &[bool]) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &v) in scores.iter().enumerate() {
        if best.len() == k && best.last().is_some_and(|&(_, low)| v <= low) {
            continue;
        }
        if skip[i] || !v.is_finite() {
            continue;
        }
        let at = best.partition_point(|&(_, s)| s >= v);
        best.insert(at, (i as u32, v));
        best.truncate(k);
    }
    best
}

/// The teacher's outputs for every token of every training window.
pub struct TeacherCache {
    /// Width of the teacher's hidden states.
    pub d_model: usize,
    /// Top items kept per token.
    pub k: usize,
    /// The teacher's item vectors, row-major `[n_items, d_model]`.
    items: Vec<f32>,
    /// Hidden state of every token, row-major; window `w`'s tokens start at row `offsets[w]`.
    hidden: Vec<f32>,
    /// Each token's top items (dense indices; fewer than `k` only where the catalog minus the
    /// history is smaller, the rest padded with item 0 and [`PADDED_SCORE`]).
    top_items: Vec<u32>,
    /// Their teacher scores.
    top_scores: Vec<f32>,
    offsets: Vec<usize>,
    /// Wall time of the caching pass (the teacher's forward over every window, and top k).
    pub seconds: f64,
    /// The part of `seconds` spent in the teacher's forward alone: what running the teacher
    /// inside every step would cost per epoch.
    pub forward_seconds: f64,
}

impl TeacherCache {
    /// Tokens cached.
    pub fn tokens(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// The teacher's outputs for `windows` (indices into the cached windows, in batch order),
    /// padded to `padded_len` like [`TokenBatch::new`].
    pub fn targets(&self, windows: &[usize], padded_len: usize, device: &Device) -> TeacherTargets {
        let (d, k, s) = (self.d_model, self.k, padded_len);
        let m = windows.len() * s;
        let mut hidden = vec![0f32; m * d];
        let mut top_items = vec![0i64; m * k];
        let mut top_scores = vec![PADDED_SCORE; m * k];
        for (r, &w) in windows.iter().enumerate() {
            let (start, end) = (self.offsets[w], self.offsets[w + 1]);
            for (c, token) in (start..end).enumerate() {
                let row = r * s + c;
                hidden[row * d..(row + 1) * d]
                    .copy_from_slice(&self.hidden[token * d..(token + 1) * d]);
                for j in 0..k {
                    top_items[row * k + j] = i64::from(self.top_items[token * k + j]);
                    top_scores[row * k + j] = self.top_scores[token * k + j];
                }
            }
        }
        let n = self.items.len() / d.max(1);
        TeacherTargets {
            hidden: Tensor::from_data(TensorData::new(hidden, [m, d]), device),
            items: Tensor::from_data(TensorData::new(self.items.clone(), [n, d]), device),
            top_k: (k > 0).then(|| {
                (
                    Tensor::from_data(TensorData::new(top_items, [m, k]), device),
                    Tensor::from_data(TensorData::new(top_scores, [m, k]), device),
                )
            }),
        }
    }
}

/// A batch's teacher outputs on the device (constants: nothing here is differentiated).
#[derive(Debug, Clone)]
pub struct TeacherTargets {
    /// The teacher's hidden state of every token `[batch·seq, d_teacher]` (zeros at padding).
    pub hidden: Tensor<2>,
    /// The teacher's item vectors `[n_items, d_teacher]`.
    pub items: Tensor<2>,
    /// Each token's top-k items `[batch·seq, k]` and their teacher scores `[batch·seq, k]`.
    pub top_k: Option<(Tensor<2, Int>, Tensor<2>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use encore_core::weights::{Quantization, save_model};

    #[test]
    fn top_k_keeps_the_best_scores_in_order_and_skips_what_it_is_told() {
        let scores = [0.5, 2.0, -1.0, 2.0, 7.0, f32::NAN, 3.0];
        let mut skip = [false; 7];
        let ids = |v: Vec<(u32, f32)>| v.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(ids(top_k(&scores, 3, &skip)), [4, 6, 1]);
        skip[6] = true;
        let best = top_k(&scores, 4, &skip);
        assert_eq!(ids(best.clone()), [4, 1, 3, 0]);
        assert_eq!(best[0].1, 7.0);
        // Fewer remain than asked for (NaN never counts).
        skip = [true, true, false, true, false, false, true];
        assert_eq!(ids(top_k(&scores, 5, &skip)), [4, 2]);
        assert!(top_k(&scores, 0, &skip).is_empty());
    }

    fn file(cfg: &FoundationModelConfig, ids: &[u32]) -> Vec<u8> {
        save_model(
            &cfg.init(&Device::flex()),
            &cfg.serving(),
            ids,
            Quantization::F32,
        )
    }

    #[test]
    fn a_teacher_that_does_not_fit_the_student_is_refused_by_name() {
        let device = Device::flex();
        let shape = |n| {
            FoundationModelConfig::new(n)
                .with_d_model(8)
                .with_n_heads(2)
                .with_n_layers(1)
                .with_d_ff(16)
                .with_max_len(8)
        };
        let ids: Vec<u32> = (10..16).collect();
        let items = ItemVocabulary::new(ids.clone()).unwrap();
        let good = file(&shape(6), &ids);
        let student = shape(6).with_d_model(4);
        let path = Path::new("teacher.encore");
        let refusal = |bytes: &[u8], student: &FoundationModelConfig| match Teacher::from_bytes(
            bytes, path, &items, student, &device,
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        };
        let teacher = Teacher::from_bytes(&good, path, &items, &student, &device).unwrap();
        assert_eq!(teacher.config().d_model, 8);
        let other_ids: Vec<u32> = vec![10, 11, 12, 99, 14, 15];
        let e = refusal(&file(&shape(6), &other_ids), &student);
        assert!(
            e.contains("teacher.encore") && e.contains("another catalog") && e.contains("row 3"),
            "{e}"
        );
        let e = refusal(&file(&shape(5), &ids[..5]), &student);
        assert!(e.contains("5 items against the data's 6"), "{e}");
        let e = refusal(&good, &student.clone().with_max_len(16));
        assert!(
            e.contains("windows of 8 tokens, shorter than the student's 16"),
            "{e}"
        );
        let e = refusal(&good, &student.clone().with_rollup_window_s(3600));
        assert!(
            e.contains("rolls up repeats within 0 s, the student within 3600 s"),
            "{e}"
        );
        let e = refusal(&good[..good.len() / 2], &student);
        assert!(
            e.contains("teacher.encore is not a valid weight file"),
            "{e}"
        );
        let missing = DistillConfig {
            teacher: "no/such/teacher.encore".into(),
            ..Default::default()
        };
        let e = match Teacher::load(&missing, &items, &student, &device) {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            e.contains("cannot read the teacher no/such/teacher.encore"),
            "{e}"
        );
        let params = teacher.loaded.model.num_params();
        teacher.check_student(params).unwrap();
        let e = teacher.check_student(params + 1).unwrap_err().to_string();
        assert!(
            e.contains(&format!("more than its teacher's {params}")),
            "{e}"
        );
    }
}
