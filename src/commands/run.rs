//! `foil run PIPELINE.toml`: the scheduled-job form of `generate`.

use std::process::ExitCode;

use crate::UsageError;
use crate::cli::RunArgs;
use crate::config::{EndpointConfig, GeneratorConfig, LlmGeneratorConfig, PipelineConfig};

pub fn run(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
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
        config.validate()?;
    }
    args.control.apply(&mut config);
    args.dedup.apply(&mut config);
    args.verify.apply(&mut config)?;
    config.validate()?;
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
    super::execute(config, out, args.json, quiet)
}
