//! The output does not depend on concurrency: map stages hand results on
//! in input order, so dedup keeps the same survivors and shards hold the
//! same rows in the same order.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::fake_openai::{FakeOpenAi, Reply, line_value, user_message};
use crate::support::{foil, pair_ids, sample};

fn run(args: &[&str], concurrency: &str) -> Vec<String> {
    let out = tempfile::tempdir().unwrap();
    foil()
        .args(args)
        .args([
            "--concurrency",
            concurrency,
            "--rows-per-shard",
            "7",
            "--quiet",
            "--out",
        ])
        .arg(out.path())
        .assert()
        .success();
    pair_ids(out.path())
}

#[test]
fn rules_and_local_embedder_same_pairs_at_concurrency_1_and_16() {
    let input = sample("questions.csv");
    let args = [
        "generate",
        input.to_str().unwrap(),
        "--task",
        "question",
        "--id-field",
        "id",
        // Every operation: more pairs than the question defaults make.
        "--ops",
        "negation,antonym,number,quantifier,comparative,temporal,gender",
    ];
    let one = run(&args, "1");
    let sixteen = run(&args, "16");
    assert!(one.len() >= 20);
    assert_eq!(one, sixteen);
}

#[test]
fn llm_with_random_latency_same_pairs_at_concurrency_1_and_16() {
    // Replies collide on purpose (two seeds give the same edit for some
    // sources, and different sources reach the same text), so dedup has
    // survivors to choose; latency jitter reorders completions.
    let fake = FakeOpenAi::start(
        Arc::new(|body| {
            let q = line_value(&user_message(body), "Question").unwrap_or_default();
            let seed = body["seed"].as_u64().unwrap_or(0);
            let edited = if seed.is_multiple_of(2) || q.len().is_multiple_of(3) {
                "Which is the most common question of all?".to_string()
            } else {
                format!("{} (variant {})", q, seed % 3)
            };
            Reply::chat(
                &json!({"edited": edited, "new_answer": "a", "edit_type": "entity"}).to_string(),
            )
        }),
        Duration::from_millis(15),
    );
    let input = sample("questions.csv");
    let url = fake.base_url();
    let args = [
        "generate",
        input.to_str().unwrap(),
        "--task",
        "question",
        "--id-field",
        "id",
        "--llm-url",
        &url,
        "--model",
        "m",
        "--n",
        "4",
        "--no-similarity",
        "--max-word-edits",
        "20",
        "--max-edit-ratio",
        "5",
    ];
    let one = run(&args, "1");
    let sixteen = run(&args, "16");
    assert!(one.len() > 10, "{}", one.len());
    assert_eq!(one, sixteen);
}
