//! `[generator]`, the endpoints it and the embedder talk to, and
//! `[embedder]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tasks::TaskPreset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    Negation,
    Antonym,
    Number,
    Quantifier,
    Comparative,
    Temporal,
    Gender,
}

impl RuleOp {
    pub const ALL: [RuleOp; 7] = [
        RuleOp::Negation,
        RuleOp::Antonym,
        RuleOp::Number,
        RuleOp::Quantifier,
        RuleOp::Comparative,
        RuleOp::Temporal,
        RuleOp::Gender,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleOp::Negation => "negation",
            RuleOp::Antonym => "antonym",
            RuleOp::Number => "number",
            RuleOp::Quantifier => "quantifier",
            RuleOp::Comparative => "comparative",
            RuleOp::Temporal => "temporal",
            RuleOp::Gender => "gender",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GeneratorConfig {
    /// Offline, deterministic perturbations: the embedded default.
    Rules {
        /// The operations to run; unset: the task's defaults (those judged
        /// at least 80% valid on real originals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops: Option<Vec<RuleOp>>,
        /// Most candidates one operation makes per source.
        #[serde(default = "default_max_per_op")]
        max_per_op: usize,
    },
    /// Any OpenAI-compatible chat completions endpoint.
    Llm(Box<LlmGeneratorConfig>),
}

impl GeneratorConfig {
    /// The rules operations a run of `task` applies.
    pub fn rule_ops(ops: &Option<Vec<RuleOp>>, task: &TaskPreset) -> Vec<RuleOp> {
        match ops {
            Some(ops) => ops.clone(),
            None => RuleOp::ALL
                .into_iter()
                .filter(|op| task.rule_ops.contains(&op.name()))
                .collect(),
        }
    }
}

pub(crate) fn default_max_per_op() -> usize {
    2
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig::Rules {
            ops: None,
            max_per_op: default_max_per_op(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL ending in `/v1`.
    pub url: String,
    pub model: String,
    /// Name of the environment variable holding the API key; the key may be
    /// absent for local servers.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Attempts per request (first try included) on 429, 5xx, timeouts.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry waits about this long; each further one twice as long.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Most requests in flight to this endpoint at once.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Most requests per minute (spaced evenly).
    #[serde(default)]
    pub requests_per_minute: Option<f64>,
    /// Most tokens (prompt + completion) per minute, estimated before a
    /// request and corrected from `usage` after.
    #[serde(default)]
    pub tokens_per_minute: Option<f64>,
}

impl EndpointConfig {
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        EndpointConfig {
            url: url.into(),
            model: model.into(),
            api_key_env: default_api_key_env(),
            timeout_s: default_timeout_s(),
            max_attempts: default_attempts(),
            retry_base_ms: default_retry_base_ms(),
            max_concurrent: None,
            requests_per_minute: None,
            tokens_per_minute: None,
        }
    }
}

pub fn default_api_key_env() -> String {
    "OPENAI_API_KEY".to_string()
}

pub(crate) fn default_timeout_s() -> f64 {
    60.0
}

pub(crate) fn default_attempts() -> u32 {
    4
}

pub(crate) fn default_retry_base_ms() -> u64 {
    500
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmGeneratorConfig {
    #[serde(flatten)]
    pub endpoint: EndpointConfig,
    /// Candidates asked for per source (one request each, seeds `seed`,
    /// `seed + 1`, …).
    #[serde(default = "default_n")]
    pub n: u32,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// A folder with `<task>/system.jinja`, `user.jinja`, `schema.json`
    /// replacing the built-in templates.
    #[serde(default)]
    pub prompts_dir: Option<PathBuf>,
    /// Further attempts after a reply that is not JSON or breaks the schema.
    #[serde(default = "default_bad_reply_retries")]
    pub bad_reply_retries: u32,
    /// Retry a bad reply with another seed (seed + 1000 × attempt) instead
    /// of the same request.
    #[serde(default)]
    pub reseed_bad_replies: bool,
    /// Edit-type quotas: ask for `per_type` candidates of each of these
    /// types (from the task's taxonomy) instead of `n` of any type, so the
    /// output is balanced. A reply of another type is a bad reply.
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default = "default_per_type")]
    pub per_type: u32,
}

pub(crate) fn default_per_type() -> u32 {
    1
}

pub(crate) fn default_bad_reply_retries() -> u32 {
    1
}

impl LlmGeneratorConfig {
    /// The defaults a pipeline file gets for an `llm` generator.
    pub fn with_endpoint(endpoint: EndpointConfig) -> Self {
        LlmGeneratorConfig {
            endpoint,
            n: default_n(),
            temperature: default_temperature(),
            top_p: None,
            seed: None,
            max_tokens: default_max_tokens(),
            prompts_dir: None,
            bad_reply_retries: default_bad_reply_retries(),
            reseed_bad_replies: false,
            types: Vec::new(),
            per_type: default_per_type(),
        }
    }
}

pub(crate) fn default_n() -> u32 {
    2
}

pub(crate) fn default_temperature() -> f64 {
    0.7
}

pub(crate) fn default_max_tokens() -> u32 {
    256
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// all-MiniLM-L6-v2 (or any BERT-family sentence model folder) run
    /// in-process with candle.
    Local {
        /// A folder with config.json, tokenizer.json, model.safetensors;
        /// default: `$FOIL_MODEL_DIR`, else the cache folder that
        /// `scripts/fetch-model` fills.
        #[serde(default)]
        model_dir: Option<PathBuf>,
        /// Instead of a folder: a model repository on a Hugging Face-style
        /// hub (`owner/name`), downloaded once into foil's cache.
        #[serde(default)]
        hub_model: Option<String>,
        #[serde(default = "default_hub_revision")]
        hub_revision: String,
        #[serde(default = "default_embed_batch")]
        batch_size: usize,
        /// How the band is scored: `cascade` (the static embedder
        /// distilled from the model decides, the model itself where the
        /// static score is near an edge of the band), `distilled` (the
        /// static embedder alone) or `model` (the model alone).
        #[serde(default)]
        scoring: Scoring,
        /// The model's arithmetic: `auto` (8-bit integers where the CPU
        /// has VNNI instructions, f32 elsewhere), `int8` or `f32`.
        #[serde(default)]
        precision: Precision,
    },
    /// Any OpenAI-compatible `/v1/embeddings` endpoint.
    Http {
        #[serde(flatten)]
        endpoint: EndpointConfig,
    },
}

pub(crate) fn default_embed_batch() -> usize {
    32
}

/// Which embedder scores the similarity band (local models only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// The distilled static embedder decides; pairs whose static score
    /// lies near an edge of the band are scored again by the model, whose
    /// score then decides.
    #[default]
    Cascade,
    /// The distilled static embedder alone.
    Distilled,
    /// The sentence model alone.
    Model,
}

/// The local model's arithmetic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// `int8` where the CPU has VNNI instructions (AVX-512 VNNI or
    /// AVX-VNNI), where it is the faster; `f32` elsewhere.
    #[default]
    Auto,
    /// Dense products in 8-bit integers (weights per column, activations
    /// per token): mean cosine 0.9987 with the f32 vectors, least 0.997
    /// (docs/BENCHMARKS.md).
    Int8,
    /// The checkpoint's own f32 arithmetic.
    F32,
}

impl Precision {
    /// The names `--precision` and `precision = …` take, in the order of
    /// [`Precision::from_name`].
    pub const NAMES: [&'static str; 3] = ["auto", "int8", "f32"];

    /// The precision a name in [`Precision::NAMES`] stands for.
    pub fn from_name(name: &str) -> Option<Precision> {
        let all = [Precision::Auto, Precision::Int8, Precision::F32];
        Precision::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| all[i])
    }
}

pub(crate) fn default_hub_revision() -> String {
    "main".to_string()
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig::Local {
            model_dir: None,
            hub_model: None,
            hub_revision: default_hub_revision(),
            batch_size: default_embed_batch(),
            scoring: Scoring::default(),
            precision: Precision::default(),
        }
    }
}
