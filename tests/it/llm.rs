//! The LLM generator and the remote embedder through the fake
//! OpenAI-compatible server: request shape, schema validation of replies,
//! the json_schema → json_object fallback, provenance, and the key staying
//! out of every output.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::fake_openai::{FakeOpenAi, Reply, line_value, user_message};
use crate::support::{all_output_text, assert_funnel_adds_up, foil, manifest, read_rows, sample};

const KEY: &str = "sk-test-4f9a1c2b-do-not-log";

/// Answers a question prompt with a minimal edit: the first "the" becomes
/// "a" (or " exactly" is appended). Questions about oceans get prose with no
/// JSON, questions about rivers get JSON that breaks the schema.
pub(crate) fn question_editor() -> Arc<dyn Fn(&serde_json::Value) -> Reply + Send + Sync> {
    Arc::new(|body| {
        let user = user_message(body);
        let q = line_value(&user, "Question").unwrap_or_default();
        if q.contains("ocean") {
            return Reply::chat("I would rather not answer in JSON.");
        }
        if q.contains("river") {
            return Reply::chat(r#"{"edited": 42, "new_answer": "x", "edit_type": "entity"}"#);
        }
        let seed = body["seed"].as_u64().unwrap_or(0);
        let edited = if q.contains(" the ") && seed == 0 {
            q.replacen(" the ", " a ", 1)
        } else {
            q.trim_end_matches('?').to_string() + &format!(" number {}?", seed + 1)
        };
        Reply::chat(&format!(
            "Here you go:\n{}",
            json!({"edited": edited, "new_answer": "fake answer", "edit_type": "entity", "rationale": "because"})
        ))
    })
}

fn generate_llm(
    fake: &FakeOpenAi,
    out: &std::path::Path,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    foil()
        .env("FOIL_TEST_KEY", KEY)
        .args([
            "generate",
            sample("questions.csv").to_str().unwrap(),
            "--task",
            "question",
            "--id-field",
            "id",
        ])
        .args([
            "--llm-url",
            &fake.base_url(),
            "--model",
            "fake-model",
            "--api-key-env",
            "FOIL_TEST_KEY",
        ])
        .args([
            "--embed-url",
            &fake.base_url(),
            "--embed-model",
            "fake-embed",
            "--embed-api-key-env",
            "FOIL_TEST_KEY",
        ])
        .args([
            "--n",
            "2",
            "--seed",
            "0",
            "--limit",
            "12",
            "--max-attempts",
            "2",
            "--timeout",
            "5",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .assert()
}

#[test]
fn llm_generator_validates_replies_and_records_provenance() {
    let fake = FakeOpenAi::start(question_editor(), Duration::ZERO);
    let out = tempfile::tempdir().unwrap();
    let run = generate_llm(&fake, out.path(), &["-vv"]).success();

    let chats: Vec<_> = fake
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    // 12 sources x n=2, plus one more try for each of the 4 bad replies.
    assert_eq!(chats.len(), 28);
    for c in &chats {
        assert_eq!(
            c.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(c.body["model"], "fake-model");
        assert_eq!(c.body["response_format"]["type"], "json_schema");
        assert_eq!(
            c.body["response_format"]["json_schema"]["schema"]["required"][0],
            "edited"
        );
        assert_eq!(c.body["messages"][0]["role"], "system");
        assert!(
            user_message(&c.body).contains("Answer: "),
            "few-shot prompt rendered with the label"
        );
    }
    let seeds: std::collections::BTreeSet<u64> = chats
        .iter()
        .map(|c| c.body["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    assert!(
        fake.count("/v1/embeddings") > 0,
        "similarity used the remote embedder"
    );

    let m = manifest(out.path());
    assert_funnel_adds_up(&m);
    assert_eq!(m["usage"]["stages"]["generate"]["requests"], 28);
    assert_eq!(m["usage"]["stages"]["generate"]["prompt_tokens"], 28 * 50);
    assert!(
        m["usage"]["stages"]["similarity"]["requests"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        m["usage"]["invalid_replies"], 8,
        "ocean and river questions: 2 seeds, 2 tries each"
    );
    assert_eq!(m["models"]["generator"], "llm:fake-model");
    assert!(
        m["models"]["embedder"]
            .as_str()
            .unwrap()
            .contains("fake-embed")
    );
    let prompt_sha = m["prompts"]["question"].as_str().unwrap().to_string();
    assert_eq!(prompt_sha.len(), 64);

    let rows = read_rows(out.path(), "shards");
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["generator"], "llm:fake-model");
        assert_eq!(r["prompt_sha256"].as_str(), Some(prompt_sha.as_str()));
        assert_eq!(r["edited_label"], "fake answer");
        assert_eq!(r["edit_type"], "entity");
        assert_eq!(r["rationale"], "because");
        assert!(r["seed"].as_u64().is_some() && r["temperature"].as_f64().is_some());
        assert!(!r["original"].as_str().unwrap().contains("ocean"));
    }

    // The key reaches the server and nothing else.
    let everything = all_output_text(out.path())
        + &String::from_utf8_lossy(&run.get_output().stdout)
        + &String::from_utf8_lossy(&run.get_output().stderr);
    assert!(
        !everything.contains(KEY),
        "the API key leaked into output or logs"
    );
    assert!(
        everything.contains("FOIL_TEST_KEY"),
        "the manifest names the variable"
    );
}

#[test]
fn servers_that_refuse_json_schema_get_json_object() {
    let editor = question_editor();
    let fake = FakeOpenAi::start(
        Arc::new(move |body| {
            if body["response_format"]["type"] == "json_schema" {
                Reply::json(
                    400,
                    json!({"error": {"message": "response_format json_schema not supported"}}),
                )
            } else {
                editor(body)
            }
        }),
        Duration::ZERO,
    );
    let out = tempfile::tempdir().unwrap();
    generate_llm(
        &fake,
        out.path(),
        &["--quiet", "--no-similarity", "--concurrency", "1"],
    )
    .success();
    let kinds: Vec<String> = fake
        .recorded()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| {
            r.body["response_format"]["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "json_schema").count(),
        1,
        "asked once, then remembered: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "json_object").count(), 28);
    assert!(manifest(out.path())["counts"]["accepted"].as_u64().unwrap() > 0);
}

#[test]
fn an_endpoint_that_keeps_failing_dead_letters_the_source_and_the_run_goes_on() {
    let editor = question_editor();
    let fake = FakeOpenAi::start(
        Arc::new(move |body| {
            if user_message(body).contains("Hamlet") {
                Reply::json(
                    503,
                    json!({"error": {"message": format!("overloaded, key {KEY}")}}),
                )
            } else {
                editor(body)
            }
        }),
        Duration::ZERO,
    );
    let out = tempfile::tempdir().unwrap();
    generate_llm(&fake, out.path(), &["--quiet"]).code(3);
    let dead = std::fs::read_to_string(out.path().join("dead-letter.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{dead}");
    assert_eq!(lines[0]["source_id"], "q01");
    assert_eq!(lines[0]["stage"], "generate");
    assert_eq!(lines[0]["attempts"], 2);
    assert!(lines[0]["error"].as_str().unwrap().contains("503"));
    assert!(
        !dead.contains(KEY),
        "a key echoed by the server is redacted"
    );
    let m = manifest(out.path());
    assert_eq!(m["counts"]["dead_letters"], 1);
    assert_funnel_adds_up(&m);
    assert!(m["counts"]["accepted"].as_u64().unwrap() > 0);
}

#[test]
fn edit_type_quotas_ask_for_each_type_and_balance_the_output() {
    // Answers with the type the prompt asks for, except that it answers
    // "negation" requests for the Hamlet question with "entity" once.
    let fooled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fake = FakeOpenAi::start(
        Arc::new(move |body| {
            let user = user_message(body);
            let q = line_value(&user, "Question").unwrap_or_default();
            let wanted = user
                .split("Use the edit type \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("none")
                .to_string();
            let variant = body["seed"].as_u64().unwrap_or(0);
            let edit_type = if q.contains("Hamlet")
                && wanted == "negation"
                && variant == 0
                && !fooled.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                "entity".to_string()
            } else {
                wanted.clone()
            };
            let edited = format!("{} ({wanted} {variant})?", q.trim_end_matches('?'));
            Reply::chat(
                &json!({"edited": edited, "new_answer": "x", "edit_type": edit_type}).to_string(),
            )
        }),
        Duration::ZERO,
    );
    let out = tempfile::tempdir().unwrap();
    foil()
        .args([
            "generate",
            sample("questions.csv").to_str().unwrap(),
            "--task",
            "question",
            "--id-field",
            "id",
        ])
        .args([
            "--llm-url",
            &fake.base_url(),
            "--model",
            "m",
            "--types",
            "entity,negation",
            "--per-type",
            "2",
        ])
        .args([
            "--limit",
            "5",
            "--no-similarity",
            "--max-word-edits",
            "9",
            "--max-edit-ratio",
            "3",
            "--quiet",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    let asked: Vec<String> = fake
        .recorded()
        .iter()
        .map(|r| user_message(&r.body))
        .filter(|u| u.contains("Use the edit type"))
        .collect();
    // 5 sources x 2 types x 2, plus one ask-again for the wrong type.
    assert_eq!(asked.len(), 21);
    let m = manifest(out.path());
    assert_eq!(
        m["counts"]["accepted_by_edit_type"],
        json!({"entity": 10, "negation": 10})
    );
    assert_eq!(
        m["usage"]["invalid_replies"], 1,
        "a reply of another type is a bad reply"
    );
    // A type outside the taxonomy is a usage error.
    foil()
        .args([
            "generate",
            sample("questions.csv").to_str().unwrap(),
            "--task",
            "question",
        ])
        .args([
            "--llm-url",
            &fake.base_url(),
            "--model",
            "m",
            "--types",
            "vibes",
            "--out",
            "x",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "`vibes` is not an edit type of task `question`",
        ));
}
