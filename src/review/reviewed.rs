//! `DIR/reviewed/`: what a pull or import leaves — one row per reviewed
//! pair with the decided verdict, one row per annotation, the invalid
//! ones, a summary — and the readers `calibrate`, `eval` and later imports
//! use.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Agreement, Annotation, Invalid, PairRow, REVIEWED_DIR, agreement, decide};
use crate::sink::shards::col_strs;

/// A reviewed pair: the pair, the decided verdict, corrected text, and the
/// annotations behind it.
type Decided<'a> = (
    &'a PairRow,
    String,
    Option<String>,
    Vec<&'a Annotation>,
    Option<String>,
);

/// What a pull or import leaves in `DIR/reviewed/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewSummary {
    pub queue: String,
    pub agreement: Agreement,
    pub invalid: usize,
    pub files: Vec<String>,
}

/// Write `reviewed/part-00000.parquet` (one row per reviewed pair: the pair,
/// the decided verdict, corrected text, annotators, agreement),
/// `reviewed/annotations.parquet` (one row per annotation),
/// `reviewed/invalid.jsonl` and `reviewed/summary.json` — into a temp folder
/// renamed into place, so a pull that fails leaves the last one intact.
pub fn write_reviewed(
    dir: &Path,
    queue: &str,
    pairs: &[PairRow],
    annotations: &[Annotation],
    invalid: &[Invalid],
) -> anyhow::Result<ReviewSummary> {
    let known: HashMap<&str, &PairRow> = pairs.iter().map(|p| (p.pair_id.as_str(), p)).collect();
    let mut by_pair: BTreeMap<String, Vec<&Annotation>> = BTreeMap::new();
    for a in annotations {
        by_pair.entry(a.pair_id.clone()).or_default().push(a);
    }
    let stats = agreement(&by_pair);

    let mut rows: Vec<Decided> = Vec::new();
    for (id, list) in &by_pair {
        let Some(p) = known.get(id.as_str()) else {
            continue;
        };
        let (verdict, corrected, label) = decide(list);
        rows.push((p, verdict, corrected, list.clone(), label));
    }
    let mut pairs_df = decided_frame(&rows)?;
    let mut ann_df = annotations_frame(annotations)?;

    let final_dir = dir.join(REVIEWED_DIR);
    let tmp = dir.join(format!(".{REVIEWED_DIR}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let write = |df: &mut DataFrame, name: &str| -> anyhow::Result<()> {
        let mut f = File::create(tmp.join(name))?;
        ParquetWriter::new(&mut f)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(df)?;
        f.sync_all()?;
        Ok(())
    };
    write(&mut pairs_df, "part-00000.parquet")?;
    write(&mut ann_df, "annotations.parquet")?;
    let mut text = String::new();
    for i in invalid {
        text.push_str(&serde_json::to_string(i)?);
        text.push('\n');
    }
    fs::write(tmp.join("invalid.jsonl"), text)?;
    let summary = ReviewSummary {
        queue: queue.to_string(),
        agreement: stats,
        invalid: invalid.len(),
        files: vec![
            "part-00000.parquet".into(),
            "annotations.parquet".into(),
            "invalid.jsonl".into(),
        ],
    };
    fs::write(
        tmp.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    swap_into_place(&tmp, &final_dir, dir)?;
    Ok(summary)
}

/// One row per reviewed pair: the pair, the decided verdict, the corrected
/// text, the annotators and their agreement.
fn decided_frame(rows: &[Decided]) -> anyhow::Result<DataFrame> {
    let s = |f: &dyn Fn(&Decided) -> Option<String>| {
        Column::new("x".into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let named = |c: Column, n: &str| c.with_name(n.into());
    let cols = vec![
        named(s(&|r| Some(r.0.pair_id.clone())), "pair_id"),
        named(s(&|r| Some(r.0.source_id.clone())), "source_id"),
        named(s(&|r| Some(r.0.task.clone())), "task"),
        named(s(&|r| Some(r.0.original.clone())), "original"),
        named(s(&|r| Some(r.0.edited.clone())), "edited"),
        named(s(&|r| r.0.original_label.clone()), "original_label"),
        // The reviewer's label when one was given (a question's new
        // answer, an uncertain pair's label), else foil's.
        named(
            s(&|r| r.4.clone().or_else(|| r.0.edited_label.clone())),
            "edited_label",
        ),
        named(s(&|r| Some(r.0.relation.clone())), "relation"),
        named(s(&|r| r.0.needs_review.clone()), "needs_review"),
        named(s(&|r| Some(r.0.edit_type.clone())), "edit_type"),
        named(s(&|r| r.0.reject_stage.clone()), "reject_stage"),
        named(s(&|r| Some(r.1.clone())), "verdict"),
        named(s(&|r| r.2.clone()), "corrected"),
        named(
            s(&|r| {
                Some(
                    r.3.iter()
                        .map(|a| a.annotator.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }),
            "annotators",
        ),
        named(
            s(&|r| {
                Some(
                    r.3.iter()
                        .map(|a| a.verdict.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }),
            "verdicts",
        ),
        Column::new(
            "n_annotations".into(),
            rows.iter().map(|r| r.3.len() as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "agreement".into(),
            rows.iter()
                .map(|r| {
                    let same = r.3.iter().filter(|a| a.verdict == r.1).count();
                    same as f64 / r.3.len() as f64
                })
                .collect::<Vec<_>>(),
        ),
    ];
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// One row per annotation.
fn annotations_frame(annotations: &[Annotation]) -> anyhow::Result<DataFrame> {
    let a = |f: &dyn Fn(&Annotation) -> Option<String>, n: &str| {
        Column::new(n.into(), annotations.iter().map(f).collect::<Vec<_>>())
    };
    Ok(DataFrame::new(
        annotations.len(),
        vec![
            a(&|x| Some(x.pair_id.clone()), "pair_id"),
            a(&|x| Some(x.annotator.clone()), "annotator"),
            a(&|x| Some(x.verdict.clone()), "verdict"),
            a(&|x| x.corrected.clone(), "corrected"),
            a(&|x| x.label.clone(), "label"),
            a(&|x| Some(x.queue.clone()), "queue"),
            a(&|x| Some(x.source.clone()), "source"),
            a(&|x| Some(x.origin.clone()), "origin"),
        ],
    )?)
}

/// Replace `final_dir` (in `dir`) with `tmp`, keeping the old one until the
/// new one is in place.
fn swap_into_place(tmp: &Path, final_dir: &Path, dir: &Path) -> anyhow::Result<()> {
    if final_dir.exists() {
        let old: PathBuf = dir.join(format!(".{REVIEWED_DIR}.old"));
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        fs::rename(final_dir, &old)?;
        fs::rename(tmp, final_dir)?;
        fs::remove_dir_all(&old)?;
    } else {
        fs::rename(tmp, final_dir)?;
    }
    Ok(())
}

/// The annotations an earlier pull or import left in `DIR/reviewed/`
/// (none when there is no such folder).
pub fn read_annotations(dir: &Path) -> anyhow::Result<Vec<Annotation>> {
    let path = dir.join(REVIEWED_DIR).join("annotations.parquet");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let df = ParquetReader::new(File::open(&path)?).finish()?;
    let c = |n: &str| col_strs(&df, n);
    let (ids, who, verdict, corrected, queue, origin) = (
        c("pair_id"),
        c("annotator"),
        c("verdict"),
        c("corrected"),
        c("queue"),
        c("origin"),
    );
    // Folders reviewed before labels were collected have no such column
    // (read as all missing).
    let label = c("label");
    let source = c("source");
    Ok((0..df.height())
        .map(|i| Annotation {
            pair_id: ids[i].clone().unwrap_or_default(),
            annotator: who[i].clone().unwrap_or_default(),
            verdict: verdict[i].clone().unwrap_or_default(),
            corrected: corrected[i].clone(),
            label: label[i].clone(),
            queue: queue[i].clone().unwrap_or_default(),
            // Folders reviewed before sources were kept: the queue.
            source: source[i]
                .clone()
                .or_else(|| queue[i].clone())
                .unwrap_or_default(),
            origin: origin[i].clone().unwrap_or_default(),
        })
        .collect())
}

/// A reviewed pair's outcome, as `DIR/reviewed/` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub verdict: String,
    pub corrected: Option<String>,
    /// The label the contrast set carries after review.
    pub edited_label: Option<String>,
}

/// Verdicts of `DIR/reviewed/` by pair id.
pub fn read_verdicts(dir: &Path) -> anyhow::Result<HashMap<String, Reviewed>> {
    let path = dir.join(REVIEWED_DIR).join("part-00000.parquet");
    let df = ParquetReader::new(File::open(&path).map_err(|e| {
        crate::UsageError::new(format!(
            "`{}`: {e} (pull or import reviews first: foil review pull|import)",
            path.display()
        ))
    })?)
    .finish()?;
    let (ids, verdicts, corrected, labels) = (
        col_strs(&df, "pair_id"),
        col_strs(&df, "verdict"),
        col_strs(&df, "corrected"),
        col_strs(&df, "edited_label"),
    );
    Ok((0..df.height())
        .filter_map(|i| {
            Some((
                ids[i].clone()?,
                Reviewed {
                    verdict: verdicts[i].clone()?,
                    corrected: corrected[i].clone(),
                    edited_label: labels[i].clone(),
                },
            ))
        })
        .collect())
}
