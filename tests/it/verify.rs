//! The verification stage against a fake judge: thresholds move pairs
//! between accepted and rejected, every score is stored (accepted or not),
//! unusable verdicts are rejected with a reason, only live pairs are
//! judged, the judge's messages are what the template says, and a request
//! budget spent in this stage stops and resumes like one spent generating.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_openai::{FakeOpenAi, Reply, line_value, user_message};
use crate::support::{assert_funnel_adds_up, foil, manifest, pair_ids, read_rows};

/// Pairs whose edited text ends in `sNN`: the fake judge scores `relation`
/// NN / 100 and everything else 0.9. `junk` gets a reply that is not a
/// verdict; `prose` gets a verdict wrapped in chatter.
const PAIRS: &[(&str, &str, &str)] = &[
    (
        "a",
        "Paris is the capital of France",
        "Paris is not the capital of France s95",
    ),
    (
        "b",
        "The sun rises in the east",
        "The sun rises in the west s65",
    ),
    (
        "c",
        "Water boils at 100 degrees",
        "Water freezes at 100 degrees s30",
    ),
    ("d", "Cats are mammals", "Cats are not mammals s85 prose"),
    ("e", "Birds can fly", "Birds cannot fly s90 junk"),
    // Rejected by edit distance before the judge sees it.
    (
        "f",
        "Snow is cold",
        "Absolutely nothing here resembles the original sentence at all s99",
    ),
];

fn judge() -> Arc<dyn Fn(&Value) -> Reply + Send + Sync> {
    Arc::new(|body| {
        let edited = line_value(&user_message(body), "Edited text").unwrap_or_default();
        if edited.ends_with("junk") {
            return Reply::chat("I think this edit is quite good overall.");
        }
        let score = edited
            .split_whitespace()
            .find_map(|w| w.strip_prefix('s').and_then(|n| n.parse::<f64>().ok()))
            .unwrap_or(0.0)
            / 100.0;
        let verdict = json!({
            "relation": score, "label": 0.9, "fluent": 0.9, "minimal": 0.9,
            "explanation": format!("relation judged {score}")
        })
        .to_string();
        if edited.ends_with("prose") {
            Reply::chat(&format!("Here is my verdict:\n{verdict}\nThanks!"))
        } else {
            Reply::chat(&verdict)
        }
    })
}

fn input(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("pairs.jsonl");
    let text: String = PAIRS
        .iter()
        .map(|(id, o, e)| {
            format!(
                "{}\n",
                json!({"id": id, "claim": o, "label": "true", "edited": e, "edited_label": "false"})
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn run(input: &Path, out: &Path, url: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "claim",
            "--out",
        ])
        .arg(out)
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
        .args([
            "--no-similarity",
            "--max-word-edits",
            "3",
            "--max-edit-ratio",
            "2",
        ])
        .arg("--quiet")
        .args(["--verify-url", url, "--verify-model", "judge-1"])
        .args(extra)
        .assert()
}

fn by_source(out: &Path, key: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    read_rows(out, key)
        .into_iter()
        .map(|r| (r["source_id"].as_str().unwrap().to_string(), r))
        .collect()
}

#[test]
fn thresholds_move_pairs_between_accepted_and_rejected_and_scores_are_stored() {
    let fake = FakeOpenAi::start(judge(), Duration::from_millis(20));
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());

    let lenient = d.path().join("lenient");
    run(&input, &lenient, &fake.base_url(), &["--concurrency", "3"]).success();
    let accepted = by_source(&lenient, "shards");
    let rejected = by_source(&lenient, "rejected_shards");
    assert_eq!(
        accepted.keys().collect::<Vec<_>>(),
        ["a", "b", "d"],
        "0.5 by default"
    );
    assert_eq!(rejected["c"]["reject_reason"], "relation_below_min");
    assert_eq!(rejected["e"]["reject_reason"], "verdict_unusable");
    assert_eq!(rejected["f"]["reject_stage"], "edit_distance");
    // Every score stored, on accepted and rejected pairs alike.
    assert_eq!(accepted["b"]["verify_relation"], 0.65);
    assert_eq!(accepted["b"]["verify_fluent"], 0.9);
    assert_eq!(accepted["b"]["verify_explanation"], "relation judged 0.65");
    assert_eq!(rejected["c"]["verify_relation"], 0.3);
    assert_eq!(rejected["f"]["verify_relation"], Value::Null);
    // Only the five pairs that reached the stage were judged (one of them
    // asked again after its unusable verdict).
    assert_eq!(fake.count("/chat/completions"), 6);
    let m = manifest(&lenient);
    assert_funnel_adds_up(&m);
    assert!(
        m["prompts"]["verify"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    assert_eq!(m["usage"]["stages"]["verify"]["requests"], 6);

    // A stricter threshold moves b out; the cache answers every verdict.
    let strict = d.path().join("strict");
    let cache = lenient.join("cache.sqlite");
    run(
        &input,
        &strict,
        &fake.base_url(),
        &["--verify-min", "0.8", "--cache", cache.to_str().unwrap()],
    )
    .success();
    assert_eq!(
        by_source(&strict, "shards").keys().collect::<Vec<_>>(),
        ["a", "d"]
    );
    let b = &by_source(&strict, "rejected_shards")["b"];
    assert_eq!(b["reject_reason"], "relation_below_min");
    assert!(
        b["reject_detail"].as_str().unwrap().contains("0.65 < 0.8"),
        "{}",
        b["reject_detail"]
    );
    assert_eq!(fake.count("/chat/completions"), 6, "all from the cache");
}

#[test]
fn the_judge_reads_the_pair_as_the_template_renders_it() {
    let fake = FakeOpenAi::start(judge(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());
    run(
        &input,
        &d.path().join("out"),
        &fake.base_url(),
        &["--concurrency", "1"],
    )
    .success();
    let first = fake
        .recorded()
        .into_iter()
        .find(|r| user_message(&r.body).contains("Paris"))
        .expect("a request about pair a");
    assert_eq!(first.body["model"], "judge-1");
    assert_eq!(first.body["temperature"], 0.0);
    assert_eq!(
        first.body["response_format"]["json_schema"]["schema"]["required"],
        json!(["relation", "label", "fluent", "minimal", "explanation"])
    );
    let messages: Vec<String> = first.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "[{}]\n{}",
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect();
    insta::assert_snapshot!("verify_messages_claim", messages.join("\n\n"));
}

#[test]
fn a_budget_spent_verifying_stops_cleanly_and_resumes() {
    let fake = FakeOpenAi::start(judge(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());
    let baseline = d.path().join("baseline");
    run(
        &input,
        &baseline,
        &fake.base_url(),
        &["--no-cache", "--concurrency", "1"],
    )
    .success();

    let out = d.path().join("out");
    run(
        &input,
        &out,
        &fake.base_url(),
        &["--max-requests", "2", "--concurrency", "1"],
    )
    .code(4);
    assert!(
        manifest(&out)["status"]
            .as_str()
            .unwrap()
            .starts_with("stopped")
    );
    run(&input, &out, &fake.base_url(), &["--concurrency", "1"]).success();
    assert_eq!(pair_ids(&out), pair_ids(&baseline));
    assert_eq!(manifest(&out)["usage"]["stages"]["verify"]["requests"], 6);
}

#[test]
fn a_question_without_its_new_answer_gets_the_judges_and_others_stay_marked() {
    // The judge answers only when asked for `new_label`, and knows one
    // answer: the rest it cannot tell ("").
    let fake = FakeOpenAi::start(
        Arc::new(|body: &Value| {
            let system = body["messages"][0]["content"].as_str().unwrap_or_default();
            let edited = line_value(&user_message(body), "Edited text").unwrap_or_default();
            let mut v = json!({"relation": 0.9, "label": 0.9, "fluent": 0.9, "minimal": 0.9,
                               "explanation": "ok"});
            if system.contains("new_label") {
                v["new_label"] = json!(if edited.contains("smallest") {
                    "Mercury"
                } else {
                    ""
                });
            }
            Reply::chat(&v.to_string())
        }),
        Duration::ZERO,
    );
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("q.csv");
    std::fs::write(
        &input,
        "id,question,answer\n\
         q1,Which planet is the largest in the solar system?,Jupiter\n\
         q2,Which river is the longest in Europe?,Volga\n\
         q3,Is the Moon bigger than the Earth?,no\n",
    )
    .unwrap();
    let out = d.path().join("out");
    foil()
        .args(["generate", input.to_str().unwrap(), "--task", "question"])
        .args([
            "--id-field",
            "id",
            "--ops",
            "comparative,negation",
            "--quiet",
        ])
        .args([
            "--verify-url",
            &fake.base_url(),
            "--verify-model",
            "judge-1",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let rows = by_source(&out, "shards");
    // Answered by the judge, with provenance, and no longer marked.
    assert_eq!(rows["q1"]["edited_label"], "Mercury");
    assert!(rows["q1"]["needs_review"].is_null());
    assert!(
        rows["q1"]["rationale"]
            .as_str()
            .unwrap()
            .contains("verify:judge-1")
    );
    // The judge could not tell: still marked for a person.
    assert!(rows["q2"]["edited_label"].is_null());
    assert!(
        rows["q2"]["needs_review"]
            .as_str()
            .unwrap()
            .starts_with("answer")
    );
    // A yes/no question had its answer already; the judge was not asked.
    assert_eq!(rows["q3"]["edited_label"], "yes");
    let asked: Vec<_> = fake
        .recorded()
        .into_iter()
        .filter(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("new_label")
        })
        .collect();
    assert_eq!(
        asked.len(),
        2,
        "only the pairs without an answer are asked for one"
    );
    let m = manifest(&out);
    assert_eq!(m["counts"]["accepted_needing_review"]["answer"], 1);
}

#[test]
fn an_independent_judge_must_not_be_the_generator() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let run = foil()
        .args([
            "generate",
            crate::support::sample("questions.csv").to_str().unwrap(),
        ])
        .args(["--task", "question", "--id-field", "id"])
        .args(["--llm-url", "http://127.0.0.1:9/v1", "--model", "m-1"])
        .args([
            "--verify-url",
            "http://127.0.0.1:9/v1/",
            "--verify-model",
            "m-1",
        ])
        .arg("--verify-independent")
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&run.get_output().stderr).to_string();
    assert!(err.contains("independent") && err.contains("m-1"), "{err}");
}
