//! File-based queues: CSV or JSONL for spreadsheet reviewers, and Argilla
//! records (fields, metadata and foil's verdict as a suggestion) for teams
//! that run Argilla. Decisions come back through [`import`], which reads
//! any of the three and names file, line and field for every bad row.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::{Annotation, Invalid, PairRow};
use crate::text::{Diff, word_diff};

/// The edit in plain text: `[-removed-]` and `{+added+}`.
pub fn diff_text(a: &str, b: &str) -> String {
    word_diff(a, b)
        .iter()
        .map(|d| match d {
            Diff::Same(t) => t.to_string(),
            Diff::Removed(t) => format!("[-{t}-]"),
            Diff::Added(t) => format!("{{+{t}+}}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const CSV_HEADER: &[&str] = &[
    "pair_id",
    "edit_type",
    "original",
    "edited",
    "diff",
    "changed_fields",
    "context",
    "edited_context",
    "original_label",
    "edited_label",
    "relation",
    "needs_review",
    "foil_status",
    "confidence",
    "new_label",
    "verdict",
    "corrected",
    "annotator",
];

/// A CSV with empty `verdict`, `corrected`, `annotator` columns to fill
/// in, and `new_label` holding foil's new label or answer (empty where a
/// reviewer must supply it: see `needs_review`).
pub fn write_csv(path: &Path, pairs: &[PairRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(CSV_HEADER)?;
    for p in pairs {
        w.write_record([
            p.pair_id.as_str(),
            &p.edit_type,
            &p.original,
            &p.edited,
            &diff_text(&p.original, &p.edited),
            p.changed_fields.as_deref().unwrap_or_default(),
            p.context.as_deref().unwrap_or_default(),
            p.edited_context.as_deref().unwrap_or_default(),
            p.original_label.as_deref().unwrap_or_default(),
            p.edited_label.as_deref().unwrap_or_default(),
            &p.relation,
            p.needs_review.as_deref().unwrap_or_default(),
            &p.status(),
            &p.confidence()
                .map(|c| format!("{c:.4}"))
                .unwrap_or_default(),
            p.edited_label.as_deref().unwrap_or_default(),
            "",
            "",
            "",
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The same as JSONL, one object per pair, `verdict` null.
pub fn write_jsonl(path: &Path, pairs: &[PairRow]) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for p in pairs {
        let v = json!({
            "pair_id": p.pair_id, "edit_type": p.edit_type,
            "original": p.original, "edited": p.edited,
            "diff": diff_text(&p.original, &p.edited),
            "changed_fields": p.changed_fields, "context": p.context,
            "edited_context": p.edited_context, "edit_spans": p.edit_spans,
            "original_label": p.original_label, "edited_label": p.edited_label,
            "relation": p.relation, "needs_review": p.needs_review,
            "foil_status": p.status(), "confidence": p.confidence(),
            "new_label": p.edited_label,
            "verdict": Value::Null, "corrected": Value::Null, "annotator": Value::Null,
        });
        writeln!(f, "{v}")?;
    }
    f.flush()?;
    Ok(())
}

/// Argilla: `settings.json` (fields, questions, metadata) and
/// `records.jsonl` (one record per pair, `id` = pair_id, foil's verdict as
/// a suggestion scored with its confidence), loadable with the Argilla SDK
/// (`rg.Settings`, `dataset.records.log`).
pub fn write_argilla(dir: &Path, pairs: &[PairRow]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let settings = json!({
        "guidelines": "Is the edited text a valid minimal contrast of the original? accept, reject, or fix (then give the corrected edit).",
        "fields": [
            {"name": "original", "title": "Original", "type": "text", "required": true},
            {"name": "edited", "title": "Edited", "type": "text", "required": true},
            {"name": "diff", "title": "Edit", "type": "text", "required": true, "use_markdown": true}
        ],
        "questions": [
            {"name": "verdict", "title": "Verdict", "type": "label_selection",
             "labels": ["accept", "reject", "fix"], "required": true},
            {"name": "corrected", "title": "Corrected edit (for fix)", "type": "text", "required": false},
            {"name": "new_label", "title": "New label or answer (needed when `needs_review` says so)", "type": "text", "required": false}
        ],
        "metadata": [
            {"name": "edit_type", "type": "terms"},
            {"name": "task", "type": "terms"},
            {"name": "needs_review", "type": "terms"},
            {"name": "confidence", "type": "float"}
        ]
    });
    std::fs::write(
        dir.join("settings.json"),
        serde_json::to_string_pretty(&settings)?,
    )?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("records.jsonl"))?);
    for p in pairs {
        let markdown = word_diff(&p.original, &p.edited)
            .iter()
            .map(|d| match d {
                Diff::Same(t) => t.to_string(),
                Diff::Removed(t) => format!("~~{t}~~"),
                Diff::Added(t) => format!("**{t}**"),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut metadata = json!({"edit_type": p.edit_type, "task": p.task});
        if let Some(n) = &p.needs_review {
            metadata["needs_review"] = json!(n);
        }
        if let Some(c) = p.confidence() {
            metadata["confidence"] = json!(c);
        }
        let mut v = json!({
            "id": p.pair_id,
            "fields": {"original": p.original, "edited": p.edited, "diff": markdown},
            "metadata": metadata,
            "suggestions": [{
                "question_name": "verdict",
                "value": p.foil_verdict(),
                "score": p.confidence(),
                "agent": format!("foil-{}", env!("CARGO_PKG_VERSION")),
            }],
        });
        if let Some(l) = &p.edited_label {
            v["suggestions"].as_array_mut().expect("array").push(json!({
                "question_name": "new_label",
                "value": l,
                "agent": format!("foil-{}", env!("CARGO_PKG_VERSION")),
            }));
        }
        writeln!(f, "{v}")?;
    }
    f.flush()?;
    Ok(())
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Decisions from a filled CSV, JSONL or an Argilla records export
/// (`records.jsonl` / `.json` whose records carry `responses`). Rows with no
/// verdict yet are skipped; malformed rows are reported with file, line and
/// field.
pub fn import(path: &Path) -> anyhow::Result<(Vec<Annotation>, Vec<Invalid>)> {
    let name = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::UsageError::new(format!("reading `{name}`: {e}")))?;
    if ext == "csv" {
        return csv_annotations(path, &name, &text);
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut push = |a: Annotation| ok.push(a);
    let values = json_values(&name, &text)?;
    for (line, v) in values {
        let origin = format!("{name}:{line}");
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                bad.push(Invalid {
                    origin,
                    field: "(line)".into(),
                    problem: format!("not JSON: {e}"),
                });
                continue;
            }
        };
        if let Some(responses) = v.get("responses").and_then(Value::as_object) {
            argilla_annotations(&v, responses, &origin, &mut push, &mut bad);
            continue;
        }
        let Some(verdict) = opt_str(&v["verdict"]) else {
            if !v["verdict"].is_null() {
                bad.push(Invalid {
                    origin,
                    field: "verdict".into(),
                    problem: format!("expected a string, got {}", v["verdict"]),
                });
            }
            continue;
        };
        push(Annotation {
            pair_id: opt_str(&v["pair_id"]).unwrap_or_default(),
            annotator: opt_str(&v["annotator"]).unwrap_or_else(|| "jsonl".into()),
            verdict: verdict.to_lowercase(),
            corrected: opt_str(&v["corrected"]),
            label: opt_str(&v["new_label"]),
            queue: "jsonl".into(),
            source: String::new(),
            origin,
        });
    }
    Ok((ok, bad))
}

/// The JSON values of a JSONL file (one per non-empty line) or of a JSON
/// array, each with its line (or position); a line that is not JSON is
/// kept as its error, to be reported with its line.
type Values = Vec<(u64, Result<Value, serde_json::Error>)>;

fn json_values(name: &str, text: &str) -> Result<Values, crate::UsageError> {
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<Value>>(text) {
            Ok(v) => Ok(v
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i as u64 + 1, Ok(v)))
                .collect()),
            Err(e) => Err(crate::UsageError::new(format!(
                "`{name}`: not a JSON array: {e}"
            ))),
        }
    } else {
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i as u64 + 1, serde_json::from_str::<Value>(l)))
            .collect())
    }
}

/// The verdicts of an Argilla record: responses per question, per user.
fn argilla_annotations(
    v: &Value,
    responses: &serde_json::Map<String, Value>,
    origin: &str,
    push: &mut impl FnMut(Annotation),
    bad: &mut Vec<Invalid>,
) {
    let pair_id = opt_str(&v["id"]).unwrap_or_default();
    let by_user = |question: &str| -> Vec<(String, String)> {
        responses
            .get(question)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| Some((user(r), opt_str(&r["value"])?)))
            .collect()
    };
    let (corrected_by, label_by) = (by_user("corrected"), by_user("new_label"));
    for name_q in responses.keys() {
        if !matches!(name_q.as_str(), "verdict" | "corrected" | "new_label") {
            bad.push(Invalid {
                origin: origin.to_string(),
                field: format!("responses.{name_q}"),
                problem: format!("unknown question `{name_q}`"),
            });
        }
    }
    for r in responses
        .get("verdict")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if r["status"].as_str().is_some_and(|s| s != "submitted") {
            continue;
        }
        let who = user(r);
        let verdict = match &r["value"] {
            Value::String(s) => s.clone(),
            Value::Array(a) if a.len() == 1 => a[0].as_str().unwrap_or_default().to_string(),
            other => other.to_string(),
        };
        push(Annotation {
            pair_id: pair_id.clone(),
            corrected: corrected_by
                .iter()
                .find(|(u, _)| *u == who)
                .map(|(_, c)| c.clone()),
            label: label_by
                .iter()
                .find(|(u, _)| *u == who)
                .map(|(_, l)| l.clone()),
            annotator: who,
            verdict,
            queue: "argilla".into(),
            source: String::new(),
            origin: origin.to_string(),
        });
    }
}

/// Decisions from a filled CSV: `pair_id` and `verdict` columns, with
/// `corrected`, `annotator` and `new_label` when present.
fn csv_annotations(
    path: &Path,
    name: &str,
    text: &str,
) -> anyhow::Result<(Vec<Annotation>, Vec<Invalid>)> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut push = |a: Annotation| ok.push(a);
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = r.headers()?.clone();
    let col = |n: &str| header.iter().position(|h| h == n);
    let (Some(id_col), Some(v_col)) = (col("pair_id"), col("verdict")) else {
        return Err(crate::UsageError::new(format!(
            "`{name}`: the header needs `pair_id` and `verdict` columns"
        ))
        .into());
    };
    let (c_col, a_col, l_col) = (col("corrected"), col("annotator"), col("new_label"));
    // A spreadsheet without an annotator column is one person: the
    // file's, so two such files are two reviewers.
    let default_annotator = path
        .file_stem()
        .map_or_else(|| "csv".to_string(), |s| s.to_string_lossy().into_owned());
    let mut last_line = 1;
    for rec in r.records() {
        // The line the record starts on, counting newlines inside
        // quoted fields.
        let line = match &rec {
            Ok(r) => r.position().map(|p| p.line()),
            Err(e) => e.position().map(|p| p.line()),
        }
        .unwrap_or(last_line + 1);
        last_line = line;
        let origin = format!("{name}:{line}");
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                bad.push(Invalid {
                    origin,
                    field: "(row)".into(),
                    problem: e.to_string(),
                });
                continue;
            }
        };
        let get = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let Some(verdict) = get(Some(v_col)) else {
            continue;
        };
        push(Annotation {
            pair_id: get(Some(id_col)).unwrap_or_default(),
            annotator: get(a_col).unwrap_or_else(|| default_annotator.clone()),
            verdict: verdict.to_lowercase(),
            corrected: get(c_col),
            label: get(l_col),
            queue: "csv".into(),
            source: String::new(),
            origin,
        });
    }
    Ok((ok, bad))
}

fn user(r: &Value) -> String {
    format!(
        "argilla:{}",
        opt_str(&r["user_id"]).unwrap_or_else(|| "unknown".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_text_marks_the_edit() {
        assert_eq!(
            diff_text("the cat sat", "the dog sat"),
            "the [-cat-] {+dog+} sat"
        );
    }

    #[test]
    fn csv_rows_name_their_line_and_unfilled_rows_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("decisions.csv");
        std::fs::write(
            &p,
            "pair_id,verdict,corrected,annotator\np1,accept,,ann\np2,,,\np3,Fix,Better text,bob\n",
        )
        .unwrap();
        let (ok, bad) = import(&p).unwrap();
        assert!(bad.is_empty());
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].verdict, "fix");
        assert!(
            ok[1].origin.ends_with("decisions.csv:4"),
            "{}",
            ok[1].origin
        );
    }
}
