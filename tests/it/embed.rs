//! The local embedder against reference vectors from sentence-transformers
//! (tests/fixtures/minilm_reference.json, made by
//! scripts/make-embedding-fixture.py from the same model folder).

use foil::embed::local::{SentenceModel, default_model_dir};
use foil::text::cosine;
use serde_json::Value;

use crate::support::fixture;

fn model() -> SentenceModel {
    SentenceModel::load(&default_model_dir())
        .expect("the local model is missing: run scripts/fetch-model (as .ci/run does)")
}

#[test]
fn local_embedder_matches_sentence_transformers() {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("minilm_reference.json")).unwrap())
            .unwrap();
    let sentences: Vec<String> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<Vec<f32>> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let m = model();
    // Batch size 3 mixes lengths across chunks: padding must not leak in.
    let got = m.embed(&sentences, 3).unwrap();
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g.len(), 384);
        let max_diff = g
            .iter()
            .zip(e)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-4,
            "sentence {i} ({}) differs by {max_diff}",
            sentences[i]
        );
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
}

#[test]
fn hamlet_is_closer_to_macbeth_than_to_everest() {
    let m = model();
    let v = m
        .embed(
            &[
                "Who wrote Hamlet?".into(),
                "Who wrote Macbeth?".into(),
                "How tall is Mount Everest?".into(),
            ],
            8,
        )
        .unwrap();
    let macbeth = cosine(&v[0], &v[1]);
    let everest = cosine(&v[0], &v[2]);
    assert!(
        macbeth > everest + 0.2,
        "macbeth {macbeth} vs everest {everest}"
    );
}

#[test]
fn a_folder_without_a_model_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = match SentenceModel::load(dir.path()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded a model from an empty folder"),
    };
    assert!(
        err.contains("config.json") && err.contains("scripts/fetch-model"),
        "{err}"
    );
}

#[test]
fn a_hub_model_is_downloaded_once_into_the_cache_and_gives_the_same_scores() {
    use crate::support::fake_openai::{FakeOpenAi, Reply};
    use crate::support::{foil, read_rows, sample};
    // A stand-in hub serving the files of the locally fetched model.
    let hub = FakeOpenAi::start(
        std::sync::Arc::new(|_| Reply::chat("{}")),
        std::time::Duration::ZERO,
    );
    let local = default_model_dir();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "sentence_bert_config.json",
    ] {
        for rev in ["main", "v2"] {
            hub.serve_file(
                &format!("/sentence-transformers/all-MiniLM-L6-v2/resolve/{rev}/{f}"),
                std::fs::read(local.join(f)).unwrap(),
            );
        }
    }
    let cache = tempfile::tempdir().unwrap();
    let run = |out: &std::path::Path, hub_args: &[&str]| {
        foil()
            .env("HF_ENDPOINT", format!("http://{}", hub.addr))
            .env("FOIL_CACHE", cache.path())
            .args([
                "generate",
                sample("claims.jsonl").to_str().unwrap(),
                "--task",
                "claim",
                "--id-field",
                "id",
                "--quiet",
            ])
            .args(hub_args)
            .arg("--out")
            .arg(out)
            .assert()
            .success();
        read_rows(out, "shards")
    };
    let outs = tempfile::tempdir().unwrap();
    let repo = ["--hub-model", "sentence-transformers/all-MiniLM-L6-v2"];
    let from_hub = run(&outs.path().join("hub"), &repo);
    let gets = || {
        hub.recorded()
            .iter()
            .filter(|r| r.path.contains("/resolve/"))
            .count()
    };
    assert_eq!(gets(), 4, "each file fetched once");
    assert!(
        cache
            .path()
            .join("models/hub/sentence-transformers--all-MiniLM-L6-v2/main/model.safetensors")
            .is_file()
    );
    let again = run(&outs.path().join("again"), &repo);
    assert_eq!(gets(), 4, "a cached model is not fetched again");
    // Issue 14, item 10: another revision is another model, not the
    // cached one.
    let v2 = [repo[0], repo[1], "--hub-revision", "v2"];
    run(&outs.path().join("v2"), &v2);
    assert_eq!(gets(), 8, "a new revision is fetched");
    assert!(
        hub.recorded()
            .iter()
            .skip(4)
            .all(|r| r.path.contains("/resolve/v2/"))
    );
    // A damaged cached file is noticed by its hash and fetched again.
    let weights = cache
        .path()
        .join("models/hub/sentence-transformers--all-MiniLM-L6-v2/main/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&weights, bytes).unwrap();
    let repaired = run(&outs.path().join("repaired"), &repo);
    assert_eq!(gets(), 9, "only the damaged file is fetched again");
    let model_dir = local.display().to_string();
    let from_dir = run(&outs.path().join("dir"), &["--model-dir", &model_dir]);
    let sims = |rows: &[std::collections::BTreeMap<String, serde_json::Value>]| -> Vec<f64> {
        rows.iter()
            .map(|r| r["similarity"].as_f64().unwrap())
            .collect()
    };
    assert!(!from_hub.is_empty());
    assert_eq!(sims(&from_hub), sims(&from_dir));
    assert_eq!(sims(&again), sims(&from_dir));
    assert_eq!(sims(&repaired), sims(&from_dir));
}

#[test]
fn the_tokenizer_and_model_take_any_text() {
    // Issue 14, item 1: arbitrary Unicode through the tokenizer and the
    // model: no panic, and a unit vector for every text, empty ones too.
    let pieces = [
        "",
        " ",
        "\n",
        "\0",
        "\u{feff}",
        "\u{200b}",
        "e\u{301}",
        "👩‍👩‍👧",
        "東京",
        "مرحبا",
        "עברית",
        "ﬁ",
        "İ",
        "ς",
        "“",
        "»",
        "|||",
        "[CLS]",
        "[SEP]",
        "[PAD]",
        "[UNK]",
        "##ing",
        "a",
        "the",
        "0",
        "½",
        "\u{10ffff}",
        "\u{7f}",
        "\t",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut texts: Vec<String> = (0..200)
        .map(|_| {
            let n = (next() % 12) as usize;
            (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // Far past the model's 512 positions.
    texts.push("word ".repeat(3000));
    texts.push("東".repeat(5000));
    let m = model();
    let vectors = m.embed(&texts, 16).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for (t, v) in texts.iter().zip(&vectors) {
        assert!(v.iter().all(|x| x.is_finite()), "{t:?}");
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{t:?}: norm {norm}");
    }
}
