//! A small OpenAI-compatible client (chat completions and embeddings) for
//! every endpoint foil talks to: OpenAI, vLLM, llama.cpp's server, Ollama.
//!
//! The key comes from the environment variable the config names and lives
//! only in the `Authorization` header: [`ApiKey`] never prints, and every
//! error message passes through [`OpenAiClient::redact`] in case a server
//! echoes it back.

pub mod budget;
pub mod cache;
pub mod limits;
pub mod prompt;
mod retry;
pub mod schema;

pub use retry::retry_after;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::EndpointConfig;
use budget::{Budget, BudgetExhausted};
use cache::{ResponseCache, cache_key};
use limits::{Limiter, estimate_tokens};

/// An API key that never shows itself in `Debug` or `Display`.
#[derive(Clone)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: unexpected reply: {message}")]
    Decode { url: String, message: String },
    #[error(transparent)]
    Budget(#[from] BudgetExhausted),
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

/// Why a reply that arrived cannot be used: not the shape the caller asked
/// for (no content, wrong count, not JSON, breaks the reply schema).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadReply(pub String);

impl From<&str> for BadReply {
    fn from(s: &str) -> Self {
        BadReply(s.to_string())
    }
}

impl From<String> for BadReply {
    fn from(s: String) -> Self {
        BadReply(s)
    }
}

impl From<schema::SchemaError> for BadReply {
    fn from(e: schema::SchemaError) -> Self {
        BadReply(e.to_string())
    }
}

impl From<LlmError> for crate::record::StageError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::Budget(b) => crate::record::StageError::Budget(b.to_string()),
            other => crate::record::StageError::Failed(other.to_string()),
        }
    }
}

impl LlmError {
    /// Worth another attempt: rate limits, server errors, timeouts, dropped
    /// connections and garbled replies. Other 4xx answers will not change
    /// on retry, and a spent budget stays spent.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            LlmError::Transport { .. } | LlmError::Decode { .. } => true,
            LlmError::Budget(_) | LlmError::Cache(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A chat completion's text and token counts.
#[derive(Debug, Clone)]
pub struct ChatReply {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub finish_reason: Option<String>,
    pub attempts: u32,
    /// Answered from the response cache: no request was sent.
    pub cached: bool,
}

/// Counters for the manifest, per client.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// HTTP requests sent (retries included).
    pub sent: AtomicU64,
    pub cache_hits: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

/// What every client of one run shares: the response cache and the budget.
#[derive(Clone, Default)]
pub struct Shared {
    pub cache: Option<Arc<ResponseCache>>,
    pub budget: Arc<Budget>,
    /// The cache namespace; `None` files replies under each endpoint's
    /// base URL.
    pub cache_namespace: Option<String>,
}

pub struct OpenAiClient {
    http: reqwest::Client,
    base: String,
    model: String,
    key: Option<ApiKey>,
    max_attempts: u32,
    retry_base: Duration,
    limiter: Limiter,
    shared: Shared,
    /// Set after the server refused `json_schema`: later JSON requests go
    /// straight to `json_object`.
    schema_refused: AtomicBool,
    pub stats: ClientStats,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

/// Outcome of one attempt: the error and how long the server asked us to
/// wait.
type Attempt = Result<Value, (LlmError, Option<Duration>)>;

impl OpenAiClient {
    /// Build a client; the key is read from the environment variable the
    /// endpoint names, and may be absent (local servers need none).
    pub fn new(endpoint: &EndpointConfig, shared: Shared) -> Result<Self, LlmError> {
        let key = std::env::var(&endpoint.api_key_env)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(ApiKey);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(endpoint.timeout_s))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::Transport {
                url: endpoint.url.clone(),
                message: e.to_string(),
            })?;
        Ok(OpenAiClient {
            http,
            base: endpoint.url.trim_end_matches('/').to_string(),
            model: endpoint.model.clone(),
            key,
            max_attempts: endpoint.max_attempts,
            retry_base: Duration::from_millis(endpoint.retry_base_ms),
            limiter: Limiter::new(limits::Limits::of(endpoint)),
            shared,
            schema_refused: AtomicBool::new(false),
            stats: ClientStats::default(),
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Remove the key from a message, should a server have echoed it.
    pub fn redact(&self, message: &str) -> String {
        match &self.key {
            Some(ApiKey(k)) if k.len() >= 4 => message.replace(k.as_str(), "<redacted>"),
            _ => message.to_string(),
        }
    }

    fn redact_value(&self, v: Value) -> Value {
        match &self.key {
            Some(ApiKey(k)) if k.len() >= 4 => {
                let text = v.to_string();
                if text.contains(k.as_str()) {
                    serde_json::from_str(&text.replace(k.as_str(), "<redacted>")).unwrap_or(v)
                } else {
                    v
                }
            }
            _ => v,
        }
    }

    fn endpoint_url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// One POST, no retries.
    async fn post_once(&self, url: &str, body: &Value) -> Attempt {
        let mut req = self.http.post(url).json(body);
        if let Some(ApiKey(k)) = &self.key {
            req = req.bearer_auth(k);
        }
        let transport = |e: reqwest::Error| {
            (
                LlmError::Transport {
                    url: url.to_string(),
                    message: self.redact(&transport_message(&e)),
                },
                None,
            )
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| retry_after(s, std::time::SystemTime::now()));
        let text = resp.text().await.map_err(transport)?;
        if !status.is_success() {
            let excerpt: String = text.chars().take(300).collect();
            return Err((
                LlmError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                    body: self.redact(&excerpt),
                },
                retry_after,
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            (
                LlmError::Decode {
                    url: url.to_string(),
                    message: format!("body is not JSON, or cut short ({e})"),
                },
                None,
            )
        })
    }

    /// POST through the cache, the limits and the budget, with retries
    /// (exponential backoff with jitter; `Retry-After` honoured, and a 429
    /// pauses every worker on this endpoint). `check` rejects a 200 reply
    /// whose shape is wrong, which is then retried like a transport fault.
    ///
    /// `variant` asks the same question again as a separate cache entry: a
    /// caller retrying a reply it could not use passes 1, 2, … so that a
    /// rerun finds every step of the retry chain in the cache and sends
    /// nothing again.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        variant: u32,
        check: &(dyn Fn(&Value) -> Result<(), BadReply> + Sync),
    ) -> Result<(Value, u32, bool), (LlmError, u32)> {
        let namespace = self.shared.cache_namespace.as_deref().unwrap_or(&self.base);
        let mut key = cache_key(namespace, path, body);
        if variant > 0 {
            key.push_str(&format!("#{variant}"));
        }
        if let Some(cache) = &self.shared.cache
            && let Some(v) = cache.get(&key).await.map_err(|e| (e.into(), 0))?
            && check(&v).is_ok()
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((v, 0, true));
        }
        let url = self.endpoint_url(path);
        let estimate = estimate_tokens(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.shared
                .budget
                .claim_request()
                .map_err(|e| (e.into(), attempt - 1))?;
            let outcome = {
                let _permit = self.limiter.acquire(estimate).await;
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                self.post_once(&url, body).await.and_then(|v| {
                    check(&v).map(|_| v).map_err(|bad| {
                        (
                            LlmError::Decode {
                                url: url.clone(),
                                message: bad.0,
                            },
                            None,
                        )
                    })
                })
            };
            match outcome {
                Ok(v) => {
                    // A server that echoes the key must not put it in the
                    // cache or the output.
                    let v = self.redact_value(v);
                    let (p, c) = usage(&v);
                    self.limiter.correct_tokens(estimate, p + c);
                    self.stats.prompt_tokens.fetch_add(p, Ordering::Relaxed);
                    self.stats.completion_tokens.fetch_add(c, Ordering::Relaxed);
                    self.shared.budget.record(&self.model, p, c);
                    if let Some(cache) = &self.shared.cache {
                        // Durable before it is used.
                        cache.put(&key, &v).await.map_err(|e| (e.into(), attempt))?;
                    }
                    return Ok((v, attempt, false));
                }
                Err((err, retry_after)) => {
                    if err.status() == Some(429) {
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        // Everyone on this endpoint waits, not just us.
                        self.limiter.pause_for(
                            retry_after.unwrap_or_else(|| backoff(self.retry_base, attempt)),
                        );
                    }
                    if attempt >= self.max_attempts || !err.is_retryable() {
                        return Err((err, attempt));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = retry_after.unwrap_or_else(|| backoff(self.retry_base, attempt));
                    tracing::debug!(err = %err, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// `POST /chat/completions`; the body is sent as given. A reply without
    /// `choices[0].message.content` counts as a bad reply and is retried.
    pub async fn chat(&self, body: &Value, variant: u32) -> Result<ChatReply, (LlmError, u32)> {
        let check = |v: &Value| -> Result<(), BadReply> {
            match v["choices"][0]["message"]["content"].as_str() {
                Some(_) => Ok(()),
                None => Err("no choices[0].message.content".into()),
            }
        };
        let (v, attempts, cached) = self
            .post_json("chat/completions", body, variant, &check)
            .await?;
        let choice = &v["choices"][0];
        let (prompt_tokens, completion_tokens) = usage(&v);
        Ok(ChatReply {
            content: choice["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            prompt_tokens,
            completion_tokens,
            finish_reason: choice["finish_reason"].as_str().map(str::to_string),
            attempts,
            cached,
        })
    }

    /// A chat request for a JSON reply: `response_format` `json_schema`
    /// (strict, under `name`), falling back for the rest of the run to
    /// `json_object` once the server answers 400 to it (llama.cpp builds
    /// and some hosted APIs do not take schemas).
    pub async fn chat_json(
        &self,
        body: &Value,
        name: &str,
        schema: &Value,
        variant: u32,
    ) -> Result<ChatReply, (LlmError, u32)> {
        loop {
            let use_schema = !self.schema_refused.load(Ordering::Relaxed);
            let mut body = body.clone();
            body["response_format"] = if use_schema {
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": schema, "strict": true}
                })
            } else {
                json!({"type": "json_object"})
            };
            match self.chat(&body, variant).await {
                Err((err, _)) if use_schema && err.status() == Some(400) => {
                    tracing::info!(
                        endpoint = %self.base,
                        "endpoint refused response_format json_schema; using json_object"
                    );
                    self.schema_refused.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    /// `POST /embeddings` for a batch of texts, in input order.
    pub async fn embeddings(
        &self,
        model: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        let body = json!({"model": model, "input": texts});
        let n = texts.len();
        let check = move |v: &Value| -> Result<(), BadReply> {
            let len = v["data"].as_array().map_or(0, Vec::len);
            if len == n {
                Ok(())
            } else {
                Err(BadReply(format!("{len} embeddings for {n} inputs")))
            }
        };
        let (v, _, _) = self
            .post_json("embeddings", &body, 0, &check)
            .await
            .map_err(|(e, _)| e)?;
        let url = self.endpoint_url("embeddings");
        let data = v["data"].as_array().cloned().unwrap_or_default();
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for (pos, item) in data.iter().enumerate() {
            let index = item["index"].as_u64().map_or(pos, |i| i as usize);
            let vector = item["embedding"].as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| x as f32)
                    .collect()
            });
            if let (Some(slot), Some(vector)) = (out.get_mut(index), vector) {
                *slot = Some(vector);
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| LlmError::Decode {
                    url: url.clone(),
                    message: format!("no embedding for input {i}"),
                })
            })
            .collect()
    }
}

fn usage(v: &Value) -> (u64, u64) {
    (
        v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    )
}

fn transport_message(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the reply"
    } else {
        "request failed"
    };
    // The source chain says why (refused, reset) without the URL twice.
    let mut msg = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// `base * 2^(attempt-1)`, capped at 30 s, with up to 50% jitter so that
/// workers that failed together do not retry together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = capped.mul_f64(f64::from(nanos % 1000) / 2000.0);
    capped + jitter
}

/// The first JSON object in a reply, tolerating prose or code fences
/// around it.
pub fn extract_json_object(content: &str) -> Option<Value> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(content.trim()) {
        return Some(v);
    }
    let start = content.find('{')?;
    let end = content.rfind('}')?;
    if end <= start {
        return None;
    }
    match serde_json::from_str::<Value>(&content[start..=end]) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::retry::http_date;
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        // RFC 9110's example date is 784111777 s after the epoch.
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            http_date("Thu, 03 Dec 2026 14:00:00 GMT"),
            Some(1_796_306_400)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                "Sun, 06 Nov 1994 08:49:30 GMT",
                now + Duration::from_secs(60)
            ),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after("2.5", now), Some(Duration::from_millis(2500)));
        assert_eq!(retry_after("100000", now), Some(Duration::from_secs(300)));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn api_key_never_prints() {
        let k = ApiKey("sk-secret-123".into());
        assert!(!format!("{k:?}").contains("secret"));
    }

    #[test]
    fn json_is_found_inside_prose() {
        let v =
            extract_json_object("Sure! ```json\n{\"edited\": \"x\"}\n``` hope that helps").unwrap();
        assert_eq!(v["edited"], "x");
        assert!(extract_json_object("no json here").is_none());
        assert!(extract_json_object("[1, 2]").is_none());
    }

    #[test]
    fn only_transient_failures_retry() {
        let s = |status| LlmError::Status {
            url: String::new(),
            status,
            body: String::new(),
        };
        assert!(s(429).is_retryable());
        assert!(s(503).is_retryable());
        assert!(!s(400).is_retryable());
        assert!(!s(401).is_retryable());
    }
}
