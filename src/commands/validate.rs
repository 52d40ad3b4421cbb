//! `foil validate PIPELINE.toml`: everything `run` checks before it starts
//! work — the file, the task, the bounds, the input's columns — without
//! running anything.

use super::Exit;
use crate::cli::ValidateArgs;
use crate::config::{GeneratorConfig, PipelineConfig};
use crate::source::{self, SourceError};

pub fn run(args: ValidateArgs) -> anyhow::Result<Exit> {
    let config = PipelineConfig::from_file(&args.pipeline)?;
    let task = config.task()?;
    // Opening the source checks that it exists and has the mapped columns.
    let _rows = source::open(&config.source, task).map_err(|e| match e {
        SourceError::Usage(u) => anyhow::Error::new(u),
        other => anyhow::Error::new(other),
    })?;
    let generator = if config.source.pairs_mode() {
        "given (pairs mode)".to_string()
    } else {
        match &config.generator {
            GeneratorConfig::Rules { ops, .. } => {
                let ops = GeneratorConfig::rule_ops(ops, task);
                let names: Vec<&str> = ops.iter().map(|o| o.name()).collect();
                format!("rules ({})", names.join(", "))
            }
            GeneratorConfig::Llm(l) => format!("llm:{} at {}", l.endpoint.model, l.endpoint.url),
        }
    };
    let filters: Vec<&str> = config
        .resolved_filters()?
        .iter()
        .map(|f| f.stage_name())
        .collect();
    println!(
        "ok: `{}`: task {}, source {}, generator {}, filters {}",
        args.pipeline.display(),
        task.name,
        config.source.path.display(),
        generator,
        filters.join(" → ")
    );
    if args.show {
        let out = config.out.clone().unwrap_or_default();
        print!("{}", crate::settings::Settings { config, out }.show()?);
    }
    Ok(Exit::Success)
}
