//! `foil run PIPELINE.toml`: the scheduled-job form of `generate`.

use std::process::ExitCode;

use crate::UsageError;
use crate::cli::RunArgs;
use crate::config::PipelineConfig;

pub fn run(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut config = PipelineConfig::from_file(&args.pipeline)?;
    args.control.apply(&mut config);
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
    super::execute(config, out, args.json, quiet)
}
