//! The command line as a user sees it: output snapshots (paths and times
//! filtered), exit codes, and errors that name file, line and field.

use std::path::Path;

use crate::support::{assert_funnel_adds_up, foil, manifest, read_rows, sample};

/// Snapshot settings: temp paths and timings vary from run to run.
fn filtered(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex::escape(&dir.display().to_string()), "[OUT]");
    s.add_filter(
        &regex::escape(&crate::support::repo().display().to_string()),
        "[REPO]",
    );
    s.add_filter(r"\d+\.\d+s\b", "[TIME]");
    s.add_filter(r"\d+\.\d+(ms|µs)", "[TIME]");
    // `--precision auto` is int8 on CPUs with VNNI, f32 on others.
    s.add_filter(r"local, candle, (int8|f32),", "local, candle, [PRECISION],");
    s
}

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

#[test]
fn generate_on_sample_questions_writes_a_contrast_set_with_no_endpoint() {
    let out = tempfile::tempdir().unwrap();
    let run = foil()
        .args([
            "generate",
            sample("questions.csv").to_str().unwrap(),
            "--task",
            "question",
            "--id-field",
            "id",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    filtered(out.path()).bind(|| insta::assert_snapshot!("generate_questions", stdout(&run)));
    let m = manifest(out.path());
    assert_funnel_adds_up(&m);
    assert_eq!(m["schema_version"], 1);
    assert_eq!(m["config"]["task"], "question");
    assert!(
        m["models"]["embedder"]
            .as_str()
            .unwrap()
            .contains("all-MiniLM-L6-v2")
    );
    let rows = read_rows(out.path(), "shards");
    assert!(
        rows.len() >= 10,
        "at least 10 accepted pairs, got {}",
        rows.len()
    );
    for r in &rows {
        // A question pair carries its new answer, or says it needs one.
        assert!(
            r["edited_label"].is_string() || r["needs_review"].is_string(),
            "{r:?}"
        );
        if r["original_label"] == "yes" {
            assert_eq!(r["edited_label"], "no", "negated yes/no question: {r:?}");
        }
        assert!(r["generator"].as_str().unwrap().starts_with("rules:"));
        assert_ne!(r["original"], r["edited"]);
        let sim = r["similarity"].as_f64().unwrap();
        assert!(
            (0.35..=1.0).contains(&sim),
            "similarity {sim} outside the task band"
        );
        // Rules edits of short questions: within the task's floor of 3
        // operations, and actually edits.
        let ops = r["edit_ops"].as_u64().unwrap();
        assert!((1..=3).contains(&ops), "{ops} edit operations");
        assert!(r["changed_fields"] == "text");
        assert_eq!(
            r["topic"].as_str().map(|t| !t.is_empty()),
            Some(true),
            "passthrough column"
        );
    }
    // Invariance probes keep their label; flips of a free-text answer do
    // not guess one but ask for it.
    for r in rows.iter().filter(|r| r["relation"] == "invariant") {
        assert_eq!(r["edited_label"], r["original_label"]);
    }
    for r in rows.iter().filter(|r| r["relation"] == "flip") {
        let yes_no = r["original_label"] == "yes" || r["original_label"] == "no";
        assert_eq!(r["edited_label"].is_null(), !yes_no, "{r:?}");
        assert_eq!(r["needs_review"].is_string(), !yes_no, "{r:?}");
    }
    // Every pair_id is unique.
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["pair_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rows.len());

    let inspect = foil()
        .arg("inspect")
        .arg(out.path())
        .args(["--samples", "3"])
        .assert()
        .success();
    filtered(out.path()).bind(|| insta::assert_snapshot!("inspect_questions", stdout(&inspect)));
}

#[test]
fn json_summary_is_machine_readable() {
    let out = tempfile::tempdir().unwrap();
    let run = foil()
        .args([
            "generate",
            sample("claims.jsonl").to_str().unwrap(),
            "--task",
            "claim",
            "--id-field",
            "id",
            "--json",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&run)).expect("stdout is one JSON document");
    assert_eq!(v["status"], "complete");
    assert_eq!(v["counts"], manifest(out.path())["counts"]);
    // Claims flip their labels with the edit.
    for r in read_rows(out.path(), "shards")
        .iter()
        .filter(|r| r["relation"] == "flip")
    {
        let (a, b) = (
            r["original_label"].as_str().unwrap(),
            r["edited_label"].as_str().unwrap(),
        );
        assert_ne!(a, b);
    }
    let inspect = foil()
        .arg("inspect")
        .arg(out.path())
        .arg("--json")
        .assert()
        .success();
    let iv: serde_json::Value = serde_json::from_str(&stdout(&inspect)).unwrap();
    assert_eq!(iv["counts"], v["counts"]);
    assert!(!iv["samples"].as_array().unwrap().is_empty());
}

#[test]
fn unknown_pipeline_key_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "task = \"question\"\n[source]\npath = \"q.csv\"\n[sink]\nrows_per_shrad = 10\n",
    )
    .unwrap();
    for verb in ["validate", "run"] {
        let run = foil().arg(verb).arg(&file).assert().code(2);
        let err = stderr(&run);
        assert!(err.contains("rows_per_shrad"), "{verb}: {err}");
        assert!(err.contains("bad.toml"), "{verb}: {err}");
    }
    filtered(dir.path()).bind(|| {
        let run = foil().arg("validate").arg(&file).assert().code(2);
        insta::assert_snapshot!("unknown_key", stderr(&run));
    });
}

#[test]
fn missing_column_exits_2_naming_file_and_column() {
    let out = tempfile::tempdir().unwrap();
    let run = foil()
        .args([
            "generate",
            sample("questions.csv").to_str().unwrap(),
            "--task",
            "question",
            "--text-field",
            "query",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .code(2);
    let err = stderr(&run);
    assert!(
        err.contains("questions.csv") && err.contains("`query`"),
        "{err}"
    );
    assert!(
        err.contains("question, answer"),
        "lists the columns there are: {err}"
    );
    assert!(
        err.contains("--text-field COLUMN"),
        "says how to map it: {err}"
    );
    // A field with no flag of its own is mapped with --field.
    let run = foil()
        .args([
            "generate",
            sample("nli.csv").to_str().unwrap(),
            "--task",
            "nli",
        ])
        .args(["--field", "premise=sentence1", "--out"])
        .arg(out.path())
        .assert()
        .code(2);
    let err = stderr(&run);
    assert!(
        err.contains("`sentence1`") && err.contains("--field premise=COLUMN"),
        "{err}"
    );
}

#[test]
fn malformed_csv_rows_are_quarantined_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("q.csv");
    std::fs::write(
        &input,
        "id,question,answer\n\
         1,Who wrote the play Hamlet?,Shakespeare\n\
         2,Which ocean is the largest?,Pacific,EXTRA\n\
         3,,Nobody\n\
         4,Which planet is the largest?,Jupiter\n",
    )
    .unwrap();
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.extend_from_slice(b"5,Is it \xff hot?,yes\n");
    std::fs::write(&input, bytes).unwrap();
    let out = dir.path().join("out");
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "question",
            "--id-field",
            "id",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let q = std::fs::read_to_string(out.join("quarantine.jsonl")).unwrap();
    let bad: Vec<serde_json::Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bad.len(), 3, "{q}");
    assert_eq!(bad[0]["line"], 3);
    assert_eq!(bad[0]["code"], "malformed_row");
    assert!(bad[0]["file"].as_str().unwrap().ends_with("q.csv"));
    assert_eq!(bad[1]["line"], 4);
    assert_eq!(bad[1]["field"], "question");
    assert_eq!(bad[1]["code"], "empty_field");
    assert_eq!(bad[2]["line"], 6);
    assert_eq!(bad[2]["code"], "invalid_utf8");
    assert_eq!(bad[2]["field"], "question");
    let m = manifest(out.as_path());
    assert_eq!(
        m["counts"]["quarantined"], 3,
        "the funnel counts quarantined rows"
    );
    assert_eq!(m["funnel"][0]["in"], 5);
    assert_eq!(m["funnel"][0]["out"], 2);
    assert_funnel_adds_up(&m);
}

#[test]
fn too_many_bad_rows_fail_the_run_but_keep_what_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.jsonl");
    let mut text = String::from("{\"id\": \"a\", \"text\": \"The sky is blue.\"}\n");
    for i in 0..5 {
        text.push_str(&format!("{{\"id\": \"b{i}\", \"txt\": \"typo\"}}\n"));
    }
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let run = foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "text",
            "--id-field",
            "id",
            "--max-bad-rows",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(1);
    let err = stderr(&run);
    assert!(err.contains("more than 2 bad input rows"), "{err}");
    assert!(
        err.contains("t.jsonl:2") && err.contains("`text`"),
        "names file, line and field: {err}"
    );
    let m = manifest(&out);
    assert!(m["status"].as_str().unwrap().starts_with("failed"));
    assert!(
        m["counts"]["accepted"].as_u64().unwrap() > 0,
        "the good row's pairs are kept"
    );
}

#[test]
fn validate_accepts_a_good_pipeline() {
    let run = foil()
        .args(["validate", "pipelines/question.toml"])
        .current_dir(crate::support::repo())
        .assert()
        .success();
    insta::assert_snapshot!("validate_question", stdout(&run));
}

#[test]
fn bad_usage_exits_2() {
    foil().args(["generate", "x.csv"]).assert().code(2);
    foil()
        .args(["generate", "x.csv", "--task", "poetry", "--out", "o"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown task `poetry`"));
    let run = foil()
        .args(["generate", "missing.csv", "--task", "question", "--out"])
        .arg(tempfile::tempdir().unwrap().path())
        .assert()
        .code(2);
    assert!(stderr(&run).contains("missing.csv"));
}

#[test]
fn the_manifest_counts_accepted_pairs_per_edit_type() {
    let out = tempfile::tempdir().unwrap();
    foil()
        .args([
            "generate",
            sample("texts.jsonl").to_str().unwrap(),
            "--task",
            "text",
            "--id-field",
            "id",
            // More than the task's defaults, so several types apply.
            "--ops",
            "negation,antonym,number,quantifier,comparative,temporal,gender",
            "--quiet",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    let m = manifest(out.path());
    let mut expected = std::collections::BTreeMap::new();
    for r in read_rows(out.path(), "shards") {
        *expected
            .entry(r["edit_type"].as_str().unwrap().to_string())
            .or_insert(0u64) += 1;
    }
    let got: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(m["counts"]["accepted_by_edit_type"].clone()).unwrap();
    assert!(got.len() >= 3, "several rules operations apply: {got:?}");
    assert_eq!(got, expected);
}
