//! `foil generate`'s flags as a [`PipelineConfig`]: the same settings a
//! pipeline file describes, with the same defaults (unset flags leave the
//! config's own).

use std::collections::BTreeMap;

use crate::UsageError;
use crate::cli::GenerateArgs;
use crate::config as d;
use crate::config::DedupConfig;
use crate::config::{
    CacheConfig, EditDistanceConfig, EmbedderConfig, EndpointConfig, FilterConfig, GeneratorConfig,
    LlmGeneratorConfig, PipelineConfig, Precision, RuleOp, Scoring, SinkConfig, SourceConfig,
    SourceFormat,
};
use crate::llm::budget::{BudgetConfig, Price};
use crate::llm::cache::CacheMode;
use crate::tasks;

fn endpoint(
    url: String,
    model: String,
    api_key_env: Option<String>,
    args: &GenerateArgs,
) -> EndpointConfig {
    let d = EndpointConfig::new(url, model);
    EndpointConfig {
        api_key_env: api_key_env.unwrap_or(d.api_key_env.clone()),
        timeout_s: args.timeout.unwrap_or(d.timeout_s),
        max_attempts: args.max_attempts.unwrap_or(d.max_attempts),
        ..d
    }
}

fn parse_price(spec: &str) -> Result<(String, Price), UsageError> {
    let bad = || {
        UsageError::new(format!(
            "--price `{spec}`: expected MODEL=PROMPT,COMPLETION (per million tokens)"
        ))
    };
    let (model, rest) = spec.rsplit_once('=').ok_or_else(bad)?;
    let (a, b) = rest.split_once(',').ok_or_else(bad)?;
    Ok((
        model.trim().to_string(),
        Price {
            prompt_per_million: a.trim().parse().map_err(|_| bad())?,
            completion_per_million: b.trim().parse().map_err(|_| bad())?,
        },
    ))
}

/// The pipeline `foil generate`'s flags describe.
/// The pipeline `generate`'s flags describe (before the run-control
/// overlays of [`super::overlay`]).
pub fn to_config(args: &GenerateArgs) -> Result<PipelineConfig, UsageError> {
    let task = tasks::preset(&args.task).ok_or_else(|| {
        UsageError::new(format!(
            "unknown task `{}`; expected one of: {}",
            args.task,
            tasks::names().join(", ")
        ))
    })?;
    let mut fields = BTreeMap::new();
    for spec in &args.fields {
        let (field, column) = spec
            .split_once('=')
            .ok_or_else(|| UsageError::new(format!("--field `{spec}`: expected FIELD=COLUMN")))?;
        fields.insert(field.trim().to_string(), column.trim().to_string());
    }
    if let Some(c) = &args.text_field {
        fields.insert(task.edit_field.to_string(), c.clone());
    }
    if let Some(c) = &args.label_field {
        fields.insert("label".to_string(), c.clone());
    }
    let format = match args.format.as_deref() {
        Some("csv") => Some(SourceFormat::Csv),
        Some("jsonl") => Some(SourceFormat::Jsonl),
        Some("parquet") => Some(SourceFormat::Parquet),
        _ => None,
    };
    let generator = generator(args)?;
    let embedder = embedder(args);
    let d = task.filters;
    // Unset bounds are filled in from the task when the filters resolve.
    let edit = EditDistanceConfig {
        max_ops: args.max_edit_ops,
        ops_per_100_words: args.ops_per_100_words,
        max_changed_share: args.max_changed_share,
        min_related_share: args.min_related_share,
        max_word_edits: args.max_word_edits,
        max_edit_ratio: args.max_edit_ratio,
        ..EditDistanceConfig::default()
    };
    let mut filters = vec![FilterConfig::LabelChange, FilterConfig::EditDistance(edit)];
    // `--edited-field COLUMN` is the edited text; `FIELD=COLUMN` an edited
    // version of another field.
    let mut edited = None;
    let mut edited_fields = BTreeMap::new();
    for spec in &args.edited_field {
        match spec.split_once('=') {
            Some((f, c)) if f.trim() != task.edit_field => {
                edited_fields.insert(f.trim().to_string(), c.trim().to_string());
            }
            Some((_, c)) => edited = Some(c.trim().to_string()),
            None => edited = Some(spec.trim().to_string()),
        }
    }
    if !args.no_similarity {
        filters.push(FilterConfig::Similarity {
            min: args.sim_min.unwrap_or(d.similarity_min),
            max: args.sim_max.unwrap_or(d.similarity_max),
        });
    }
    let config = PipelineConfig {
        name: None,
        task: args.task.clone(),
        out: Some(args.out.clone()),
        concurrency: args.concurrency.unwrap_or_else(d::default_concurrency),
        source: SourceConfig {
            path: args.input.clone(),
            format,
            id: args.id_field.clone(),
            fields,
            edited,
            edited_fields,
            edited_label: args.edited_label_field.clone(),
            edit_type: args.edit_type_field.clone(),
            max_bad_rows: args.max_bad_rows.unwrap_or_else(d::default_max_bad_rows),
            max_field_bytes: args
                .max_field_bytes
                .unwrap_or_else(d::default_max_field_bytes),
            limit: None,
        },
        generator,
        embedder,
        filters: Some(filters),
        dedup: DedupConfig::default(),
        sink: SinkConfig {
            rows_per_shard: args
                .rows_per_shard
                .unwrap_or_else(d::default_rows_per_shard),
            write_rejected: !args.no_rejected,
            ..SinkConfig::default()
        },
        cache: CacheConfig {
            path: args.cache.clone(),
            mode: CacheMode::Use,
            namespace: args.cache_namespace.clone(),
            embeddings: None,
        },
        budget: BudgetConfig {
            prices: args
                .prices
                .iter()
                .map(|p| parse_price(p))
                .collect::<Result<_, _>>()?,
            ..BudgetConfig::default()
        },
        workers: None,
        shard: None,
    };
    Ok(config)
}

/// `--llm-url`/`--model` make the LLM generator, else the rules.
fn generator(args: &GenerateArgs) -> Result<GeneratorConfig, UsageError> {
    Ok(match (&args.llm_url, &args.model) {
        (Some(url), Some(model)) => GeneratorConfig::Llm(Box::new(LlmGeneratorConfig {
            endpoint: EndpointConfig {
                requests_per_minute: args.rpm,
                tokens_per_minute: args.tpm,
                max_concurrent: args.max_concurrent_requests,
                ..endpoint(url.clone(), model.clone(), args.api_key_env.clone(), args)
            },
            bad_reply_retries: args
                .bad_reply_retries
                .unwrap_or_else(d::default_bad_reply_retries),
            reseed_bad_replies: args.reseed_bad_replies,
            types: args.types.clone(),
            per_type: args.per_type.unwrap_or_else(d::default_per_type),
            n: args.n.unwrap_or_else(d::default_n),
            temperature: args.temperature.unwrap_or_else(d::default_temperature),
            top_p: None,
            seed: args.seed,
            max_tokens: args
                .max_completion_tokens
                .unwrap_or_else(d::default_max_tokens),
            prompts_dir: args.prompts_dir.clone(),
        })),
        _ => {
            let ops = if args.ops.is_empty() {
                None
            } else {
                Some(
                    args.ops
                        .iter()
                        .map(|name| {
                            RuleOp::ALL
                                .into_iter()
                                .find(|op| op.name() == name.trim())
                                .ok_or_else(|| {
                                    let all: Vec<&str> =
                                        RuleOp::ALL.iter().map(|o| o.name()).collect();
                                    UsageError::new(format!(
                                        "--ops: unknown operation `{name}`; expected: {}",
                                        all.join(", ")
                                    ))
                                })
                        })
                        .collect::<Result<_, _>>()?,
                )
            };
            GeneratorConfig::Rules {
                ops,
                max_per_op: args.max_per_op.unwrap_or_else(d::default_max_per_op),
            }
        }
    })
}

/// `--embed-url`/`--embed-model` make the HTTP embedder, else the local
/// model.
fn embedder(args: &GenerateArgs) -> EmbedderConfig {
    match (&args.embed_url, &args.embed_model) {
        (Some(url), Some(model)) => EmbedderConfig::Http {
            endpoint: endpoint(
                url.clone(),
                model.clone(),
                args.embed_api_key_env.clone(),
                args,
            ),
        },
        _ => EmbedderConfig::Local {
            model_dir: args.model_dir.clone(),
            hub_model: args.hub_model.clone(),
            hub_revision: args
                .hub_revision
                .clone()
                .unwrap_or_else(d::default_hub_revision),
            batch_size: d::default_embed_batch(),
            // clap admits only these three names.
            scoring: match args.scoring.as_deref() {
                Some("distilled") => Scoring::Distilled,
                Some("model") => Scoring::Model,
                _ => Scoring::Cascade,
            },
            // clap admits only Precision::NAMES.
            precision: args
                .precision
                .as_deref()
                .and_then(Precision::from_name)
                .unwrap_or_default(),
        },
    }
}
