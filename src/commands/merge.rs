//! `foil merge DIR --into OUT`: the worker folders of a sharded run
//! (`DIR/worker-i-of-N/`) become one contrast set.
//!
//! Each worker deduplicated only its own slice, so merge decides dedup
//! again, globally, exactly as one process would: every pair that passed
//! the filters (accepted, or turned down by a dedup stage) goes back
//! through exact and near-duplicate dedup in input order (`source_seq`,
//! then the candidate's position), with the run's own settings. Pairs the
//! filters rejected keep their rejection. The result is written as evenly
//! sized shards with one manifest: counts and funnel stages up to the
//! filters are the workers' sums; the dedup stages are merge's own.
//!
//! Merge streams: each worker's shards are already in input order, so a
//! k-way merge reads one row group per worker stream at a time, the dedup
//! indexes spill to `OUT/.foil/merge/index` past the run's memory share as
//! in `generate`, and decided rows go to temporary shards that are then
//! rewritten, one at a time, as evenly sized ones. Memory is bounded by
//! workers × row group + two shards + the index share, not by the set.

use super::Exit;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::UsageError;
use crate::cli::MergeArgs;
use crate::dedup::{ExactDedup, NearDedup};
use crate::sink::manifest::{Counts, StageFunnel, Usage, count_pair};
use crate::sink::shards::{ROW_GROUP_ROWS, Row, ShardWriter, read_back, read_back_window};
use crate::sink::{self, Manifest};

const DEDUP_STAGES: &[&str] = &[crate::dedup::exact::STAGE, crate::dedup::near::STAGE];

/// The worker folders of `dir`, checked: all N present, one N, complete.
fn workers(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Manifest)>> {
    let mut found: Vec<(u32, u32, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| UsageError::new(format!("reading `{}`: {e}", dir.display())))?
    {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((i, n)) = name
            .strip_prefix("worker-")
            .and_then(|r| r.split_once("-of-"))
            .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
        {
            found.push((i, n, e.path()));
        }
    }
    found.sort();
    let Some(&(_, n, _)) = found.first() else {
        return Err(UsageError::new(format!(
            "`{}` has no worker-i-of-N folders (run with --shard i/N or under a batch engine)",
            dir.display()
        ))
        .into());
    };
    if let Some((_, m, p)) = found.iter().find(|(_, m, _)| *m != n) {
        return Err(UsageError::new(format!(
            "`{}` mixes runs of {n} and {m} workers (`{}`)",
            dir.display(),
            p.display()
        ))
        .into());
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| !found.iter().any(|(j, _, _)| j == i))
        .map(|i| format!("worker-{i:05}-of-{n:05}"))
        .collect();
    if !missing.is_empty() {
        return Err(UsageError::new(format!(
            "`{}` lacks {}: run those workers first",
            dir.display(),
            missing.join(", ")
        ))
        .into());
    }
    let mut out = Vec::new();
    let mut identity: Option<String> = None;
    for (_, _, p) in found {
        let m =
            Manifest::read(&p).map_err(|e| UsageError::new(format!("`{}`: {e}", p.display())))?;
        if m.status != "complete" {
            return Err(UsageError::new(format!(
                "`{}` is not complete ({}): rerun that worker first",
                p.display(),
                m.status
            ))
            .into());
        }
        let mut c = m.config.clone();
        c.shard = None;
        let id = c.identity_hash();
        match &identity {
            Some(first) if *first != id => {
                return Err(UsageError::new(format!(
                    "`{}` ran a different pipeline than the other workers",
                    p.display()
                ))
                .into());
            }
            _ => identity = Some(id),
        }
        out.push((p, m));
    }
    Ok(out)
}

fn add_funnel(into: &mut Vec<StageFunnel>, from: &[StageFunnel]) {
    for s in from {
        match into.iter_mut().find(|x| x.stage == s.stage) {
            Some(x) => {
                x.in_ += s.in_;
                x.out += s.out;
                x.failed += s.failed;
                if let Some(p) = s.produced {
                    *x.produced.get_or_insert(0) += p;
                }
                for (r, n) in &s.rejected {
                    *x.rejected.entry(r.clone()).or_default() += n;
                }
            }
            None => into.push(s.clone()),
        }
    }
}

/// One worker's accepted or rejected shards, read one Parquet row group at a
/// time, in the order the worker wrote them: `(source_seq, candidate)`.
struct ShardStream {
    dir: PathBuf,
    entries: Vec<sink::shards::ShardEntry>,
    task: &'static str,
    shard: usize,
    offset: usize,
    buf: std::collections::VecDeque<Row>,
    /// The position of the last row handed on.
    last: Option<(u64, u32)>,
}

impl ShardStream {
    fn new(dir: &Path, entries: &[sink::shards::ShardEntry], task: &'static str) -> Self {
        ShardStream {
            dir: dir.to_path_buf(),
            entries: entries.to_vec(),
            task,
            shard: 0,
            offset: 0,
            buf: Default::default(),
            last: None,
        }
    }

    /// The next row's position, reading the next window when needed.
    fn peek(&mut self) -> anyhow::Result<Option<(u64, u32)>> {
        while self.buf.is_empty() && self.shard < self.entries.len() {
            let entry = &self.entries[self.shard];
            let rows = read_back_window(&self.dir, entry, self.task, self.offset, ROW_GROUP_ROWS)
                .with_context(|| {
                format!("reading `{}`", self.dir.join(&entry.path).display())
            })?;
            if rows.len() < ROW_GROUP_ROWS {
                self.shard += 1;
                self.offset = 0;
            } else {
                self.offset += rows.len();
            }
            self.buf.extend(rows);
        }
        let next = self.buf.front().map(|r| (r.source_seq, r.index));
        if let (Some(next), Some(last)) = (next, self.last)
            && next < last
        {
            // An incremental run may take rows inserted before the end of
            // what it had read; streaming needs input order.
            return Err(UsageError::new(format!(
                "the shards of `{}` are not in input order (an incremental run took rows \
                 inserted earlier in the input); rerun that worker into a new folder to merge it",
                self.dir.display()
            ))
            .into());
        }
        Ok(next)
    }

    fn pop(&mut self) -> Option<Row> {
        let row = self.buf.pop_front();
        if let Some(r) = &row {
            self.last = Some((r.source_seq, r.index));
        }
        row
    }
}

/// Every row of `streams` in `(source_seq, candidate)` order, handed on one
/// source at a time.
fn each_source(
    streams: &mut [ShardStream],
    mut f: impl FnMut(u64, Vec<Row>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heap = BinaryHeap::new();
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some(at) = s.peek()? {
            heap.push(Reverse((at, i)));
        }
    }
    let mut group: Vec<Row> = Vec::new();
    while let Some(Reverse(((seq, _), i))) = heap.pop() {
        if group.first().is_some_and(|r| r.source_seq != seq) {
            let done = std::mem::take(&mut group);
            f(done[0].source_seq, done)?;
        }
        group.push(streams[i].pop().expect("peeked"));
        if let Some(at) = streams[i].peek()? {
            heap.push(Reverse((at, i)));
        }
    }
    if !group.is_empty() {
        f(group[0].source_seq, group)?;
    }
    Ok(())
}

/// Write `rows` shards' rows again as shards whose sizes differ by at most
/// one, streaming.
fn rewrite_evenly(
    from: &Path,
    entries: &[sink::shards::ShardEntry],
    task: &'static str,
    to: &mut ShardWriter,
    rows_per_shard: usize,
) -> anyhow::Result<()> {
    let total: usize = entries.iter().map(|e| e.rows).sum();
    let k = total.div_ceil(rows_per_shard).max(1);
    let (base, extra) = (total / k, total % k);
    // One temporary shard in memory at a time.
    let mut rows =
        entries
            .iter()
            .flat_map(|e| match read_back(from, std::slice::from_ref(e), task) {
                Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(err) => vec![Err(err)],
            });
    for i in 0..k {
        for _ in 0..base + usize::from(i < extra) {
            to.push_row(rows.next().context("a temporary shard ended early")??);
        }
        to.flush()?;
    }
    Ok(())
}

/// What the dedup pass decided: the pairs in temporary shards, accepted
/// and rejected, their counts and the dedup stages' funnel.
struct Decided {
    accepted: ShardWriter,
    rejected: ShardWriter,
    counts: Counts,
    dedup_stages: Vec<StageFunnel>,
}

/// Global dedup, source by source, streaming every worker's shards in the
/// order one process decides them; the indexes spill to disk past the
/// run's memory share, as in `generate`.
fn decide(
    workers: &[(PathBuf, Manifest)],
    config: &crate::config::PipelineConfig,
    task: &'static str,
    work: &Path,
    rows_per_shard: usize,
) -> anyhow::Result<Decided> {
    let mut exact = config
        .dedup
        .exact
        .then(|| ExactDedup::new().spill_to(&work.join("index/exact"), config.dedup.exact_share()));
    let mut near = if config.dedup.near.enabled {
        let mut n = NearDedup::new(config.dedup.near.clone())
            .spill_to(&work.join("index/near"), config.dedup.near_share());
        crate::sink::earlier::load_against(&mut n)?;
        Some(n)
    } else {
        None
    };
    let mut dedup_stages: Vec<StageFunnel> = Vec::new();
    if exact.is_some() {
        dedup_stages.push(StageFunnel::new(crate::dedup::exact::STAGE, "pairs"));
    }
    if near.is_some() {
        dedup_stages.push(StageFunnel::new(crate::dedup::near::STAGE, "pairs"));
    }
    // One Parquet row group of rows per stream at a time (each group
    // decoded once).
    let mut streams: Vec<ShardStream> = workers
        .iter()
        .flat_map(|(dir, m)| {
            [&m.shards, &m.rejected_shards].map(|list| ShardStream::new(dir, list, task))
        })
        .collect();
    let mut tmp_accepted = ShardWriter::new(work, None, Vec::new(), false);
    let mut tmp_rejected = ShardWriter::new(work, Some(sink::REJECTED_DIR), Vec::new(), true);
    let mut counts = Counts::default();
    each_source(&mut streams, |seq, mut group| {
        group.sort_by_key(|r| r.index);
        for r in &mut group {
            if r.candidate
                .rejection
                .as_ref()
                .is_some_and(|x| DEDUP_STAGES.contains(&x.stage.as_str()))
            {
                r.candidate.rejection = None;
            }
        }
        let context = group[0].context.clone();
        let mut candidates: Vec<crate::record::Candidate> =
            group.iter().map(|r| r.candidate.clone()).collect();
        if let Some(d) = &mut exact {
            d.check(seq, &mut candidates, |_| context.clone())
                .context("exact-dedup index")?;
        }
        if let Some(n) = &mut near {
            n.check(seq, &mut candidates, |_| context.clone())
                .context("near-dedup index")?;
        }
        if let Some(d) = &mut exact {
            d.remember_accepted(&candidates)
                .context("exact-dedup index")?;
        }
        for (mut r, c) in group.into_iter().zip(candidates) {
            r.candidate = c;
            // Pairs the filters rejected were counted by their workers.
            let by_filter = r
                .candidate
                .rejection
                .as_ref()
                .is_some_and(|x| !DEDUP_STAGES.contains(&x.stage.as_str()));
            if !by_filter {
                count_pair(&mut dedup_stages, r.candidate.rejection.as_ref());
            }
            if r.candidate.rejection.is_none() {
                counts.add_accepted(&r.candidate);
                tmp_accepted.push_row(r);
            } else {
                counts.rejected += 1;
                tmp_rejected.push_row(r);
            }
        }
        for w in [&mut tmp_accepted, &mut tmp_rejected] {
            if w.buffered() >= rows_per_shard {
                w.flush()?;
            }
        }
        Ok(())
    })?;
    tmp_accepted.flush()?;
    tmp_rejected.flush()?;
    Ok(Decided {
        accepted: tmp_accepted,
        rejected: tmp_rejected,
        counts,
        dedup_stages,
    })
}

/// The workers' quarantine and dead-letter files, one after another,
/// streamed.
fn copy_side_files(workers: &[(PathBuf, Manifest)], into: &Path) -> anyhow::Result<()> {
    for name in [sink::QUARANTINE, sink::DEAD_LETTER] {
        let mut out: Option<std::fs::File> = None;
        for (dir, _) in workers {
            let Ok(mut f) = std::fs::File::open(dir.join(name)) else {
                continue;
            };
            let to = match &mut out {
                Some(o) => o,
                None => out.insert(std::fs::File::create(into.join(name))?),
            };
            std::io::copy(&mut f, to)?;
        }
    }
    Ok(())
}

pub fn run(args: MergeArgs) -> anyhow::Result<Exit> {
    let workers = workers(&args.dir)?;
    let first = &workers[0].1;
    let mut config = first.config.clone();
    config.shard = None;
    let task = config.task()?;
    let rows_per_shard = args
        .rows_per_shard
        .unwrap_or(config.sink.rows_per_shard)
        .max(1);
    if config.dedup.near.enabled && !config.sink.write_rejected {
        // A pair a worker's near-dedup turned down is then lost, and one
        // process might have kept it (its near-duplicate turned down by a
        // pair of another worker): the merge could not equal one process.
        return Err(UsageError::new(
            "the workers ran near-dedup without writing rejected pairs ([sink] write_rejected \
             = false), so merge cannot decide near-duplicates as one process would; rerun the \
             workers with rejected pairs written",
        )
        .into());
    }

    std::fs::create_dir_all(&args.into)
        .with_context(|| format!("creating `{}`", args.into.display()))?;
    let _lock = crate::sink::state::lock_folder(&args.into)?;
    sink::clear_previous_output(&args.into)
        .with_context(|| format!("clearing `{}`", args.into.display()))?;
    let work = args.into.join(crate::sink::state::STATE_DIR).join("merge");
    let _ = std::fs::remove_dir_all(&work);

    let decided = decide(&workers, &config, task.name, &work, rows_per_shard)?;
    let (tmp_accepted, tmp_rejected, mut counts) =
        (decided.accepted, decided.rejected, decided.counts);

    // Counts and funnel: the workers' sums up to the filters, merge's own
    // dedup stages.
    let mut funnel: Vec<StageFunnel> = Vec::new();
    let mut usage = Usage::default();
    let mut prompts = first.prompts.clone();
    for (_, m) in &workers {
        let pre: Vec<StageFunnel> = m
            .funnel
            .iter()
            .filter(|s| !DEDUP_STAGES.contains(&s.stage.as_str()))
            .cloned()
            .collect();
        add_funnel(&mut funnel, &pre);
        counts.rows_read += m.counts.rows_read;
        counts.sources += m.counts.sources;
        counts.candidates += m.counts.candidates;
        counts.quarantined += m.counts.quarantined;
        counts.dead_letters += m.counts.dead_letters;
        counts.dead_letters_recovered += m.counts.dead_letters_recovered;
        counts.dead_letters_given_up += m.counts.dead_letters_given_up;
        for (by, n) in &m.counts.similarity_scored_by {
            *counts.similarity_scored_by.entry(by.clone()).or_default() += n;
        }
        usage.add(&m.usage);
        prompts.extend(m.prompts.clone());
    }
    funnel.extend(decided.dedup_stages);

    // Write: evenly sized shards, from the temporary ones.
    let mut accepted = ShardWriter::new(&args.into, None, Vec::new(), false);
    rewrite_evenly(
        &work,
        &tmp_accepted.shards,
        task.name,
        &mut accepted,
        rows_per_shard,
    )?;
    let shards = accepted.shards;
    let rejected_shards = if config.sink.write_rejected {
        let mut rejected = ShardWriter::new(&args.into, Some(sink::REJECTED_DIR), Vec::new(), true);
        rewrite_evenly(
            &work,
            &tmp_rejected.shards,
            task.name,
            &mut rejected,
            rows_per_shard,
        )?;
        rejected.shards
    } else {
        Vec::new()
    };
    std::fs::remove_dir_all(&work).with_context(|| format!("removing `{}`", work.display()))?;
    copy_side_files(&workers, &args.into)?;
    let manifest = Manifest {
        status: "complete".to_string(),
        config,
        prompts,
        counts,
        usage,
        funnel,
        shards,
        rejected_shards,
        duration_s: workers.iter().map(|(_, m)| m.duration_s).sum(),
        ..first.clone()
    };
    manifest
        .write(&args.into)
        .with_context(|| format!("writing the manifest in `{}`", args.into.display()))?;
    if args.json {
        super::summary::print_json(&args.into, &manifest)?;
    } else {
        println!(
            "foil: merged {} workers into `{}`",
            workers.len(),
            args.into.display()
        );
        super::summary::print_human(&args.into, &manifest)?;
    }
    Ok(Exit::Success)
}
