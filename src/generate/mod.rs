//! Generators turn a source example into candidate edits: [`rules`]
//! (offline, deterministic, the embedded default), [`llm`] (any
//! OpenAI-compatible endpoint) and [`given`] (pairs mode: the edit came with
//! the input).

pub mod given;
pub mod llm;
pub mod rules;
pub mod span_swap;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::record::{Candidate, SourceExample};

/// The generate stage's funnel reason for a source that got no candidate
/// (no rule applied, or every reply was unusable).
pub const NO_CANDIDATES: &str = "no_candidates";

/// What generation made of one source example.
#[derive(Debug, Default)]
pub struct Generated {
    pub candidates: Vec<Candidate>,
    /// Set when the generator could not do its job for this example (an
    /// endpoint that kept failing): the example goes to the dead letters.
    pub failure: Option<GenerateFailure>,
    /// Replies that were not usable (not JSON, violating the schema).
    /// Requests and tokens are counted by the endpoint client.
    pub invalid_replies: u64,
}

#[derive(Debug, Clone)]
pub struct GenerateFailure {
    pub error: crate::record::StageError,
    pub attempts: u32,
}

/// A map stage that turns one example into candidates.
pub trait Generator: Send + Sync {
    /// `rules`, `llm:<model>` or `given`, for the manifest.
    fn describe(&self) -> String;
    fn generate(&self, example: Arc<SourceExample>) -> BoxFuture<'_, Generated>;
}
