//! The similarity band: cosine(original, edit) must lie in `[min, max]` —
//! close enough to be a minimal edit, not so close that it is a
//! paraphrase that changes nothing.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::Filter;
use crate::embed::CachedEmbedder;
use crate::record::SourceBatch;
use crate::text::cosine;

pub const STAGE: &str = "similarity";
/// Cosine similarity below the band: not a minimal edit of the original.
pub const BELOW_MIN: &str = "similarity_below_min";
/// Cosine similarity above the band: too close to the original.
pub const ABOVE_MAX: &str = "similarity_above_max";

pub struct SimilarityBand {
    pub min: f64,
    pub max: f64,
    pub embedder: Arc<CachedEmbedder>,
}

impl Filter for SimilarityBand {
    fn stage(&self) -> &'static str {
        STAGE
    }

    fn apply<'a>(
        &'a self,
        batch: &'a mut SourceBatch,
    ) -> BoxFuture<'a, Result<(), crate::record::StageError>> {
        Box::pin(async move {
            let live: Vec<usize> = (0..batch.candidates.len())
                .filter(|&i| !batch.candidates[i].is_rejected())
                .collect();
            if live.is_empty() {
                return Ok(());
            }
            // Each live candidate's original and edit (the whole example
            // when the edit changed other fields too, as a premise or a
            // passage edit does); the cache embeds a text shared by several
            // candidates once.
            let example = batch.example.clone();
            let mut texts: Vec<Cow<str>> = Vec::with_capacity(2 * live.len());
            for &i in &live {
                let c = &batch.candidates[i];
                match &c.edited_context {
                    None => {
                        texts.push(Cow::Borrowed(&c.original));
                        texts.push(Cow::Borrowed(&c.edited));
                    }
                    Some(edited_context) => {
                        let context = example.context(&c.edited_field).unwrap_or_default();
                        texts.push(Cow::Owned(format!("{}\n{context}", c.original)));
                        texts.push(Cow::Owned(format!("{}\n{edited_context}", c.edited)));
                    }
                }
            }
            let refs: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
            let vectors = self
                .embedder
                .embed_all(&refs)
                .await
                .map_err(crate::record::StageError::from)?;
            for (k, &i) in live.iter().enumerate() {
                let c = &mut batch.candidates[i];
                // Round so the stored score is what was compared.
                let sim =
                    (f64::from(cosine(&vectors[2 * k], &vectors[2 * k + 1])) * 1e6).round() / 1e6;
                c.scores.similarity = Some(sim);
                if sim < self.min {
                    c.reject(STAGE, BELOW_MIN, format!("cosine {sim:.4} < {}", self.min));
                } else if sim > self.max {
                    c.reject(STAGE, ABOVE_MAX, format!("cosine {sim:.4} > {}", self.max));
                }
            }
            Ok(())
        })
    }
}
