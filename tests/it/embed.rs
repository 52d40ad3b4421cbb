//! The local embedder against reference vectors from sentence-transformers
//! (tests/fixtures/minilm_reference.json, made by
//! scripts/make-embedding-fixture.py from the same model folder).

use foil::config::Precision;
use foil::embed::local::{SentenceModel, default_model_dir};
use foil::text::cosine;
use serde_json::Value;

use crate::support::fixture;

/// `foil generate` on the sample claims into `out`, with `extra` flags, on
/// `cmd` (a `foil()` command, perhaps with environment set).
fn generate_claims(mut cmd: assert_cmd::Command, out: &std::path::Path, extra: &[&str]) {
    let input = crate::support::sample("claims.jsonl");
    cmd.args(["generate", input.to_str().unwrap()])
        .args(["--task", "claim", "--id-field", "id", "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
}

fn model() -> SentenceModel {
    SentenceModel::load(&default_model_dir())
        .expect("the local model is missing: run scripts/fetch-model (as .ci/run does)")
}

/// The fixture's sentences and sentence-transformers' vectors for them.
fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
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
    (sentences, expected)
}

#[test]
fn local_embedder_matches_sentence_transformers() {
    let (sentences, expected) = reference();
    let m = model();
    assert_eq!(m.precision(), "f32");
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
fn int8_vectors_keep_the_direction_of_sentence_transformers() {
    let (sentences, expected) = reference();
    let m = SentenceModel::load_with(&default_model_dir(), Precision::Int8).unwrap();
    assert_eq!(m.precision(), "int8");
    let got = m.embed(&sentences, 3).unwrap();
    let cosines: Vec<f32> = got
        .iter()
        .zip(&expected)
        .map(|(g, e)| cosine(g, e))
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    // Measured on 2,000 sentences: mean 0.9987, least 0.997.
    assert!(mean >= 0.995, "mean cosine {mean}: {cosines:?}");
    assert!(cosines.iter().all(|&c| c >= 0.99), "{cosines:?}");
    // Not the f32 vectors under another name: quantisation moves them.
    assert!(cosines.iter().any(|&c| c < 0.99999), "{cosines:?}");
    for g in &got {
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
fn a_run_without_the_model_names_the_missing_file_and_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for scoring in ["cascade", "distilled", "model"] {
        let mut cmd = crate::support::foil();
        cmd.arg("--quiet");
        let run = cmd
            .args([
                "generate",
                crate::support::sample("claims.jsonl").to_str().unwrap(),
            ])
            .args(["--task", "claim", "--id-field", "id", "--scoring", scoring])
            .arg("--model-dir")
            .arg(empty.path())
            .arg("--out")
            .arg(out.path().join(scoring))
            .assert()
            .code(2);
        let err = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(
            err.contains("has no config.json") && err.contains("scripts/fetch-model"),
            "{scoring}: {err}"
        );
    }
}

#[test]
fn a_hub_model_is_downloaded_once_into_the_cache_and_gives_the_same_scores() {
    use crate::support::fake_openai::{FakeOpenAi, Reply};
    use crate::support::{foil, read_rows};
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
        let mut cmd = foil();
        cmd.env("HF_ENDPOINT", format!("http://{}", hub.addr))
            .env("FOIL_CACHE", cache.path());
        generate_claims(cmd, out, &[hub_args, &["--scoring", "model"]].concat());
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

/// The pairs of a real contrast set in the fixtures, as the similarity
/// filter embeds them (one-field sets only), and unrelated pairs of its
/// originals (each against the one half the set away).
type TextPairs = Vec<(String, String)>;

fn real_and_unrelated(set: &str) -> (TextPairs, TextPairs) {
    let text = std::fs::read_to_string(fixture(&format!("contrast-real/{set}.jsonl"))).unwrap();
    let real: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["original"].as_str().unwrap().to_string(),
                v["edited"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let n = real.len();
    let unrelated = (0..n)
        .map(|i| (real[i].0.clone(), real[(i + n / 2) % n].0.clone()))
        .filter(|(a, b)| a != b)
        .collect();
    (real, unrelated)
}

fn pair_cosines(vectors: &[Vec<f32>]) -> Vec<f64> {
    vectors
        .chunks(2)
        .map(|p| foil::filter::similarity::band_score(cosine(&p[0], &p[1])))
        .collect()
}

#[test]
fn the_distilled_embedder_decides_the_band_as_the_model_does() {
    use foil::embed::distilled::{INFO_FILE, StaticEmbedder, ensure_distilled, weights_sha256};
    use foil::embed::local::cache_root;
    use foil::filter::similarity::needs_model;
    let dir = default_model_dir();
    let sha = weights_sha256(&dir).unwrap();
    let (distilled, _) = ensure_distilled(&cache_root(), &dir, &sha).unwrap();
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(distilled.join(INFO_FILE)).unwrap()).unwrap();
    assert_eq!(info["source_sha256"], sha.as_str());
    let (again, built) = ensure_distilled(&cache_root(), &dir, &sha).unwrap();
    assert_eq!((again, built), (distilled.clone(), false), "built once");
    let fast = StaticEmbedder::load(&distilled).unwrap();
    let model = model();
    // CREAK claims, the claim task's band: [0.3, 1].
    let min = foil::tasks::preset("claim").unwrap().filters.similarity_min;
    let (real, unrelated) = real_and_unrelated("creak_contrast");
    let score = |pairs: &[(String, String)]| {
        let texts: Vec<String> = pairs
            .iter()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect();
        (
            pair_cosines(&model.embed(&texts, 32).unwrap()),
            pair_cosines(&fast.embed_texts(&texts).unwrap()),
        )
    };
    let (real_model, real_fast) = score(&real);
    let (other_model, other_fast) = score(&unrelated);
    let share = |model: &[f64], fast: &[f64], cascade: bool| {
        let same = model
            .iter()
            .zip(fast)
            .filter(|&(&m, &f)| {
                let decided = if cascade && needs_model(min, 1.0, f) {
                    m
                } else {
                    f
                };
                (decided >= min) == (m >= min)
            })
            .count();
        same as f64 / model.len() as f64
    };
    // Measured 1.000 on the full set (docs/BENCHMARKS.md, `scripts/bench-embedders`).
    let alone = share(&real_model, &real_fast, false);
    assert!(
        alone >= 0.97,
        "distilled alone agrees on {alone} of real pairs"
    );
    for (what, m, f) in [
        ("real", &real_model, &real_fast),
        ("unrelated", &other_model, &other_fast),
    ] {
        let cascade = share(m, f, true);
        assert!(
            cascade >= 0.99,
            "cascade agrees on {cascade} of {what} pairs"
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&real_fast) > mean(&other_fast) + 0.3,
        "real {} vs unrelated {}",
        mean(&real_fast),
        mean(&other_fast)
    );
}

#[test]
fn each_pair_records_which_embedder_scored_it() {
    use crate::support::{foil, manifest, read_rows};
    let outs = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = outs.path().join(name);
        generate_claims(foil(), &out, extra);
        let m = manifest(&out);
        let mut rows = read_rows(&out, "shards");
        rows.extend(read_rows(&out, "rejected_shards"));
        (m, rows)
    };
    for (name, extra, want) in [
        ("cascade", &[][..], "distilled"),
        ("model", &["--scoring", "model"][..], "local, candle"),
        (
            "model-f32",
            &["--scoring", "model", "--precision", "f32"][..],
            "local, candle, f32",
        ),
        (
            "model-int8",
            &["--scoring", "model", "--precision", "int8"][..],
            "local, candle, int8",
        ),
        ("distilled", &["--scoring", "distilled"][..], "distilled"),
    ] {
        let (m, rows) = run(name, extra);
        let by = m["counts"]["similarity_scored_by"].as_object().unwrap();
        let scored: u64 = by.values().map(|n| n.as_u64().unwrap()).sum();
        let stage = m["funnel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == "similarity")
            .unwrap();
        assert!(scored > 0);
        assert_eq!(scored, stage["in"].as_u64().unwrap(), "{name}: {by:?}");
        let embedder = m["models"]["embedder"].as_str().unwrap();
        assert!(embedder.contains(want), "{name}: {embedder}");
        for r in rows.iter().filter(|r| !r["similarity"].is_null()) {
            let who = r["similarity_by"].as_str().unwrap();
            assert!(by.contains_key(who), "{name}: {who} not counted");
            if name != "cascade" {
                assert!(who.contains(want), "{name}: {who}");
            }
        }
    }
}

#[test]
fn the_models_vectors_are_kept_across_runs_and_read_back() {
    use crate::support::{foil, read_rows};
    let cache = tempfile::tempdir().unwrap();
    let outs = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = outs.path().join(name);
        let mut cmd = foil();
        cmd.env("FOIL_CACHE", cache.path())
            .env("FOIL_MODEL_DIR", default_model_dir());
        generate_claims(cmd, &out, &[&["--scoring", "model"], extra].concat());
        read_rows(&out, "shards")
            .iter()
            .map(|r| r["similarity"].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let first = run("first", &[]);
    assert!(!first.is_empty());
    let store = rusqlite::Connection::open(cache.path().join("embeddings.sqlite")).unwrap();
    let count = || -> i64 {
        store
            .query_row("SELECT count(*) FROM vectors", [], |r| r.get(0))
            .unwrap()
    };
    let stored = count();
    assert!(stored > first.len() as i64, "originals and edits: {stored}");
    assert_eq!(run("second", &[]), first);
    assert_eq!(count(), stored, "nothing new to keep");
    // Make every kept vector the same: a run that reads them back scores
    // every pair 1.0; one told not to use the cache embeds again.
    store
        .execute(
            "UPDATE vectors SET vector = (SELECT vector FROM vectors LIMIT 1)",
            [],
        )
        .unwrap();
    let read_back = run("third", &[]);
    assert!(read_back.iter().all(|s| *s == 1.0), "{read_back:?}");
    assert_eq!(run("fourth", &["--no-cache"]), first);
}

#[test]
fn int8_and_f32_vectors_are_stored_apart() {
    use crate::support::{foil, read_rows};
    let cache = tempfile::tempdir().unwrap();
    let outs = tempfile::tempdir().unwrap();
    let run = |name: &str, precision: &str| {
        let out = outs.path().join(name);
        let mut cmd = foil();
        cmd.env("FOIL_CACHE", cache.path())
            .env("FOIL_MODEL_DIR", default_model_dir());
        generate_claims(cmd, &out, &["--scoring", "model", "--precision", precision]);
        read_rows(&out, "shards")
            .iter()
            .map(|r| r["similarity"].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let int8 = run("int8", "int8");
    let f32 = run("f32", "f32");
    // Had the f32 run read the int8 run's vectors, its scores would be
    // the int8 ones.
    assert_ne!(int8, f32);
    let store = rusqlite::Connection::open(cache.path().join("embeddings.sqlite")).unwrap();
    let fingerprints: i64 = store
        .query_row("SELECT count(DISTINCT embedder) FROM vectors", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fingerprints, 2);
    assert_eq!(run("int8-again", "int8"), int8);
}
