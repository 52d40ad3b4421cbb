//! Flags laid over a pipeline (from a file or from `generate`'s flags):
//! run control, dedup, verification, and the worker shard.

use std::path::PathBuf;

use crate::UsageError;
use crate::cli::{DedupArgs, RunControl, ShardArgs, VerifyArgs};
use crate::config::{PipelineConfig, ShardSpec};

impl RunControl {
    /// Lay this run's overrides over a pipeline.
    pub fn apply(&self, config: &mut PipelineConfig) {
        use crate::llm::cache::CacheMode;
        if self.no_cache {
            config.cache.mode = CacheMode::Off;
        } else if self.refresh_cache {
            config.cache.mode = CacheMode::Refresh;
        }
        let b = &mut config.budget;
        b.max_requests = self.max_requests.or(b.max_requests);
        b.max_tokens = self.max_tokens.or(b.max_tokens);
        b.max_cost = self.max_cost.or(b.max_cost);
        if let Some(n) = self.checkpoint_every {
            config.sink.checkpoint_every = n;
        }
        if let Some(n) = self.dead_letter_retries {
            config.sink.dead_letter_retries = n;
        }
        if let Some(l) = self.limit {
            config.source.limit = Some(l);
        }
    }
}

impl DedupArgs {
    pub fn apply(&self, config: &mut PipelineConfig) {
        let near = &mut config.dedup.near;
        if self.no_near_dedup {
            near.enabled = false;
        }
        near.against.extend(self.against.iter().cloned());
        if let Some(t) = self.near_threshold {
            near.threshold = t;
        }
        if let Some(t) = self.near_original_threshold {
            near.original_threshold = Some(t);
        }
    }
}

impl VerifyArgs {
    /// Add a verify stage after the other filters, or point the pipeline's
    /// own at this endpoint.
    pub fn apply(&self, config: &mut PipelineConfig) -> Result<(), UsageError> {
        use crate::config::{EndpointConfig, FilterConfig, VerifyConfig};
        let (Some(url), Some(model)) = (&self.verify_url, &self.verify_model) else {
            if self.verify_min.is_some() || self.verify_independent {
                return Err(UsageError::new(
                    "--verify-min and --verify-independent need --verify-url",
                ));
            }
            return Ok(());
        };
        let mut filters = config.resolved_filters()?;
        let idx = match filters
            .iter()
            .position(|f| matches!(f, FilterConfig::Verify(_)))
        {
            Some(i) => i,
            None => {
                filters.push(FilterConfig::Verify(Box::new(VerifyConfig::with_endpoint(
                    EndpointConfig::new(url, model),
                ))));
                filters.len() - 1
            }
        };
        if let FilterConfig::Verify(v) = &mut filters[idx] {
            v.endpoint.url = url.clone();
            v.endpoint.model = model.clone();
            if let Some(env) = &self.verify_api_key_env {
                v.endpoint.api_key_env = env.clone();
            }
            v.independent |= self.verify_independent;
            if let Some(m) = self.verify_min {
                v.min_relation = m;
                v.min_label = m;
                v.min_fluent = m;
                v.min_minimal = m;
            }
        }
        config.filters = Some(filters);
        Ok(())
    }
}

impl ShardArgs {
    /// This process's shard: `--shard`, else the batch engine's
    /// environment, else none.
    pub fn resolve(&self, config: &PipelineConfig) -> Result<Option<ShardSpec>, UsageError> {
        if let Some(s) = &self.shard {
            return ShardSpec::parse(s).map(Some);
        }
        if self.no_worker_env {
            return Ok(None);
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let num = |k: &str, v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| UsageError::new(format!("{k} = `{v}` is not a non-negative integer")))
        };
        if let (Some(id), Some(count)) = (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"))
        {
            let id = num("SLURM_ARRAY_TASK_ID", &id)?;
            let count = num("SLURM_ARRAY_TASK_COUNT", &count)?;
            let min = match env("SLURM_ARRAY_TASK_MIN") {
                Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
                None => 0,
            };
            let spec = ShardSpec {
                index: id.checked_sub(min).ok_or_else(|| {
                    UsageError::new(format!(
                        "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                    ))
                })?,
                count,
            };
            spec.check().map_err(|e| {
                UsageError::new(format!(
                    "{} (from SLURM_ARRAY_TASK_ID/COUNT/MIN; foil needs a contiguous array such as --array=0-{})",
                    e.0,
                    count.saturating_sub(1)
                ))
            })?;
            return Ok(Some(spec));
        }
        if let Some(idx) = env("JOB_COMPLETION_INDEX") {
            let index = num("JOB_COMPLETION_INDEX", &idx)?;
            let count = self.workers.or(config.workers).ok_or_else(|| {
                UsageError::new(
                    "JOB_COMPLETION_INDEX is set but not the number of workers: pass --workers N \
                     or set `workers = N` in the pipeline (the Job's `completions`)",
                )
            })?;
            let spec = ShardSpec { index, count };
            spec.check()?;
            return Ok(Some(spec));
        }
        Ok(None)
    }

    /// Set the shard on the config and return the worker's output folder,
    /// refusing a worker count that differs from the folder's earlier one.
    pub fn apply(&self, config: &mut PipelineConfig, out: PathBuf) -> Result<PathBuf, UsageError> {
        let Some(spec) = self.resolve(config)? else {
            return Ok(out);
        };
        if let Ok(entries) = std::fs::read_dir(&out) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(n) = name
                    .strip_prefix("worker-")
                    .and_then(|r| r.split_once("-of-"))
                    .and_then(|(_, n)| n.parse::<u32>().ok())
                    && n != spec.count
                {
                    return Err(UsageError::new(format!(
                        "`{}` holds the output of a run with {n} workers (`{name}`); this worker \
                         is {}/{}. Changing the number of workers would take different slices \
                         of the sources and break resume: use {n} workers, or a new output folder",
                        out.display(),
                        spec.index,
                        spec.count
                    )));
                }
            }
        }
        config.shard = Some(spec);
        Ok(out.join(spec.folder()))
    }
}
