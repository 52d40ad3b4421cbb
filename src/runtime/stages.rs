//! The stages before the sink, each a task joined to the next by a
//! bounded channel: the reader (a blocking thread), intake (bad rows
//! counted against the limit), generate and one map stage per filter.
//! Map stages run up to `concurrency` items at once and hand them on in
//! input order (`window::ordered_window`).

use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::progress::StageProgress;
use super::resume::Resume;
use super::window;
use crate::config::PipelineConfig;
use crate::filter::Filter;
use crate::generate::Generator;
use crate::record::{FAILED, SourceBatch, SourceExample};
use crate::sink::stage::{Staged, Stop, source_key};
use crate::source::{BadRow, SourceError, SourceItem};

pub(super) enum Item {
    Example(Arc<SourceExample>),
    Bad(BadRow),
}

/// Reader: a blocking thread feeding a bounded channel, skipping what an
/// earlier invocation committed, stopping when asked. `Ok(true)` when it
/// read to the end.
pub(super) fn spawn_reader(
    rows: impl Iterator<Item = Result<SourceItem, SourceError>> + Send + 'static,
    item_tx: mpsc::Sender<SourceItem>,
    resume: &mut Resume,
    config: &PipelineConfig,
    stop: Arc<Stop>,
) -> JoinHandle<Result<bool, SourceError>> {
    // Reader: a blocking thread feeding a bounded channel, skipping what
    // an earlier invocation committed, stopping when asked.
    let limit = config.source.limit;
    let shard = config.shard;
    let (skip_below, bad_below) = (resume.skip_below, resume.bad_below);
    let skip_ids = resume.skip_ids.take();
    tokio::task::spawn_blocking(move || -> Result<bool, SourceError> {
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
    })
}

/// The input had more bad rows than the run allows.
#[derive(Debug, thiserror::Error)]
#[error(
    "more than {max_bad} bad input rows (raise --max-bad-rows to go on); first: {first}; \
     all are listed in quarantine.jsonl"
)]
pub struct TooManyBadRows {
    pub max_bad: u64,
    pub first: String,
}

/// Intake: count bad rows against the limit, pass everything on.
pub(super) fn spawn_intake(
    mut item_rx: mpsc::Receiver<SourceItem>,
    ex_tx: mpsc::Sender<Item>,
    mut bad_so_far: u64,
    max_bad: u64,
    read_progress: Arc<StageProgress>,
) -> JoinHandle<Result<(), TooManyBadRows>> {
    // Intake: count bad rows against the limit, pass everything on.
    tokio::spawn(async move {
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
                        return Err(TooManyBadRows {
                            max_bad,
                            first: first_bad.unwrap_or_default(),
                        });
                    }
                    Item::Bad(bad)
                }
            };
            if ex_tx.send(item).await.is_err() {
                break;
            }
        }
        Ok(())
    })
}

/// Generate: a map stage.
pub(super) fn spawn_generate(
    ex_rx: mpsc::Receiver<Item>,
    gen_tx: mpsc::Sender<Staged>,
    generator: Arc<dyn Generator>,
    stop: Arc<Stop>,
    concurrency: usize,
    gen_progress: Arc<StageProgress>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let futures = receiver_stream(ex_rx).map(|item| {
            let generator = generator.clone();
            let stop = stop.clone();
            async move {
                match item {
                    _ if stop.is_set() => Staged::Skipped,
                    Item::Bad(bad) => Staged::Bad(bad),
                    Item::Example(example) => {
                        let mut generated = generator.generate(example.clone()).await;
                        let candidates = std::mem::take(&mut generated.candidates);
                        Staged::Source {
                            batch: SourceBatch {
                                example,
                                candidates,
                            },
                            generated,
                            failures: Vec::new(),
                        }
                    }
                }
            }
        });
        let stream = window::ordered_window(futures, concurrency, REORDER * concurrency);
        forward(stream, gen_tx, &gen_progress).await;
    })
}

/// One filter: a map stage.
pub(super) fn spawn_filter(
    input: mpsc::Receiver<Staged>,
    tx: mpsc::Sender<Staged>,
    filter: Arc<dyn Filter>,
    concurrency: usize,
    stage_progress: Arc<StageProgress>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let futures = receiver_stream(input).map(|mut staged| {
            let filter = filter.clone();
            async move {
                if let Staged::Source {
                    batch, failures, ..
                } = &mut staged
                    && let Err(e) = filter.apply(batch).await
                {
                    for c in batch.candidates.iter_mut().filter(|c| !c.is_rejected()) {
                        c.reject(filter.stage(), FAILED, e.to_string());
                    }
                    failures.push((filter.stage().to_string(), e));
                }
                staged
            }
        });
        let stream = window::ordered_window(futures, concurrency, REORDER * concurrency);
        forward(stream, tx, &stage_progress).await;
    })
}

/// A map stage runs up to `concurrency` items and holds up to this many
/// times as many started but not yet handed on (`window.rs`).
const REORDER: usize = 4;

/// Send a stage's output on, counting it; stops when the next stage is
/// gone.
pub(super) async fn forward<S: Stream<Item = Staged>>(
    stream: S,
    tx: mpsc::Sender<Staged>,
    progress: &StageProgress,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(staged) = stream.next().await {
        progress.inc(1);
        if tx.send(staged).await.is_err() {
            break;
        }
    }
}

/// A channel receiver as a stream.
pub(super) fn receiver_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}
