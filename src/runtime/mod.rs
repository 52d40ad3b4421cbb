//! The runtime: builds the stages a [`PipelineConfig`] describes and runs
//! them as tokio tasks joined by bounded channels:
//!
//! ```text
//! reader ─▶ intake ─▶ generate ─▶ filter₁ ─▶ … ─▶ filterₙ ─▶ sink (dedup + shards)
//! (thread)  (quarantine)  (map)      (map)           (map)     (barrier)
//! ```
//!
//! Map stages run up to `concurrency` items at once but hand them on in
//! input order (`window::ordered_window`: the limit counts running items;
//! finished ones wait in a bounded reorder buffer), so the barrier at the
//! end sees sources in the order they were read: which duplicate survives,
//! and what lands in which shard, do not depend on concurrency or timing. Bounded channels keep
//! memory flat however large the input is.
//!
//! The sink commits in checkpoints ([`state`]): kill the process at any
//! moment and the next run with the same config resumes after the last
//! checkpoint, with the response cache answering every request that had
//! completed, so the final output is what an uninterrupted run writes.

mod build;
pub mod progress;
mod resume;
mod stages;
mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::config::PipelineConfig;
use crate::filter::Filter;
use crate::generate::Generator;
use crate::llm::OpenAiClient;
use crate::llm::budget::Budget;
use crate::sink::Manifest;
use crate::sink::manifest::{Models, SCHEMA_VERSION};
use crate::sink::stage::{SinkSetup, SinkStage, Staged};
pub use crate::sink::stage::{Stop, StopReason};
use crate::sink::state::{self, RunState};
use crate::source::{self, SourceError, SourceItem};
use crate::tasks::TaskPreset;
use progress::{Progress, ProgressMode};
use stages::Item;

/// Distinct texts the embedding cache keeps (two generations of this many).
pub(crate) const EMBED_CACHE_ENTRIES: usize = 50_000;
/// The same for the distilled embedder of cascade scoring.
pub(crate) const FAST_CACHE_ENTRIES: usize = 4_096;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete,
    /// A rerun of a run that had completed, over an input with no new
    /// sources: nothing to do.
    AlreadyComplete,
    Stopped(StopReason),
    Failed(String),
}

/// A pipeline ready to run: every stage built, every setting checked.
pub struct Pipeline {
    pub config: PipelineConfig,
    pub out_dir: PathBuf,
    pub task: &'static TaskPreset,
    generator: Arc<dyn Generator>,
    filters: Vec<Arc<dyn Filter>>,
    prompts: BTreeMap<String, String>,
    embedder: Option<String>,
    /// Stage name → the endpoint client it uses, for usage accounting.
    clients: Vec<(String, Arc<OpenAiClient>)>,
    budget: Arc<Budget>,
    pub stop: Arc<Stop>,
}

/// What a finished (or stopped, or failed) run leaves behind.
#[derive(Debug)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub manifest: Manifest,
    pub outcome: Outcome,
}

impl Pipeline {
    /// The sink on a blocking thread (shard writes with fsync, SQLite
    /// commits and disk-index I/O block), taking the last stage's output.
    fn start_sink(
        &self,
        state: RunState,
        resume: &resume::Resume,
        out_dir: &std::path::Path,
        write_progress: Arc<progress::StageProgress>,
        mut stage_rx: mpsc::Receiver<Staged>,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<SinkStage>>> {
        // Sink: the barrier. Dedup in source order, shards, checkpoints.
        let next_seq = resume.previous.as_ref().map_or(0, |cp| cp.next_seq);
        let setup = SinkSetup {
            task: self.task,
            config: &self.config,
            filter_stages: self.filters.iter().map(|f| f.stage()).collect(),
            clients: self.clients.clone(),
            budget: self.budget.clone(),
            stop: self.stop.clone(),
        };
        let sink = SinkStage::new(
            &setup,
            out_dir,
            state,
            resume.previous.as_ref(),
            next_seq,
            resume.generation,
        )?;
        // Shard writes with fsync, SQLite commits and disk-index I/O block:
        // the sink runs on a blocking thread, off the async workers.
        Ok(tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            while let Some(staged) = stage_rx.blocking_recv() {
                write_progress.inc(1);
                sink.take(staged)?;
            }
            sink.commit(false)?;
            anyhow::Ok(sink)
        }))
    }

    /// How the run ended, from the reader's and intake's results and the
    /// stop flag.
    fn outcome(
        &self,
        reader: Result<bool, SourceError>,
        intake: Result<(), stages::TooManyBadRows>,
        nothing_new: bool,
    ) -> Outcome {
        match (reader, intake, self.stop.reason()) {
            (Err(e), _, _) => Outcome::Failed(e.to_string()),
            (_, Err(e), _) => Outcome::Failed(e.to_string()),
            (_, _, Some(reason)) => Outcome::Stopped(reason),
            (Ok(true), Ok(()), None) if nothing_new => Outcome::AlreadyComplete,
            (Ok(true), Ok(()), None) => Outcome::Complete,
            (Ok(false), Ok(()), None) => {
                Outcome::Failed("the pipeline stopped before the end of the input".into())
            }
        }
    }

    /// What the manifest says about the run itself; the sink adds what it
    /// counted and wrote.
    fn manifest_head(&self, started_unix: u64, outcome: &Outcome) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            foil_version: env!("CARGO_PKG_VERSION").to_string(),
            status: match outcome {
                Outcome::Complete | Outcome::AlreadyComplete => "complete".to_string(),
                Outcome::Stopped(StopReason::Signal(s)) => {
                    format!("interrupted by signal {s}; rerun to resume")
                }
                Outcome::Stopped(StopReason::Budget(b)) => format!("stopped: {b}; rerun to resume"),
                Outcome::Failed(f) => format!("failed: {f}"),
            },
            task: self.task.name.to_string(),
            pairs_mode: self.config.source.pairs_mode(),
            started_unix,
            duration_s: 0.0,
            config: self.config.clone(),
            prompts: self.prompts.clone(),
            models: Models {
                generator: self.generator.describe(),
                embedder: self.embedder.clone(),
            },
            counts: Default::default(),
            usage: Default::default(),
            funnel: Vec::new(),
            shards: Vec::new(),
            rejected_shards: Vec::new(),
        }
    }

    /// Run to the end of the input (or to a stop). The output folder then
    /// holds shards, rejects, side files and a manifest; a run that stops or
    /// dies part way is resumed by running it again.
    pub async fn run(self, mode: ProgressMode) -> anyhow::Result<RunSummary> {
        let started = Instant::now();
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let out_dir = self.out_dir.clone();
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating output folder `{}`", out_dir.display()))?;
        // Held until this function returns: a second run on this folder is
        // refused before it touches anything.
        let _lock = state::lock_folder(&out_dir)?;

        let mut state = RunState::open(&out_dir)?;
        let mut resume = resume::prepare(&mut state, &self.config.identity_hash(), &out_dir, mode)?;
        let rows = source::open(&self.config.source, self.task).map_err(|e| match e {
            SourceError::Usage(u) => anyhow::Error::new(u),
            other => anyhow::Error::new(other),
        })?;

        let concurrency = self.config.concurrency;
        let mut names = vec!["read".to_string(), "generate".to_string()];
        names.extend(self.filters.iter().map(|f| f.stage().to_string()));
        names.push("write".to_string());
        let progress = Progress::new(mode, &names);
        let logger = progress.spawn_logger(Duration::from_secs(5));

        let (item_tx, item_rx) = mpsc::channel::<SourceItem>(256);
        let reader =
            stages::spawn_reader(rows, item_tx, &mut resume, &self.config, self.stop.clone());
        let (ex_tx, ex_rx) = mpsc::channel::<Item>(concurrency * 2);
        let bad_so_far = resume
            .previous
            .as_ref()
            .map_or(0, |cp| cp.counts.quarantined);
        let max_bad = self.config.source.max_bad_rows;
        let intake = stages::spawn_intake(item_rx, ex_tx, bad_so_far, max_bad, progress.stage(0));
        let (gen_tx, mut stage_rx) = mpsc::channel::<Staged>(concurrency * 2);
        let mut tasks = vec![stages::spawn_generate(
            ex_rx,
            gen_tx,
            self.generator.clone(),
            self.stop.clone(),
            concurrency,
            progress.stage(1),
        )];
        // Filters: one map stage each, cheapest first.
        for (i, filter) in self.filters.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Staged>(concurrency * 2);
            let input = std::mem::replace(&mut stage_rx, rx);
            tasks.push(stages::spawn_filter(
                input,
                tx,
                filter.clone(),
                concurrency,
                progress.stage(2 + i),
            ));
        }

        let sink_task = self.start_sink(
            state,
            &resume,
            &out_dir,
            progress.stage(2 + self.filters.len()),
            stage_rx,
        )?;

        let reader_result = reader.await.context("reader thread panicked")?;
        let intake_result = intake.await.context("intake task panicked")?;
        for t in tasks {
            t.await.context("stage task panicked")?;
        }
        let mut sink = sink_task
            .await
            .context("sink task panicked")?
            .context("writing the output")?;
        if let Some(l) = logger {
            l.abort();
        }
        progress.finish();

        let nothing_new = resume.incremental && sink.taken == 0;
        let outcome = self.outcome(reader_result, intake_result, nothing_new);
        sink.elapsed_s += started.elapsed().as_secs_f64();
        if matches!(outcome, Outcome::Complete | Outcome::AlreadyComplete) {
            sink.commit(true)?;
        }
        let manifest = sink.manifest(self.manifest_head(started_unix, &outcome));
        manifest
            .write(&out_dir)
            .with_context(|| format!("writing the manifest in `{}`", out_dir.display()))?;
        Ok(RunSummary {
            out_dir,
            manifest,
            outcome,
        })
    }
}
