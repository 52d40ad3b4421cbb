//! The one-screen summary after a run (and in `foil inspect`), and its
//! `--json` form.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::sink::Manifest;

/// The funnel as a table, one stage per line.
pub fn funnel_table(m: &Manifest) -> String {
    let mut out = format!(
        "  {:<15} {:<8} {:>8} {:>8}  {}\n",
        "stage", "unit", "in", "out", "rejected"
    );
    for s in &m.funnel {
        let mut reasons: Vec<String> = s.rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
        if s.failed > 0 {
            reasons.push(format!("failed {}", s.failed));
        }
        let line = format!(
            "  {:<15} {:<8} {:>8} {:>8}  {}",
            s.stage,
            s.unit,
            s.in_,
            s.out,
            reasons.join(", ")
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn headline(dir: &Path, m: &Manifest) -> String {
    let shards = m.shards.len();
    format!(
        "foil: {} {} pairs to {} ({} shard{})\n  task {} · generator {}{} · {:.1}s\n",
        if m.status == "complete" {
            "wrote"
        } else {
            "stopped early; wrote"
        },
        m.counts.accepted,
        dir.display(),
        shards,
        if shards == 1 { "" } else { "s" },
        m.task,
        m.models.generator,
        m.models
            .embedder
            .as_deref()
            .map(|e| format!(" · embedder {e}"))
            .unwrap_or_default(),
        m.duration_s
    )
}

pub fn totals(m: &Manifest) -> String {
    let mut line = format!(
        "  accepted {} · rejected {} · quarantined {} · dead letters {}",
        m.counts.accepted, m.counts.rejected, m.counts.quarantined, m.counts.dead_letters
    );
    if m.usage.requests > 0 {
        line.push_str(&format!(
            " · requests {} · tokens {} in / {} out",
            m.usage.requests, m.usage.prompt_tokens, m.usage.completion_tokens
        ));
    }
    line.push('\n');
    // "key n, key n" (or "n by key, …") of a count table.
    let listed = |counts: &std::collections::BTreeMap<String, u64>, by: bool| {
        let items: Vec<String> = counts
            .iter()
            .map(|(k, n)| {
                if by {
                    format!("{n} by {k}")
                } else {
                    format!("{k} {n}")
                }
            })
            .collect();
        items.join(", ")
    };
    if !m.counts.accepted_by_edit_type.is_empty() {
        let types = listed(&m.counts.accepted_by_edit_type, false);
        line.push_str(&format!("  edit types: {types}\n"));
    }
    if !m.counts.similarity_scored_by.is_empty() {
        let by = listed(&m.counts.similarity_scored_by, true);
        line.push_str(&format!("  similarity scored: {by}\n"));
    }
    let review: u64 = m.counts.accepted_needing_review.values().sum();
    if review > 0 {
        line.push_str(&format!(
            "  need review: {review} pair(s) lack what only a person can give ({}); \
             they are not finished contrast pairs until `foil review` brings it back\n",
            listed(&m.counts.accepted_needing_review, false)
        ));
    }
    line
}

pub fn print_human(dir: &Path, m: &Manifest) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "{}\n{}\n{}",
        headline(dir, m),
        funnel_table(m),
        totals(m)
    )?;
    out.flush()
}

pub fn summary_json(dir: &Path, m: &Manifest) -> serde_json::Value {
    json!({
        "status": m.status,
        "out_dir": dir.display().to_string(),
        "task": m.task,
        "pairs_mode": m.pairs_mode,
        "counts": m.counts,
        "funnel": m.funnel,
        "usage": m.usage,
        "models": m.models,
        "shards": m.shards,
        "rejected_shards": m.rejected_shards,
        "duration_s": m.duration_s,
    })
}

pub fn print_json(dir: &Path, m: &Manifest) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &summary_json(dir, m))?;
    writeln!(out)?;
    out.flush()
}
