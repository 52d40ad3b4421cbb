//! One file per subcommand. Commands return `anyhow::Result`; `main` maps a
//! [`crate::UsageError`] anywhere in the chain to exit code 2.

mod calibrate;
mod eval;
pub mod exit;
mod generate;
mod inspect;
mod merge;
mod report;
mod review;
mod run;
mod summary;
mod validate;

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::PipelineConfig;
use crate::runtime::Pipeline;
use crate::runtime::progress::ProgressMode;
pub use exit::Exit;

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

pub fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Generate(args) => generate::run(*args, quiet),
        Command::Run(args) => run::run(*args, quiet),
        Command::Validate(args) => validate::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Review(cmd) => review::run(cmd),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Report(args) => report::run(args),
        Command::Merge(args) => merge::run(args),
    }
}

/// Build and run a pipeline, print its summary, choose the exit code.
fn execute(config: PipelineConfig, out: PathBuf, json: bool, quiet: bool) -> anyhow::Result<Exit> {
    use crate::runtime::{Outcome, StopReason};
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
        let signals = exit::watch_signals(pipeline.stop.clone());
        let summary = pipeline.run(mode).await;
        if let Some(s) = signals {
            s.abort();
        }
        summary
    })?;
    let m = &summary.manifest;
    if json {
        summary::print_json(&summary.out_dir, m)?;
    } else if !quiet {
        if summary.outcome == Outcome::AlreadyComplete {
            println!(
                "foil: `{}` is already complete ({} pairs) and its input has no new sources; nothing to do",
                summary.out_dir.display(),
                m.counts.accepted
            );
        } else {
            summary::print_human(&summary.out_dir, m)?;
        }
    }
    match &summary.outcome {
        Outcome::Complete | Outcome::AlreadyComplete => {
            if m.counts.dead_letters > 0 {
                let will = m.config.sink.dead_letter_retries > 0;
                eprintln!(
                    "foil: {} source(s) failed and are listed in `{}`{}",
                    m.counts.dead_letters,
                    summary.out_dir.join(crate::sink::DEAD_LETTER).display(),
                    if will {
                        "; run the same command again to retry them"
                    } else {
                        ""
                    }
                );
                Ok(Exit::DeadLetters)
            } else {
                Ok(Exit::Success)
            }
        }
        Outcome::Stopped(StopReason::Signal(s)) => {
            eprintln!(
                "foil: interrupted; everything committed is kept. Run the same command again to resume."
            );
            Ok(Exit::Signal(*s))
        }
        Outcome::Stopped(StopReason::Budget(b)) => {
            eprintln!(
                "foil: {b}; everything committed is kept. Run again (with a larger budget) to resume."
            );
            Ok(Exit::Budget)
        }
        Outcome::Failed(f) => Err(anyhow::anyhow!(f.clone()).context(format!(
            "the run stopped early; what was done is in `{}`",
            summary.out_dir.display()
        ))),
    }
}
