//! Parquet shards of pairs: `part-00000.parquet`, … — each written to a
//! temp name and renamed once complete.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::record::Candidate;
use crate::record::SourceExample;

/// A committed shard, as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the output folder.
    pub path: String,
    pub rows: usize,
}

/// A pair ready to be written: the candidate and the source row's
/// passthrough columns.
pub struct Row {
    pub candidate: Candidate,
    pub task: &'static str,
    pub context: Option<String>,
    pub passthrough: Vec<(String, Option<String>)>,
    /// Input position of the source, and the candidate's position among
    /// the source's candidates: together, the order a single process
    /// decides dedup in (what `foil merge` restores across workers).
    pub source_seq: u64,
    pub index: u32,
}

/// The fixed columns; passthrough columns that collide get `source_`.
pub const PAIR_COLUMNS: &[&str] = &[
    "pair_id",
    "source_id",
    "task",
    "original",
    "edited",
    "original_label",
    "edited_label",
    "relation",
    "needs_review",
    "edit_type",
    "generator",
    "edited_field",
    "context",
    "edited_context",
    "source_seq",
    "candidate",
    "word_edits",
    "edit_ratio",
    "edit_ops",
    "changed_share",
    "related_share",
    "changed_fields",
    "edit_spans",
    "similarity",
    "prompt_sha256",
    "temperature",
    "seed",
    "rationale",
    "source_span",
    "target_span",
    "verify_relation",
    "verify_label",
    "verify_fluent",
    "verify_minimal",
    "verify_explanation",
    "reject_stage",
    "reject_reason",
    "reject_detail",
];

pub struct ShardWriter {
    dir: PathBuf,
    /// Relative folder prefix for manifest paths ("" or "rejected/").
    prefix: String,
    with_rejection: bool,
    buffer: Vec<Row>,
    pub shards: Vec<ShardEntry>,
}

impl ShardWriter {
    /// A writer continuing after `existing` shards (a resumed run).
    pub fn new(
        root: &Path,
        subdir: Option<&str>,
        existing: Vec<ShardEntry>,
        with_rejection: bool,
    ) -> Self {
        let (dir, prefix) = match subdir {
            Some(s) => (root.join(s), format!("{s}/")),
            None => (root.to_path_buf(), String::new()),
        };
        ShardWriter {
            dir,
            prefix,
            with_rejection,
            buffer: Vec::new(),
            shards: existing,
        }
    }

    /// Rows waiting for the next shard.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Queue a pair; the sink decides when buffered rows become a shard
    /// (always at a source boundary, so a checkpoint never splits a source).
    /// `index` is the candidate's position among its source's candidates.
    pub fn push(
        &mut self,
        candidate: Candidate,
        index: u32,
        task: &'static str,
        example: &SourceExample,
        edit_field: &str,
    ) {
        // Unedited fields other than the label (the NLI premise, a QA
        // context) travel with the pair.
        self.buffer.push(Row {
            candidate,
            task,
            context: example.context(edit_field),
            passthrough: example.passthrough.clone(),
            source_seq: example.seq,
            index,
        });
    }

    /// Queue a pair read back from another output folder (`foil merge`).
    pub fn push_row(&mut self, row: Row) {
        self.buffer.push(row);
    }

    /// Write whatever is buffered as one more shard.
    pub fn flush(&mut self) -> PolarsResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.buffer);
        let mut df = to_frame(&rows, self.with_rejection)?;
        fs::create_dir_all(&self.dir)?;
        let name = format!("part-{:05}.parquet", self.shards.len());
        let path = self.dir.join(&name);
        let tmp = super::tmp_path(&path);
        {
            let mut file = File::create(&tmp)?;
            ParquetWriter::new(&mut file)
                .with_compression(ParquetCompression::Zstd(None))
                // Row groups small enough that a reader streaming a window
                // of a shard (`foil merge`) decodes little beyond it.
                .with_row_group_size(Some(ROW_GROUP_ROWS))
                .finish(&mut df)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        self.shards.push(ShardEntry {
            path: format!("{}{name}", self.prefix),
            rows: rows.len(),
        });
        Ok(())
    }
}

fn str_col(name: &str, values: Vec<Option<String>>) -> Column {
    Column::new(name.into(), values)
}

fn to_frame(rows: &[Row], with_rejection: bool) -> PolarsResult<DataFrame> {
    let s = |f: &dyn Fn(&Row) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let mut cols = vec![
        str_col("pair_id", s(&|r| Some(r.candidate.pair_id.clone()))),
        str_col("source_id", s(&|r| Some(r.candidate.source_id.clone()))),
        str_col("task", s(&|r| Some(r.task.to_string()))),
        str_col("original", s(&|r| Some(r.candidate.original.clone()))),
        str_col("edited", s(&|r| Some(r.candidate.edited.clone()))),
        str_col("original_label", s(&|r| r.candidate.original_label.clone())),
        str_col("edited_label", s(&|r| r.candidate.edited_label.clone())),
        str_col(
            "relation",
            s(&|r| Some(r.candidate.relation.as_str().to_string())),
        ),
        str_col("edit_type", s(&|r| Some(r.candidate.edit_type.clone()))),
        str_col("generator", s(&|r| Some(r.candidate.generator.clone()))),
        str_col(
            "edited_field",
            s(&|r| Some(r.candidate.edited_field.clone())),
        ),
        str_col("context", s(&|r| r.context.clone())),
        str_col("edited_context", s(&|r| r.candidate.edited_context.clone())),
        Column::new(
            "source_seq".into(),
            rows.iter().map(|r| r.source_seq).collect::<Vec<_>>(),
        ),
        Column::new(
            "candidate".into(),
            rows.iter().map(|r| r.index).collect::<Vec<_>>(),
        ),
        Column::new(
            "word_edits".into(),
            rows.iter()
                .map(|r| r.candidate.scores.word_edits)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "edit_ratio".into(),
            rows.iter()
                .map(|r| r.candidate.scores.edit_ratio)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "edit_ops".into(),
            rows.iter()
                .map(|r| r.candidate.scores.edit_ops)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "changed_share".into(),
            rows.iter()
                .map(|r| r.candidate.scores.changed_share)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "related_share".into(),
            rows.iter()
                .map(|r| r.candidate.scores.related_share)
                .collect::<Vec<_>>(),
        ),
        str_col(
            "changed_fields",
            s(&|r| r.candidate.scores.changed_fields.clone()),
        ),
        str_col("edit_spans", s(&|r| r.candidate.scores.edit_spans.clone())),
        Column::new(
            "similarity".into(),
            rows.iter()
                .map(|r| r.candidate.scores.similarity)
                .collect::<Vec<_>>(),
        ),
        str_col("prompt_sha256", s(&|r| r.candidate.prompt_sha256.clone())),
        Column::new(
            "temperature".into(),
            rows.iter()
                .map(|r| r.candidate.temperature)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.candidate.seed).collect::<Vec<_>>(),
        ),
        str_col("rationale", s(&|r| r.candidate.rationale.clone())),
        str_col("source_span", s(&|r| r.candidate.source_span.clone())),
        str_col("target_span", s(&|r| r.candidate.target_span.clone())),
        str_col("needs_review", s(&|r| r.candidate.needs_review.clone())),
    ];
    let verify = |f: &dyn Fn(&crate::record::VerifyScores) -> f64| {
        rows.iter()
            .map(|r| r.candidate.scores.verify.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    cols.push(Column::new(
        "verify_relation".into(),
        verify(&|v| v.relation),
    ));
    cols.push(Column::new("verify_label".into(), verify(&|v| v.label)));
    cols.push(Column::new("verify_fluent".into(), verify(&|v| v.fluent)));
    cols.push(Column::new("verify_minimal".into(), verify(&|v| v.minimal)));
    cols.push(str_col(
        "verify_explanation",
        s(&|r| {
            r.candidate
                .scores
                .verify
                .as_ref()
                .and_then(|v| v.explanation.clone())
        }),
    ));
    if with_rejection {
        cols.push(str_col(
            "reject_stage",
            s(&|r| r.candidate.rejection.as_ref().map(|x| x.stage.clone())),
        ));
        cols.push(str_col(
            "reject_reason",
            s(&|r| r.candidate.rejection.as_ref().map(|x| x.reason.clone())),
        ));
        cols.push(str_col(
            "reject_detail",
            s(&|r| r.candidate.rejection.as_ref().map(|x| x.detail.clone())),
        ));
    }
    // Passthrough columns: the union over the shard, in first-seen order.
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        for (n, _) in &r.passthrough {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for name in names {
        let values = s(&|r| {
            r.passthrough
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
        });
        let out_name = if PAIR_COLUMNS.contains(&name) {
            format!("source_{name}")
        } else {
            name.to_string()
        };
        cols.push(str_col(&out_name, values));
    }
    DataFrame::new(rows.len(), cols)
}

/// Read the shards of an output folder back (for `foil inspect` and tests).
/// Rows per Parquet row group in a shard.
pub const ROW_GROUP_ROWS: usize = 8192;

pub fn read_shards(dir: &Path, entries: &[ShardEntry]) -> PolarsResult<Vec<DataFrame>> {
    entries
        .iter()
        .map(|e| ParquetReader::new(File::open(dir.join(&e.path))?).finish())
        .collect()
}

/// A string column's cells (all missing when there is no such column).
pub fn col_strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    match df.column(name).ok().and_then(|c| c.str().ok().cloned()) {
        Some(s) => s.iter().map(|v| v.map(str::to_string)).collect(),
        None => vec![None; df.height()],
    }
}

/// A numeric column's cells as f64 (all missing when there is no such
/// column).
pub fn col_f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    match df
        .column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::Float64).ok())
        .and_then(|c| c.f64().ok().cloned())
    {
        Some(s) => s.iter().collect(),
        None => vec![None; df.height()],
    }
}

/// Rows of written shards back as [`Row`]s (candidate, context,
/// passthrough, position), for `foil merge`. Columns this version does not
/// know are carried as passthrough.
pub fn read_back(dir: &Path, entries: &[ShardEntry], task: &'static str) -> PolarsResult<Vec<Row>> {
    let mut out = Vec::new();
    for df in read_shards(dir, entries)? {
        rows_of_frame(&df, task, &mut out);
    }
    Ok(out)
}

/// Rows `offset .. offset + len` of one shard (fewer at its end): a
/// window, for readers that stream shards.
pub fn read_back_window(
    dir: &Path,
    entry: &ShardEntry,
    task: &'static str,
    offset: usize,
    len: usize,
) -> PolarsResult<Vec<Row>> {
    let df = ParquetReader::new(File::open(dir.join(&entry.path))?)
        .with_slice(Some((offset, len)))
        .finish()?;
    let mut out = Vec::new();
    rows_of_frame(&df, task, &mut out);
    Ok(out)
}

/// An integer column's cells, read as integers (all missing when there is
/// no such column): seeds above 2^53 do not survive a trip through f64.
pub fn col_u64s(df: &DataFrame, name: &str) -> Vec<Option<u64>> {
    match df
        .column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::UInt64).ok())
        .and_then(|c| c.u64().ok().cloned())
    {
        Some(s) => s.iter().collect(),
        None => vec![None; df.height()],
    }
}

fn rows_of_frame(df: &DataFrame, task: &'static str, out: &mut Vec<Row>) {
    use crate::record::{Rejection, Relation, Scores, VerifyScores};
    {
        let df = df.clone();
        let u = |n: &str| col_u64s(&df, n);
        let s = |n: &str| col_strs(&df, n);
        let f = |n: &str| col_f64s(&df, n);
        let (pair_id, source_id, original, edited) =
            (s("pair_id"), s("source_id"), s("original"), s("edited"));
        let (ol, el, relation, edit_type, generator, field, context) = (
            s("original_label"),
            s("edited_label"),
            s("relation"),
            s("edit_type"),
            s("generator"),
            s("edited_field"),
            s("context"),
        );
        let (edited_context, ops, changed, kept, changed_fields, spans) = (
            s("edited_context"),
            f("edit_ops"),
            f("changed_share"),
            f("related_share"),
            s("changed_fields"),
            s("edit_spans"),
        );
        let (seq, index, we, er, sim) = (
            u("source_seq"),
            u("candidate"),
            f("word_edits"),
            f("edit_ratio"),
            f("similarity"),
        );
        let (sha, temp, seed, rationale, ss, ts) = (
            s("prompt_sha256"),
            f("temperature"),
            u("seed"),
            s("rationale"),
            s("source_span"),
            s("target_span"),
        );
        let needs_review = s("needs_review");
        let (vr, vl, vf, vm, ve) = (
            f("verify_relation"),
            f("verify_label"),
            f("verify_fluent"),
            f("verify_minimal"),
            s("verify_explanation"),
        );
        let (rs, rr, rd) = (s("reject_stage"), s("reject_reason"), s("reject_detail"));
        let passthrough_cols: Vec<(String, Vec<Option<String>>)> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .filter(|n| !PAIR_COLUMNS.contains(&n.as_str()))
            .map(|n| {
                let v = s(&n);
                (n, v)
            })
            .collect();
        for i in 0..df.height() {
            let verify = match (vr[i], vl[i], vf[i], vm[i]) {
                (Some(relation), Some(label), Some(fluent), Some(minimal)) => Some(VerifyScores {
                    relation,
                    label,
                    fluent,
                    minimal,
                    explanation: ve[i].clone(),
                }),
                _ => None,
            };
            let candidate = Candidate {
                pair_id: pair_id[i].clone().unwrap_or_default(),
                source_id: source_id[i].clone().unwrap_or_default(),
                edited_field: field[i].clone().unwrap_or_else(|| "text".into()),
                original: original[i].clone().unwrap_or_default(),
                edited: edited[i].clone().unwrap_or_default(),
                // Only the joined edited context is stored; the measure
                // that needed the fields one by one has run.
                context_edits: Default::default(),
                edited_context: edited_context[i].clone(),
                original_label: ol[i].clone(),
                edited_label: el[i].clone(),
                relation: relation[i]
                    .as_deref()
                    .and_then(Relation::parse)
                    .unwrap_or(Relation::Flip),
                edit_type: edit_type[i].clone().unwrap_or_default(),
                generator: generator[i].clone().unwrap_or_default(),
                prompt_sha256: sha[i].clone(),
                temperature: temp[i],
                seed: seed[i],
                rationale: rationale[i].clone(),
                source_span: ss[i].clone(),
                target_span: ts[i].clone(),
                needs_review: needs_review[i].clone(),
                scores: Scores {
                    word_edits: we[i].map(|x| x as u32),
                    edit_ratio: er[i],
                    edit_ops: ops[i].map(|x| x as u32),
                    changed_share: changed[i],
                    related_share: kept[i],
                    changed_fields: changed_fields[i].clone(),
                    edit_spans: spans[i].clone(),
                    similarity: sim[i],
                    verify,
                },
                rejection: rs[i].clone().map(|stage| Rejection {
                    stage,
                    reason: rr[i].clone().unwrap_or_default(),
                    detail: rd[i].clone().unwrap_or_default(),
                }),
            };
            out.push(Row {
                candidate,
                task,
                context: context[i].clone(),
                passthrough: passthrough_cols
                    .iter()
                    .map(|(n, v)| (n.clone(), v[i].clone()))
                    .collect(),
                source_seq: seq[i].unwrap_or(0),
                index: index[i].map_or(0, |x| x as u32),
            });
        }
    }
}
