//! The resolved settings (`--show-settings`, `foil validate --show`): a
//! snapshot for every file in `pipelines/` and for `generate`'s flags, so a
//! change to any default or to how flags are laid over a file shows up
//! here first.

use crate::support::{foil, repo};

fn show(args: &[&str]) -> String {
    let run = foil().current_dir(repo()).args(args).assert().success();
    String::from_utf8(run.get_output().stdout.clone()).unwrap()
}

#[test]
fn every_pipeline_file_resolves_to_its_snapshot() {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    for name in files {
        let path = format!("pipelines/{name}");
        let resolved = show(&["run", &path, "--show-settings"]);
        insta::assert_snapshot!(
            format!("settings-{}", name.trim_end_matches(".toml")),
            resolved
        );
        // `validate --show` prints the same settings after its summary.
        let validated = show(&["validate", &path, "--show"]);
        let (first, rest) = validated.split_once('\n').unwrap();
        assert!(first.starts_with("ok: "), "{first}");
        assert_eq!(rest, resolved, "{name}");
    }
}

#[test]
fn generate_flags_resolve_to_their_snapshots() {
    let rules = show(&[
        "generate",
        "data/samples/questions.csv",
        "--task",
        "question",
        "--id-field",
        "id",
        "--out",
        "out/q",
        "--show-settings",
    ]);
    insta::assert_snapshot!("settings-generate-rules", rules);
    let llm = show(&[
        "generate",
        "data/samples/claims.jsonl",
        "--task",
        "claim",
        "--id-field",
        "id",
        "--out",
        "out/c",
        "--llm-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--n",
        "3",
        "--concurrency",
        "3",
        "--max-tokens",
        "1000",
        "--no-near-dedup",
        "--verify-url",
        "http://127.0.0.1:9/v1",
        "--verify-model",
        "judge",
        "--verify-min",
        "0.7",
        "--shard",
        "1/4",
        "--show-settings",
    ]);
    insta::assert_snapshot!("settings-generate-llm", llm);
    // Run control is laid over a file the same way.
    let file = show(&[
        "run",
        "pipelines/claim.toml",
        "--max-tokens",
        "1000",
        "--dead-letter-retries",
        "0",
        "--show-settings",
    ]);
    assert!(
        file.contains("max_tokens = 1000") && file.contains("dead_letter_retries = 0"),
        "{file}"
    );
}
