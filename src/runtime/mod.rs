//! The runtime: builds the stages a [`PipelineConfig`] describes and runs
//! them as tokio tasks joined by bounded channels:
//!
//! ```text
//! reader ─▶ intake ─▶ generate ─▶ filter₁ ─▶ … ─▶ filterₙ ─▶ sink (dedup + shards)
//! (thread)  (quarantine)  (map)      (map)           (map)     (barrier)
//! ```
//!
//! Map stages run up to `concurrency` items at once but hand them on in
//! input order (`buffered`), so the barrier at the end sees sources in the
//! order they were read: which duplicate survives, and what lands in which
//! shard, do not depend on concurrency or timing. Bounded channels keep
//! memory flat however large the input is.

pub mod progress;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::UsageError;
use crate::config::{EmbedderConfig, FilterConfig, GeneratorConfig, PipelineConfig};
use crate::dedup::ExactDedup;
use crate::embed::http::HttpEmbedder;
use crate::embed::local::{LocalEmbedder, cache_root, default_model_dir};
use crate::embed::{CachedEmbedder, Embedder};
use crate::filter::{EditDistance, Filter, SimilarityBand};
use crate::generate::given::GivenEdits;
use crate::generate::llm::{LlmGenerator, PromptSet};
use crate::generate::rules::RulesGenerator;
use crate::generate::{Generated, Generator};
use crate::llm::OpenAiClient;
use crate::record::{SourceBatch, SourceExample};
use crate::sink::manifest::{Counts, Models, SCHEMA_VERSION, StageFunnel, Usage};
use crate::sink::{self, JsonlFile, Manifest, ShardWriter};
use crate::source::{self, BadRow, SourceError, SourceItem};
use crate::tasks::TaskPreset;
use progress::{Progress, ProgressMode};

/// Distinct texts the embedding cache keeps (two generations of this many).
const EMBED_CACHE_ENTRIES: usize = 50_000;

/// A pipeline ready to run: every stage built, every setting checked.
pub struct Pipeline {
    pub config: PipelineConfig,
    pub out_dir: PathBuf,
    pub task: &'static TaskPreset,
    generator: Arc<dyn Generator>,
    filters: Vec<Arc<dyn Filter>>,
    prompts: BTreeMap<String, String>,
    embedder: Option<String>,
}

/// What a finished (or failed) run leaves behind.
#[derive(Debug)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub manifest: Manifest,
    /// Why the run stopped early, when it did; the output holds everything
    /// committed before.
    pub failure: Option<String>,
}

/// A batch with what its trip through the stages cost and broke.
struct Staged {
    batch: SourceBatch,
    generated: Generated,
    /// (stage, error) for stages that failed on this batch.
    failures: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    source_id: &'a str,
    file: &'a str,
    line: u64,
    stage: &'a str,
    error: &'a str,
    attempts: u32,
}

async fn build_embedder(config: &EmbedderConfig) -> anyhow::Result<Arc<dyn Embedder>> {
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
            let client = OpenAiClient::new(endpoint)?;
            Arc::new(HttpEmbedder::new(
                client,
                endpoint.model.clone(),
                endpoint.url.clone(),
            ))
        }
    })
}

impl Pipeline {
    /// Build every stage; configuration problems are [`UsageError`]s.
    pub async fn build(mut config: PipelineConfig, out_dir: PathBuf) -> anyhow::Result<Self> {
        config.validate()?;
        let task = config.task()?;
        let filter_configs = config.resolved_filters()?;
        // The manifest shows the filters actually used.
        config.filters = Some(filter_configs.clone());
        let mut prompts = BTreeMap::new();
        let generator: Arc<dyn Generator> = if config.source.pairs_mode() {
            Arc::new(GivenEdits::new(task))
        } else {
            match &config.generator {
                GeneratorConfig::Rules { ops, max_per_op } => {
                    Arc::new(RulesGenerator::new(task, ops.clone(), *max_per_op))
                }
                GeneratorConfig::Llm(llm) => {
                    let set =
                        PromptSet::load(task, llm.prompts_dir.as_deref()).map_err(UsageError)?;
                    prompts.insert(task.name.to_string(), set.sha256.clone());
                    let client = OpenAiClient::new(&llm.endpoint)?;
                    Arc::new(LlmGenerator::new(task, llm.clone(), client, set))
                }
            }
        };
        let embedder = if config.needs_embedder() {
            Some(Arc::new(CachedEmbedder::new(
                build_embedder(&config.embedder).await?,
                EMBED_CACHE_ENTRIES,
            )))
        } else {
            None
        };
        let filters = filter_configs
            .iter()
            .map(|f| -> Arc<dyn Filter> {
                match f {
                    FilterConfig::EditDistance {
                        max_word_edits,
                        max_edit_ratio,
                    } => Arc::new(EditDistance {
                        max_word_edits: *max_word_edits,
                        max_edit_ratio: *max_edit_ratio,
                    }),
                    FilterConfig::Similarity { min, max } => Arc::new(SimilarityBand {
                        min: *min,
                        max: *max,
                        embedder: embedder
                            .clone()
                            .expect("built when a similarity filter exists"),
                    }),
                }
            })
            .collect();
        Ok(Pipeline {
            embedder: embedder.as_ref().map(|e| e.describe()),
            config,
            out_dir,
            task,
            generator,
            filters,
            prompts,
        })
    }

    /// Run to the end of the input. The output folder holds shards, rejects,
    /// side files and a manifest afterwards, also when the run failed part
    /// way (then `failure` says why).
    pub async fn run(self, mode: ProgressMode) -> anyhow::Result<RunSummary> {
        let started = Instant::now();
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let out_dir = self.out_dir.clone();
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating output folder `{}`", out_dir.display()))?;
        sink::clear_previous_output(&out_dir)
            .with_context(|| format!("clearing earlier output in `{}`", out_dir.display()))?;

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

        // Reader: a blocking thread feeding a bounded channel.
        let (item_tx, mut item_rx) = mpsc::channel::<SourceItem>(256);
        let limit = self.config.source.limit;
        let reader = tokio::task::spawn_blocking(move || -> Result<(), SourceError> {
            let mut examples = 0u64;
            for item in rows {
                let item = item?;
                if matches!(item, SourceItem::Example(_)) {
                    if limit.is_some_and(|l| examples >= l) {
                        break;
                    }
                    examples += 1;
                }
                if item_tx.blocking_send(item).is_err() {
                    break;
                }
            }
            Ok(())
        });

        // Intake: quarantine bad rows, pass examples on.
        let (ex_tx, ex_rx) = mpsc::channel::<Arc<SourceExample>>(concurrency * 2);
        let max_bad = self.config.source.max_bad_rows;
        let quarantine_path = out_dir.join(sink::QUARANTINE);
        let read_progress = progress.stage(0);
        let intake = tokio::spawn(async move {
            let mut funnel = StageFunnel::new("read", "rows");
            let mut quarantine = JsonlFile::new(quarantine_path);
            let mut first_bad: Option<BadRow> = None;
            let mut outcome: Result<(), String> = Ok(());
            while let Some(item) = item_rx.recv().await {
                funnel.in_ += 1;
                read_progress.inc(1);
                match item {
                    SourceItem::Example(ex) => {
                        funnel.out += 1;
                        if ex_tx.send(Arc::new(ex)).await.is_err() {
                            break;
                        }
                    }
                    SourceItem::Bad(bad) => {
                        funnel.reject(bad.code);
                        tracing::warn!(
                            "quarantined {}:{}{}: {}",
                            bad.file,
                            bad.line,
                            bad.field
                                .as_deref()
                                .map(|f| format!(" field `{f}`"))
                                .unwrap_or_default(),
                            bad.reason
                        );
                        if let Err(e) = quarantine.append(&bad) {
                            outcome =
                                Err(format!("writing `{}`: {e}", quarantine.path().display()));
                            break;
                        }
                        first_bad.get_or_insert(bad);
                        if quarantine.lines > max_bad {
                            let first = first_bad.as_ref().map(|b| {
                                format!(
                                    "; first: {}:{}{}: {}",
                                    b.file,
                                    b.line,
                                    b.field
                                        .as_deref()
                                        .map(|f| format!(" field `{f}`"))
                                        .unwrap_or_default(),
                                    b.reason
                                )
                            });
                            outcome = Err(format!(
                                "more than {max_bad} bad input rows (raise --max-bad-rows to go on){}; \
                                 all are listed in `{}`",
                                first.unwrap_or_default(),
                                quarantine.path().display()
                            ));
                            break;
                        }
                    }
                }
            }
            let _ = quarantine.finish();
            (funnel, outcome)
        });

        // Generate: a map stage.
        let (gen_tx, mut stage_rx) = mpsc::channel::<Staged>(concurrency * 2);
        let generator = self.generator.clone();
        let gen_progress = progress.stage(1);
        let mut tasks = vec![tokio::spawn(async move {
            let stream = receiver_stream(ex_rx)
                .map(|example| {
                    let generator = generator.clone();
                    async move {
                        let mut generated = generator.generate(example.clone()).await;
                        let candidates = std::mem::take(&mut generated.candidates);
                        Staged {
                            batch: SourceBatch {
                                example,
                                candidates,
                            },
                            generated,
                            failures: Vec::new(),
                        }
                    }
                })
                .buffered(concurrency);
            forward(stream, gen_tx, &gen_progress).await;
        })];

        // Filters: one map stage each, cheapest first.
        for (i, filter) in self.filters.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Staged>(concurrency * 2);
            let input = std::mem::replace(&mut stage_rx, rx);
            let filter = filter.clone();
            let stage_progress = progress.stage(2 + i);
            tasks.push(tokio::spawn(async move {
                let stream = receiver_stream(input)
                    .map(|mut staged| {
                        let filter = filter.clone();
                        async move {
                            if let Err(e) = filter.apply(&mut staged.batch).await {
                                for c in staged
                                    .batch
                                    .candidates
                                    .iter_mut()
                                    .filter(|c| !c.is_rejected())
                                {
                                    c.reject(filter.stage(), "error", e.clone());
                                }
                                staged.failures.push((filter.stage().to_string(), e));
                            }
                            staged
                        }
                    })
                    .buffered(concurrency);
                forward(stream, tx, &stage_progress).await;
            }));
        }

        // Sink: the barrier. Dedup in source order, then shards.
        let sink = SinkStage::new(&self, &out_dir);
        let write_progress = progress.stage(2 + self.filters.len());
        let sink_task = tokio::spawn(async move {
            let mut sink = sink;
            while let Some(staged) = stage_rx.recv().await {
                write_progress.inc(1);
                sink.take(staged)?;
            }
            sink.finish()
        });

        let reader_result = reader.await.context("reader thread panicked")?;
        let (read_funnel, intake_result) = intake.await.context("intake task panicked")?;
        for t in tasks {
            t.await.context("stage task panicked")?;
        }
        let sink = sink_task
            .await
            .context("sink task panicked")?
            .context("writing the output")?;
        if let Some(l) = logger {
            l.abort();
        }
        progress.finish();

        let failure = match (reader_result, intake_result) {
            (Err(e), _) => Some(e.to_string()),
            (_, Err(e)) => Some(e),
            _ => None,
        };
        let manifest = sink.manifest(
            &self,
            read_funnel,
            started_unix,
            started.elapsed().as_secs_f64(),
            failure.as_deref(),
        );
        manifest
            .write(&out_dir)
            .with_context(|| format!("writing the manifest in `{}`", out_dir.display()))?;
        Ok(RunSummary {
            out_dir,
            manifest,
            failure,
        })
    }
}

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

/// The barrier at the end: dedup, shard writing, dead letters and the
/// funnel of every pair stage, counted from the candidates themselves.
struct SinkStage {
    task: &'static TaskPreset,
    dedup: Option<ExactDedup>,
    accepted: ShardWriter,
    rejected: Option<ShardWriter>,
    dead_letters: JsonlFile,
    generate: StageFunnel,
    /// Filters then dedup, in order.
    pair_stages: Vec<StageFunnel>,
    counts: Counts,
    usage: Usage,
}

impl SinkStage {
    fn new(p: &Pipeline, out_dir: &std::path::Path) -> Self {
        let rows = p.config.sink.rows_per_shard;
        let mut pair_stages: Vec<StageFunnel> = p
            .filters
            .iter()
            .map(|f| StageFunnel::new(f.stage(), "pairs"))
            .collect();
        if p.config.dedup.exact {
            pair_stages.push(StageFunnel::new(crate::dedup::exact::STAGE, "pairs"));
        }
        SinkStage {
            task: p.task,
            dedup: p.config.dedup.exact.then(ExactDedup::new),
            accepted: ShardWriter::new(out_dir, None, rows, false),
            rejected: p
                .config
                .sink
                .write_rejected
                .then(|| ShardWriter::new(out_dir, Some(sink::REJECTED_DIR), rows, true)),
            dead_letters: JsonlFile::new(out_dir.join(sink::DEAD_LETTER)),
            generate: StageFunnel::new("generate", "sources"),
            pair_stages,
            counts: Counts::default(),
            usage: Usage::default(),
        }
    }

    fn dead_letter(
        &mut self,
        ex: &SourceExample,
        stage: &str,
        error: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        self.counts.dead_letters += 1;
        tracing::warn!(source_id = %ex.source_id, stage, "dead letter: {error}");
        self.dead_letters
            .append(&DeadLetter {
                source_id: &ex.source_id,
                file: &ex.origin.file,
                line: ex.origin.line,
                stage,
                error,
                attempts,
            })
            .with_context(|| format!("writing `{}`", self.dead_letters.path().display()))
    }

    fn take(&mut self, staged: Staged) -> anyhow::Result<()> {
        let Staged {
            mut batch,
            generated,
            failures,
        } = staged;
        let example = batch.example.clone();
        self.counts.sources += 1;
        self.usage.requests += generated.requests;
        self.usage.prompt_tokens += generated.prompt_tokens;
        self.usage.completion_tokens += generated.completion_tokens;
        self.usage.invalid_replies += generated.invalid_replies;

        self.generate.in_ += 1;
        let produced = batch.candidates.len() as u64;
        *self.generate.produced.get_or_insert(0) += produced;
        self.counts.candidates += produced;
        if let Some(f) = &generated.failure {
            // Candidates made before the failure still count; the source
            // is dead-lettered so a rerun can retry it.
            self.dead_letter(&example, "generate", &f.error, f.attempts)?;
        }
        if produced > 0 {
            self.generate.out += 1;
        } else if let Some(f) = &generated.failure {
            let _ = f;
            self.generate.failed += 1;
        } else {
            self.generate.reject("no_candidates");
        }
        for (stage, error) in &failures {
            self.dead_letter(&example, stage, error, 1)?;
        }

        if let Some(d) = &mut self.dedup {
            d.apply(&mut batch);
        }
        for c in batch.candidates {
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
                    let reason = &c
                        .rejection
                        .as_ref()
                        .map(|r| r.reason.clone())
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
                    r.push(c, self.task.name, &example, self.task.edit_field)?;
                }
            } else {
                self.counts.accepted += 1;
                self.accepted
                    .push(c, self.task.name, &example, self.task.edit_field)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<Self> {
        self.accepted.flush()?;
        if let Some(r) = &mut self.rejected {
            r.flush()?;
        }
        self.dead_letters.finish()?;
        Ok(self)
    }

    fn manifest(
        self,
        p: &Pipeline,
        read: StageFunnel,
        started_unix: u64,
        duration_s: f64,
        failure: Option<&str>,
    ) -> Manifest {
        let mut counts = self.counts;
        counts.rows_read = read.in_;
        counts.quarantined = read.rejected_total();
        let mut funnel = vec![read];
        if !p.config.source.pairs_mode() {
            funnel.push(self.generate);
        }
        funnel.extend(self.pair_stages);
        Manifest {
            schema_version: SCHEMA_VERSION,
            foil_version: env!("CARGO_PKG_VERSION").to_string(),
            status: match failure {
                None => "complete".to_string(),
                Some(f) => format!("failed: {f}"),
            },
            task: p.task.name.to_string(),
            pairs_mode: p.config.source.pairs_mode(),
            started_unix,
            duration_s: (duration_s * 1000.0).round() / 1000.0,
            config: p.config.clone(),
            prompts: p.prompts.clone(),
            models: Models {
                generator: p.generator.describe(),
                embedder: p.embedder.clone(),
            },
            counts,
            usage: self.usage,
            funnel,
            shards: self.accepted.shards,
            rejected_shards: self.rejected.map(|r| r.shards).unwrap_or_default(),
        }
    }
}

/// A channel receiver as a stream.
fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}
