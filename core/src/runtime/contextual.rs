//! Contextual reranks: the bundle's ranker over the candidates, with the foundation model's
//! user representation of the member as one of its inputs and the request's context (task,
//! query, source title, country, …, α) as the others. The user representation comes from the
//! CPU engine (a session's from its cached keys and values, so a new query on the same
//! history encodes the request token only); the ranker runs on the CPU engine too
//! ([`ranker_logits`]).

use std::sync::Arc;

use super::pushed::{Candidate, Resolved, check_metadata};
use super::session::{DescribedTitles, MemberSession, SessionUser};
use super::{RerankError, RerankRequest, Reranker, ScoredItem, Scores, ranked, request};
use crate::data::catalog::ItemVocabulary;
use crate::data::events::{Event, Surface};
use crate::data::impressions::TitleIndex;
use crate::ranker::{
    DescribedRankedTitles, RankContext, RankedTitle, RankerRows, RankerVocabulary, RequestFeatures,
};
use crate::runtime::engines::cpu::ranker_logits;
use crate::serving::ServingRanker;
use crate::weights::{
    MIN_PROBE_COSINE, RankerBundle, ServingRankerBundle, WeightFileError, probe_cosine,
    probe_history,
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
        let none = DescribedRankedTitles::default();
        self.scores_with(request, rows, item_vectors, &none, user)
    }

    /// The ranker's logit of each candidate item row, then of each `described` title (in
    /// order; `request`'s lexical scores cover them).
    fn scores_with(
        &self,
        request: &RequestFeatures,
        rows: &[i64],
        item_vectors: &[f32],
        described: &DescribedRankedTitles,
        user: &[f32],
    ) -> Vec<f32> {
        let n = self.vocabulary.titles.len();
        let candidates: Vec<usize> = rows
            .iter()
            .map(|&r| r as usize)
            .chain(n..n + described.titles.len())
            .collect();
        let mut batch = RankerRows::default();
        self.vocabulary.push_rows_with(
            &mut batch,
            request,
            &candidates,
            item_vectors,
            described,
            user,
            |_| false,
        );
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
    pub fn with_ranker(self, bundle: RankerBundle) -> Result<Self, WeightFileError> {
        self.with_serving_ranker(bundle.to_serving())
    }

    /// [`Reranker::with_ranker`] with the ranker in the serving engines' form (as
    /// [`load_serving_within`](crate::weights::load_serving_within) reads it).
    pub fn with_serving_ranker(
        mut self,
        bundle: ServingRankerBundle,
    ) -> Result<Self, WeightFileError> {
        let probe = probe_history(&self.items);
        let got = self
            .probe_user(&probe)
            .map_err(|e| WeightFileError::InvalidModel(format!("ranker probe: {e}")))?;
        let cosine = probe_cosine(&got, &bundle.probe);
        if cosine.is_nan() || cosine < MIN_PROBE_COSINE {
            return Err(WeightFileError::RankerOnAnotherModel {
                cosine,
                min: MIN_PROBE_COSINE,
            });
        }
        self.ranker = Some(Arc::new(ContextualRanker {
            index: bundle.vocabulary.title_index(),
            weights: bundle.weights,
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

    /// The user representation of the probe `history` on the home surface: on the CPU engine
    /// when the reranker has one (a load then never builds the model in burn's form), else
    /// through burn.
    fn probe_user(&self, history: &[Event]) -> Result<Vec<f32>, RerankError> {
        let request = RerankRequest::on(Surface::Home);
        let Some(host) = &self.host else {
            super::burn_forward_in_this_build();
            return Ok(self
                .user_representations(&[(history, request)])?
                .swap_remove(0));
        };
        request.check_history(history)?;
        super::request::validate_events(history)?;
        let seq = self.serving_sequence(history, &request)?;
        Ok(host.encode_prompted(&seq.field_rows(), &[], None))
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
        let user = self.context_user(session, &DescribedTitles::default(), request, prompt)?;
        let scores = ranker.scores(&features, &rows, host.model().item_vectors(), &user);
        ranked(candidates, Scores::Host(scores))
    }

    /// [`Reranker::rerank_in_context`] of candidates pushed by a server (see
    /// [`Reranker::rerank_pushed_with_history`]): a title the bundle lacks must come with its
    /// metadata, title name included, which gives both its item vector (its pushed vector, when
    /// given, else the content encoder's) and the ranker's view of it (its words, genres, kind
    /// and year; no plays, so popularity 0; the query matched against its words with the
    /// bundle's trigram weights). `history_titles` describe history events of titles the
    /// bundle lacks. Refused as `rerank_in_context` and `rerank_pushed_with_history` refuse,
    /// and a described candidate without a title name by position ([`RerankError::RankerNeedsTitle`]).
    pub fn rerank_pushed_in_context(
        &self,
        history: &[Event],
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
        context: &RankContext,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (ranker, host) = self.contextual()?;
        let (seq, resolved) =
            self.prepare_pushed_with(history, candidates, history_titles, request)?;
        let prompt = self.prompt_of(request)?;
        let tokens = request.context(history);
        let (features, described) =
            self.pushed_features(ranker, candidates, &resolved, context, &tokens)?;
        let user = host.encode_prompted(&seq.field_rows(), &resolved.described.rows, prompt);
        self.pushed_ranking(&resolved, &features, &described, &user)
    }

    /// [`Reranker::rerank_pushed_in_context`] for the member of `session` (its history's keys
    /// and values reused as in [`Reranker::rerank_session_in_context`]; the session keeps the
    /// vectors of described titles its history names, as
    /// [`Reranker::rerank_session_pushed_with_history`] does).
    pub fn rerank_session_pushed_in_context(
        &self,
        session: &mut MemberSession,
        candidates: &[Candidate],
        history_titles: &[Candidate],
        request: &RerankRequest,
        context: &RankContext,
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (ranker, _) = self.contextual()?;
        if session.is_empty() {
            request.check_history(&[])?;
        }
        request.validate()?;
        let resolved = self.resolve_with_history(candidates, history_titles)?;
        let prompt = self.prompt_of(request)?;
        let tokens = request.context(session.history());
        let (features, described) =
            self.pushed_features(ranker, candidates, &resolved, context, &tokens)?;
        let user = self.context_user(session, &resolved.described, request, prompt)?;
        self.pushed_ranking(&resolved, &features, &described, &user)
    }

    /// The ranking of resolved candidates (bundled rows, then `described` titles) by the
    /// ranker for the member's `user` representation.
    fn pushed_ranking(
        &self,
        resolved: &Resolved,
        features: &RequestFeatures,
        described: &DescribedRankedTitles,
        user: &[f32],
    ) -> Result<Vec<ScoredItem>, RerankError> {
        let (ranker, host) = self.contextual()?;
        let item_vectors = host.model().item_vectors();
        let scores = ranker.scores_with(features, &resolved.rows, item_vectors, described, user);
        resolved.ranking(scores)
    }

    /// The request's features and the ranker's view of each described candidate (with its
    /// item vector), the lexical scores extended to them; refuses a described candidate
    /// without metadata and a title name, or one the bundle cannot read the genres of.
    fn pushed_features(
        &self,
        ranker: &ContextualRanker,
        candidates: &[Candidate],
        resolved: &Resolved,
        context: &RankContext,
        tokens: &crate::tokenizer::Context,
    ) -> Result<(RequestFeatures, DescribedRankedTitles), RerankError> {
        let d = self.config.d_model;
        let mut titles = Vec::with_capacity(resolved.described_candidates);
        for &position in &resolved.places[resolved.rows.len()..] {
            let c = &candidates[position];
            let item = c.id;
            let metadata = c
                .metadata
                .as_ref()
                .filter(|m| m.title.is_some())
                .ok_or(RerankError::RankerNeedsTitle { position, item })?;
            let encoder = self
                .content_encoder
                .as_deref()
                .ok_or(RerankError::NoContentEncoder { position, item })?;
            // Resolving checked the metadata of a title described by it; one that brought its
            // vector had its metadata unread until now.
            if c.vector.is_some() {
                check_metadata(encoder, position, item, metadata)?;
            }
            titles.push(RankedTitle::described(metadata, &encoder.spec.genres));
        }
        let mut features =
            ranker.request(&filled(context, tokens), &self.items, tokens.timestamp)?;
        features.describe_lexical(&ranker.index, context.query.as_deref(), &titles);
        let described = DescribedRankedTitles {
            titles,
            vectors: resolved.candidate_vectors(d).to_vec(),
        };
        Ok((features, described))
    }

    /// The user representation of the member of `session` for a contextual call (titles of
    /// `call` described for its history; a session without history encodes the request alone).
    fn context_user(
        &self,
        session: &mut MemberSession,
        call: &DescribedTitles,
        request: &RerankRequest,
        prompt: Option<usize>,
    ) -> Result<Vec<f32>, RerankError> {
        let (_, host) = self.contextual()?;
        if session.is_empty() {
            let seq = self.serving_sequence(&[], request)?;
            session.last_encoded = seq.len() + self.prompt_tokens(prompt);
            return Ok(host.encode_prompted(&seq.field_rows(), &[], prompt));
        }
        match self.session_user(session, call, request, prompt)? {
            SessionUser::Host(user) => Ok(user),
            SessionUser::Device(_) => Err(RerankError::RankerOffCpu),
        }
    }
}
