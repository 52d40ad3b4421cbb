//! `[budget]`: the most requests, tokens and estimated cost a run may spend
//! (enforced by `llm::budget::Budget`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Price of a model, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    #[serde(default)]
    pub max_requests: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// In the currency of `prices`; needs a price for every model used.
    #[serde(default)]
    pub max_cost: Option<f64>,
    /// Model name → price, for the cost estimate in the manifest.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}
