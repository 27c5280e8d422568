//! A trained ranker into a bundle: the training impressions a ranker learns from, the ranker's
//! sizes a run may set, and the base bundle with the ranker as its ranker part (checked by
//! loading it back).

use anyhow::Context as _;
use burn::tensor::Device;
use encore_core::data::impressions::{Impression, ImpressionConfig, generate_impressions};
use encore_core::data::split::MemberHistory;
use encore_core::ranker::{Ranker, RankerConfig, RankerVocabulary};
use encore_core::weights::{RankerBundle, load_model, probe_history};
use encore_core::{Catalog, Event, RerankRequest, Reranker, Surface};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;

use super::{FeatureBuilder, RankerTrainConfig, train_ranker};
use crate::backend::Backend;

/// The tasks the generated impressions hold.
pub const RANKER_TASKS: [&str; 3] = ["search", "home_row", "more_like_this"];

/// Sizes of the ranker that a run may set (each `None` keeps [`RankerConfig`]'s default).
#[derive(Debug, Clone, Copy, Default)]
pub struct RankerShape {
    /// Width of every feature's embedding.
    pub d_embed: Option<usize>,
    /// Hidden width of the MLP blocks.
    pub d_hidden: Option<usize>,
    /// Cross layers.
    pub n_cross: Option<usize>,
    /// MLP blocks.
    pub n_mlp: Option<usize>,
}

impl RankerShape {
    /// `config` with the sizes this shape sets.
    pub fn apply(&self, mut config: RankerConfig) -> RankerConfig {
        if let Some(v) = self.d_embed {
            config.d_embed = v;
        }
        if let Some(v) = self.d_hidden {
            config.d_hidden = v;
        }
        if let Some(v) = self.n_cross {
            config.n_cross = v;
        }
        if let Some(v) = self.n_mlp {
            config.n_mlp = v;
        }
        config
    }
}

/// `count` training impressions generated from `events` (shuffled by `seed`), each with its
/// engaged title and a sample of the others shown, `candidates` in all. Titles `known` refuses
/// (ones the model lacks) leave the lists they were shown in; an impression whose engaged or
/// source title is one of them is left out. `rewrite` applies to the drawn impressions before
/// their lists are sampled (e.g. home rows replaced by a model's top titles, see
/// [`model_rows`]; `Ok` keeps them).
pub fn training_impressions(
    catalog: &Catalog,
    events: &[Event],
    count: usize,
    candidates: usize,
    seed: u64,
    known: impl Fn(u32) -> bool,
    rewrite: impl FnOnce(Vec<Impression>) -> anyhow::Result<Vec<Impression>>,
) -> anyhow::Result<Vec<Impression>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train: Vec<Impression> =
        generate_impressions(catalog, events, &ImpressionConfig::default())
            .impressions
            .into_iter()
            .filter(|r| r.engaged.iter().chain(&r.source).all(|&c| known(c)))
            .map(|mut r| {
                r.candidates.retain(|&c| known(c));
                r
            })
            .collect();
    train.shuffle(&mut rng);
    train.truncate(count);
    let mut train = rewrite(train)?;
    for r in &mut train {
        let others: Vec<u32> = r
            .candidates
            .iter()
            .copied()
            .filter(|c| !r.engaged.contains(c))
            .collect();
        let keep = candidates.saturating_sub(r.engaged.len());
        let mut shown: Vec<u32> = others.sample(&mut rng, keep).copied().collect();
        shown.extend(&r.engaged);
        shown.shuffle(&mut rng);
        r.candidates = shown;
    }
    Ok(train)
}

/// `impressions` with every home row (`task = "home_row"`) replaced by `reranker`'s top `k`
/// titles for the member at the request's time (their events before it, from `histories`);
/// a row whose engaged title is not among them, or whose member has no history then, is left
/// out. Other impressions are kept as they are.
pub fn model_rows(
    reranker: &Reranker,
    histories: &[MemberHistory],
    impressions: Vec<Impression>,
    k: usize,
) -> anyhow::Result<Vec<Impression>> {
    let by_member: std::collections::HashMap<u32, &[Event]> = histories
        .iter()
        .map(|h| (h.member, h.events.as_slice()))
        .collect();
    let before = |r: &Impression| -> &[Event] {
        let events = by_member.get(&r.member).copied().unwrap_or(&[]);
        &events[..events.partition_point(|e| e.timestamp < r.timestamp)]
    };
    let (rows, mut out): (Vec<Impression>, Vec<Impression>) =
        impressions.into_iter().partition(|r| r.task == "home_row");
    let rows: Vec<Impression> = rows.into_iter().filter(|r| !before(r).is_empty()).collect();
    let ids = reranker.items().ids();
    for chunk in rows.chunks(128) {
        let members: Vec<(&[Event], RerankRequest)> = chunk
            .iter()
            .map(|r| {
                let request = RerankRequest {
                    timestamp: Some(r.timestamp),
                    device: r.device,
                    country: r.country.clone(),
                    ..RerankRequest::on(r.surface.unwrap_or(Surface::Home))
                };
                (before(r), request)
            })
            .collect();
        for (r, scores) in chunk.iter().zip(reranker.score_catalog(&members)?) {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let top: Vec<u32> = order.iter().take(k).map(|&row| ids[row]).collect();
            if r.engaged.iter().all(|e| top.contains(e)) {
                out.push(Impression {
                    candidates: top,
                    ..r.clone()
                });
            }
        }
    }
    Ok(out)
}

/// `base` (a bundle whose model `reranker` runs) with `ranker` (shape `shape`, features read
/// against `vocabulary`) as its ranker part, loaded back to check it.
pub fn with_ranker(
    base: &[u8],
    reranker: &Reranker,
    ranker: &Ranker,
    shape: &RankerConfig,
    vocabulary: &RankerVocabulary,
) -> anyhow::Result<Vec<u8>> {
    let probe = reranker
        .user_representations(&[(
            &probe_history(reranker.items()),
            RerankRequest::on(Surface::Home),
        )])?
        .remove(0);
    let mut loaded = load_model(base, &Device::flex())?;
    loaded.ranker = Some(RankerBundle {
        model: ranker.clone(),
        config: shape.clone(),
        vocabulary: vocabulary.clone(),
        probe,
    });
    let bytes = loaded.to_bundle(&loaded.prompts, loaded.quantization);
    let back = Reranker::from_bytes(&bytes, &Device::flex())
        .context("the bundle with its ranker does not load back")?;
    anyhow::ensure!(back.ranker_tasks() == vocabulary.tasks.as_slice());
    Ok(bytes)
}

/// How [`fit_ranker`] trains.
#[derive(Debug, Clone)]
pub struct RankerFit {
    /// Training impressions.
    pub impressions: usize,
    /// Candidates per impression.
    pub candidates: usize,
    /// Impressions per step.
    pub batch_impressions: usize,
    /// The ranker's sizes.
    pub shape: RankerShape,
    /// Epochs, learning rate, α, seed.
    pub train: RankerTrainConfig,
}

/// Trains a ranker on impressions generated from `train_set`'s events with `base`'s features
/// and returns `base` with it as its ranker part.
pub fn fit_ranker(
    base: &[u8],
    catalog: &Catalog,
    train_set: &[MemberHistory],
    fit: &RankerFit,
) -> anyhow::Result<Vec<u8>> {
    let reranker = Reranker::from_bytes(base, &Device::flex())?;
    let items = reranker.items();
    // The histories as the model can read them: without events of titles it lacks.
    let train_set: Vec<MemberHistory> = train_set
        .iter()
        .map(|h| MemberHistory {
            events: h
                .events
                .iter()
                .filter(|e| items.index_of(e.item).is_some())
                .cloned()
                .collect(),
            ..h.clone()
        })
        .collect();
    let events: Vec<Event> = train_set
        .iter()
        .flat_map(|h| h.events.iter().cloned())
        .collect();
    let train = training_impressions(
        catalog,
        &events,
        fit.impressions,
        fit.candidates,
        fit.train.seed,
        |id| items.index_of(id).is_some(),
        Ok,
    )?;
    let tasks = RANKER_TASKS.iter().map(|t| t.to_string()).collect();
    let builder = FeatureBuilder::new(catalog, &reranker, &train_set, tasks)?;
    let shape = fit.shape.apply(builder.config());
    let mut batches = Vec::new();
    for chunk in train.chunks(fit.batch_impressions.max(1)) {
        let (rows, _) = builder.rows(chunk)?;
        if !rows.is_empty() {
            batches.push(rows);
        }
    }
    let ranker = train_ranker(
        &shape,
        &batches,
        &fit.train,
        &Backend::Cpu.training_device(),
    )?;
    with_ranker(base, &reranker, &ranker, &shape, &builder.vocabulary)
}
