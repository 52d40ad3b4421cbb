//! `foil inspect DIR`: what an output folder holds — status, funnel,
//! counts and a few sample pairs read back from the shards.

use super::Exit;
use std::io::Write;

use anyhow::Context;
use polars::prelude::{AnyValue, DataFrame};
use serde_json::{Value, json};

use super::summary;
use crate::UsageError;
use crate::cli::InspectArgs;
use crate::sink::Manifest;
use crate::sink::shards::read_shards;

fn cell(df: &DataFrame, col: &str, row: usize) -> Value {
    match df.column(col).ok().and_then(|c| c.get(row).ok()) {
        Some(AnyValue::Null) | None => Value::Null,
        Some(AnyValue::String(s)) => json!(s),
        Some(AnyValue::StringOwned(s)) => json!(s.as_str()),
        Some(AnyValue::Float64(x)) => json!(x),
        Some(AnyValue::UInt32(x)) => json!(x),
        Some(AnyValue::UInt64(x)) => json!(x),
        Some(other) => json!(other.to_string()),
    }
}

pub fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    let manifest = Manifest::read(&args.dir).map_err(|e| {
        UsageError::new(format!(
            "{e}\n`{}` does not look like a foil output folder",
            args.dir.display()
        ))
    })?;
    let first_shard: Vec<_> = manifest.shards.iter().take(1).cloned().collect();
    let frames = read_shards(&args.dir, &first_shard)
        .with_context(|| format!("reading shards in `{}`", args.dir.display()))?;
    let mut samples = Vec::new();
    if let Some(df) = frames.first() {
        for row in 0..df.height().min(args.samples) {
            samples.push(json!({
                "pair_id": cell(df, "pair_id", row),
                "edit_type": cell(df, "edit_type", row),
                "relation": cell(df, "relation", row),
                "original": cell(df, "original", row),
                "edited": cell(df, "edited", row),
                "original_label": cell(df, "original_label", row),
                "edited_label": cell(df, "edited_label", row),
                "needs_review": cell(df, "needs_review", row),
                "similarity": cell(df, "similarity", row),
            }));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut v = summary::summary_json(&args.dir, &manifest);
        v["samples"] = Value::Array(samples);
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(Exit::Success);
    }
    write!(
        out,
        "{}  status {}\n\n{}\n{}",
        summary::headline(&args.dir, &manifest),
        manifest.status,
        summary::funnel_table(&manifest),
        summary::totals(&manifest)
    )?;
    if !samples.is_empty() {
        writeln!(out, "\nsample pairs:")?;
    }
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "—".to_string())
    };
    for s in &samples {
        let edited_label = match (s["edited_label"].as_str(), s["needs_review"].as_str()) {
            (Some(l), _) => l.to_string(),
            (None, Some(need)) => format!("needs review: {need}"),
            (None, None) => "—".to_string(),
        };
        let sim = s["similarity"]
            .as_f64()
            .map(|x| format!(", similarity {x:.3}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  [{} · {}{}]\n    {}  ({})\n  → {}  ({})",
            text(&s["edit_type"]),
            text(&s["relation"]),
            sim,
            text(&s["original"]),
            text(&s["original_label"]),
            text(&s["edited"]),
            edited_label,
        )?;
    }
    Ok(Exit::Success)
}
