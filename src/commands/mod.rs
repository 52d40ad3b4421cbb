//! One file per subcommand. Commands return `anyhow::Result`; `main` maps a
//! [`crate::UsageError`] anywhere in the chain to exit code 2.

mod calibrate;
mod eval;
mod generate;
mod inspect;
mod merge;
mod report;
mod review;
mod run;
mod summary;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::UsageError;
use crate::cli::{Cli, Command};
use crate::config::{PipelineConfig, ShardSpec};
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

impl crate::cli::RunControl {
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

/// Exit code of a run that finished but sent items to the dead letters.
pub const EXIT_DEAD_LETTERS: u8 = 3;
/// Exit code of a run that stopped cleanly at a budget (resumable).
pub const EXIT_BUDGET: u8 = 4;

/// Build and run a pipeline, print its summary, choose the exit code.
fn execute(
    config: PipelineConfig,
    out: PathBuf,
    json: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
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
        pipeline.run(mode).await
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
                Ok(ExitCode::from(EXIT_DEAD_LETTERS))
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        Outcome::Stopped(StopReason::Signal(s)) => {
            eprintln!(
                "foil: interrupted; everything committed is kept. Run the same command again to resume."
            );
            Ok(ExitCode::from((128 + *s) as u8))
        }
        Outcome::Stopped(StopReason::Budget(b)) => {
            eprintln!(
                "foil: {b}; everything committed is kept. Run again (with a larger budget) to resume."
            );
            Ok(ExitCode::from(EXIT_BUDGET))
        }
        Outcome::Failed(f) => Err(anyhow::anyhow!(f.clone()).context(format!(
            "the run stopped early; what was done is in `{}`",
            summary.out_dir.display()
        ))),
    }
}

impl crate::cli::ShardArgs {
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
