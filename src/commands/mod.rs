//! One file per subcommand. Commands return `anyhow::Result`; `main` maps a
//! [`crate::UsageError`] anywhere in the chain to exit code 2.

mod generate;
mod inspect;
mod run;
mod summary;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::PipelineConfig;
use crate::runtime::Pipeline;
use crate::runtime::progress::ProgressMode;

/// Log to stderr; `RUST_LOG` wins over -v/-q.
pub fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("foil={default},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Generate(args) => generate::run(*args, quiet),
        Command::Run(args) => run::run(args, quiet),
        Command::Validate(args) => validate::run(args),
        Command::Inspect(args) => inspect::run(args),
    }
}

/// Build and run a pipeline, print its summary, choose the exit code.
fn execute(
    config: PipelineConfig,
    out: PathBuf,
    json: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mode = if json {
        ProgressMode::Off
    } else {
        ProgressMode::detect(quiet)
    };
    let summary = runtime.block_on(async move {
        let pipeline = Pipeline::build(config, out).await?;
        pipeline.run(mode).await
    })?;
    if json {
        summary::print_json(&summary.out_dir, &summary.manifest)?;
    } else if !quiet {
        summary::print_human(&summary.out_dir, &summary.manifest)?;
    }
    match summary.failure {
        Some(f) => Err(anyhow::anyhow!(f).context(format!(
            "the run stopped early; what was done is in `{}`",
            summary.out_dir.display()
        ))),
        None => Ok(ExitCode::SUCCESS),
    }
}
