//! Filters are map stages that score every candidate of a source and
//! reject the ones outside their bounds, with a reason. A rejected
//! candidate stays in the batch (it is data: counted in the funnel and
//! written to the rejects shards) and later filters skip it.

pub mod edit_distance;
pub mod edit_measure;
pub mod label_change;
pub mod similarity;
pub mod verify;

use futures::future::BoxFuture;

use crate::record::SourceBatch;

pub use edit_distance::EditDistance;
pub use label_change::LabelChange;
pub use similarity::SimilarityBand;
pub use verify::Verifier;

/// A map stage over one source's candidates.
pub trait Filter: Send + Sync {
    /// Stage name, as it appears in rejections and the funnel.
    fn stage(&self) -> &'static str;
    /// Score and possibly reject the batch's live candidates. An `Err` is an
    /// infrastructure failure (an embedder that did not answer), not a
    /// verdict on the candidates.
    fn apply<'a>(
        &'a self,
        batch: &'a mut SourceBatch,
    ) -> BoxFuture<'a, Result<(), crate::record::StageError>>;
}
