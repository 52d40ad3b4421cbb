//! Deduplication of accepted pairs. Dedup is a barrier stage: it sees
//! batches in source order (the runtime guarantees it), so "first seen
//! wins" picks the same survivor whatever the concurrency.

pub mod disk;
mod earlier;
pub mod exact;
pub mod minhash;
pub mod near;

pub use exact::ExactDedup;
pub use near::NearDedup;
