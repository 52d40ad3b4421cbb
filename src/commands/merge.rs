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

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::UsageError;
use crate::cli::MergeArgs;
use crate::dedup::{ExactDedup, NearDedup};
use crate::sink::manifest::{Counts, StageFunnel, Usage};
use crate::sink::shards::{Row, ShardWriter, read_back};
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

pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let workers = workers(&args.dir)?;
    let first = &workers[0].1;
    let mut config = first.config.clone();
    config.shard = None;
    let task = config.task()?;
    let rows_per_shard = args
        .rows_per_shard
        .unwrap_or(config.sink.rows_per_shard)
        .max(1);

    // Every row of every worker, in the order one process decides them.
    let mut rows: Vec<Row> = Vec::new();
    for (dir, m) in &workers {
        for list in [&m.shards, &m.rejected_shards] {
            rows.extend(
                read_back(dir, list, task.name)
                    .with_context(|| format!("reading the shards of `{}`", dir.display()))?,
            );
        }
    }
    rows.sort_by_key(|r| (r.source_seq, r.index));
    for r in &mut rows {
        if r.candidate
            .rejection
            .as_ref()
            .is_some_and(|x| DEDUP_STAGES.contains(&x.stage.as_str()))
        {
            r.candidate.rejection = None;
        }
    }

    // Global dedup, source by source.
    let mut exact = config.dedup.exact.then(ExactDedup::new);
    let mut near = if config.dedup.near.enabled {
        let mut n = NearDedup::new(config.dedup.near.clone());
        n.load_earlier().map_err(UsageError::new)?;
        Some(n)
    } else {
        None
    };
    let mut start = 0;
    while start < rows.len() {
        let seq = rows[start].source_seq;
        let end = start
            + rows[start..]
                .iter()
                .take_while(|r| r.source_seq == seq)
                .count();
        let group = &mut rows[start..end];
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
        for (r, c) in group.iter_mut().zip(candidates) {
            r.candidate = c;
        }
        start = end;
    }

    // Counts and funnel: the workers' sums up to the filters, merge's own
    // dedup stages.
    let mut funnel: Vec<StageFunnel> = Vec::new();
    let mut counts = Counts::default();
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
        usage.add(&m.usage);
        prompts.extend(m.prompts.clone());
    }
    let mut dedup_stages: Vec<StageFunnel> = Vec::new();
    if exact.is_some() {
        dedup_stages.push(StageFunnel::new(crate::dedup::exact::STAGE, "pairs"));
    }
    if near.is_some() {
        dedup_stages.push(StageFunnel::new(crate::dedup::near::STAGE, "pairs"));
    }
    for r in &rows {
        let c = &r.candidate;
        let stage_of = c.rejection.as_ref().map(|x| x.stage.as_str());
        if stage_of.is_some_and(|s| !DEDUP_STAGES.contains(&s)) {
            continue;
        }
        for st in dedup_stages.iter_mut() {
            st.in_ += 1;
            if stage_of == Some(st.stage.as_str()) {
                st.reject(&c.rejection.as_ref().expect("rejected").reason);
                break;
            }
            st.out += 1;
        }
    }
    funnel.extend(dedup_stages);

    // Write: evenly sized shards.
    std::fs::create_dir_all(&args.into)
        .with_context(|| format!("creating `{}`", args.into.display()))?;
    let _lock = crate::runtime::state::lock_folder(&args.into)?;
    sink::clear_previous_output(&args.into)
        .with_context(|| format!("clearing `{}`", args.into.display()))?;
    let (accepted, rejected): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .partition(|r| r.candidate.rejection.is_none());
    counts.rejected = rejected.len() as u64;
    for r in &accepted {
        counts.add_accepted(&r.candidate);
    }
    let write = |rows: Vec<Row>,
                 subdir: Option<&str>,
                 with_rejection: bool|
     -> anyhow::Result<Vec<sink::shards::ShardEntry>> {
        let mut w = ShardWriter::new(&args.into, subdir, Vec::new(), with_rejection);
        // k shards whose sizes differ by at most one.
        let k = rows.len().div_ceil(rows_per_shard).max(1);
        let (base, extra) = (rows.len() / k, rows.len() % k);
        let mut rows = rows.into_iter();
        for i in 0..k {
            for r in rows.by_ref().take(base + usize::from(i < extra)) {
                w.push_row(r);
            }
            w.flush()?;
        }
        Ok(w.shards)
    };
    let shards = write(accepted, None, false)?;
    let rejected_shards = if config.sink.write_rejected {
        write(rejected, Some(sink::REJECTED_DIR), true)?
    } else {
        Vec::new()
    };
    // Side files: the workers', one after another.
    for name in [sink::QUARANTINE, sink::DEAD_LETTER] {
        let mut text = String::new();
        for (dir, _) in &workers {
            if let Ok(t) = std::fs::read_to_string(dir.join(name)) {
                text.push_str(&t);
            }
        }
        if !text.is_empty() {
            std::fs::write(args.into.join(name), text)?;
        }
    }
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
    Ok(ExitCode::SUCCESS)
}
