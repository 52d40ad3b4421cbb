//! One place where a run's settings are resolved: a pipeline file (`foil
//! run`) or `generate`'s flags ([`flags`]), then the flags both commands
//! share laid over it ([`overlay`]: run control, dedup, verification), then
//! the worker shard — validated once, at the end. `--show-settings` and
//! `foil validate --show` print the result ([`Settings::show`]), and the
//! test suite snapshots it for every file in `pipelines/`.
//!
//! Defaults live in one place, the config types (`config/`): a flag that is
//! not given leaves the config's value.

pub mod flags;
pub mod overlay;

use std::path::PathBuf;

use crate::UsageError;
use crate::cli::{GenerateArgs, RunArgs};
use crate::config::{EndpointConfig, GeneratorConfig, LlmGeneratorConfig, PipelineConfig};

/// A run's resolved settings: the pipeline and the folder it writes.
#[derive(Debug)]
pub struct Settings {
    pub config: PipelineConfig,
    pub out: PathBuf,
}

impl Settings {
    /// The settings as TOML, every default filled in: the filters and
    /// rule operations the run would use, the worker's folder.
    pub fn show(&self) -> Result<String, UsageError> {
        let mut c = self.config.clone();
        c.filters = Some(c.resolved_filters()?);
        if let GeneratorConfig::Rules { ops, .. } = &mut c.generator {
            *ops = Some(GeneratorConfig::rule_ops(ops, self.config.task()?));
        }
        c.out = Some(self.out.clone());
        toml::to_string(&c).map_err(|e| UsageError::new(format!("showing the settings: {e}")))
    }
}

/// `foil generate`: its flags, then the shared overlays.
pub fn for_generate(mut args: GenerateArgs) -> Result<Settings, UsageError> {
    let mut config = flags::to_config(&args)?;
    let shard = std::mem::take(&mut args.shard);
    args.control.apply(&mut config);
    args.dedup.apply(&mut config);
    args.verify.apply(&mut config)?;
    let out = shard.apply(&mut config, args.out.clone())?;
    config.validate()?;
    Ok(Settings { config, out })
}

/// `foil run PIPELINE.toml`: the file, `--llm-url`/`--model` replacing its
/// generator's endpoint, then the shared overlays.
pub fn for_run(args: &RunArgs) -> Result<Settings, UsageError> {
    let mut config = PipelineConfig::from_file(&args.pipeline)?;
    if let (Some(url), Some(model)) = (&args.llm_url, &args.model) {
        // Keep the file's LLM settings (n, temperature, limits) when it has
        // them; otherwise the defaults of `foil generate --llm-url`.
        let mut llm = match &config.generator {
            GeneratorConfig::Llm(l) => (**l).clone(),
            GeneratorConfig::Rules { .. } => {
                LlmGeneratorConfig::with_endpoint(EndpointConfig::new(url, model))
            }
        };
        llm.endpoint.url = url.clone();
        llm.endpoint.model = model.clone();
        if let Some(env) = &args.api_key_env {
            llm.endpoint.api_key_env = env.clone();
        }
        config.generator = GeneratorConfig::Llm(Box::new(llm));
    }
    args.control.apply(&mut config);
    args.dedup.apply(&mut config);
    args.verify.apply(&mut config)?;
    let out = args
        .out
        .clone()
        .or_else(|| config.out.clone())
        .ok_or_else(|| {
            UsageError::new(format!(
                "`{}` sets no `out` folder; pass --out DIR",
                args.pipeline.display()
            ))
        })?;
    let out = args.shard.apply(&mut config, out)?;
    config.validate()?;
    Ok(Settings { config, out })
}
