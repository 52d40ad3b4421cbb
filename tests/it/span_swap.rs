//! COCO-CON style span swap on the real COCO-CON sample
//! (tests/fixtures/contrast-real/cococon.jsonl): each caption names the
//! span its VQA answer sits in and an alternative; foil swaps it without a
//! model and keeps the span pair as provenance.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{fixture, foil, manifest, read_rows};

/// Whether `span` occurs in `text` as whole words (case-insensitive).
fn has_words(text: &str, span: &str) -> bool {
    let words = |x: &str| -> Vec<String> {
        x.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (t, s) = (words(text), words(span));
    !s.is_empty() && t.windows(s.len()).any(|w| w == s.as_slice())
}

#[test]
fn captions_with_a_span_and_an_alternative_get_the_swap() {
    let input = fixture("contrast-real/cococon.jsonl");
    let rows: Vec<Value> = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "caption",
            "--out",
        ])
        .arg(&out)
        .args(["--id-field", "id", "--text-field", "original"])
        .args(["--label-field", "original_label"])
        .args([
            "--field",
            "span=original_label",
            "--field",
            "alternative=edited_label",
        ])
        .args(["--ops", "number", "--no-similarity", "--quiet"])
        .assert()
        .success();
    let m = manifest(&out);
    assert_eq!(m["status"], "complete");

    let mut swaps: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for r in read_rows(&out, "shards")
        .into_iter()
        .chain(read_rows(&out, "rejected_shards"))
    {
        if r["edit_type"] == "span_swap" {
            assert_eq!(r["generator"], "span_swap");
            swaps.insert(r["source_id"].as_str().unwrap().to_string(), r);
        }
    }
    let expected: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            has_words(
                r["original"].as_str().unwrap(),
                r["original_label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        swaps.len(),
        expected.len(),
        "one swap per caption holding its span"
    );
    assert!(expected.len() > rows.len() / 2);

    let mut same_as_dataset = 0;
    for r in &expected {
        let s = &swaps[r["id"].as_str().unwrap()];
        assert_eq!(s["source_span"], r["original_label"]);
        assert_eq!(s["target_span"], r["edited_label"]);
        // The label was the span, so the alternative is the new label.
        assert_eq!(s["edited_label"], r["edited_label"]);
        let alt = r["edited_label"].as_str().unwrap();
        assert!(has_words(s["edited"].as_str().unwrap(), alt), "{s:?}");
        if s["edited"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(r["edited"].as_str().unwrap())
        {
            same_as_dataset += 1;
        }
    }
    println!(
        "span swap: {} of {} captions hold their span; {same_as_dataset} swaps equal COCO-CON's own edit",
        expected.len(),
        rows.len()
    );
    assert!(same_as_dataset * 10 >= expected.len() * 8);
}
