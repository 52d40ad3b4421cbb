//! Parquet and JSONL inputs read the same examples as CSV.

use std::fs::File;

use polars::prelude::*;

use crate::support::{foil, pair_ids, sample};

#[test]
fn parquet_input_gives_the_same_pairs_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sample("questions.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let (mut ids, mut qs, mut ans, mut topics) = (vec![], vec![], vec![], vec![]);
    for rec in rdr.records() {
        let rec = rec.unwrap();
        ids.push(rec[0].to_string());
        qs.push(rec[1].to_string());
        ans.push(rec[2].to_string());
        topics.push(rec[3].to_string());
    }
    let n = ids.len();
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("id".into(), ids),
            Column::new("question".into(), qs),
            Column::new("answer".into(), ans),
            Column::new("topic".into(), topics),
            Column::new("year".into(), (0..n as i64).collect::<Vec<_>>()),
        ],
    )
    .unwrap();
    let pq = dir.path().join("questions.parquet");
    ParquetWriter::new(File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();

    let run = |input: &std::path::Path, out: &std::path::Path| {
        foil()
            .args([
                "generate",
                input.to_str().unwrap(),
                "--task",
                "question",
                "--id-field",
                "id",
                "--no-similarity",
                "--quiet",
                "--out",
            ])
            .arg(out)
            .assert()
            .success();
        pair_ids(out)
    };
    let from_parquet = run(&pq, &dir.path().join("a"));
    let from_csv = run(&sample("questions.csv"), &dir.path().join("b"));
    assert!(!from_parquet.is_empty());
    assert_eq!(from_parquet, from_csv);
    // A non-string passthrough column survives as text.
    let rows = crate::support::read_rows(&dir.path().join("a"), "shards");
    assert!(rows[0]["year"].is_string());
}
