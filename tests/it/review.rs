//! The Label Studio round trip against a real Label Studio (PyPI
//! `label-studio`, started by `scripts/label-studio` on 127.0.0.1 with a
//! known token): push pairs as tasks with predictions, push again without
//! duplicates, annotate through the API as two annotators would (plus the
//! malformed results the server accepts without complaint), pull, and check
//! the reviewed shards and agreement.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{foil, frame_rows, repo};

struct LabelStudio {
    url: String,
    token: String,
}

impl LabelStudio {
    fn start() -> Self {
        let script = repo().join("scripts/label-studio");
        let out = Command::new(&script)
            .arg("start")
            .output()
            .expect("scripts/label-studio runs");
        assert!(
            out.status.success(),
            "scripts/label-studio start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let token = Command::new(&script).arg("token").output().unwrap();
        LabelStudio {
            url,
            token: String::from_utf8_lossy(&token.stdout).trim().to_string(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new()
                .request(method, format!("{}{path}", self.url))
                .header("Authorization", format!("Token {}", self.token));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("label studio answers");
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert!(status.is_success(), "{path}: {status}: {text}");
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
    }
}

impl Drop for LabelStudio {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/label-studio"))
            .arg("stop")
            .status();
    }
}

fn foil_ls(ls: &LabelStudio) -> assert_cmd::Command {
    let mut c = foil();
    c.env("FOIL_LS_TOKEN_FOR_TEST", &ls.token);
    c
}

fn choice(v: &str) -> Value {
    json!({"from_name": "verdict", "to_name": "edited", "type": "choices", "value": {"choices": [v]}})
}

/// The reviewer's new label or answer (pairs that need one are refused
/// without it).
fn answer(v: &str) -> Value {
    json!({"from_name": "new_label", "to_name": "edited", "type": "textarea", "value": {"text": [v]}})
}

fn reviewed(dir: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    use polars::prelude::{ParquetReader, SerReader};
    let df =
        ParquetReader::new(std::fs::File::open(dir.join("reviewed/part-00000.parquet")).unwrap())
            .finish()
            .unwrap();
    frame_rows(&df)
        .into_iter()
        .map(|r| (r["pair_id"].as_str().unwrap().to_string(), r))
        .collect()
}

#[test]
fn label_studio_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("q");
    foil()
        .arg("generate")
        .arg(repo().join("data/samples/questions.csv"))
        .args([
            "--task",
            "question",
            "--id-field",
            "id",
            // Every operation, so stratified sampling has types to cover.
            "--ops",
            "negation,antonym,number,quantifier,comparative,temporal,gender",
            "--no-similarity",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let ls = LabelStudio::start();
    let project = "foil review test";
    let push = |n: &str| {
        let run = foil_ls(&ls)
            .args(["review", "push"])
            .arg(&out)
            .args(["--label-studio", &ls.url, "--project", project])
            .args(["--token-env", "FOIL_LS_TOKEN_FOR_TEST"])
            .args(["--sample", n, "--json"])
            .assert()
            .success();
        serde_json::from_slice::<Value>(&run.get_output().stdout).unwrap()
    };
    let first = push("8");
    assert_eq!(first["created"], true);
    assert_eq!(first["imported"], 8);
    // Pushing again imports only what is new.
    let again = push("10");
    assert_eq!(again["created"], false);
    assert_eq!(again["imported"], 2);
    assert_eq!(again["skipped"], 8);
    let pid = first["project"].as_i64().unwrap();

    let tasks = ls.call(
        reqwest::Method::GET,
        &format!("/api/tasks?project={pid}&page_size=100"),
        None,
    )["tasks"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tasks.len(), 10, "no duplicates");
    let types: std::collections::BTreeSet<&str> = tasks
        .iter()
        .map(|t| t["data"]["edit_type"].as_str().unwrap())
        .collect();
    assert!(types.len() >= 4, "stratified over edit types: {types:?}");
    for t in &tasks {
        assert!(
            t["data"]["edited_html"].as_str().unwrap().contains("<ins>")
                || t["data"]["edited_html"].as_str().unwrap().contains("<del>")
        );
    }
    let project_info = ls.call(reqwest::Method::GET, &format!("/api/projects/{pid}"), None);
    assert!(
        project_info["label_config"]
            .as_str()
            .unwrap()
            .contains(r#"name="verdict""#)
    );
    assert_eq!(
        project_info["total_predictions_number"], 10,
        "foil's verdicts as predictions"
    );

    // Two annotators.
    let user = |email: &str| {
        ls.call(
            reqwest::Method::POST,
            "/api/users",
            Some(json!({"email": email, "username": email.split('@').next().unwrap()})),
        )["id"]
            .as_i64()
            .unwrap()
    };
    let (a, b) = (user("ann-a@localhost"), user("ann-b@localhost"));
    let annotate = |task: i64, who: i64, result: Vec<Value>| {
        ls.call(
            reqwest::Method::POST,
            &format!("/api/tasks/{task}/annotations"),
            Some(json!({"result": result, "completed_by": who})),
        );
    };
    let ids: Vec<(i64, String)> = tasks
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap(),
                t["data"]["pair_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Task 0: both accept. Task 1: a accepts, b rejects. Task 2: a fixes
    // with corrected text. Task 3: both reject. Task 4: a misspells the
    // control; b picks a choice the interface does not have. Task 5: a
    // accepts, b skips (cancelled).
    annotate(ids[0].0, a, vec![choice("accept"), answer("first answer")]);
    annotate(ids[0].0, b, vec![choice("accept"), answer("answer zero")]);
    annotate(ids[1].0, a, vec![choice("accept"), answer("answer one")]);
    annotate(ids[1].0, b, vec![choice("reject")]);
    annotate(
        ids[2].0,
        a,
        vec![
            choice("fix"),
            answer("answer two"),
            json!({"from_name": "corrected", "to_name": "edited", "type": "textarea", "value": {"text": ["Who did not write Hamlet?"]}}),
        ],
    );
    annotate(ids[3].0, a, vec![choice("reject")]);
    annotate(ids[3].0, b, vec![choice("reject")]);
    annotate(
        ids[4].0,
        a,
        vec![
            json!({"from_name": "verdcit", "to_name": "edited", "type": "choices", "value": {"choices": ["accept"]}}),
        ],
    );
    annotate(ids[4].0, b, vec![choice("maybe")]);
    annotate(ids[5].0, a, vec![choice("accept"), answer("answer five")]);
    ls.call(
        reqwest::Method::POST,
        &format!("/api/tasks/{}/annotations", ids[5].0),
        Some(json!({"result": [], "completed_by": b, "was_cancelled": true})),
    );

    let pull = foil_ls(&ls)
        .args(["review", "pull"])
        .arg(&out)
        .args(["--label-studio", &ls.url, "--project", project, "--json"])
        .args(["--token-env", "FOIL_LS_TOKEN_FOR_TEST"])
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&pull.get_output().stderr).to_string();
    assert!(stderr.contains("field `verdcit`"), "{stderr}");
    assert!(stderr.contains("`maybe` is not one of"), "{stderr}");
    let summary: Value = serde_json::from_slice(&pull.get_output().stdout).unwrap();
    let g = &summary["agreement"];
    assert_eq!(g["annotations"], 8);
    assert_eq!(g["annotators"], 2);
    assert_eq!(g["pairs_reviewed"], 5);
    assert_eq!(g["pairs_multiply_reviewed"], 3);
    // Pairs reviewed twice: agree, disagree, agree.
    assert_eq!(g["percent_agreement"], 2.0 / 3.0);
    assert_eq!(summary["invalid"], 2);

    let r = reviewed(&out);
    assert_eq!(r.len(), 5);
    assert_eq!(r[&ids[0].1]["verdict"], "accept");
    assert_eq!(r[&ids[0].1]["agreement"], 1.0);
    // The most recent reviewer's answer is the pair's label now.
    assert_eq!(r[&ids[0].1]["edited_label"], "answer zero");
    assert_eq!(r[&ids[2].1]["edited_label"], "answer two");
    assert_eq!(
        r[&ids[1].1]["verdict"], "reject",
        "a tie is decided cautiously"
    );
    assert_eq!(r[&ids[2].1]["verdict"], "fix");
    assert_eq!(r[&ids[2].1]["corrected"], "Who did not write Hamlet?");
    assert_eq!(r[&ids[3].1]["verdict"], "reject");
    assert_eq!(r[&ids[5].1]["n_annotations"], 1);
    assert_eq!(
        r[&ids[0].1]["annotators"],
        format!("label-studio:{a},label-studio:{b}")
    );
    let invalid = std::fs::read_to_string(out.join("reviewed/invalid.jsonl")).unwrap();
    assert_eq!(invalid.lines().count(), 2);
    assert!(invalid.contains(&format!("task {}", ids[4].0)));
}
