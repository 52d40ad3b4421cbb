//! `foil eval` on a hand-checkable contrast set, the spreadsheet and Argilla
//! review path (export, fill in, import, calibrate), and `foil report`
//! rendered in headless Chromium.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{foil, read_rows, repo};

/// Four contrast sets (claims, true/false), built in pairs mode:
/// s1: two edits, s2: two edits, s3: one edit, s4: one edit.
const ROWS: &[(&str, &str, &str, &str, &str, &str)] = &[
    // (id, original, label, edited, edited_label, edit_type)
    (
        "s1",
        "The sun is a star",
        "true",
        "The sun is not a star",
        "false",
        "negation",
    ),
    (
        "s1",
        "The sun is a star",
        "true",
        "The sun is a planet",
        "false",
        "lexical",
    ),
    (
        "s2",
        "Paris is in France",
        "true",
        "Paris is not in France",
        "false",
        "negation",
    ),
    (
        "s2",
        "Paris is in France",
        "true",
        "Paris is in Spain",
        "false",
        "lexical",
    ),
    (
        "s3",
        "Ice is hot",
        "false",
        "Ice is cold",
        "true",
        "lexical",
    ),
    ("s4", "Cats bark", "false", "Cats meow", "true", "lexical"),
];

fn contrast_set(dir: &Path) -> PathBuf {
    let input = dir.join("set.jsonl");
    let text: String = ROWS
        .iter()
        .map(|(id, o, l, e, el, t)| {
            format!(
                "{}\n",
                json!({"id": id, "claim": o, "label": l, "edited": e, "edited_label": el, "type": t})
            )
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let out = dir.join("set");
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "claim",
            "--out",
        ])
        .arg(&out)
        .args([
            "--id-field",
            "id",
            "--text-field",
            "claim",
            "--label-field",
            "label",
        ])
        .args([
            "--edited-field",
            "edited",
            "--edited-label-field",
            "edited_label",
        ])
        .args(["--edit-type-field", "type", "--no-similarity", "--quiet"])
        .args(["--max-word-edits", "3", "--max-edit-ratio", "1"])
        .assert()
        .success();
    assert_eq!(read_rows(&out, "shards").len(), 6, "every pair accepted");
    out
}

/// pair_id by edited text.
fn ids(out: &Path) -> BTreeMap<String, String> {
    read_rows(out, "shards")
        .into_iter()
        .map(|r| {
            (
                r["edited"].as_str().unwrap().to_string(),
                r["pair_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn eval_reproduces_contrast_consistency_by_hand() {
    let d = tempfile::tempdir().unwrap();
    let out = contrast_set(d.path());
    let id = ids(&out);
    // s1: all right (consistent). s2: the lexical edit wrong. s3: the
    // original wrong. s4: the edit's prediction missing (incomplete).
    let preds = [
        ("s1", "true"),
        (&id["The sun is not a star"], "false"),
        (&id["The sun is a planet"], "FALSE "),
        ("s2", "true"),
        (&id["Paris is not in France"], "false"),
        (&id["Paris is in Spain"], "true"),
        ("s3", "true"),
        (&id["Ice is cold"], "true"),
        ("s4", "false"),
        ("not-in-the-set", "true"),
    ];
    let pred_path = d.path().join("preds.jsonl");
    std::fs::write(
        &pred_path,
        preds
            .iter()
            .map(|(i, p)| format!("{}\n", json!({"id": i, "prediction": p})))
            .collect::<String>(),
    )
    .unwrap();
    let run = foil()
        .args(["eval", out.to_str().unwrap(), "--predictions"])
        .arg(&pred_path)
        .args(["--json", "--bootstrap", "200"])
        .assert()
        .success();
    let r: Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(r["contrast_sets"], 4);
    assert_eq!(r["complete_sets"], 3);
    assert_eq!(r["incomplete_sets"], 1);
    assert_eq!(r["missing_predictions"], 1);
    assert_eq!(r["missing_examples"][0], id["Cats meow"].as_str());
    assert_eq!(r["unused_predictions"], 1);
    let o = &r["overall"];
    assert_eq!(o["original_accuracy"]["value"], 2.0 / 3.0);
    assert_eq!(o["edit_accuracy"]["value"], 0.8);
    assert_eq!(o["edit_accuracy"]["n"], 5);
    assert_eq!(o["consistency"]["value"], 1.0 / 3.0);
    let (lo, hi) = (
        o["consistency"]["ci95"][0].as_f64().unwrap(),
        o["consistency"]["ci95"][1].as_f64().unwrap(),
    );
    assert!(lo <= 1.0 / 3.0 && 1.0 / 3.0 <= hi && lo >= 0.0 && hi <= 1.0);
    let neg = &r["by_edit_type"]["negation"];
    assert_eq!(neg["consistency"]["value"], 1.0);
    assert_eq!(neg["consistency"]["n"], 2);
    let lex = &r["by_edit_type"]["lexical"];
    assert_eq!(lex["consistency"]["value"], 1.0 / 3.0);
    assert_eq!(lex["edit_accuracy"]["value"], 2.0 / 3.0);
    assert_eq!(r["by_task"]["claim"]["consistency"]["value"], 1.0 / 3.0);

    // A bad line names file, line and field.
    std::fs::write(
        &pred_path,
        "{\"id\": \"s1\", \"prediction\": \"true\"}\n{\"id\": \"s2\"}\n",
    )
    .unwrap();
    foil()
        .args(["eval", out.to_str().unwrap(), "--predictions"])
        .arg(&pred_path)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "preds.jsonl:2: field `prediction` is missing",
        ));
}

#[test]
fn spreadsheet_and_argilla_decisions_come_back_and_calibrate_the_filters() {
    let d = tempfile::tempdir().unwrap();
    let out = contrast_set(d.path());
    let id = ids(&out);
    let csv_path = d.path().join("review.csv");
    foil()
        .args([
            "review",
            "export",
            out.to_str().unwrap(),
            "--format",
            "csv",
            "--out",
        ])
        .arg(&csv_path)
        .assert()
        .success();
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(text.starts_with("pair_id,edit_type,original,edited,diff"));
    assert!(text.contains("The sun is {+not+} a star"), "{text}");
    // A reviewer fills in the verdict column (and one bad row).
    let mut filled = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            filled.push_str(line);
        } else if line.contains("Spain") {
            filled.push_str(&format!(
                "{},reject,,ann1",
                line.strip_suffix(",,,").unwrap()
            ));
        } else if line.contains("planet") {
            filled.push_str(&format!(
                "{},maybe,,ann1",
                line.strip_suffix(",,,").unwrap()
            ));
        } else {
            filled.push_str(&format!(
                "{},accept,,ann1",
                line.strip_suffix(",,,").unwrap()
            ));
        }
        filled.push('\n');
    }
    std::fs::write(&csv_path, filled).unwrap();
    foil()
        .args(["review", "import", out.to_str().unwrap()])
        .arg(&csv_path)
        .assert()
        .code(3)
        .stderr(predicates::str::contains("review.csv:"))
        .stderr(predicates::str::contains("`maybe` is not one of"));

    // A second person in Argilla: records with responses.
    let argilla_dir = d.path().join("argilla");
    foil()
        .args([
            "review",
            "export",
            out.to_str().unwrap(),
            "--format",
            "argilla",
            "--out",
        ])
        .arg(&argilla_dir)
        .assert()
        .success();
    let records: Vec<Value> = std::fs::read_to_string(argilla_dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 6);
    assert_eq!(records[0]["suggestions"][0]["question_name"], "verdict");
    let answered: String = records
        .iter()
        .map(|r| {
            let edited = r["fields"]["edited"].as_str().unwrap();
            let verdict = if edited == "Paris is in Spain" || edited.contains(" not ") {
                "accept"
            } else {
                "reject"
            };
            let mut v = r.clone();
            v["responses"] =
                json!({"verdict": [{"value": verdict, "user_id": "u2", "status": "submitted"}]});
            format!("{v}\n")
        })
        .collect();
    let answered_path = d.path().join("argilla-export.jsonl");
    std::fs::write(&answered_path, answered).unwrap();
    let run = foil()
        .args(["review", "import", out.to_str().unwrap()])
        .arg(&answered_path)
        .arg("--json")
        .assert()
        .success();
    let summary: Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    // 5 valid CSV annotations kept + 6 Argilla ones.
    assert_eq!(summary["agreement"]["annotations"], 11);
    assert_eq!(summary["agreement"]["annotators"], 2);
    assert_eq!(summary["agreement"]["pairs_multiply_reviewed"], 5);
    let reviewed = read_reviewed(&out);
    // Spain: reject (csv) vs accept (argilla): a tie, decided as reject.
    assert_eq!(reviewed[&id["Paris is in Spain"]]["verdict"], "reject");
    assert_eq!(reviewed[&id["Paris is in Spain"]]["agreement"], 0.5);
    // planet: only Argilla's reject counts (the CSV row was invalid).
    assert_eq!(reviewed[&id["The sun is a planet"]]["verdict"], "reject");

    // Both accepted the negations; nothing else was accepted by both.
    assert_eq!(reviewed[&id["The sun is not a star"]]["verdict"], "accept");

    // Good pairs: the two negations (edit ratios 0.2 and 0.25). Accepting
    // edit_ratio <= 0.25 keeps both at precision 2/4.
    let run = foil()
        .args(["calibrate", out.to_str().unwrap(), "--json"])
        .args(["--target-precision", "0.5"])
        .assert()
        .success();
    let c: Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(c["reviewed_pairs"], 6);
    let ratio = c["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["score"] == "edit_ratio (max)")
        .unwrap();
    assert_eq!(ratio["good"], 2);
    assert_eq!(ratio["sweep"].as_array().unwrap().len(), 4);
    let best = &ratio["suggested"];
    assert_eq!(best["threshold"], 0.25);
    assert_eq!(best["good_accepted"], 2);
    assert_eq!(best["precision"], 0.5);
    assert_eq!(best["recall"], 1.0);
    // The edit measure's bounds are calibrated the same way: the negations
    // keep all their content words, the word swaps ("star" → "planet")
    // half, so `min_related_share` 1.0 keeps both good pairs and nothing
    // else.
    let related = c["scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["score"] == "related_share (min)")
        .unwrap();
    assert_eq!(related["suggested"]["threshold"], 1.0);
    assert_eq!(related["suggested"]["precision"], 1.0);
    assert_eq!(related["suggested"]["recall"], 1.0);
    assert!(
        c["scores"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["score"] == "edit_ops per 100 words (max)" && s["reviewed"] == 6)
    );
    // One embedder scored the run: no note. Scores from two (cascade
    // scoring near the band's edges) get one.
    let calibrate = || {
        let run = foil()
            .args(["calibrate", out.to_str().unwrap()])
            .assert()
            .success();
        String::from_utf8_lossy(&run.get_output().stderr).into_owned()
    };
    assert!(!calibrate().contains("embedders"), "{}", calibrate());
    let path = out.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["counts"]["similarity_scored_by"] = serde_json::json!({"distilled": 4, "model": 2});
    std::fs::write(&path, m.to_string()).unwrap();
    let note = calibrate();
    assert!(
        note.contains("2 embedders") && note.contains("--scoring model"),
        "{note}"
    );
}

fn read_reviewed(dir: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    use polars::prelude::{ParquetReader, SerReader};
    let f = std::fs::File::open(dir.join("reviewed/part-00000.parquet")).unwrap();
    let df = ParquetReader::new(f).finish().unwrap();
    crate::support::frame_rows(&df)
        .into_iter()
        .map(|r| (r["pair_id"].as_str().unwrap().to_string(), r))
        .collect()
}

/// The report in headless Chromium: a screenshot that is not blank, the
/// page's script ran to its end, and no console errors.
#[test]
fn the_report_renders_in_headless_chromium() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("q");
    foil()
        .args(["generate"])
        .arg(repo().join("data/samples/questions.csv"))
        .args(["--task", "question", "--id-field", "id", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .success();
    foil().args(["report"]).arg(&out).assert().success();
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Yield funnel") && html.contains("<svg") && html.contains("<ins>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched"
    );

    let shot = d.path().join("shot.png");
    let report = crate::support::chromium(&page, &shot);
    assert!(
        report.dom.contains(r#"data-ready="1""#),
        "the page's script did not finish"
    );
    assert!(
        report.console_errors.is_empty(),
        "{:?}",
        report.console_errors
    );
    let (distinct, dark_fraction) = crate::support::png_stats(&shot);
    assert!(distinct > 8, "screenshot looks blank: {distinct} colours");
    assert!(dark_fraction > 0.001, "no text drawn: {dark_fraction}");

    // The checker itself catches a broken page.
    let broken = d.path().join("broken.html");
    std::fs::write(
        &broken,
        "<html><body><p>x</p><script>nosuch();</script></body></html>",
    )
    .unwrap();
    let b = crate::support::chromium(&broken, &d.path().join("b.png"));
    assert!(!b.console_errors.is_empty(), "a thrown error must be seen");
}

/// Rules-made question edits without their new answer: exported with an
/// empty `new_label` that reviewers fill; an accept without one is refused
/// with file, line and field; the answers come back into `reviewed/` and
/// `foil eval` scores only the pairs that have one, saying how many it
/// skipped.
#[test]
fn reviewers_answers_come_back_and_eval_scores_only_answered_pairs() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("q.csv");
    std::fs::write(
        &input,
        "id,question,answer\n\
         q1,Which planet is the largest in the solar system?,Jupiter\n\
         q2,Which river is the longest in Europe?,Volga\n\
         q3,Which is the hottest desert in the world?,Sahara\n",
    )
    .unwrap();
    let out = d.path().join("out");
    foil()
        .args(["generate", input.to_str().unwrap(), "--task", "question"])
        .args([
            "--id-field",
            "id",
            "--ops",
            "comparative",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let rows = read_rows(&out, "shards");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["edited_label"].is_null()
        && r["needs_review"].as_str().unwrap().starts_with("answer")));

    let csv_path = d.path().join("answers.csv");
    foil()
        .args([
            "review",
            "export",
            out.to_str().unwrap(),
            "--format",
            "csv",
            "--out",
        ])
        .arg(&csv_path)
        .assert()
        .success();
    // Columns: … new_label, verdict, corrected, annotator.
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("new_label,verdict,corrected,annotator")
    );
    let mut filled = String::new();
    let mut line_of_q3 = 0;
    for (i, line) in text.lines().enumerate() {
        let row = line.strip_suffix(",,,,");
        let new = match row {
            None => line.to_string(),
            Some(r) if r.contains("smallest in the solar") => format!("{r},Mercury,accept,,ann"),
            Some(r) if r.contains("shortest in Europe") => format!("{r},,reject,,ann"),
            Some(r) => {
                line_of_q3 = i + 1;
                format!("{r},,accept,,ann")
            }
        };
        filled.push_str(&new);
        filled.push('\n');
    }
    std::fs::write(&csv_path, filled).unwrap();
    let run = foil()
        .args(["review", "import", out.to_str().unwrap()])
        .arg(&csv_path)
        .assert()
        .code(3);
    let err = String::from_utf8_lossy(&run.get_output().stderr).to_string();
    assert!(
        err.contains(&format!("answers.csv:{line_of_q3}")) && err.contains("new_label"),
        "{err}"
    );
    let reviewed = read_reviewed(&out);
    let planet = reviewed
        .values()
        .find(|r| {
            r["edited"]
                .as_str()
                .unwrap()
                .contains("smallest in the solar")
        })
        .unwrap();
    assert_eq!(planet["edited_label"], "Mercury");
    assert_eq!(reviewed.len(), 2, "the refused accept is not a decision");

    // Predictions for everything; only the answered edit and the originals
    // have gold labels.
    let preds = d.path().join("preds.jsonl");
    let mut p = String::new();
    for r in &rows {
        p.push_str(&format!(
            "{}\n",
            json!({"id": r["pair_id"], "prediction": "Mercury"})
        ));
        p.push_str(&format!(
            "{}\n",
            json!({"id": r["source_id"], "prediction": "x"})
        ));
    }
    std::fs::write(&preds, p).unwrap();
    let run = foil()
        .args(["eval", out.to_str().unwrap(), "--predictions"])
        .arg(&preds)
        .arg("--json")
        .assert()
        .success();
    let r: Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
    assert_eq!(r["pairs_without_gold"], 2, "{r}");
    assert_eq!(r["overall"]["edit_accuracy"]["n"], 1, "{r}");
    assert_eq!(r["overall"]["edit_accuracy"]["value"], 1.0, "{r}");

    // The refused pair answered in Argilla: the answer joins the others.
    let argilla = d.path().join("argilla");
    foil()
        .args([
            "review",
            "export",
            out.to_str().unwrap(),
            "--format",
            "argilla",
            "--out",
        ])
        .arg(&argilla)
        .assert()
        .success();
    let settings = std::fs::read_to_string(argilla.join("settings.json")).unwrap();
    assert!(settings.contains("\"new_label\""), "{settings}");
    let answered: String = std::fs::read_to_string(argilla.join("records.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("coldest"))
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(
                v["metadata"]["needs_review"]
                    .as_str()
                    .map(|n| n.starts_with("answer")),
                Some(true)
            );
            v["responses"] = json!({
                "verdict": [{"value": "accept", "user_id": "u2", "status": "submitted"}],
                "new_label": [{"value": "Antarctica", "user_id": "u2", "status": "submitted"}]
            });
            format!("{v}\n")
        })
        .collect();
    let answered_path = d.path().join("argilla-answers.jsonl");
    std::fs::write(&answered_path, answered).unwrap();
    foil()
        .args(["review", "import", out.to_str().unwrap()])
        .arg(&answered_path)
        .assert()
        .success();
    let reviewed = read_reviewed(&out);
    let desert = reviewed
        .values()
        .find(|r| r["edited"].as_str().unwrap().contains("coldest"))
        .unwrap();
    assert_eq!(desert["edited_label"], "Antarctica");
    assert_eq!(reviewed.len(), 3);
}

#[test]
fn two_spreadsheet_reviewers_are_both_kept_and_importing_again_changes_nothing() {
    // Issue 14, item 5: verdicts were kept by queue kind, so importing
    // reviewer B's spreadsheet dropped reviewer A's.
    let d = tempfile::tempdir().unwrap();
    let out = contrast_set(d.path());
    let exported = d.path().join("review.csv");
    foil()
        .args([
            "review",
            "export",
            out.to_str().unwrap(),
            "--format",
            "csv",
            "--out",
        ])
        .arg(&exported)
        .assert()
        .success();
    let mut reader = csv::Reader::from_path(&exported).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    // Returns the physical line each row starts on.
    let fill = |path: &Path, verdict: &dyn Fn(usize, &str) -> String, who: &str| -> Vec<u64> {
        let mut w = csv::Writer::from_path(path).unwrap();
        w.write_record(&header).unwrap();
        let mut lines = Vec::new();
        let mut line = 2;
        for (i, r) in rows.iter().enumerate() {
            let mut r: Vec<String> = r.iter().map(str::to_string).collect();
            if i == 0 {
                // A reviewer's note inside a cell, across lines.
                r[col("diff")] = "first line\nsecond line".into();
            }
            r[col("verdict")] = verdict(i, &r[col("edited")]);
            r[col("annotator")] = who.into();
            w.write_record(&r).unwrap();
            lines.push(line);
            line += 1 + r
                .iter()
                .map(|c| c.matches('\n').count() as u64)
                .sum::<u64>();
        }
        w.flush().unwrap();
        lines
    };
    let a = d.path().join("reviewer-a.csv");
    fill(&a, &|_, _| "accept".into(), "");
    let b = d.path().join("reviewer-b.csv");
    let b_lines = fill(
        &b,
        &|i, edited| match (i, edited.contains("Spain")) {
            (5, _) => "maybe".into(),
            (_, true) => "reject".into(),
            _ => "accept".into(),
        },
        "B",
    );
    let import = |file: &Path, code: i32| -> (Value, String) {
        let run = foil()
            .args(["review", "import", out.to_str().unwrap()])
            .arg(file)
            .arg("--json")
            .assert()
            .code(code);
        let o = run.get_output();
        (
            serde_json::from_slice(&o.stdout).unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (first, _) = import(&a, 0);
    assert_eq!(first["agreement"]["annotations"], 6);
    let (both, err) = import(&b, 3);
    // The bad row is named by the line it starts on, newlines in cells
    // counted (line 7, not 8-1).
    let bad_line = format!("reviewer-b.csv:{}", b_lines[5]);
    assert_eq!(b_lines[5], 8);
    assert!(err.contains(&bad_line), "{bad_line} in {err}");
    assert_eq!(both["agreement"]["annotations"], 11, "A's 6 and B's 5");
    assert_eq!(both["agreement"]["annotators"], 2, "the file names A");
    assert_eq!(both["agreement"]["pairs_multiply_reviewed"], 5);
    let (again, _) = import(&b, 3);
    assert_eq!(again["agreement"], both["agreement"], "importing B twice");
    let reviewed = read_reviewed(&out);
    let id = ids(&out);
    assert_eq!(reviewed[&id["Paris is in Spain"]]["agreement"], 0.5);
    assert_eq!(
        reviewed[&id["Paris is in Spain"]]["annotators"],
        "reviewer-a,B"
    );
}
