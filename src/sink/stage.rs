//! The sink stage: the barrier at the end of the pipeline. It takes the
//! staged sources in input order and does exact and near dedup, writes
//! shards, quarantine and dead letters, counts every stage's funnel and
//! commits checkpoints to the run state ([`state`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::dedup::{ExactDedup, NearDedup};
use crate::generate::Generated;
use crate::llm::OpenAiClient;
use crate::llm::budget::Budget;
use crate::record::{SourceBatch, SourceExample, StageError};
use crate::sink::manifest::{Counts, StageFunnel, StageUsage, Usage, count_pair};
use crate::sink::state::{self, Checkpoint, DeadUpdate, RunState};
use crate::sink::{self, JsonlFile, Manifest, ShardWriter};
use crate::source::BadRow;
use crate::tasks::TaskPreset;

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

/// What the sink stage needs from the pipeline it ends.
pub struct SinkSetup<'a> {
    pub task: &'static TaskPreset,
    pub config: &'a PipelineConfig,
    /// The filters' stage names, in order.
    pub filter_stages: Vec<&'static str>,
    /// Stage name → the endpoint client it uses, for usage accounting.
    pub clients: Vec<(String, Arc<OpenAiClient>)>,
    pub budget: Arc<Budget>,
    pub stop: Arc<Stop>,
}

/// The unit the stages pass on, in input order (bad rows stay in the
/// stream so the sink sees every input position).
pub enum Staged {
    /// A source example with its candidates, what generating it reported,
    /// and (stage, error) for every stage that failed on it.
    Source {
        batch: SourceBatch,
        generated: Generated,
        failures: Vec<(String, StageError)>,
    },
    /// A bad row on its way to quarantine.
    Bad(BadRow),
    /// Not started because the run is stopping: neither this nor anything
    /// after it is committed.
    Skipped,
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

/// The barrier at the end: dedup, shard writing, quarantine, dead letters,
/// checkpoints, and the funnel of every stage, counted in input order.
pub struct SinkStage {
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
    pub taken: u64,
    /// Set when a source hit the budget: nothing from it on is committed.
    halted: bool,
    rows_per_shard: usize,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    since_commit: u64,
    last_commit: Instant,
    pub elapsed_s: f64,
}

fn restore(funnel: &[StageFunnel], stage: &str, unit: &str) -> StageFunnel {
    funnel
        .iter()
        .find(|s| s.stage == stage)
        .cloned()
        .unwrap_or_else(|| StageFunnel::new(stage, unit))
}

impl SinkStage {
    pub fn new(
        p: &SinkSetup,
        out_dir: &Path,
        state: RunState,
        previous: Option<&Checkpoint>,
        next_seq: u64,
        generation: u64,
    ) -> anyhow::Result<Self> {
        let cp = previous.cloned().unwrap_or_default();
        let mut pair_stages: Vec<StageFunnel> = p
            .filter_stages
            .iter()
            .map(|f| restore(&cp.funnel, f, "pairs"))
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
            let loaded = super::earlier::load_against(&mut n)?;
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
        failures: &[(&str, String, u32)],
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

    pub fn take(&mut self, staged: Staged) -> anyhow::Result<()> {
        if self.halted {
            return Ok(());
        }
        let (mut batch, generated, failures) = match staged {
            Staged::Skipped => {
                self.halted = true;
                return Ok(());
            }
            Staged::Bad(bad) => {
                self.read.in_ += 1;
                self.taken += 1;
                self.next_seq = self.next_seq.max(bad.seq + 1);
                self.since_commit += 1;
                self.read.reject(bad.code);
                self.counts.quarantined += 1;
                self.quarantine
                    .append(&bad)
                    .with_context(|| format!("writing `{}`", self.quarantine.path().display()))?;
                return self.maybe_commit();
            }
            Staged::Source {
                batch,
                generated,
                failures,
            } => (batch, generated, failures),
        };
        // Whichever stage's endpoint was refused (generator, HTTP
        // embedder, judge), a spent budget stops the run at this source.
        let budget_hit = generated
            .failure
            .iter()
            .map(|f| &f.error)
            .chain(failures.iter().map(|(_, e)| e))
            .find_map(|e| match e {
                StageError::Budget(why) => Some(why.clone()),
                StageError::Failed(_) => None,
            });
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
        self.next_seq = self.next_seq.max(batch.example.seq + 1);
        self.since_commit += 1;
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
        let mut failed: Vec<(&str, String, u32)> = Vec::new();
        if let Some(f) = &generated.failure {
            failed.push(("generate", f.error.to_string(), f.attempts));
        }
        failed.extend(failures.iter().map(|(s, e)| (s.as_str(), e.to_string(), 1)));
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
            self.generate.reject(crate::generate::NO_CANDIDATES);
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
            count_pair(&mut self.pair_stages, c.rejection.as_ref());
            self.counts.add_scored(&c);
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
    pub fn commit(&mut self, complete: bool) -> anyhow::Result<()> {
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

    /// The run's manifest: `head` (what the run was) with what the sink
    /// counted and wrote.
    pub fn manifest(&self, head: Manifest) -> Manifest {
        let mut counts = self.counts.clone();
        counts.rows_read = self.read.in_;
        Manifest {
            duration_s: (self.elapsed_s * 1000.0).round() / 1000.0,
            counts,
            usage: self.usage(),
            funnel: self.funnel(head.pairs_mode),
            shards: self.accepted.shards.clone(),
            rejected_shards: self.rejected_shards(),
            ..head
        }
    }
}

/// The key an incremental run recognises a source by: its id, and in pairs
/// mode the given edit too (several rows may share a source id there).
pub fn source_key(ex: &SourceExample) -> u64 {
    let edited = ex.given.as_ref().map_or("", |g| g.edited.as_str());
    crate::text::hash64(&[ex.source_id.as_bytes(), edited.as_bytes()])
}
