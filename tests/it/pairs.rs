//! Pairs mode over real contrast sets (tests/fixtures/contrast-real, copied
//! from ../shared/data/contrast-real with their licenses): no generation,
//! the given edits go through filters, dedup and sink.

use crate::support::{assert_funnel_adds_up, fixture, foil, manifest, read_rows};

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
