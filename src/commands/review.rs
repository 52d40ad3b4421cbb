//! `foil review push|pull|export|import`: pairs out to a review queue and
//! verdicts back into `DIR/reviewed/`.

use super::Exit;
use std::collections::HashMap;

use anyhow::Context;
use serde_json::json;

use crate::cli::{ReviewCommand, SampleArgs};
use crate::review::label_studio::{LabelStudio, annotations_of};
use crate::review::{
    self, Annotation, Invalid, PairRow, Sampling, flat, load_pairs, validate, write_reviewed,
};

fn chosen(dir: &std::path::Path, s: &SampleArgs) -> anyhow::Result<Vec<PairRow>> {
    let pairs = load_pairs(dir, s.include_rejected)?;
    let how = if s.by == "lowest-score" {
        Sampling::LowestScore
    } else {
        Sampling::Stratified
    };
    Ok(review::sample(&pairs, s.sample, how, s.seed))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Validate, write `reviewed/`, report; exit 3 when some annotations were
/// set aside.
fn finish(
    dir: &std::path::Path,
    queue: &str,
    source: &str,
    mut annotations: Vec<Annotation>,
    mut invalid: Vec<Invalid>,
    json_out: bool,
) -> anyhow::Result<Exit> {
    // One verdict per (pair, annotator) from this source: the last.
    let mut seen = std::collections::HashSet::new();
    for a in annotations.iter_mut().rev() {
        a.source = source.to_string();
        if !seen.insert((a.pair_id.clone(), a.annotator.clone())) {
            a.source.clear();
        }
    }
    annotations.retain(|a| !a.source.is_empty());
    // Every pair of the folder may have been reviewed, rejected ones too.
    let pairs = load_pairs(dir, true)?;
    let known: HashMap<&str, &PairRow> = pairs.iter().map(|p| (p.pair_id.as_str(), p)).collect();
    let (mut ok, bad) = validate(annotations, &known);
    invalid.extend(bad);
    // Decisions from other sources (other files, other projects) stay;
    // this source's are replaced by what it says now, so importing one
    // file twice changes nothing.
    let kept: Vec<Annotation> = review::read_annotations(dir)?
        .into_iter()
        .filter(|a| a.source != source && known.contains_key(a.pair_id.as_str()))
        .collect();
    let kept_others = kept.len();
    ok.splice(0..0, kept);
    if kept_others > 0 && !json_out {
        println!("foil: keeping {kept_others} annotation(s) from other sources");
    }
    let summary = write_reviewed(dir, queue, &pairs, &ok, &invalid)?;
    let g = &summary.agreement;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "foil: {} annotation(s) by {} annotator(s) on {} pair(s) → `{}`",
            g.annotations,
            g.annotators,
            g.pairs_reviewed,
            dir.join(review::REVIEWED_DIR).display()
        );
        let verdicts: Vec<String> = g.verdicts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  verdicts: {}", verdicts.join(", "));
        if let (Some(p), k) = (g.percent_agreement, g.fleiss_kappa) {
            println!(
                "  agreement on {} pair(s) reviewed more than once: {:.1}% (Fleiss' κ {})",
                g.pairs_multiply_reviewed,
                p * 100.0,
                k.map_or("n/a".to_string(), |k| format!("{k:.3}"))
            );
        }
    }
    if invalid.is_empty() {
        return Ok(Exit::Success);
    }
    eprintln!(
        "foil: {} annotation(s) set aside as invalid (listed in `{}`):",
        invalid.len(),
        dir.join(review::REVIEWED_DIR)
            .join("invalid.jsonl")
            .display()
    );
    for i in invalid.iter().take(5) {
        eprintln!("  {i}");
    }
    Ok(Exit::DeadLetters)
}

pub fn run(cmd: ReviewCommand) -> anyhow::Result<Exit> {
    match cmd {
        ReviewCommand::Push(a) => {
            let pairs = chosen(&a.dir, &a.sample)?;
            let ls = LabelStudio::new(&a.server.url, &a.server.token_env)?;
            let r = runtime()?.block_on(ls.push(&a.server.project, &pairs))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "foil: project `{}` (id {}{}): {} task(s) imported, {} already there",
                    a.server.project,
                    r.project,
                    if r.created { ", created" } else { "" },
                    r.imported,
                    r.skipped
                );
            }
            Ok(Exit::Success)
        }
        ReviewCommand::Pull(a) => {
            let ls = LabelStudio::new(&a.server.url, &a.server.token_env)?;
            let rt = runtime()?;
            let project = rt
                .block_on(ls.find_project(&a.server.project))?
                .ok_or_else(|| {
                    crate::UsageError::new(format!(
                        "Label Studio at {} has no project `{}` (push first)",
                        a.server.url, a.server.project
                    ))
                })?;
            let tasks = rt.block_on(ls.export(project))?;
            let (annotations, invalid) = annotations_of(&tasks);
            let source = format!(
                "label-studio:{}#{}",
                a.server.url.trim_end_matches('/'),
                a.server.project
            );
            finish(
                &a.dir,
                "label-studio",
                &source,
                annotations,
                invalid,
                a.json,
            )
        }
        ReviewCommand::Export(a) => {
            let pairs = chosen(&a.dir, &a.sample)?;
            match a.format.as_str() {
                "csv" => flat::write_csv(&a.out, &pairs),
                "jsonl" => flat::write_jsonl(&a.out, &pairs),
                _ => flat::write_argilla(&a.out, &pairs),
            }
            .with_context(|| format!("writing `{}`", a.out.display()))?;
            println!(
                "{}",
                json!({"pairs": pairs.len(), "format": a.format, "out": a.out})
            );
            Ok(Exit::Success)
        }
        ReviewCommand::Import(a) => {
            let (annotations, invalid) = flat::import(&a.file)?;
            let queue = annotations
                .first()
                .map_or("file".to_string(), |x| x.queue.clone());
            let path = std::fs::canonicalize(&a.file).unwrap_or_else(|_| a.file.clone());
            let source = format!("file:{}", path.display());
            finish(&a.dir, &queue, &source, annotations, invalid, a.json)
        }
    }
}
