//! The pair schema, once: every fixed column of a shard with how it is
//! written from a [`Row`] and read back into one. Writing
//! ([`to_frame`]), reading ([`rows_of_frame`]) and the list of reserved
//! names ([`is_pair_column`]) all come from [`COLUMNS`].

use polars::prelude::*;

use super::shards::{Row, col_f64s, col_strs, col_u64s};
use crate::record::{Candidate, Rejection, Relation, VerifyScores};

/// A cell of a fixed column.
pub enum Cell {
    Str(Option<String>),
    F64(Option<f64>),
    U64(Option<u64>),
    U32(Option<u32>),
}

/// A fixed column: its name, how a row's value is written, how it is read
/// back (`None` cells leave the row's default).
pub struct PairColumn {
    pub name: &'static str,
    get: fn(&Row) -> Cell,
    set: fn(&mut Row, Cell),
}

fn text(c: Cell) -> Option<String> {
    match c {
        Cell::Str(s) => s,
        _ => None,
    }
}

fn float(c: Cell) -> Option<f64> {
    match c {
        Cell::F64(x) => x,
        _ => None,
    }
}

fn int(c: Cell) -> Option<u64> {
    match c {
        Cell::U64(x) => x,
        Cell::U32(x) => x.map(u64::from),
        _ => None,
    }
}

fn verify(r: &mut Row) -> &mut VerifyScores {
    r.candidate.scores.verify.get_or_insert(VerifyScores {
        relation: 0.0,
        label: 0.0,
        fluent: 0.0,
        minimal: 0.0,
        explanation: None,
    })
}

macro_rules! col {
    ($name:literal, $get:expr, $set:expr) => {
        PairColumn {
            name: $name,
            get: $get,
            set: $set,
        }
    };
}

/// The fixed columns, in the order shards hold them; the last three only
/// in `rejected/`. Passthrough columns that collide get `source_`.
pub const COLUMNS: &[PairColumn] = &[
    col!(
        "pair_id",
        |r| Cell::Str(Some(r.candidate.pair_id.clone())),
        |r, c| r.candidate.pair_id = text(c).unwrap_or_default()
    ),
    col!(
        "source_id",
        |r| Cell::Str(Some(r.candidate.source_id.clone())),
        |r, c| r.candidate.source_id = text(c).unwrap_or_default()
    ),
    col!("task", |r| Cell::Str(Some(r.task.to_string())), |_, _| {}),
    col!(
        "original",
        |r| Cell::Str(Some(r.candidate.original.clone())),
        |r, c| r.candidate.original = text(c).unwrap_or_default()
    ),
    col!(
        "edited",
        |r| Cell::Str(Some(r.candidate.edited.clone())),
        |r, c| r.candidate.edited = text(c).unwrap_or_default()
    ),
    col!(
        "original_label",
        |r| Cell::Str(r.candidate.original_label.clone()),
        |r, c| r.candidate.original_label = text(c)
    ),
    col!(
        "edited_label",
        |r| Cell::Str(r.candidate.edited_label.clone()),
        |r, c| r.candidate.edited_label = text(c)
    ),
    col!(
        "relation",
        |r| Cell::Str(Some(r.candidate.relation.as_str().to_string())),
        |r, c| {
            r.candidate.relation = text(c)
                .as_deref()
                .and_then(Relation::parse)
                .unwrap_or(Relation::Flip)
        }
    ),
    col!(
        "edit_type",
        |r| Cell::Str(Some(r.candidate.edit_type.clone())),
        |r, c| r.candidate.edit_type = text(c).unwrap_or_default()
    ),
    col!(
        "generator",
        |r| Cell::Str(Some(r.candidate.generator.clone())),
        |r, c| r.candidate.generator = text(c).unwrap_or_default()
    ),
    col!(
        "edited_field",
        |r| Cell::Str(Some(r.candidate.edited_field.clone())),
        |r, c| { r.candidate.edited_field = text(c).unwrap_or_else(|| "text".into()) }
    ),
    col!("context", |r| Cell::Str(r.context.clone()), |r, c| r
        .context =
        text(c)),
    // Only the joined edited context is stored; the measure that needed
    // the fields one by one has run.
    col!(
        "edited_context",
        |r| Cell::Str(r.candidate.edited_context.clone()),
        |r, c| r.candidate.edited_context = text(c)
    ),
    col!("source_seq", |r| Cell::U64(Some(r.source_seq)), |r, c| r
        .source_seq =
        int(c).unwrap_or(0)),
    col!("candidate", |r| Cell::U32(Some(r.index)), |r, c| r.index =
        int(c).map_or(0, |x| x as u32)),
    col!(
        "word_edits",
        |r| Cell::U32(r.candidate.scores.word_edits),
        |r, c| r.candidate.scores.word_edits = int(c).map(|x| x as u32)
    ),
    col!(
        "edit_ratio",
        |r| Cell::F64(r.candidate.scores.edit_ratio),
        |r, c| r.candidate.scores.edit_ratio = float(c)
    ),
    col!(
        "edit_ops",
        |r| Cell::U32(r.candidate.scores.edit_ops),
        |r, c| r.candidate.scores.edit_ops = int(c).map(|x| x as u32)
    ),
    col!(
        "changed_share",
        |r| Cell::F64(r.candidate.scores.changed_share),
        |r, c| r.candidate.scores.changed_share = float(c)
    ),
    col!(
        "related_share",
        |r| Cell::F64(r.candidate.scores.related_share),
        |r, c| r.candidate.scores.related_share = float(c)
    ),
    col!(
        "changed_fields",
        |r| Cell::Str(r.candidate.scores.changed_fields.clone()),
        |r, c| r.candidate.scores.changed_fields = text(c)
    ),
    col!(
        "edit_spans",
        |r| Cell::Str(r.candidate.scores.edit_spans.clone()),
        |r, c| r.candidate.scores.edit_spans = text(c)
    ),
    col!(
        "similarity",
        |r| Cell::F64(r.candidate.scores.similarity),
        |r, c| r.candidate.scores.similarity = float(c)
    ),
    col!(
        "similarity_by",
        |r| Cell::Str(r.candidate.scores.similarity_by.clone()),
        |r, c| r.candidate.scores.similarity_by = text(c)
    ),
    col!(
        "prompt_sha256",
        |r| Cell::Str(r.candidate.prompt_sha256.clone()),
        |r, c| r.candidate.prompt_sha256 = text(c)
    ),
    col!(
        "temperature",
        |r| Cell::F64(r.candidate.temperature),
        |r, c| r.candidate.temperature = float(c)
    ),
    col!("seed", |r| Cell::U64(r.candidate.seed), |r, c| r
        .candidate
        .seed =
        int(c)),
    col!(
        "rationale",
        |r| Cell::Str(r.candidate.rationale.clone()),
        |r, c| r.candidate.rationale = text(c)
    ),
    col!(
        "source_span",
        |r| Cell::Str(r.candidate.source_span.clone()),
        |r, c| r.candidate.source_span = text(c)
    ),
    col!(
        "target_span",
        |r| Cell::Str(r.candidate.target_span.clone()),
        |r, c| r.candidate.target_span = text(c)
    ),
    col!(
        "needs_review",
        |r| Cell::Str(r.candidate.needs_review.clone()),
        |r, c| r.candidate.needs_review = text(c)
    ),
    col!(
        "verify_relation",
        |r| Cell::F64(r.candidate.scores.verify.as_ref().map(|v| v.relation)),
        |r, c| {
            if let Some(x) = float(c) {
                verify(r).relation = x;
            }
        }
    ),
    col!(
        "verify_label",
        |r| Cell::F64(r.candidate.scores.verify.as_ref().map(|v| v.label)),
        |r, c| {
            if let Some(x) = float(c) {
                verify(r).label = x;
            }
        }
    ),
    col!(
        "verify_fluent",
        |r| Cell::F64(r.candidate.scores.verify.as_ref().map(|v| v.fluent)),
        |r, c| {
            if let Some(x) = float(c) {
                verify(r).fluent = x;
            }
        }
    ),
    col!(
        "verify_minimal",
        |r| Cell::F64(r.candidate.scores.verify.as_ref().map(|v| v.minimal)),
        |r, c| {
            if let Some(x) = float(c) {
                verify(r).minimal = x;
            }
        }
    ),
    col!(
        "verify_explanation",
        |r| Cell::Str(
            r.candidate
                .scores
                .verify
                .as_ref()
                .and_then(|v| v.explanation.clone())
        ),
        |r, c| {
            if let Some(v) = r.candidate.scores.verify.as_mut() {
                v.explanation = text(c);
            }
        }
    ),
    col!(
        "reject_stage",
        |r| Cell::Str(r.candidate.rejection.as_ref().map(|x| x.stage.clone())),
        |r, c| {
            r.candidate.rejection = text(c).map(|stage| Rejection {
                stage,
                reason: String::new(),
                detail: String::new(),
            })
        }
    ),
    col!(
        "reject_reason",
        |r| Cell::Str(r.candidate.rejection.as_ref().map(|x| x.reason.clone())),
        |r, c| {
            if let Some(x) = r.candidate.rejection.as_mut() {
                x.reason = text(c).unwrap_or_default();
            }
        }
    ),
    col!(
        "reject_detail",
        |r| Cell::Str(r.candidate.rejection.as_ref().map(|x| x.detail.clone())),
        |r, c| {
            if let Some(x) = r.candidate.rejection.as_mut() {
                x.detail = text(c).unwrap_or_default();
            }
        }
    ),
];

/// Columns only rejected shards have.
const REJECTION_COLUMNS: usize = 3;

/// Whether `name` is a fixed column (a passthrough column of that name is
/// written as `source_<name>`).
pub fn is_pair_column(name: &str) -> bool {
    COLUMNS.iter().any(|c| c.name == name)
}

fn column(name: &str, rows: &[Row], get: fn(&Row) -> Cell) -> Column {
    let cells: Vec<Cell> = rows.iter().map(get).collect();
    let name: PlSmallStr = name.into();
    match cells.first() {
        Some(Cell::F64(_)) => Column::new(name, cells.into_iter().map(float).collect::<Vec<_>>()),
        Some(Cell::U64(_)) => Column::new(name, cells.into_iter().map(int).collect::<Vec<_>>()),
        Some(Cell::U32(_)) => Column::new(
            name,
            cells
                .into_iter()
                .map(|c| int(c).map(|x| x as u32))
                .collect::<Vec<_>>(),
        ),
        _ => Column::new(name, cells.into_iter().map(text).collect::<Vec<_>>()),
    }
}

/// The rows as a frame: the fixed columns (the rejection's only when
/// asked), then the passthrough columns, the union over the rows in
/// first-seen order.
pub fn to_frame(rows: &[Row], with_rejection: bool) -> PolarsResult<DataFrame> {
    let fixed = if with_rejection {
        COLUMNS
    } else {
        &COLUMNS[..COLUMNS.len() - REJECTION_COLUMNS]
    };
    let mut cols: Vec<Column> = fixed.iter().map(|c| column(c.name, rows, c.get)).collect();
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        for (n, _) in &r.passthrough {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    for name in names {
        let values: Vec<Option<String>> = rows
            .iter()
            .map(|r| {
                r.passthrough
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.clone())
            })
            .collect();
        let out_name = if is_pair_column(name) {
            format!("source_{name}")
        } else {
            name.to_string()
        };
        cols.push(Column::new(out_name.into(), values));
    }
    DataFrame::new(rows.len(), cols)
}

fn empty_row(task: &'static str) -> Row {
    Row {
        candidate: Candidate::blank(),
        task,
        context: None,
        passthrough: Vec::new(),
        source_seq: 0,
        index: 0,
    }
}

/// Rows of a shard's frame, appended to `out`.
pub fn rows_of_frame(df: &DataFrame, task: &'static str, out: &mut Vec<Row>) {
    enum Values {
        Str(Vec<Option<String>>),
        F64(Vec<Option<f64>>),
        Int(Vec<Option<u64>>),
    }
    // Each fixed column read as the kind it is written as.
    let probe = empty_row(task);
    let fixed: Vec<(&PairColumn, Values)> = COLUMNS
        .iter()
        .map(|c| {
            let values = match (c.get)(&probe) {
                Cell::F64(_) => Values::F64(col_f64s(df, c.name)),
                Cell::U64(_) | Cell::U32(_) => Values::Int(col_u64s(df, c.name)),
                Cell::Str(_) => Values::Str(col_strs(df, c.name)),
            };
            (c, values)
        })
        .collect();
    let passthrough: Vec<(String, Vec<Option<String>>)> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| !is_pair_column(n))
        .map(|n| {
            let v = col_strs(df, &n);
            (n, v)
        })
        .collect();
    for i in 0..df.height() {
        let mut row = empty_row(task);
        for (c, values) in &fixed {
            let cell = match values {
                Values::Str(v) => Cell::Str(v[i].clone()),
                Values::F64(v) => Cell::F64(v[i]),
                Values::Int(v) => Cell::U64(v[i]),
            };
            (c.set)(&mut row, cell);
        }
        row.passthrough = passthrough
            .iter()
            .map(|(n, v)| (n.clone(), v[i].clone()))
            .collect();
        out.push(row);
    }
}
