//! The pipeline description: what `foil run PIPELINE.toml` reads and what
//! `foil generate` builds from its flags. Both end in the same
//! [`PipelineConfig`], so the two surfaces cannot drift apart.
//!
//! Parsing is strict (`deny_unknown_fields`): a typo in a pipeline file is an
//! error naming the key, never silently ignored. Secrets are never part of a
//! config: endpoints name the environment variable that holds the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::UsageError;
use crate::tasks::{self, TaskPreset};

mod budget;
mod generator;
mod source;
mod stages;

pub use budget::*;
pub use generator::*;
pub use source::*;
pub use stages::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// A name for the job (defaults to the pipeline file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Task preset: question, caption, nli, claim or text.
    pub task: String,
    /// Output folder; relative paths are resolved against the pipeline
    /// file's folder. `--out` overrides.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Source examples (or, in pairs mode, candidate pairs) in flight at
    /// once in each stage.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    pub source: SourceConfig,
    #[serde(default)]
    pub generator: GeneratorConfig,
    #[serde(default)]
    pub embedder: EmbedderConfig,
    /// Filters in the order given; when absent, the task's defaults
    /// (edit distance, then similarity band: cheapest first).
    #[serde(default)]
    pub filters: Option<Vec<FilterConfig>>,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub budget: BudgetConfig,
    /// Number of workers when the index comes from the environment without
    /// a count (Kubernetes Indexed Jobs' `JOB_COMPLETION_INDEX`).
    #[serde(default)]
    pub workers: Option<u32>,
    /// This process's slice of the sources (set by `--shard i/N` or the
    /// batch engine's environment, not usually written in a file).
    #[serde(default)]
    pub shard: Option<ShardSpec>,
}

impl PipelineConfig {
    /// Parse a pipeline file; relative paths inside it are resolved against
    /// the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, UsageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError::new(format!("reading `{}`: {e}", path.display())))?;
        let mut cfg: PipelineConfig = toml::from_str(&text)
            .map_err(|e| UsageError::new(format!("`{}`: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.source.path = join_relative(base, &cfg.source.path);
        if let Some(out) = &cfg.out {
            cfg.out = Some(join_relative(base, out));
        }
        if let Some(p) = &cfg.cache.path {
            cfg.cache.path = Some(join_relative(base, p));
        }
        if let GeneratorConfig::Llm(llm) = &mut cfg.generator
            && let Some(dir) = &llm.prompts_dir
        {
            llm.prompts_dir = Some(join_relative(base, dir));
        }
        for f in cfg.filters.iter_mut().flatten() {
            if let FilterConfig::Verify(v) = f
                && let Some(dir) = &v.prompts_dir
            {
                v.prompts_dir = Some(join_relative(base, dir));
            }
        }
        if let EmbedderConfig::Local {
            model_dir: Some(dir),
            ..
        } = &mut cfg.embedder
        {
            *dir = join_relative(base, dir);
        }
        for dir in &mut cfg.dedup.near.against {
            *dir = join_relative(base, dir);
        }
        if cfg.name.is_none() {
            cfg.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        cfg.validate()
            .map_err(|e| UsageError::new(format!("`{}`: {}", path.display(), e.0)))?;
        Ok(cfg)
    }

    pub fn task(&self) -> Result<&'static TaskPreset, UsageError> {
        tasks::preset(&self.task).ok_or_else(|| {
            UsageError::new(format!(
                "unknown task `{}`; expected one of: {}",
                self.task,
                tasks::names().join(", ")
            ))
        })
    }

    /// The filters this run uses: the configured ones, or the task's; the
    /// edit measure's unset bounds filled in from the task, so the manifest
    /// shows the bounds that were applied.
    pub fn resolved_filters(&self) -> Result<Vec<FilterConfig>, UsageError> {
        let task = self.task()?;
        Ok(match &self.filters {
            Some(f) => f
                .iter()
                .map(|f| match f {
                    FilterConfig::EditDistance(e) => FilterConfig::EditDistance(e.resolved(task)),
                    other => other.clone(),
                })
                .collect(),
            None => FilterConfig::defaults_for(task),
        })
    }

    /// Checks serde cannot express: known task, sane bounds, a mapping that
    /// names every required field.
    pub fn validate(&self) -> Result<(), UsageError> {
        let task = self.task()?;
        if self.concurrency == 0 {
            return Err(UsageError::new("`concurrency` must be at least 1"));
        }
        self.check_source(task)?;
        for f in self.resolved_filters()? {
            self.check_filter(f, task)?;
        }
        if let Some(s) = &self.shard {
            s.check()?;
        }
        if self.dedup.near.enabled {
            self.dedup.near.validate()?;
        } else if !self.dedup.near.against.is_empty() {
            return Err(UsageError::new(
                "dedup.near.against needs near-duplicate dedup (dedup.near.enabled = true)",
            ));
        }
        self.check_budget()?;
        self.check_generator(task)?;
        if let EmbedderConfig::Http { endpoint } = &self.embedder {
            check_endpoint("embedder", endpoint)?;
        }
        if self.sink.rows_per_shard == 0 {
            return Err(UsageError::new("sink.rows_per_shard must be at least 1"));
        }
        Ok(())
    }

    fn check_source(&self, task: &TaskPreset) -> Result<(), UsageError> {
        self.source.resolved_format()?;
        for field in self.source.fields.keys() {
            if task.field(field).is_none() {
                let known: Vec<&str> = task.fields.iter().map(|f| f.name).collect();
                return Err(UsageError::new(format!(
                    "source.fields: task `{}` has no field `{field}`; its fields are: {}",
                    task.name,
                    known.join(", ")
                )));
            }
        }
        for field in self.source.edited_fields.keys() {
            if task.field(field).is_none() || field == "label" {
                let known: Vec<&str> = task
                    .fields
                    .iter()
                    .map(|f| f.name)
                    .filter(|f| *f != "label")
                    .collect();
                return Err(UsageError::new(format!(
                    "source.edited_fields: task `{}` has no field `{field}` to edit; its fields \
                     are: {}",
                    task.name,
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn check_filter(&self, f: FilterConfig, task: &TaskPreset) -> Result<(), UsageError> {
        match f {
            FilterConfig::LabelChange => {}
            FilterConfig::EditDistance(e) => {
                if let Some(problem) = e.bounds(task).problem() {
                    return Err(UsageError::new(format!("filters.edit_distance: {problem}")));
                }
                if e.max_word_edits == Some(0)
                    || e.max_edit_ratio.is_some_and(|r| r.is_nan() || r <= 0.0)
                {
                    return Err(UsageError::new(
                        "filters.edit_distance: max_word_edits and max_edit_ratio must be \
                         above 0 (a zero bound would reject every edit)",
                    ));
                }
            }
            FilterConfig::Similarity { min, max } => {
                if !(-1.0..=1.0).contains(&min) || !(-1.0..=1.0).contains(&max) || min > max {
                    return Err(UsageError::new(format!(
                        "filters.similarity: need -1 <= min <= max <= 1, got min = {min}, \
                         max = {max}"
                    )));
                }
            }
            FilterConfig::Verify(v) => {
                check_endpoint("filters.verify", &v.endpoint)?;
                if let GeneratorConfig::Llm(g) = &self.generator
                    && v.independent
                    && g.endpoint.model == v.endpoint.model
                    && g.endpoint.url.trim_end_matches('/') == v.endpoint.url.trim_end_matches('/')
                {
                    return Err(UsageError::new(format!(
                        "filters.verify: independent = true, but the judge is the \
                         generator's model `{}` at the same endpoint; give the judge \
                         another model or endpoint",
                        v.endpoint.model
                    )));
                }
                for (name, t) in v.thresholds() {
                    if !(0.0..=1.0).contains(&t) {
                        return Err(UsageError::new(format!(
                            "filters.verify: min_{name} must be in [0, 1], got {t}"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// A cost budget needs a price for every model the run uses.
    fn check_budget(&self) -> Result<(), UsageError> {
        if self.budget.max_cost.is_some() {
            let mut models: Vec<&str> = Vec::new();
            if let GeneratorConfig::Llm(l) = &self.generator {
                models.push(&l.endpoint.model);
            }
            if let EmbedderConfig::Http { endpoint } = &self.embedder {
                models.push(&endpoint.model);
            }
            if let Some(filters) = &self.filters {
                for f in filters {
                    if let FilterConfig::Verify(v) = f {
                        models.push(&v.endpoint.model);
                    }
                }
            }
            if let Some(m) = models
                .iter()
                .find(|m| !self.budget.prices.contains_key(**m))
            {
                return Err(UsageError::new(format!(
                    "budget.max_cost needs a price for model `{m}` (budget.prices or --price)"
                )));
            }
        }
        Ok(())
    }

    fn check_generator(&self, task: &TaskPreset) -> Result<(), UsageError> {
        if let GeneratorConfig::Llm(llm) = &self.generator {
            check_endpoint("generator", &llm.endpoint)?;
            if llm.n == 0 || llm.per_type == 0 {
                return Err(UsageError::new(
                    "generator.n and generator.per_type must be at least 1",
                ));
            }
            if let Some(t) = llm
                .types
                .iter()
                .find(|t| !task.edit_types.contains(&t.as_str()))
            {
                return Err(UsageError::new(format!(
                    "generator.types: `{t}` is not an edit type of task `{}`; its types are: {}",
                    task.name,
                    task.edit_types.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A hash of what decides the output, for resuming: two configs with
    /// the same hash produce the same pairs. Concurrency, limits, timeouts,
    /// retries, budgets, cache settings and the dedup indexes' memory share
    /// change how a run goes, not what it writes, so they are left out
    /// (raising a budget must resume).
    pub fn identity_hash(&self) -> String {
        let mut c = self.clone();
        c.name = None;
        c.out = None;
        c.concurrency = 0;
        c.cache = CacheConfig::default();
        c.budget = Default::default();
        c.source.max_bad_rows = 0;
        c.sink.checkpoint_every = 0;
        c.sink.checkpoint_secs = 0.0;
        c.sink.dead_letter_retries = 0;
        c.dedup.index_memory_mib = 0;
        let neutral = |e: &mut EndpointConfig| {
            e.api_key_env = String::new();
            e.timeout_s = 0.0;
            e.max_attempts = 0;
            e.retry_base_ms = 0;
            e.max_concurrent = None;
            e.requests_per_minute = None;
            e.tokens_per_minute = None;
        };
        match &mut c.generator {
            GeneratorConfig::Llm(l) => {
                neutral(&mut l.endpoint);
                l.bad_reply_retries = 0;
            }
            GeneratorConfig::Rules { ops, .. } => {
                if let Ok(task) = self.task() {
                    *ops = Some(GeneratorConfig::rule_ops(ops, task));
                }
            }
        }
        match &mut c.embedder {
            EmbedderConfig::Http { endpoint } => neutral(endpoint),
            EmbedderConfig::Local { batch_size, .. } => *batch_size = 0,
        }
        if c.filters.is_none() {
            c.filters = self.resolved_filters().ok();
        }
        let v = serde_json::to_value(&c).unwrap_or_default();
        crate::text::sha256_hex(crate::text::canonical_json(&v).as_bytes())
    }

    /// Does any stage need embeddings?
    pub fn needs_embedder(&self) -> bool {
        self.resolved_filters()
            .map(|fs| {
                fs.iter()
                    .any(|f| matches!(f, FilterConfig::Similarity { .. }))
            })
            .unwrap_or(false)
    }
}

fn check_endpoint(what: &str, e: &EndpointConfig) -> Result<(), UsageError> {
    if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
        return Err(UsageError::new(format!(
            "{what}.url must start with http:// or https://, got `{}`",
            e.url
        )));
    }
    if e.model.trim().is_empty() {
        return Err(UsageError::new(format!("{what}.model must not be empty")));
    }
    if e.max_attempts == 0 || e.timeout_s.is_nan() || e.timeout_s <= 0.0 {
        return Err(UsageError::new(format!(
            "{what}: max_attempts and timeout_s must be above 0"
        )));
    }
    Ok(())
}

fn join_relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PipelineConfig, String> {
        let cfg: PipelineConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.0)?;
        Ok(cfg)
    }

    #[test]
    fn minimal_file_gets_rules_local_embedder_and_task_filters() {
        let cfg = parse("task = \"question\"\n[source]\npath = \"q.csv\"\n").unwrap();
        assert!(matches!(cfg.generator, GeneratorConfig::Rules { .. }));
        assert!(matches!(cfg.embedder, EmbedderConfig::Local { .. }));
        assert_eq!(cfg.resolved_filters().unwrap().len(), 3);
        assert!(cfg.needs_embedder());
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            parse("task = \"question\"\nconcurrenc = 3\n[source]\npath = \"q.csv\"\n").unwrap_err();
        assert!(err.contains("concurrenc"), "{err}");
    }

    #[test]
    fn unknown_task_and_field_are_named() {
        let err = parse("task = \"qa\"\n[source]\npath = \"q.csv\"\n").unwrap_err();
        assert!(err.contains("unknown task `qa`"), "{err}");
        let err =
            parse("task = \"claim\"\n[source]\npath = \"q.csv\"\nfields = { answer = \"a\" }\n")
                .unwrap_err();
        assert!(err.contains("no field `answer`"), "{err}");
    }

    #[test]
    fn inverted_similarity_band_is_refused() {
        let err = parse(
            "task = \"text\"\n[source]\npath = \"t.jsonl\"\n[[filters]]\nkind = \"similarity\"\nmin = 0.9\nmax = 0.2\n",
        )
        .unwrap_err();
        assert!(err.contains("min <= max"), "{err}");
    }

    #[test]
    fn a_cost_budget_needs_a_price_for_the_model() {
        let base = "task = \"question\"\n[source]\npath = \"q.csv\"\n\
                    [generator]\nkind = \"llm\"\nurl = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n\
                    [budget]\nmax_cost = 1.0\n";
        let err = parse(base).unwrap_err();
        assert!(err.contains("needs a price for model `m`"), "{err}");
        let priced = format!(
            "{base}[budget.prices.m]\nprompt_per_million = 1.0\ncompletion_per_million = 2.0\n"
        );
        assert!(parse(&priced).is_ok());
    }
}
