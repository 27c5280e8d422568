//! Contextual reranks: the bundle's ranker over the candidates, with the foundation model's
//! user representation of the member as one of its inputs and the request's context (task,
//! query, source title, country, …, α) as the others. The user representation comes from the
//! CPU engine (a session's from its cached keys and values, so a new query on the same
//! history encodes the request token only); the ranker runs on the CPU engine too
//! ([`ranker_logits`]).

use std::sync::Arc;

use super::session::{DescribedTitles, MemberSession, SessionUser};
use super::{RerankError, RerankRequest, Reranker, ScoredItem, Scores, ranked, request};
use crate::data::catalog::ItemVocabulary;
use crate::data::events::{Event, Surface};
use crate::data::impressions::TitleIndex;
use crate::ranker::{RankContext, RankerRows, RankerVocabulary, RequestFeatures};
use crate::runtime::engines::cpu::ranker_logits;
use crate::serving::ServingRanker;
use crate::weights::{
    MIN_PROBE_COSINE, RankerBundle, WeightFileError, probe_cosine, probe_history,
};

/// The contextual ranker a reranker carries: its weights in host memory, the vocabulary its
/// features are read against and the lexical index over the model's titles.
#[derive(Debug)]
pub struct ContextualRanker {
    /// The weights.
    pub weights: ServingRanker,
    /// Task names, countries, languages, the titles' words and metadata.
    pub vocabulary: RankerVocabulary,
    index: TitleIndex,
}

impl ContextualRanker {
    /// A request's features, checked (see [`RankerVocabulary::request`]).
    fn request(
        &self,
        context: &RankContext,
        items: &ItemVocabulary,
        timestamp: i64,
    ) -> Result<RequestFeatures, RerankError> {
        Ok(self.vocabulary.request(
            context,
            items,
            &self.index,
            self.weights.config.query_buckets,
            timestamp,
        )?)
    }

    /// The ranker's logit of each candidate item row.
    fn scores(
        &self,
        request: &RequestFeatures,
        rows: &[i64],
        item_vectors: &[f32],
        user: &[f32],
    ) -> Vec<f32> {
        let candidates: Vec<usize> = rows.iter().map(|&r| r as usize).collect();
        let mut batch = RankerRows::default();
        self.vocabulary
            .push_rows(&mut batch, request, &candidates, item_vectors, user, |_| {
                false
            });
        ranker_logits(&self.weights, &batch)
    }
}

/// `context` with its absent surface, device and country taken from the request's token
/// context (the request's own, else the last history event's).
fn filled(context: &RankContext, request: &crate::tokenizer::Context) -> RankContext {
    RankContext {
        country: context
            .country
            .clone()
            .or_else(|| Some(request.country.clone())),
        device: context.device.or(Some(request.device)),
        surface: context.surface.or(Some(request.surface)),
        ..context.clone()
    }
}

impl Reranker {
    /// The same reranker with the contextual ranker of `bundle`, after checking that it was
    /// trained on this reranker's foundation model: the model's user representation of the
    /// probe history must have cosine ≥ [`MIN_PROBE_COSINE`] to the one the bundle stored.
    pub fn with_ranker(mut self, bundle: RankerBundle) -> Result<Self, WeightFileError> {
        let probe = probe_history(&self.items);
        let got = self
            .user_representations(&[(&probe, RerankRequest::on(Surface::Home))])
            .map_err(|e| WeightFileError::InvalidModel(format!("ranker probe: {e}")))?;
        let cosine = probe_cosine(&got[0], &bundle.probe);
        if cosine.is_nan() || cosine < MIN_PROBE_COSINE {
            return Err(WeightFileError::RankerOnAnotherModel {
                cosine,
                min: MIN_PROBE_COSINE,
            });
        }
        let weights = ServingRanker::from_ranker(&bundle.model, &bundle.config);
        self.ranker = Some(Arc::new(ContextualRanker {
            index: bundle.vocabulary.title_index(),
            weights,
            vocabulary: bundle.vocabulary,
        }));
        Ok(self)
    }

    /// The contextual ranker, when the bundle carries one.
    pub fn ranker(&self) -> Option<&ContextualRanker> {
        self.ranker.as_deref()
    }

    /// The ranker's task names (empty without a ranker).
    pub fn ranker_tasks(&self) -> &[String] {
        self.ranker
            .as_deref()
            .map_or(&[], |r| r.vocabulary.tasks.as_slice())
    }

    /// The ranker and the CPU engine, or why a contextual rerank cannot run.
    fn contextual(&self) -> Result<(&ContextualRanker, &super::CpuEngine), RerankError> {
        let ranker = self.ranker.as_deref().ok_or(RerankError::NoRanker)?;
        let host = self.host.as_ref().ok_or(RerankError::RankerOffCpu)?;
        Ok((ranker, host))
    }

    /// Reranks `candidates` for a member with this `history` by the contextual ranker under
    /// `context` (the request's task, query, source title, …, α), the member's user
    /// representation computed from `request` as in [`Reranker::rerank`]; the context's absent
    /// surface, device and country are the request's (as the member's tokens see them).
    /// Refuses a bundle
    /// without a ranker, and an unknown task, an empty or overlong query, a source title not
    /// in the bundle and an α outside [0, 1], each by name.
    pub fn rerank_in_context(
        &self,
        history: &[Event],
        candidates: &[u32],
        request: &RerankRequest,
        context: &RankContext,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (ranker, host) = self.contextual()?;
        let (seq, rows) = self.prepare(history, candidates, request)?;
        let prompt = self.prompt_of(request)?;
        let tokens = request.context(history);
        let features = ranker.request(&filled(context, &tokens), &self.items, tokens.timestamp)?;
        let user = host.encode_prompted(&seq.field_rows(), &[], prompt);
        let scores = ranker.scores(&features, &rows, host.model().item_vectors(), &user);
        ranked(candidates, Scores::Host(scores))
    }

    /// [`Reranker::rerank_in_context`] for the member of `session`: the history's keys and
    /// values are reused from its previous calls, so a new query or α on the same history
    /// encodes the request token alone before the ranker runs.
    pub fn rerank_session_in_context(
        &self,
        session: &mut MemberSession,
        candidates: &[u32],
        request: &RerankRequest,
        context: &RankContext,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (ranker, host) = self.contextual()?;
        request.validate()?;
        request.check_history(session.history())?;
        request::validate_candidates(candidates)?;
        let rows = self.candidate_rows(candidates)?;
        let prompt = self.prompt_of(request)?;
        let tokens = request.context(session.history());
        let features = ranker.request(&filled(context, &tokens), &self.items, tokens.timestamp)?;
        let user = if session.is_empty() {
            let seq = self.serving_sequence(&[], request)?;
            session.last_encoded = seq.len() + self.prompt_tokens(prompt);
            host.encode_prompted(&seq.field_rows(), &[], prompt)
        } else {
            match self.session_user(session, &DescribedTitles::default(), request, prompt)? {
                SessionUser::Host(user) => user,
                SessionUser::Device(_) => return Err(RerankError::RankerOffCpu),
            }
        };
        let scores = ranker.scores(&features, &rows, host.model().item_vectors(), &user);
        ranked(candidates, Scores::Host(scores))
    }
}
