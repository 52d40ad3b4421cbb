//! Bad input never disappears: each bad row of the fixtures in
//! tests/fixtures/bad-input/ lands in quarantine.jsonl with file, line and
//! field, the funnel counts it, and good rows still make pairs.

use std::fs::File;

use polars::prelude::*;
use serde_json::Value;

use crate::support::{assert_funnel_adds_up, fixture, foil, manifest, read_rows};

fn quarantine(out: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("quarantine.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run(input: &std::path::Path, task: &str, out: &std::path::Path) {
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            task,
            "--id-field",
            "id",
        ])
        .args([
            // Every operation, so the few good rows make pairs.
            "--ops",
            "negation,antonym,number,quantifier,comparative,temporal,gender",
            "--no-similarity",
            "--max-field-bytes",
            "4096",
            "--quiet",
            "--out",
        ])
        .arg(out)
        .assert()
        .code(0);
}

/// (line, reason code, field) of one expected quarantine entry.
type Expected = (u64, &'static str, Option<&'static str>);

#[test]
fn every_bad_row_is_quarantined_with_its_line_and_field() {
    let cases: [(&str, &str, &[Expected]); 2] = [
        (
            "bad-input/questions.csv",
            "question",
            &[
                (3, "malformed_row", None),
                (4, "empty_field", Some("question")),
                (5, "invalid_utf8", Some("question")),
                (6, "field_too_large", Some("question")),
                (8, "malformed_row", None),
            ],
        ),
        (
            "bad-input/texts.jsonl",
            "text",
            &[
                (2, "malformed_row", None),
                (3, "malformed_row", None),
                (4, "missing_field", Some("text")),
                (6, "invalid_utf8", None),
                (7, "empty_field", Some("text")),
            ],
        ),
    ];
    for (file, task, expected) in cases {
        let out = tempfile::tempdir().unwrap();
        run(&fixture(file), task, out.path());
        let q = quarantine(out.path());
        let got: Vec<(u64, String, Option<String>)> = q
            .iter()
            .map(|b| {
                (
                    b["line"].as_u64().unwrap(),
                    b["code"].as_str().unwrap().to_string(),
                    b["field"].as_str().map(str::to_string),
                )
            })
            .collect();
        let want: Vec<(u64, String, Option<String>)> = expected
            .iter()
            .map(|(l, c, f)| (*l, c.to_string(), f.map(str::to_string)))
            .collect();
        assert_eq!(got, want, "{file}");
        for b in &q {
            assert!(
                b["file"]
                    .as_str()
                    .unwrap()
                    .ends_with(file.split('/').nth(1).unwrap())
            );
            assert!(!b["reason"].as_str().unwrap().is_empty());
        }
        let m = manifest(out.path());
        assert_eq!(
            m["counts"]["quarantined"].as_u64(),
            Some(expected.len() as u64),
            "{file}"
        );
        assert_funnel_adds_up(&m);
        assert!(
            !read_rows(out.path(), "shards").is_empty(),
            "{file}: good rows still make pairs"
        );
    }
}

#[test]
fn a_parquet_row_with_a_null_required_field_is_quarantined_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let mut df = DataFrame::new(
        3,
        vec![
            Column::new("id".into(), vec!["a", "b", "c"]),
            Column::new(
                "text".into(),
                vec![Some("The sky is blue."), None, Some("All cats are black.")],
            ),
        ],
    )
    .unwrap();
    ParquetWriter::new(File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    let out = dir.path().join("out");
    run(&path, "text", &out);
    let q = quarantine(&out);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["line"], 2, "row 2 of the Parquet file");
    assert_eq!(q[0]["field"], "text");
    assert_eq!(q[0]["code"], "missing_field");
}
