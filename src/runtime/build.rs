//! Building a [`Pipeline`]: every stage from its config, every setting
//! checked before any work starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::{EMBED_CACHE_ENTRIES, FAST_CACHE_ENTRIES, Pipeline, Stop};
use crate::UsageError;
use crate::config::{EmbedderConfig, FilterConfig, GeneratorConfig, PipelineConfig, Scoring};
use crate::embed::distilled::StaticEmbedder;
use crate::embed::http::HttpEmbedder;
use crate::embed::local::{LocalEmbedder, cache_root, default_model_dir, weights_sha256};
use crate::embed::store::VectorStore;
use crate::embed::{CachedEmbedder, Embedder};
use crate::filter::{EditDistance, Filter, LabelChange, SimilarityBand, Verifier};
use crate::generate::Generator;
use crate::generate::given::GivenEdits;
use crate::generate::llm::LlmGenerator;
use crate::generate::rules::RulesGenerator;
use crate::llm::budget::Budget;
use crate::llm::cache::ResponseCache;
use crate::llm::prompt::PromptSet;
use crate::llm::{OpenAiClient, Shared};

/// The similarity band's embedders: the one whose score decides, and the
/// distilled one that decides first where it is sure (cascade scoring).
async fn build_embedder(
    config: &EmbedderConfig,
    shared: &Shared,
    clients: &mut Vec<(String, Arc<OpenAiClient>)>,
) -> anyhow::Result<(Arc<dyn Embedder>, Option<Arc<dyn Embedder>>)> {
    Ok(match config {
        EmbedderConfig::Local {
            model_dir,
            hub_model,
            hub_revision,
            batch_size,
            scoring,
            precision,
        } => {
            let dir = match (model_dir, hub_model) {
                (Some(dir), _) => dir.clone(),
                (None, Some(repo)) => crate::embed::hub::fetch(repo, hub_revision, &cache_root())
                    .await
                    .context("fetching the embedding model")?,
                (None, None) => default_model_dir(),
            };
            // Read once: it keys both the model's stored vectors and the
            // distilled table.
            let sha = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || weights_sha256(&dir))
                    .await?
                    .map_err(|e| UsageError::new(e.to_string()))?
            };
            let distilled = || async {
                let (dir, sha) = (dir.clone(), sha.clone());
                let e = tokio::task::spawn_blocking(move || StaticEmbedder::for_model(&dir, &sha))
                    .await?
                    .map_err(|e| {
                        UsageError::new(format!(
                            "{e} (distilling a static embedder; `--scoring model`, or \
                             `scoring = \"model\"` under [embedder], runs the model alone)"
                        ))
                    })?;
                anyhow::Ok(Arc::new(e) as Arc<dyn Embedder>)
            };
            let model = || -> anyhow::Result<Arc<dyn Embedder>> {
                Ok(Arc::new(
                    LocalEmbedder::start(&dir, *batch_size, &sha, *precision)
                        .map_err(|e| UsageError::new(e.to_string()))?,
                ))
            };
            match scoring {
                Scoring::Model => (model()?, None),
                Scoring::Distilled => (distilled().await?, None),
                Scoring::Cascade => (model()?, Some(distilled().await?)),
            }
        }
        EmbedderConfig::Http { endpoint } => {
            let client = Arc::new(OpenAiClient::new(endpoint, shared.clone())?);
            clients.push(("similarity".to_string(), client.clone()));
            let http = HttpEmbedder::new(client, endpoint.model.clone(), endpoint.url.clone());
            (Arc::new(http), None)
        }
    })
}

/// The similarity band's embedders, cached: the one that decides (its
/// vectors kept across runs in the store when worth it)
/// and, for cascade scoring, the distilled one that decides first.
async fn band_embedders(
    config: &PipelineConfig,
    shared: &Shared,
    clients: &mut Vec<(String, Arc<OpenAiClient>)>,
) -> anyhow::Result<(Arc<CachedEmbedder>, Option<Arc<CachedEmbedder>>)> {
    let (decide, fast) = build_embedder(&config.embedder, shared, clients).await?;
    let worth_storing = decide.worth_storing();
    let mut decide = CachedEmbedder::new(decide, EMBED_CACHE_ENTRIES);
    if worth_storing {
        let path = config
            .cache
            .embeddings
            .clone()
            .unwrap_or_else(|| cache_root().join("embeddings.sqlite"));
        match VectorStore::open(&path, config.cache.mode) {
            Ok(Some(store)) => decide = decide.with_store(Arc::new(store)),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; embedding without a store"),
        }
    }
    // The distilled embedder recomputes a vector about as fast as a cache
    // finds it: a small cache shares a source's original among its
    // candidates and no more.
    let fast = fast.map(|e| Arc::new(CachedEmbedder::new(e, FAST_CACHE_ENTRIES)));
    Ok((Arc::new(decide), fast))
}

fn uses_endpoints(config: &PipelineConfig, filters: &[FilterConfig]) -> bool {
    (!config.source.pairs_mode() && matches!(config.generator, GeneratorConfig::Llm(_)))
        || (config.needs_embedder() && matches!(config.embedder, EmbedderConfig::Http { .. }))
        || filters.iter().any(|f| matches!(f, FilterConfig::Verify(_)))
}

impl Pipeline {
    /// Build every stage; configuration problems are [`UsageError`]s.
    pub async fn build(mut config: PipelineConfig, out_dir: PathBuf) -> anyhow::Result<Self> {
        config.validate()?;
        let task = config.task()?;
        let filter_configs = config.resolved_filters()?;
        // The manifest shows the filters actually used.
        config.filters = Some(filter_configs.clone());
        let budget = Arc::new(Budget::new(config.budget.clone()));
        let cache = if uses_endpoints(&config, &filter_configs) {
            let path = config
                .cache
                .path
                .clone()
                .unwrap_or_else(|| out_dir.join("cache.sqlite"));
            Some(Arc::new(ResponseCache::open(&path, config.cache.mode)?))
        } else {
            None
        };
        let shared = Shared {
            cache: cache.clone(),
            budget: budget.clone(),
            cache_namespace: config.cache.namespace.clone(),
        };
        let mut clients = Vec::new();
        let mut prompts = BTreeMap::new();
        let generator: Arc<dyn Generator> = if config.source.pairs_mode() {
            Arc::new(GivenEdits::new(task))
        } else {
            match &config.generator {
                GeneratorConfig::Rules { ops, max_per_op } => Arc::new(RulesGenerator::new(
                    task,
                    GeneratorConfig::rule_ops(ops, task),
                    *max_per_op,
                )),
                GeneratorConfig::Llm(llm) => {
                    let set = PromptSet::load(task, llm.prompts_dir.as_deref())
                        .map_err(|e| UsageError::new(e.to_string()))?;
                    prompts.insert(task.name.to_string(), set.sha256.clone());
                    let client = Arc::new(OpenAiClient::new(&llm.endpoint, shared.clone())?);
                    clients.push(("generate".to_string(), client.clone()));
                    Arc::new(LlmGenerator::new(task, (**llm).clone(), client, set))
                }
            }
        };
        // Captions that name a span and an alternative get the COCO-CON
        // swap as well.
        let generator: Arc<dyn Generator> = if task.span_swap && !config.source.pairs_mode() {
            Arc::new(crate::generate::span_swap::SpanSwap::new(generator))
        } else {
            generator
        };
        let embedder = if config.needs_embedder() {
            Some(band_embedders(&config, &shared, &mut clients).await?)
        } else {
            None
        };
        let mut filters: Vec<Arc<dyn Filter>> = Vec::new();
        for f in &filter_configs {
            filters.push(match f {
                FilterConfig::Verify(v) => {
                    let set = PromptSet::load_named(
                        "verify",
                        &crate::tasks::VERIFY_PROMPTS,
                        v.prompts_dir.as_deref(),
                    )
                    .map_err(|e| UsageError::new(e.to_string()))?;
                    prompts.insert("verify".to_string(), set.sha256.clone());
                    let client = Arc::new(OpenAiClient::new(&v.endpoint, shared.clone())?);
                    clients.push(("verify".to_string(), client.clone()));
                    Arc::new(Verifier::new(task.name, (**v).clone(), client, set))
                }
                FilterConfig::LabelChange => Arc::new(LabelChange),
                FilterConfig::EditDistance(e) => Arc::new(EditDistance {
                    bounds: e.bounds(task),
                    max_word_edits: e.max_word_edits,
                    max_edit_ratio: e.max_edit_ratio,
                }),
                FilterConfig::Similarity { min, max } => {
                    let (decide, fast) = embedder
                        .clone()
                        .expect("built when a similarity filter exists");
                    Arc::new(SimilarityBand {
                        min: *min,
                        max: *max,
                        embedder: decide,
                        fast,
                    })
                }
            });
        }
        Ok(Pipeline {
            embedder: embedder.as_ref().map(|(decide, fast)| match fast {
                Some(fast) => format!(
                    "{}; near the band's edges {}",
                    fast.describe(),
                    decide.describe()
                ),
                None => decide.describe(),
            }),
            config,
            out_dir,
            task,
            generator,
            filters,
            prompts,
            clients,
            budget,
            stop: Arc::new(Stop::default()),
        })
    }
}
