//! Run budgets: most requests, most tokens, most estimated cost. A budget
//! is checked before each request that would reach an endpoint (cache hits
//! are free) and, once reached, stops the run cleanly: committed output
//! stays, and a rerun with a larger budget resumes where this one stopped.

use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::config::{BudgetConfig, Price};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("budget reached: {0}")]
pub struct BudgetExhausted(pub String);

/// Usage so far, shared by every client of a run.
#[derive(Default)]
pub struct Budget {
    pub config: BudgetConfig,
    requests: AtomicU64,
    tokens: AtomicU64,
    /// Cost in millionths, so it fits an atomic.
    cost_micros: AtomicU64,
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Self {
        Budget {
            config,
            ..Default::default()
        }
    }

    /// Claim one request, or say which budget is spent.
    pub fn claim_request(&self) -> Result<(), BudgetExhausted> {
        let c = &self.config;
        let why = if c
            .max_tokens
            .is_some_and(|m| self.tokens.load(Ordering::SeqCst) >= m)
        {
            Some(format!("max_tokens = {}", c.max_tokens.unwrap_or(0)))
        } else if c.max_cost.is_some_and(|m| self.cost() >= m) {
            Some(format!("max_cost = {}", c.max_cost.unwrap_or(0.0)))
        } else {
            let n = self.requests.fetch_add(1, Ordering::SeqCst);
            if c.max_requests.is_some_and(|m| n >= m) {
                self.requests.fetch_sub(1, Ordering::SeqCst);
                Some(format!("max_requests = {}", c.max_requests.unwrap_or(0)))
            } else {
                None
            }
        };
        match why {
            Some(w) => Err(BudgetExhausted(w)),
            None => Ok(()),
        }
    }

    /// Count what a reply's `usage` reported.
    pub fn record(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) {
        self.tokens
            .fetch_add(prompt_tokens + completion_tokens, Ordering::SeqCst);
        if let Some(cost) = self.cost_of(model, prompt_tokens, completion_tokens) {
            self.cost_micros
                .fetch_add((cost * 1e6).round() as u64, Ordering::SeqCst);
        }
    }

    pub fn cost(&self) -> f64 {
        self.cost_micros.load(Ordering::SeqCst) as f64 / 1e6
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The estimated cost of some usage of `model`, when its price is known.
    pub fn cost_of(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        self.config.prices.get(model).map(|p| {
            prompt_tokens as f64 * p.prompt_per_million / 1e6
                + completion_tokens as f64 * p.completion_per_million / 1e6
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_stays_a_budget_through_every_stage_error() {
        use crate::record::StageError;
        let b = BudgetExhausted("max_requests = 3".into());
        let via_llm: StageError = crate::llm::LlmError::Budget(b.clone()).into();
        assert_eq!(
            via_llm,
            StageError::Budget("budget reached: max_requests = 3".into())
        );
        let via_embed: StageError = crate::embed::EmbedError::Budget(b).into();
        assert!(matches!(via_embed, StageError::Budget(_)));
        let other: StageError = crate::llm::LlmError::Transport {
            url: "u".into(),
            message: "budget reached: in the text only".into(),
        }
        .into();
        assert!(
            matches!(other, StageError::Failed(_)),
            "recognised by type, not by text"
        );
    }

    #[test]
    fn request_budget_stops_at_the_limit() {
        let b = Budget::new(BudgetConfig {
            max_requests: Some(2),
            ..Default::default()
        });
        assert!(b.claim_request().is_ok());
        assert!(b.claim_request().is_ok());
        assert!(b.claim_request().unwrap_err().0.contains("max_requests"));
        assert_eq!(b.requests(), 2);
    }

    #[test]
    fn cost_budget_uses_the_price_table() {
        let mut prices = std::collections::BTreeMap::new();
        prices.insert(
            "m".to_string(),
            Price {
                prompt_per_million: 1.0,
                completion_per_million: 2.0,
            },
        );
        let b = Budget::new(BudgetConfig {
            max_cost: Some(0.001),
            prices,
            ..Default::default()
        });
        assert!(b.claim_request().is_ok());
        b.record("m", 500, 250); // 0.0005 + 0.0005
        assert!((b.cost() - 0.001).abs() < 1e-9);
        assert!(b.claim_request().is_err());
    }
}
