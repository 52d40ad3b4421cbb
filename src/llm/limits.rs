//! Per-endpoint limits: concurrent requests, requests per minute, tokens per
//! minute — and a pause shared by every worker after a 429, so one rate
//! limit answer slows the whole endpoint instead of each worker finding out
//! for itself (the retry storm peers are known for).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub max_concurrent: Option<usize>,
    pub requests_per_minute: Option<f64>,
    pub tokens_per_minute: Option<f64>,
}

impl Limits {
    /// The limits an endpoint's config asks for.
    pub fn of(endpoint: &crate::config::EndpointConfig) -> Self {
        Limits {
            max_concurrent: endpoint.max_concurrent,
            requests_per_minute: endpoint.requests_per_minute,
            tokens_per_minute: endpoint.tokens_per_minute,
        }
    }
}

struct TokenBucket {
    capacity: f64,
    available: f64,
    refill_per_s: f64,
    at: Instant,
}

impl TokenBucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + dt * self.refill_per_s).min(self.capacity);
        self.at = now;
    }
}

pub struct Limiter {
    concurrency: Option<Semaphore>,
    /// Requests are spaced `60 / rpm` seconds apart: the earliest moment
    /// the next one may go.
    spacing: Option<Duration>,
    next_slot: Mutex<Instant>,
    tokens: Option<Mutex<TokenBucket>>,
    pause_until: Mutex<Option<Instant>>,
}

/// Held while a request is in flight.
pub struct Permit<'a> {
    _concurrency: Option<SemaphorePermit<'a>>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        Limiter {
            concurrency: limits.max_concurrent.map(|n| Semaphore::new(n.max(1))),
            spacing: limits
                .requests_per_minute
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(60.0 / r)),
            next_slot: Mutex::new(now),
            tokens: limits.tokens_per_minute.filter(|t| *t > 0.0).map(|t| {
                Mutex::new(TokenBucket {
                    capacity: t,
                    available: t,
                    refill_per_s: t / 60.0,
                    at: now,
                })
            }),
            pause_until: Mutex::new(None),
        }
    }

    /// Make every request to this endpoint wait at least `d` from now.
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        if let Ok(mut p) = self.pause_until.lock()
            && p.is_none_or(|cur| cur < until)
        {
            *p = Some(until);
        }
    }

    async fn wait_for_pause(&self) {
        loop {
            let until = self.pause_until.lock().ok().and_then(|p| *p);
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// Wait until a request estimated at `tokens` may be sent.
    pub async fn acquire(&self, tokens: u64) -> Permit<'_> {
        let permit = match &self.concurrency {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        self.wait_for_pause().await;
        if let Some(bucket) = &self.tokens {
            loop {
                let wait = {
                    let Ok(mut b) = bucket.lock() else { break };
                    b.refill(Instant::now());
                    // A request larger than the whole bucket goes when it is full.
                    let need = (tokens as f64).min(b.capacity);
                    if b.available >= need {
                        b.available -= tokens as f64;
                        None
                    } else {
                        Some(Duration::from_secs_f64(
                            (need - b.available) / b.refill_per_s,
                        ))
                    }
                };
                match wait {
                    None => break,
                    Some(w) => tokio::time::sleep(w).await,
                }
            }
        }
        if let Some(spacing) = self.spacing {
            let slot = {
                let mut next = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let slot = (*next).max(now);
                *next = slot + spacing;
                slot
            };
            tokio::time::sleep_until(slot).await;
        }
        // A 429 may have arrived while we queued.
        self.wait_for_pause().await;
        Permit {
            _concurrency: permit,
        }
    }

    /// Replace an estimate with the tokens `usage` reported.
    pub fn correct_tokens(&self, estimated: u64, actual: u64) {
        if let Some(bucket) = &self.tokens
            && let Ok(mut b) = bucket.lock()
        {
            b.available += estimated as f64 - actual as f64;
        }
    }
}

/// A rough token count for a request body before sending: characters / 4
/// of the messages, plus the completion budget.
pub fn estimate_tokens(body: &serde_json::Value) -> u64 {
    let chars: usize = body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["content"].as_str())
                .map(str::len)
                .sum()
        })
        .unwrap_or(0)
        + body["input"].as_array().map_or(0, |a| {
            a.iter().filter_map(|x| x.as_str()).map(str::len).sum()
        });
    (chars as u64).div_ceil(4) + body["max_tokens"].as_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_spaces_requests() {
        let l = Limiter::new(Limits {
            requests_per_minute: Some(60.0),
            ..Default::default()
        });
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            let _p = l.acquire(0).await;
        }
        // Three requests at 1/s: the third goes at t = 2 s.
        assert_eq!(start.elapsed().as_secs(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let l = Limiter::new(Limits::default());
        l.pause_for(Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        let _p = l.acquire(0).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_waits_for_the_bucket() {
        let l = Limiter::new(Limits {
            tokens_per_minute: Some(600.0),
            ..Default::default()
        });
        let start = tokio::time::Instant::now();
        let _a = l.acquire(600).await; // empties the bucket
        let _b = l.acquire(100).await; // 100 tokens refill in 10 s
        assert_eq!(start.elapsed().as_secs(), 10);
    }
}
