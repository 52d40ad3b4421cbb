//! foil builds contrast sets: minimally edited variants of dataset examples
//! whose label or answer changes (or, for invariance probes, must not),
//! checked by filters, deduplicated and written as Parquet shards with
//! provenance.
//!
//! The flow is `source → generate → filters → dedup → sink`; see
//! [`runtime`] for how the stages are wired and `docs/ARCHITECTURE.md` for
//! the picture.

pub mod cli;
pub mod commands;
pub mod config;
pub mod dedup;
pub mod embed;
pub mod files;
pub mod filter;
pub mod generate;
pub mod llm;
pub mod record;
pub mod review;
pub mod runtime;
pub mod settings;
pub mod sink;
pub mod source;
pub mod tasks;
pub mod text;

#[cfg(test)]
mod fuzz_tests;

/// An error that is the user's to fix in their command line or pipeline
/// file (exit code 2), as opposed to a run that failed (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> Self {
        UsageError(msg.into())
    }
}
