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

pub mod progress;
pub mod state;
mod window;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::UsageError;
use crate::config::{EmbedderConfig, FilterConfig, GeneratorConfig, PipelineConfig};
use crate::dedup::{ExactDedup, NearDedup};
use crate::embed::http::HttpEmbedder;
use crate::embed::local::{LocalEmbedder, cache_root, default_model_dir};
use crate::embed::{CachedEmbedder, Embedder};
use crate::filter::{EditDistance, Filter, LabelChange, SimilarityBand, Verifier};
use crate::generate::given::GivenEdits;
use crate::generate::llm::{LlmGenerator, PromptSet};
use crate::generate::rules::RulesGenerator;
use crate::generate::{Generated, Generator};
use crate::llm::budget::Budget;
use crate::llm::cache::ResponseCache;
use crate::llm::{OpenAiClient, Shared};
use crate::record::{SourceBatch, SourceExample};
use crate::sink::manifest::{Counts, Models, SCHEMA_VERSION, StageFunnel, StageUsage, Usage};
use crate::sink::{self, JsonlFile, Manifest, ShardWriter};
use crate::source::{self, BadRow, SourceError, SourceItem};
use crate::tasks::TaskPreset;
use progress::{Progress, ProgressMode};
use state::{Checkpoint, DeadUpdate, RunState};

/// Distinct texts the embedding cache keeps (two generations of this many).
const EMBED_CACHE_ENTRIES: usize = 50_000;

/// Why a run stopped before the end of its input.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// SIGINT (2) or SIGTERM (15).
    Signal(i32),
    Budget(String),
}

/// Set once to make the reader stop taking new work; items in flight
/// finish and are committed.
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    reason: Mutex<Option<StopReason>>,
}

impl Stop {
    pub fn request(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

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

/// The unit the stages pass on: a source example with its candidates, or
/// a bad row on its way to quarantine (kept in the stream so the sink sees
/// every input position in order).
struct Staged {
    seq: u64,
    batch: Option<SourceBatch>,
    bad: Option<BadRow>,
    generated: Generated,
    /// (stage, error) for stages that failed on this batch.
    failures: Vec<(String, String)>,
    /// Not started because the run is stopping: neither this nor anything
    /// after it is committed.
    skipped: bool,
}

enum Item {
    Example(Arc<SourceExample>),
    Bad(BadRow),
}

#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    source_id: &'a str,
    file: &'a str,
    line: u64,
    stage: &'a str,
    error: &'a str,
    attempts: u32,
    /// Later runs of this folder that will still try the source again.
    retries_left: u32,
}

async fn build_embedder(
    config: &EmbedderConfig,
    shared: &Shared,
    clients: &mut Vec<(String, Arc<OpenAiClient>)>,
) -> anyhow::Result<Arc<dyn Embedder>> {
    Ok(match config {
        EmbedderConfig::Local {
            model_dir,
            hub_model,
            hub_revision,
            batch_size,
        } => {
            let dir = match (model_dir, hub_model) {
                (Some(dir), _) => dir.clone(),
                (None, Some(repo)) => crate::embed::hub::fetch(repo, hub_revision, &cache_root())
                    .await
                    .context("fetching the embedding model")?,
                (None, None) => default_model_dir(),
            };
            Arc::new(
                LocalEmbedder::start(&dir, *batch_size)
                    .map_err(|e| UsageError::new(e.to_string()))?,
            )
        }
        EmbedderConfig::Http { endpoint } => {
            let client = Arc::new(OpenAiClient::new(endpoint, shared.clone())?);
            clients.push(("similarity".to_string(), client.clone()));
            Arc::new(HttpEmbedder::new(
                client,
                endpoint.model.clone(),
                endpoint.url.clone(),
            ))
        }
    })
}

fn uses_endpoints(config: &PipelineConfig, filters: &[FilterConfig]) -> bool {
    (!config.source.pairs_mode() && matches!(config.generator, GeneratorConfig::Llm(_)))
        || (config.needs_embedder() && matches!(config.embedder, EmbedderConfig::Http { .. }))
        || filters.iter().any(|f| matches!(f, FilterConfig::Verify(_)))
}

impl Pipeline {
    /// Build every stage; configuration problems are [`UsageError`]s.
    pub async fn build(mut config: PipelineConfig, out_dir: PathBuf) -> anyhow::Result<Self> {
        config.validate()?;
        let task = config.task()?;
        let filter_configs = config.resolved_filters()?;
        // The manifest shows the filters actually used.
        config.filters = Some(filter_configs.clone());
        let budget = Arc::new(Budget::new(config.budget.clone()));
        let cache = if uses_endpoints(&config, &filter_configs) {
            let path = config
                .cache
                .path
                .clone()
                .unwrap_or_else(|| out_dir.join("cache.sqlite"));
            Some(Arc::new(ResponseCache::open(&path, config.cache.mode)?))
        } else {
            None
        };
        let shared = Shared {
            cache: cache.clone(),
            budget: budget.clone(),
            cache_namespace: config.cache.namespace.clone(),
        };
        let mut clients = Vec::new();
        let mut prompts = BTreeMap::new();
        let generator: Arc<dyn Generator> = if config.source.pairs_mode() {
            Arc::new(GivenEdits::new(task))
        } else {
            match &config.generator {
                GeneratorConfig::Rules { ops, max_per_op } => Arc::new(RulesGenerator::new(
                    task,
                    GeneratorConfig::rule_ops(ops, task),
                    *max_per_op,
                )),
                GeneratorConfig::Llm(llm) => {
                    let set =
                        PromptSet::load(task, llm.prompts_dir.as_deref()).map_err(UsageError)?;
                    prompts.insert(task.name.to_string(), set.sha256.clone());
                    let client = Arc::new(OpenAiClient::new(&llm.endpoint, shared.clone())?);
                    clients.push(("generate".to_string(), client.clone()));
                    Arc::new(LlmGenerator::new(task, (**llm).clone(), client, set))
                }
            }
        };
        // Captions that name a span and an alternative get the COCO-CON
        // swap as well.
        let generator: Arc<dyn Generator> = if task.name == "caption" && !config.source.pairs_mode()
        {
            Arc::new(crate::generate::span_swap::SpanSwap::new(generator))
        } else {
            generator
        };
        let embedder = if config.needs_embedder() {
            let inner = build_embedder(&config.embedder, &shared, &mut clients).await?;
            Some(Arc::new(CachedEmbedder::new(inner, EMBED_CACHE_ENTRIES)))
        } else {
            None
        };
        let mut filters: Vec<Arc<dyn Filter>> = Vec::new();
        for f in &filter_configs {
            filters.push(match f {
                FilterConfig::Verify(v) => {
                    let set = PromptSet::load_named(
                        "verify",
                        &crate::tasks::VERIFY_PROMPTS,
                        v.prompts_dir.as_deref(),
                    )
                    .map_err(UsageError)?;
                    prompts.insert("verify".to_string(), set.sha256.clone());
                    let client = Arc::new(OpenAiClient::new(&v.endpoint, shared.clone())?);
                    clients.push(("verify".to_string(), client.clone()));
                    Arc::new(Verifier::new(task.name, (**v).clone(), client, set))
                }
                FilterConfig::LabelChange => Arc::new(LabelChange),
                FilterConfig::EditDistance(e) => Arc::new(EditDistance {
                    bounds: e.bounds(task),
                    max_word_edits: e.max_word_edits,
                    max_edit_ratio: e.max_edit_ratio,
                }),
                FilterConfig::Similarity { min, max } => Arc::new(SimilarityBand {
                    min: *min,
                    max: *max,
                    embedder: embedder
                        .clone()
                        .expect("built when a similarity filter exists"),
                }),
            });
        }
        Ok(Pipeline {
            embedder: embedder.as_ref().map(|e| e.describe()),
            config,
            out_dir,
            task,
            generator,
            filters,
            prompts,
            clients,
            budget,
            stop: Arc::new(Stop::default()),
        })
    }

    /// Stop on SIGINT/SIGTERM after the items in flight; a second signal
    /// exits at once (committed output is consistent at any instant).
    fn watch_signals(&self) -> Option<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).ok()?;
        let mut term = signal(SignalKind::terminate()).ok()?;
        let stop = self.stop.clone();
        Some(tokio::spawn(async move {
            let which = tokio::select! {
                _ = int.recv() => 2,
                _ = term.recv() => 15,
            };
            eprintln!("foil: stopping after the items in flight; signal again to quit now");
            stop.request(StopReason::Signal(which));
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            std::process::exit(128 + which);
        }))
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
        let identity = self.config.identity_hash();
        let previous = match (state.identity()?, state.checkpoint()?) {
            (Some(id), Some(cp)) if id == identity => Some(cp),
            _ => None,
        };
        // A rerun of a complete run is incremental: sources it has not seen
        // (the input grew) are processed and appended; the rest skipped.
        let incremental = previous.as_ref().is_some_and(|cp| cp.complete);
        match &previous {
            Some(cp) => {
                let listed: Vec<String> = cp
                    .shards
                    .iter()
                    .chain(&cp.rejected_shards)
                    .map(|e| e.path.clone())
                    .collect();
                sink::remove_uncommitted(&out_dir, &listed)
                    .and_then(|_| {
                        sink::truncate_to(&out_dir.join(sink::QUARANTINE), cp.quarantine_bytes)
                    })
                    .and_then(|_| {
                        sink::truncate_to(&out_dir.join(sink::DEAD_LETTER), cp.dead_letter_bytes)
                    })
                    .with_context(|| {
                        format!(
                            "cleaning up after the last checkpoint in `{}`",
                            out_dir.display()
                        )
                    })?;
                tracing::info!(next_seq = cp.next_seq, "resuming after the last checkpoint");
                if mode != ProgressMode::Off {
                    if incremental {
                        eprintln!(
                            "foil: `{}` is complete ({} sources); looking for new ones",
                            out_dir.display(),
                            cp.counts.sources
                        );
                    } else {
                        eprintln!(
                            "foil: resuming `{}`: {} sources already committed",
                            out_dir.display(),
                            cp.next_seq
                        );
                    }
                }
            }
            None => {
                sink::clear_previous_output(&out_dir).with_context(|| {
                    format!("clearing earlier output in `{}`", out_dir.display())
                })?;
                state.reset(&identity)?;
            }
        }
        let mut generation = state.generation()?;
        if incremental {
            generation += 1;
            state.set_generation(generation)?;
            let waiting = state.dead_sources()?.len();
            if waiting > 0 && mode != ProgressMode::Off {
                eprintln!(
                    "foil: retrying {waiting} source(s) from the dead letters of earlier runs"
                );
            }
        }
        // Sources of earlier generations are skipped by id; within this
        // generation a resume skips by input position (which keeps
        // duplicate rows exactly as an uninterrupted run treats them).
        let skip_ids = match &previous {
            Some(_) => state.earlier_sources(generation)?,
            None => None,
        };
        let skip_below = match &previous {
            Some(cp) if !incremental => cp.next_seq,
            _ => 0,
        };
        let bad_below = previous.as_ref().map_or(0, |cp| cp.next_seq);

        let rows = source::open(&self.config.source, self.task).map_err(|e| match e {
            SourceError::Usage(u) => anyhow::Error::new(u),
            other => anyhow::Error::new(other),
        })?;
        let signals = self.watch_signals();

        let concurrency = self.config.concurrency;
        let mut names = vec!["read".to_string(), "generate".to_string()];
        names.extend(self.filters.iter().map(|f| f.stage().to_string()));
        names.push("write".to_string());
        let progress = Progress::new(mode, &names);
        let logger = progress.spawn_logger(Duration::from_secs(5));

        // Reader: a blocking thread feeding a bounded channel, skipping what
        // an earlier invocation committed, stopping when asked.
        let (item_tx, mut item_rx) = mpsc::channel::<SourceItem>(256);
        let limit = self.config.source.limit;
        let shard = self.config.shard;
        let stop = self.stop.clone();
        let reader = tokio::task::spawn_blocking(move || -> Result<bool, SourceError> {
            let mut examples = 0u64;
            for item in rows {
                if stop.is_set() {
                    return Ok(false);
                }
                let item = item?;
                if matches!(item, SourceItem::Example(_)) {
                    // The limit counts the input, not this worker's slice,
                    // so N workers together see what one process sees.
                    if limit.is_some_and(|l| examples >= l) {
                        break;
                    }
                    examples += 1;
                }
                let seen = match &item {
                    SourceItem::Example(ex) => {
                        item.seq() < skip_below
                            || match &skip_ids {
                                Some(ids) => {
                                    ids.contains(source_key(ex))
                                        .map_err(|e| SourceError::Read {
                                            file: e.path.clone(),
                                            message: e.message.clone(),
                                        })?
                                }
                                None => false,
                            }
                    }
                    SourceItem::Bad(bad) => bad.seq < bad_below,
                };
                if seen {
                    continue;
                }
                if let Some(s) = &shard {
                    let mine = match &item {
                        SourceItem::Example(ex) => s.takes(&ex.source_id),
                        SourceItem::Bad(bad) => s.takes_position(bad.seq),
                    };
                    if !mine {
                        continue;
                    }
                }
                if item_tx.blocking_send(item).is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        });

        // Intake: count bad rows against the limit, pass everything on.
        let (ex_tx, ex_rx) = mpsc::channel::<Item>(concurrency * 2);
        let max_bad = self.config.source.max_bad_rows;
        let mut bad_so_far = previous.as_ref().map_or(0, |cp| cp.counts.quarantined);
        let read_progress = progress.stage(0);
        let intake = tokio::spawn(async move {
            let mut first_bad: Option<String> = None;
            while let Some(item) = item_rx.recv().await {
                read_progress.inc(1);
                let item = match item {
                    SourceItem::Example(ex) => Item::Example(Arc::new(ex)),
                    SourceItem::Bad(bad) => {
                        tracing::warn!("quarantined {bad}");
                        first_bad.get_or_insert_with(|| bad.to_string());
                        bad_so_far += 1;
                        if bad_so_far > max_bad {
                            // The row itself still reaches quarantine.
                            let _ = ex_tx.send(Item::Bad(bad)).await;
                            return Err(format!(
                                "more than {max_bad} bad input rows (raise --max-bad-rows to go on); first: {}; \
                                 all are listed in quarantine.jsonl",
                                first_bad.unwrap_or_default()
                            ));
                        }
                        Item::Bad(bad)
                    }
                };
                if ex_tx.send(item).await.is_err() {
                    break;
                }
            }
            Ok(())
        });

        // Generate: a map stage.
        let (gen_tx, mut stage_rx) = mpsc::channel::<Staged>(concurrency * 2);
        let generator = self.generator.clone();
        let gen_progress = progress.stage(1);
        let stop = self.stop.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let futures = receiver_stream(ex_rx).map(|item| {
                let generator = generator.clone();
                let stop = stop.clone();
                async move {
                    match item {
                        _ if stop.is_set() => Staged {
                            seq: 0,
                            batch: None,
                            bad: None,
                            generated: Generated::default(),
                            failures: Vec::new(),
                            skipped: true,
                        },
                        Item::Bad(bad) => Staged {
                            seq: bad.seq,
                            batch: None,
                            bad: Some(bad),
                            generated: Generated::default(),
                            failures: Vec::new(),
                            skipped: false,
                        },
                        Item::Example(example) => {
                            let mut generated = generator.generate(example.clone()).await;
                            let candidates = std::mem::take(&mut generated.candidates);
                            Staged {
                                seq: example.seq,
                                batch: Some(SourceBatch {
                                    example,
                                    candidates,
                                }),
                                bad: None,
                                generated,
                                failures: Vec::new(),
                                skipped: false,
                            }
                        }
                    }
                }
            });
            let stream = window::ordered_window(futures, concurrency, REORDER * concurrency);
            forward(stream, gen_tx, &gen_progress).await;
        })];

        // Filters: one map stage each, cheapest first.
        for (i, filter) in self.filters.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Staged>(concurrency * 2);
            let input = std::mem::replace(&mut stage_rx, rx);
            let filter = filter.clone();
            let stage_progress = progress.stage(2 + i);
            tasks.push(tokio::spawn(async move {
                let futures = receiver_stream(input).map(|mut staged| {
                    let filter = filter.clone();
                    async move {
                        if let Some(batch) = &mut staged.batch
                            && let Err(e) = filter.apply(batch).await
                        {
                            for c in batch.candidates.iter_mut().filter(|c| !c.is_rejected()) {
                                c.reject(filter.stage(), "error", e.clone());
                            }
                            staged.failures.push((filter.stage().to_string(), e));
                        }
                        staged
                    }
                });
                let stream = window::ordered_window(futures, concurrency, REORDER * concurrency);
                forward(stream, tx, &stage_progress).await;
            }));
        }

        // Sink: the barrier. Dedup in source order, shards, checkpoints.
        let next_seq = previous.as_ref().map_or(0, |cp| cp.next_seq);
        let sink = SinkStage::new(
            &self,
            &out_dir,
            state,
            previous.as_ref(),
            next_seq,
            generation,
        )?;
        let write_progress = progress.stage(2 + self.filters.len());
        // Shard writes with fsync, SQLite commits and disk-index I/O block:
        // the sink runs on a blocking thread, off the async workers.
        let sink_task = tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            while let Some(staged) = stage_rx.blocking_recv() {
                write_progress.inc(1);
                sink.take(staged)?;
            }
            sink.commit(false)?;
            anyhow::Ok(sink)
        });

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
        if let Some(s) = signals {
            s.abort();
        }
        progress.finish();

        let outcome = match (reader_result, intake_result, self.stop.reason()) {
            (Err(e), _, _) => Outcome::Failed(e.to_string()),
            (_, Err(e), _) => Outcome::Failed(e),
            (_, _, Some(reason)) => Outcome::Stopped(reason),
            (Ok(true), Ok(()), None) if incremental && sink.taken == 0 => Outcome::AlreadyComplete,
            (Ok(true), Ok(()), None) => Outcome::Complete,
            (Ok(false), Ok(()), None) => {
                Outcome::Failed("the pipeline stopped before the end of the input".into())
            }
        };
        sink.elapsed_s += started.elapsed().as_secs_f64();
        if matches!(outcome, Outcome::Complete | Outcome::AlreadyComplete) {
            sink.commit(true)?;
        }
        let manifest = sink.manifest(&self, started_unix, &outcome);
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

/// A map stage runs up to `concurrency` items and holds up to this many
/// times as many started but not yet handed on (`window.rs`).
const REORDER: usize = 4;

/// Send a stage's output on, counting it; stops when the next stage is
/// gone.
async fn forward<S: Stream<Item = Staged>>(
    stream: S,
    tx: mpsc::Sender<Staged>,
    progress: &progress::StageProgress,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(staged) = stream.next().await {
        progress.inc(1);
        if tx.send(staged).await.is_err() {
            break;
        }
    }
}

/// The barrier at the end: dedup, shard writing, quarantine, dead letters,
/// checkpoints, and the funnel of every stage, counted in input order.
struct SinkStage {
    task: &'static TaskPreset,
    dedup: Option<ExactDedup>,
    near: Option<NearDedup>,
    accepted: ShardWriter,
    rejected: Option<ShardWriter>,
    quarantine: JsonlFile,
    dead_letters: JsonlFile,
    read: StageFunnel,
    generate: StageFunnel,
    /// Filters then dedup, in order.
    pair_stages: Vec<StageFunnel>,
    counts: Counts,
    /// Usage of earlier invocations; this one's comes from the clients.
    base_usage: Usage,
    invalid_replies: u64,
    clients: Vec<(String, Arc<OpenAiClient>)>,
    budget: Arc<Budget>,
    stop: Arc<Stop>,
    state: RunState,
    next_seq: u64,
    /// This run's generation (see [`RunState::generation`]) and the keys
    /// of sources taken since the last commit.
    generation: u64,
    new_sources: Vec<u64>,
    /// Sources in the dead letters (key → runs that tried them), the
    /// changes to commit, and how many later runs may retry one.
    dead: std::collections::HashMap<u64, u32>,
    dead_updates: Vec<DeadUpdate>,
    dead_letter_retries: u32,
    /// Items (sources and bad rows) this invocation took.
    taken: u64,
    /// Set when a source hit the budget: nothing from it on is committed.
    halted: bool,
    rows_per_shard: usize,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    since_commit: u64,
    last_commit: Instant,
    elapsed_s: f64,
}

fn restore(funnel: &[StageFunnel], stage: &str, unit: &str) -> StageFunnel {
    funnel
        .iter()
        .find(|s| s.stage == stage)
        .cloned()
        .unwrap_or_else(|| StageFunnel::new(stage, unit))
}

impl SinkStage {
    fn new(
        p: &Pipeline,
        out_dir: &Path,
        state: RunState,
        previous: Option<&Checkpoint>,
        next_seq: u64,
        generation: u64,
    ) -> anyhow::Result<Self> {
        let cp = previous.cloned().unwrap_or_default();
        let mut pair_stages: Vec<StageFunnel> = p
            .filters
            .iter()
            .map(|f| restore(&cp.funnel, f.stage(), "pairs"))
            .collect();
        // The dedup indexes start from the committed pairs; past their
        // memory share they live in `.foil/index/`, rebuilt here each start.
        let index_dir = out_dir.join(state::STATE_DIR).join("index");
        let _ = std::fs::remove_dir_all(&index_dir);
        let mut dedup = p.config.dedup.exact.then(|| {
            ExactDedup::new().spill_to(&index_dir.join("exact"), p.config.dedup.exact_share())
        });
        if let Some(d) = &mut dedup {
            pair_stages.push(restore(&cp.funnel, crate::dedup::exact::STAGE, "pairs"));
            state.each_dedup_key(|k, seq| d.restore([(k, seq)]))?;
        }
        let mut near = None;
        if p.config.dedup.near.enabled {
            let mut n = NearDedup::new(p.config.dedup.near.clone())
                .spill_to(&index_dir.join("near"), p.config.dedup.near_share());
            let loaded = n.load_earlier().map_err(UsageError::new)?;
            if loaded > 0 {
                tracing::info!(pairs = loaded, "near-dedup against earlier output");
            }
            state.each_near_entry(|e| n.restore([e]))?;
            pair_stages.push(restore(&cp.funnel, crate::dedup::near::STAGE, "pairs"));
            near = Some(n);
        }
        let dead = state.dead_sources()?;
        Ok(SinkStage {
            task: p.task,
            dedup,
            near,
            accepted: ShardWriter::new(out_dir, None, cp.shards.clone(), false),
            rejected: p.config.sink.write_rejected.then(|| {
                ShardWriter::new(
                    out_dir,
                    Some(sink::REJECTED_DIR),
                    cp.rejected_shards.clone(),
                    true,
                )
            }),
            quarantine: JsonlFile::new(out_dir.join(sink::QUARANTINE), cp.quarantine_bytes),
            dead_letters: JsonlFile::new(out_dir.join(sink::DEAD_LETTER), cp.dead_letter_bytes),
            read: restore(&cp.funnel, "read", "rows"),
            generate: restore(&cp.funnel, "generate", "sources"),
            pair_stages,
            counts: cp.counts.clone(),
            base_usage: cp.usage.clone(),
            invalid_replies: 0,
            clients: p.clients.clone(),
            budget: p.budget.clone(),
            stop: p.stop.clone(),
            state,
            next_seq,
            generation,
            new_sources: Vec::new(),
            dead,
            dead_updates: Vec::new(),
            dead_letter_retries: p.config.sink.dead_letter_retries,
            taken: 0,
            halted: false,
            rows_per_shard: p.config.sink.rows_per_shard,
            checkpoint_every: p.config.sink.checkpoint_every.max(1),
            checkpoint_interval: Duration::from_secs_f64(p.config.sink.checkpoint_secs.max(0.001)),
            since_commit: 0,
            last_commit: Instant::now(),
            elapsed_s: cp.elapsed_s,
        })
    }

    /// Record a source's failures: a line per failed stage in the dead
    /// letters, and the source left out of the done sources, so that a
    /// later run of the folder tries it again, until the retries are
    /// spent. Returns whether the source is given up.
    fn dead_source(
        &mut self,
        ex: &SourceExample,
        failures: &[(&str, &str, u32)],
    ) -> anyhow::Result<bool> {
        let key = source_key(ex);
        let earlier = self.dead.get(&key).copied();
        let tries = earlier.map_or(1, |t| t + 1);
        let retries_left = (self.dead_letter_retries + 1).saturating_sub(tries);
        if earlier.is_none() {
            self.counts.dead_letters += 1;
        }
        for (stage, error, attempts) in failures {
            self.dead_letter(ex, stage, error, *attempts, retries_left)?;
        }
        if retries_left == 0 {
            self.counts.dead_letters_given_up += 1;
            self.dead.remove(&key);
            self.dead_updates.push(DeadUpdate::Done { key });
            if earlier.is_some() {
                tracing::warn!(source_id = %ex.source_id, "giving up after {tries} runs");
            }
            Ok(true)
        } else {
            self.dead.insert(key, tries);
            self.dead_updates.push(DeadUpdate::Tried { key, tries });
            Ok(false)
        }
    }

    fn dead_letter(
        &mut self,
        ex: &SourceExample,
        stage: &str,
        error: &str,
        attempts: u32,
        retries_left: u32,
    ) -> anyhow::Result<()> {
        tracing::warn!(source_id = %ex.source_id, stage, "dead letter: {error}");
        self.dead_letters
            .append(&DeadLetter {
                source_id: &ex.source_id,
                file: &ex.origin.file,
                line: ex.origin.line,
                stage,
                error,
                attempts,
                retries_left,
            })
            .with_context(|| format!("writing `{}`", self.dead_letters.path().display()))
    }

    fn take(&mut self, staged: Staged) -> anyhow::Result<()> {
        if self.halted {
            return Ok(());
        }
        let Staged {
            seq,
            batch,
            bad,
            generated,
            failures,
            skipped,
        } = staged;
        if skipped {
            self.halted = true;
            return Ok(());
        }
        // Whichever stage's endpoint was refused (generator, HTTP
        // embedder, judge), a spent budget stops the run at this source.
        let budget_hit = generated
            .failure
            .iter()
            .map(|f| f.error.as_str())
            .chain(failures.iter().map(|(_, e)| e.as_str()))
            .find_map(|e| crate::llm::budget::budget_message(e).map(str::to_string));
        if let Some(why) = budget_hit {
            // Not this source, nor any after it: a rerun picks up here.
            self.halted = true;
            self.stop.request(StopReason::Budget(why));
            return Ok(());
        }
        self.read.in_ += 1;
        self.taken += 1;
        // Never backwards: an incremental run may take a row inserted
        // before the end of what earlier runs read.
        self.next_seq = self.next_seq.max(seq + 1);
        self.since_commit += 1;
        if let Some(bad) = bad {
            self.read.reject(bad.code);
            self.counts.quarantined += 1;
            self.quarantine
                .append(&bad)
                .with_context(|| format!("writing `{}`", self.quarantine.path().display()))?;
            return self.maybe_commit();
        }
        let Some(mut batch) = batch else {
            return Ok(());
        };
        self.read.out += 1;
        let example = batch.example.clone();
        // A retried dead letter was counted when it first failed.
        if !self.dead.contains_key(&source_key(&example)) {
            self.counts.sources += 1;
        }
        self.invalid_replies += generated.invalid_replies;

        self.generate.in_ += 1;
        let produced = batch.candidates.len() as u64;
        *self.generate.produced.get_or_insert(0) += produced;
        self.counts.candidates += produced;
        // Candidates made before a failure still count; a failed source
        // is dead-lettered and not marked done, for a later run to retry.
        let mut failed: Vec<(&str, &str, u32)> = Vec::new();
        if let Some(f) = &generated.failure {
            failed.push(("generate", &f.error, f.attempts));
        }
        failed.extend(failures.iter().map(|(s, e)| (s.as_str(), e.as_str(), 1)));
        let key = source_key(&example);
        if failed.is_empty() {
            self.new_sources.push(key);
            if self.dead.remove(&key).is_some() {
                self.counts.dead_letters = self.counts.dead_letters.saturating_sub(1);
                self.counts.dead_letters_recovered += 1;
                self.dead_updates.push(DeadUpdate::Done { key });
            }
        } else if self.dead_source(&example, &failed)? {
            self.new_sources.push(key);
        }
        if produced > 0 {
            self.generate.out += 1;
        } else if generated.failure.is_some() {
            self.generate.failed += 1;
        } else {
            self.generate.reject("no_candidates");
        }

        if let Some(d) = &mut self.dedup {
            d.apply(&mut batch).context("exact-dedup index")?;
        }
        if let Some(n) = &mut self.near {
            n.apply(&mut batch).context("near-dedup index")?;
        }
        if let Some(d) = &mut self.dedup {
            d.remember_accepted(&batch.candidates)
                .context("exact-dedup index")?;
        }
        for (index, c) in batch.candidates.into_iter().enumerate() {
            let index = index as u32;
            let stop = c.rejection.as_ref().map(|r| {
                self.pair_stages
                    .iter()
                    .position(|s| s.stage == r.stage)
                    .unwrap_or(self.pair_stages.len())
            });
            let reached = stop.map_or(self.pair_stages.len(), |s| {
                (s + 1).min(self.pair_stages.len())
            });
            for (i, stage) in self.pair_stages.iter_mut().enumerate().take(reached) {
                stage.in_ += 1;
                if Some(i) == stop {
                    let reason = c
                        .rejection
                        .as_ref()
                        .map(|r| r.reason.as_str())
                        .unwrap_or_default();
                    if reason == "error" {
                        stage.failed += 1;
                    } else {
                        stage.reject(reason);
                    }
                } else {
                    stage.out += 1;
                }
            }
            if c.is_rejected() {
                self.counts.rejected += 1;
                if let Some(r) = &mut self.rejected {
                    r.push(c, index, self.task.name, &example, self.task.edit_field);
                }
            } else {
                self.counts.add_accepted(&c);
                self.accepted
                    .push(c, index, self.task.name, &example, self.task.edit_field);
            }
        }
        self.maybe_commit()
    }

    fn maybe_commit(&mut self) -> anyhow::Result<()> {
        let full = self.accepted.buffered() >= self.rows_per_shard
            || self
                .rejected
                .as_ref()
                .is_some_and(|r| r.buffered() >= self.rows_per_shard);
        if full
            || self.since_commit >= self.checkpoint_every
            || self.last_commit.elapsed() >= self.checkpoint_interval
        {
            self.commit(false)?;
        }
        Ok(())
    }

    /// Usage so far: earlier invocations plus this one's clients.
    fn usage(&self) -> Usage {
        let mut u = self.base_usage.clone();
        for (stage, client) in &self.clients {
            let s = &client.stats;
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let model = client.model();
            let (p, c) = (g(&s.prompt_tokens), g(&s.completion_tokens));
            let now = StageUsage {
                requests: g(&s.sent),
                cache_hits: g(&s.cache_hits),
                retries: g(&s.retries),
                rate_limited: g(&s.rate_limited),
                prompt_tokens: p,
                completion_tokens: c,
                cost: self.budget.cost_of(model, p, c),
            };
            u.stages.entry(stage.clone()).or_default().add(&now);
        }
        u.invalid_replies += self.invalid_replies;
        u.total();
        u
    }

    fn rejected_shards(&self) -> Vec<sink::shards::ShardEntry> {
        self.rejected
            .as_ref()
            .map(|r| r.shards.clone())
            .unwrap_or_default()
    }

    fn funnel(&self, pairs_mode: bool) -> Vec<StageFunnel> {
        let mut f = vec![self.read.clone()];
        if !pairs_mode {
            f.push(self.generate.clone());
        }
        f.extend(self.pair_stages.iter().cloned());
        f
    }

    /// Write buffered rows as shards, sync side files, then record the
    /// checkpoint: the order that makes a kill at any instant harmless.
    fn commit(&mut self, complete: bool) -> anyhow::Result<()> {
        self.accepted.flush()?;
        if let Some(r) = &mut self.rejected {
            r.flush()?;
        }
        self.quarantine.sync()?;
        self.dead_letters.sync()?;
        let cp = Checkpoint {
            next_seq: self.next_seq,
            complete,
            shards: self.accepted.shards.clone(),
            rejected_shards: self.rejected_shards(),
            funnel: self.funnel(false),
            counts: self.counts.clone(),
            usage: self.usage(),
            quarantine_bytes: self.quarantine.bytes,
            dead_letter_bytes: self.dead_letters.bytes,
            elapsed_s: self.elapsed_s,
        };
        let keys = self
            .dedup
            .as_mut()
            .map(|d| d.take_new())
            .unwrap_or_default();
        let near = self.near.as_mut().map(|n| n.take_new()).unwrap_or_default();
        let sources = std::mem::take(&mut self.new_sources);
        let dead = std::mem::take(&mut self.dead_updates);
        self.state
            .commit(&cp, &keys, &near, &sources, &dead, self.generation)?;
        self.since_commit = 0;
        self.last_commit = Instant::now();
        Ok(())
    }

    fn manifest(&self, p: &Pipeline, started_unix: u64, outcome: &Outcome) -> Manifest {
        let mut counts = self.counts.clone();
        counts.rows_read = self.read.in_;
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
            task: p.task.name.to_string(),
            pairs_mode: p.config.source.pairs_mode(),
            started_unix,
            duration_s: (self.elapsed_s * 1000.0).round() / 1000.0,
            config: p.config.clone(),
            prompts: p.prompts.clone(),
            models: Models {
                generator: p.generator.describe(),
                embedder: p.embedder.clone(),
            },
            counts,
            usage: self.usage(),
            funnel: self.funnel(p.config.source.pairs_mode()),
            shards: self.accepted.shards.clone(),
            rejected_shards: self.rejected_shards(),
        }
    }
}

/// The key an incremental run recognises a source by: its id, and in pairs
/// mode the given edit too (several rows may share a source id there).
fn source_key(ex: &SourceExample) -> u64 {
    let edited = ex.given.as_ref().map_or("", |g| g.edited.as_str());
    crate::dedup::near::hash64(&[ex.source_id.as_bytes(), edited.as_bytes()])
}

/// A channel receiver as a stream.
fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}
