//! Pairs mode over real contrast sets (tests/fixtures/contrast-real, copied
//! from ../shared/data/contrast-real with their licenses): no generation,
//! the given edits go through filters, dedup and sink.

use crate::support::{assert_funnel_adds_up, fixture, foil, manifest, read_rows, write_jsonl};

const FILES: &[(&str, &str)] = &[
    ("creak_contrast.jsonl", "claim"),
    ("cad_nli.jsonl", "text"),
    ("scone.jsonl", "text"),
    ("cococon.jsonl", "caption"),
    ("videocon_prompt_exemplars.jsonl", "caption"),
    ("tailor_ud.jsonl", "text"),
    ("tailor_ud_invalid.jsonl", "text"),
];

#[test]
fn pairs_mode_over_every_real_contrast_file_has_a_funnel_that_adds_up() {
    for (file, task) in FILES {
        let out = tempfile::tempdir().unwrap();
        let input = fixture(&format!("contrast-real/{file}"));
        let lines = std::fs::read_to_string(&input)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
        foil()
            .args(["generate", input.to_str().unwrap(), "--task", task, "--out"])
            .arg(out.path())
            .args([
                "--id-field",
                "id",
                "--text-field",
                "original",
                "--label-field",
                "original_label",
            ])
            .args([
                "--edited-field",
                "edited",
                "--edited-label-field",
                "edited_label",
                "--edit-type-field",
                "edit_type",
            ])
            .args(["--concurrency", "4", "--quiet"])
            .assert()
            .success();
        let m = manifest(out.path());
        assert_eq!(m["status"], "complete", "{file}");
        assert_eq!(m["pairs_mode"], true);
        assert_funnel_adds_up(&m);
        assert_eq!(
            m["funnel"][0]["in"].as_u64(),
            Some(lines),
            "{file}: every line read"
        );
        assert!(
            m["funnel"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["stage"] != "generate"),
            "{file}: pairs mode skips generation"
        );
        let accepted = m["counts"]["accepted"].as_u64().unwrap();
        let rejected = m["counts"]["rejected"].as_u64().unwrap();
        assert_eq!(
            accepted + rejected,
            lines,
            "{file}: each pair accepted or rejected"
        );
        assert!(
            accepted > 0,
            "{file}: real minimal edits pass the default filters"
        );
        let rows = read_rows(out.path(), "shards");
        assert_eq!(rows.len() as u64, accepted);
        for r in &rows {
            assert_eq!(r["generator"], "given");
            assert!(r["similarity"].as_f64().is_some());
            assert!(r["word_edits"].as_u64().unwrap() > 0);
        }
        // Unknown columns pass through (source, task, extra).
        assert!(rows[0].contains_key("extra"), "{file}: passthrough column");
        let rejects = read_rows(out.path(), "rejected_shards");
        assert_eq!(rejects.len() as u64, rejected);
        for r in &rejects {
            assert!(r["reject_stage"].is_string() && r["reject_reason"].is_string());
        }
    }
}

#[test]
fn creak_pairs_keep_their_labels_and_flip() {
    let out = tempfile::tempdir().unwrap();
    foil()
        .args(["run", "pipelines/creak-pairs.toml", "--out"])
        .arg(out.path())
        .arg("--quiet")
        .current_dir(crate::support::repo())
        .assert()
        .success();
    let rows = read_rows(out.path(), "shards");
    assert!(
        rows.len() > 100,
        "most CREAK pairs are minimal edits: {}",
        rows.len()
    );
    for r in rows {
        assert_ne!(r["original_label"], r["edited_label"]);
        assert_eq!(r["relation"], "flip");
    }
}

/// Pairs mode with an edited premise as well as an edited hypothesis: the
/// measure runs on the field that changed, the shards say which one, and
/// carry the edited premise and the operations.
#[test]
fn an_edited_premise_is_measured_on_the_premise_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("nli.jsonl");
    let premise = "A man with a beard is talking on the cellphone and standing next to \
                   someone who is lying down on the street.";
    let hypothesis = "A man is prone on the street while another man stands next to him.";
    write_jsonl(
        &input,
        &[
            serde_json::json!({"id": "p", "premise": premise, "hypothesis": hypothesis,
                "label": "entailment", "new_label": "contradiction",
                "new_premise": premise.replace("lying down", "sitting"),
                "new_hypothesis": hypothesis}),
            serde_json::json!({"id": "h", "premise": premise, "hypothesis": hypothesis,
                "label": "entailment", "new_label": "neutral",
                "new_premise": premise,
                "new_hypothesis": "A man is prone on the street."}),
            // Both fields edited, each by a swap of two words.
            serde_json::json!({"id": "both", "premise": "the man in the red shirt greets the woman",
                "hypothesis": "the man greets the woman", "label": "entailment",
                "new_label": "entailment",
                "new_premise": "the woman in the red shirt greets the man",
                "new_hypothesis": "the woman greets the man"}),
        ],
    );
    let out = d.path().join("out");
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "nli",
            "--out",
        ])
        .arg(&out)
        .args(["--id-field", "id", "--field", "premise=premise"])
        .args([
            "--text-field",
            "hypothesis",
            "--edited-field",
            "new_hypothesis",
        ])
        .args(["--edited-field", "premise=new_premise"])
        .args([
            "--edited-label-field",
            "new_label",
            "--no-similarity",
            "--quiet",
        ])
        .assert()
        .success();
    let rows = read_rows(&out, "shards");
    let by_id = |id: &str| {
        rows.iter()
            .find(|r| r["source_id"] == id)
            .unwrap_or_else(|| panic!("{id} accepted: {rows:?}"))
    };
    let p = by_id("p");
    assert_eq!(p["changed_fields"], "premise");
    assert_eq!(p["edit_ops"], 1);
    assert_eq!(p["edited"], hypothesis, "the hypothesis is unchanged");
    assert!(
        p["edited_context"]
            .as_str()
            .unwrap()
            .contains("who is sitting on"),
        "{p:?}"
    );
    let spans: Vec<serde_json::Value> =
        serde_json::from_str(p["edit_spans"].as_str().unwrap()).unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["field"], "premise");
    assert_eq!(spans[0]["from"], "lying down");
    assert_eq!(spans[0]["to"], "sitting");
    let h = by_id("h");
    assert_eq!(h["changed_fields"], "text");
    assert!(h["edited_context"].is_null());
    let both = by_id("both");
    assert_eq!(both["changed_fields"], "text,premise");
    assert_eq!(both["edit_ops"], 2, "one swap per field");
    assert_eq!(both["relation"], "invariant");
    // Two edits of one premise are two pairs.
    assert_ne!(p["pair_id"], h["pair_id"]);
    // Reviewers see the edited premise and the operations too.
    let queue = d.path().join("queue.jsonl");
    foil()
        .args(["review", "export"])
        .arg(&out)
        .args(["--format", "jsonl", "--out"])
        .arg(&queue)
        .assert()
        .success();
    let exported: Vec<serde_json::Value> = std::fs::read_to_string(&queue)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = exported
        .iter()
        .find(|r| r["pair_id"] == p["pair_id"])
        .expect("the premise edit is in the queue");
    assert_eq!(row["changed_fields"], "premise");
    assert!(row["edited_context"].as_str().unwrap().contains("sitting"));
    assert!(row["edit_spans"].as_str().unwrap().contains("lying down"));
}

/// Broken edits with a flipped label are rejected, each under its own
/// reason, while the real edit of the same claim is kept.
#[test]
fn broken_edits_are_rejected_by_name() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("claims.jsonl");
    let original = "Popeye is famous for eating spinach to get strong.";
    let cases = [
        (
            "real",
            "Popeye is famous for eating broccoli to get strong.",
        ),
        ("no_op", "popeye is famous for eating spinach to get strong"),
        ("truncated", "Popeye is famous for eating"),
        (
            "scrambled",
            "spinach eating for strong famous Popeye to is get",
        ),
        ("duplicated_text", &format!("{original} {original}")),
        (
            "unrelated_text",
            "The Eiffel Tower stands in the center of Paris.",
        ),
    ];
    let rows: Vec<serde_json::Value> = cases
        .iter()
        .map(|(id, edited)| {
            serde_json::json!({"id": id, "claim": original, "label": "true",
                "edited": edited, "edited_label": "false"})
        })
        .collect();
    write_jsonl(&input, &rows);
    let out = d.path().join("out");
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "claim",
            "--out",
        ])
        .arg(&out)
        .args(["--id-field", "id", "--edited-field", "edited"])
        .args(["--edited-label-field", "edited_label", "--quiet"])
        .args(["--no-similarity", "--no-near-dedup"])
        .assert()
        .success();
    let kept: Vec<String> = read_rows(&out, "shards")
        .iter()
        .map(|r| r["source_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, vec!["real"]);
    for r in read_rows(&out, "rejected_shards") {
        assert_eq!(r["reject_stage"], "edit_distance");
        assert_eq!(r["reject_reason"], r["source_id"], "{r:?}");
    }
    let m = manifest(&out);
    assert_funnel_adds_up(&m);
}

/// BoolQ / ROPES style: only the passage is edited, the question stays;
/// the bounds apply to the passage at its own length.
#[test]
fn a_passage_edit_with_the_question_unchanged_is_a_pair() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("boolq.jsonl");
    let passage = "The Panama Canal is an artificial waterway in Panama that connects \
                   the Atlantic Ocean with the Pacific Ocean. The canal cuts across the \
                   Isthmus of Panama and is a conduit for maritime trade. Canal locks at \
                   each end lift ships up to Gatun Lake, an artificial lake created to \
                   reduce the amount of excavation work required for the canal, and then \
                   lower the ships at the other end. The original locks are 33.5 metres \
                   wide. A third, wider lane of locks was constructed between September \
                   2007 and May 2016.";
    let edited = passage
        .replace(
            "connects the Atlantic Ocean with",
            "separates the Atlantic Ocean from",
        )
        .replace("33.5 metres wide", "55 metres wide");
    write_jsonl(
        &input,
        &[
            serde_json::json!({"id": "q1", "question": "does the panama canal connect two oceans",
                "passage": passage, "answer": "true", "new_passage": edited,
                "new_answer": "false"}),
            // The passage cut in half: a truncation, whatever the question.
            serde_json::json!({"id": "q2", "question": "does the panama canal connect two oceans",
                "passage": passage, "answer": "true",
                "new_passage": passage.split_whitespace().take(40).collect::<Vec<_>>().join(" "),
                "new_answer": "false"}),
        ],
    );
    let out = d.path().join("out");
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "question",
            "--out",
        ])
        .arg(&out)
        .args(["--id-field", "id", "--label-field", "answer"])
        .args([
            "--field",
            "context=passage",
            "--edited-field",
            "context=new_passage",
        ])
        .args([
            "--edited-label-field",
            "new_answer",
            "--no-similarity",
            "--quiet",
        ])
        .assert()
        .success();
    let rows = read_rows(&out, "shards");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["source_id"], "q1");
    assert_eq!(rows[0]["changed_fields"], "context");
    // "connects" → "separates", "with" → "from", "33.5" → "55".
    assert_eq!(rows[0]["edit_ops"], 3);
    assert_eq!(rows[0]["edited"], rows[0]["original"], "the question stays");
    let rejected = read_rows(&out, "rejected_shards");
    assert_eq!(rejected[0]["reject_reason"], "truncated");
}
