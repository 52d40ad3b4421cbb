//! MinHash LSH near-duplicate dedup: measured recall and precision on
//! synthetic pairs of controlled Jaccard similarity, survivors that do not
//! depend on concurrency, one survivor per group whatever the input order,
//! edits that collapse back to their original, `--against` earlier output,
//! and the index surviving a restart through the run state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use foil::dedup::near::{NearDedup, NearDedupConfig};
use foil::record::{Candidate, Relation, RowOrigin, SourceBatch, SourceExample};
use serde_json::{Value, json};

use crate::support::{assert_funnel_adds_up, foil, manifest, read_rows, write_jsonl};

fn example(seq: u64, original: &str) -> Arc<SourceExample> {
    let mut fields = BTreeMap::new();
    fields.insert("text".to_string(), original.to_string());
    Arc::new(SourceExample {
        seq,
        source_id: format!("s{seq}"),
        fields,
        passthrough: Vec::new(),
        given: None,
        origin: RowOrigin {
            file: Arc::from("synthetic"),
            line: seq + 1,
        },
    })
}

fn batch(seq: u64, original: &str, edits: &[&str]) -> SourceBatch {
    let example = example(seq, original);
    let candidates = edits
        .iter()
        .map(|e| Candidate::new(&example, "text", e.to_string(), Relation::Flip, "x", "test"))
        .collect();
    SourceBatch {
        example,
        candidates,
    }
}

/// A small deterministic generator (64-bit LCG) for synthetic vocabularies.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

#[test]
fn recall_and_precision_on_pairs_of_controlled_jaccard() {
    // Word 1-grams make the shingle sets exactly the word sets, so a pair
    // sharing s of its 200 words has Jaccard s / (400 - s) exactly.
    let config = NearDedupConfig {
        ngram: 1,
        ..NearDedupConfig::default()
    };
    let threshold = config.threshold;
    let mut rng = Lcg(7);
    let targets: [f64; 7] = [0.5, 0.6, 0.7, 0.75, 0.85, 0.9, 0.95];
    let per_level = 200;
    let (mut tp, mut fp, mut fn_, mut tn) = (0u32, 0u32, 0u32, 0u32);
    let mut report = String::from("target  jaccard  flagged\n");
    for &target in &targets {
        let s = (400.0 * target / (1.0 + target)).round() as usize;
        let d = 200 - s;
        let jaccard = s as f64 / (s + 2 * d) as f64;
        let mut flagged = 0;
        for _ in 0..per_level {
            let mut word = || format!("w{}", rng.next());
            let shared: Vec<String> = (0..s).map(|_| word()).collect();
            let a: Vec<String> = shared
                .iter()
                .cloned()
                .chain((0..d).map(|_| word()))
                .collect();
            let b: Vec<String> = shared
                .iter()
                .cloned()
                .chain((0..d).map(|_| word()))
                .collect();
            // A fresh index per pair: each pair is one trial.
            let mut near = NearDedup::new(config.clone());
            let mut first = batch(0, "an unrelated original sentence", &[&a.join(" ")]);
            near.apply(&mut first).unwrap();
            assert!(!first.candidates[0].is_rejected());
            let mut second = batch(1, "another unrelated original", &[&b.join(" ")]);
            near.apply(&mut second).unwrap();
            let hit = second.candidates[0].is_rejected();
            flagged += u32::from(hit);
            match (jaccard >= threshold, hit) {
                (true, true) => tp += 1,
                (true, false) => fn_ += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
            }
        }
        report += &format!(
            "{target:>6}  {jaccard:>7.3}  {:>6.3}\n",
            f64::from(flagged) / per_level as f64
        );
        if jaccard >= 0.9 {
            assert!(
                flagged as f64 >= 0.98 * per_level as f64,
                "{report}J = {jaccard}: too few caught"
            );
        }
        if jaccard <= 0.7 {
            assert!(
                flagged as f64 <= 0.02 * per_level as f64,
                "{report}J = {jaccard}: too many caught"
            );
        }
    }
    let recall = f64::from(tp) / f64::from(tp + fn_);
    let precision = f64::from(tp) / f64::from(tp + fp);
    println!(
        "near-dup at threshold {threshold} (128 permutations, 16 bands × 8 rows):\n{report}\
         recall {recall:.3}, precision {precision:.3} ({tp} tp, {fp} fp, {fn_} fn, {tn} tn)"
    );
    assert!(recall >= 0.95, "recall {recall}\n{report}");
    assert!(precision >= 0.95, "precision {precision}\n{report}");
}

/// 100 words unique to group `g`, with word `i` replaced by a marker for
/// each `i` in `changes`.
fn text(g: usize, changes: &[(usize, &str)]) -> String {
    (0..100)
        .map(|i| {
            changes
                .iter()
                .find(|(at, _)| *at == i)
                .map_or_else(|| format!("g{g}word{i}"), |(_, w)| w.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Four groups of near-duplicate edits (members differ from each other in
/// two words of 100: Jaccard ≈ 0.89 on padded 3-grams), each from its own
/// source whose original differs from the edit in eight places; plus a
/// source whose edit changes one word of 100 (≈ 0.94 to its original).
fn rows() -> Vec<Value> {
    let mut rows = Vec::new();
    for member in 0..3 {
        for g in 0..4 {
            let marker = format!("member{member}");
            let original_changes: Vec<(usize, &str)> = [5, 17, 29, 41, 53, 65, 77, 89]
                .iter()
                .map(|&i| (i, "orig"))
                .collect();
            rows.push(json!({
                "id": format!("g{g}m{member}"),
                "original": text(g, &original_changes),
                "edited": text(g, &[(10 + member * 20, &marker)]),
            }));
        }
    }
    rows.push(json!({
        "id": "collapse",
        "original": text(9, &[]),
        "edited": text(9, &[(50, "changed")]),
    }));
    rows
}

fn run_pairs(input: &Path, out: &Path, extra: &[&str]) {
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "text",
            "--out",
        ])
        .arg(out)
        .args(["--id-field", "id", "--text-field", "original"])
        .args(["--edited-field", "edited", "--no-similarity"])
        // The texts differ from their originals in many places: loosen the
        // edit measure, and ask for the collapse check near-dedup can make.
        .args([
            "--max-edit-ops",
            "20",
            "--max-changed-share",
            "1",
            "--quiet",
        ])
        .args(["--near-original-threshold", "0.9"])
        .args(extra)
        .assert()
        .success();
}

fn rejected_by(out: &Path) -> BTreeMap<String, String> {
    read_rows(out, "rejected_shards")
        .into_iter()
        .map(|r| {
            (
                r["source_id"].as_str().unwrap().to_string(),
                r["reject_reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn accepted(out: &Path) -> Vec<String> {
    read_rows(out, "shards")
        .into_iter()
        .map(|r| r["source_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn one_survivor_per_group_first_in_input_order_whatever_the_concurrency() {
    let d = tempfile::tempdir().unwrap();
    let rows = rows();
    let forward = d.path().join("forward.jsonl");
    write_jsonl(&forward, &rows);
    let mut reversed_rows = rows.clone();
    reversed_rows.reverse();
    let reversed = d.path().join("reversed.jsonl");
    write_jsonl(&reversed, &reversed_rows);

    let (one, many, back) = (
        d.path().join("c1"),
        d.path().join("c16"),
        d.path().join("rev"),
    );
    run_pairs(&forward, &one, &["--concurrency", "1"]);
    run_pairs(&forward, &many, &["--concurrency", "16"]);
    run_pairs(&reversed, &back, &["--concurrency", "16"]);

    // Concurrency changes nothing.
    assert_eq!(accepted(&one), accepted(&many));
    assert_eq!(rejected_by(&one), rejected_by(&many));

    // Forward: member 0 of each group survives; reversed: member 2.
    assert_eq!(accepted(&one), vec!["g0m0", "g1m0", "g2m0", "g3m0"]);
    let mut survivors_back = accepted(&back);
    survivors_back.sort();
    assert_eq!(survivors_back, vec!["g0m2", "g1m2", "g2m2", "g3m2"]);
    for out in [&one, &back] {
        let rejected = rejected_by(out);
        assert_eq!(rejected["collapse"], "near_duplicate_of_original");
        let dups: BTreeSet<&str> = rejected
            .iter()
            .filter(|(k, _)| k.as_str() != "collapse")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(dups, BTreeSet::from(["near_duplicate_across_sources"]));
        assert_eq!(rejected.len(), 9);
        let m = manifest(out);
        assert_funnel_adds_up(&m);
        let stage = m["funnel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == "near_dedup")
            .expect("near_dedup stage in the funnel")
            .clone();
        assert_eq!(stage["in"], 13);
        assert_eq!(stage["out"], 4);
    }
}

#[test]
fn against_an_earlier_output_folder_rejects_its_repeats() {
    let d = tempfile::tempdir().unwrap();
    let rows = rows();
    // Last week's run saw groups 0 and 1 only (member 1).
    let earlier_rows: Vec<Value> = rows
        .iter()
        .filter(|r| matches!(r["id"].as_str(), Some("g0m1" | "g1m1")))
        .cloned()
        .collect();
    let earlier_in = d.path().join("earlier.jsonl");
    write_jsonl(&earlier_in, &earlier_rows);
    let earlier = d.path().join("earlier");
    run_pairs(&earlier_in, &earlier, &[]);
    assert_eq!(accepted(&earlier), vec!["g0m1", "g1m1"]);

    let input = d.path().join("all.jsonl");
    write_jsonl(&input, &rows);
    let out = d.path().join("now");
    run_pairs(&input, &out, &["--against", earlier.to_str().unwrap()]);
    assert_eq!(accepted(&out), vec!["g2m0", "g3m0"]);
    let rejected = rejected_by(&out);
    for g in 0..2 {
        for m in 0..3 {
            assert_eq!(
                rejected[&format!("g{g}m{m}")],
                "near_duplicate_of_earlier_output",
                "g{g}m{m}"
            );
        }
    }
    let m = manifest(&out);
    assert_eq!(
        m["config"]["dedup"]["near"]["against"][0],
        earlier.to_str().unwrap()
    );

    // A folder that is not foil output is a usage error naming it.
    foil()
        .args([
            "generate",
            input.to_str().unwrap(),
            "--task",
            "text",
            "--out",
        ])
        .arg(d.path().join("bad"))
        .args(["--id-field", "id", "--text-field", "original"])
        .args(["--edited-field", "edited", "--no-similarity", "--quiet"])
        .args(["--against", d.path().join("nowhere").to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nowhere"));
}

#[test]
fn the_index_survives_a_restart_through_the_run_state() {
    use foil::sink::state::{Checkpoint, RunState};
    let d = tempfile::tempdir().unwrap();
    let first_edit = text(1, &[(10, "alpha")]);
    let repeat = text(1, &[(30, "beta")]);
    {
        let mut near = NearDedup::new(NearDedupConfig::default());
        let mut b = batch(
            0,
            &text(1, &[(70, "o"), (80, "o"), (90, "o")]),
            &[&first_edit],
        );
        near.apply(&mut b).unwrap();
        assert!(!b.candidates[0].is_rejected());
        let mut state = RunState::open(d.path()).unwrap();
        state.reset("identity").unwrap();
        state
            .commit(&Checkpoint::default(), &[], &near.take_new(), &[], &[], 0)
            .unwrap();
        assert!(near.take_new().is_empty(), "entries are handed over once");
    }
    // A new process: the index comes back from the state file.
    // A new process: the index comes back from the state file, in memory
    // or (past its memory share) on disk.
    let state = RunState::open(d.path()).unwrap();
    for share in [usize::MAX, 0] {
        let mut near =
            NearDedup::new(NearDedupConfig::default()).spill_to(&d.path().join("index"), share);
        state.each_near_entry(|e| near.restore([e])).unwrap();
        assert_eq!(near.len(), 1);
        assert_eq!(near.on_disk(), share == 0);
        let mut b = batch(5, &text(1, &[(60, "o"), (75, "o"), (95, "o")]), &[&repeat]);
        near.apply(&mut b).unwrap();
        let r = b.candidates[0]
            .rejection
            .as_ref()
            .expect("caught after restart");
        assert_eq!(r.reason, "near_duplicate_across_sources");
        assert!(r.detail.contains("source #0"), "{}", r.detail);
    }
}

/// The decisions of an index held in memory, one on disk from the start,
/// and one that moves to disk part-way, on a stream of texts with planted
/// near-duplicates (within and across sources) and exact repeats.
#[test]
fn an_index_on_disk_decides_exactly_as_one_in_memory() {
    use foil::dedup::ExactDedup;
    let mut rng = Lcg(11);
    let vocab: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
    let mut made: Vec<String> = Vec::new();
    let mut stream: Vec<(String, Vec<String>)> = Vec::new();
    for _ in 0..600 {
        let original: Vec<String> = (0..14)
            .map(|_| vocab[rng.next() as usize % vocab.len()].clone())
            .collect();
        let mut edits = Vec::new();
        for _ in 0..3 {
            let r = rng.next() % 10;
            let e = if r < 3 && !made.is_empty() {
                // A near or exact repeat of an earlier edit.
                let base = match edits.last() {
                    Some(e) if r == 1 => e,
                    _ => &made[rng.next() as usize % made.len()],
                };
                let mut w: Vec<String> = base.split(' ').map(str::to_string).collect();
                if r > 0 {
                    w.push(vocab[rng.next() as usize % vocab.len()].clone());
                }
                w.join(" ")
            } else {
                let mut w = original.clone();
                for _ in 0..(1 + rng.next() % 4) {
                    let at = rng.next() as usize % w.len();
                    w[at] = vocab[rng.next() as usize % vocab.len()].clone();
                }
                w.join(" ")
            };
            made.push(e.clone());
            edits.push(e);
        }
        stream.push((original.join(" "), edits));
    }
    // `share`: bytes of memory each index may hold (0: every entry moves
    // to disk at the next insert, one at a time; 20,000: batches of 21
    // near-dedup entries and of 312 exact keys).
    let decide = |share: usize, dir: &Path| -> Vec<Option<(String, String)>> {
        let mut exact = ExactDedup::new().spill_to(&dir.join("exact"), share);
        let mut near =
            NearDedup::new(NearDedupConfig::default()).spill_to(&dir.join("near"), share);
        let mut out = Vec::new();
        for (seq, (original, edits)) in stream.iter().enumerate() {
            let refs: Vec<&str> = edits.iter().map(String::as_str).collect();
            let mut b = batch(seq as u64, original, &refs);
            exact.apply(&mut b).unwrap();
            near.apply(&mut b).unwrap();
            exact.remember_accepted(&b.candidates).unwrap();
            out.extend(b.candidates.iter().map(|c| {
                c.rejection
                    .as_ref()
                    .map(|r| (r.reason.clone(), r.detail.clone()))
            }));
        }
        assert_eq!(near.on_disk(), share < usize::MAX, "share {share}");
        assert_eq!(exact.on_disk(), share < usize::MAX, "share {share}");
        out
    };
    let d = tempfile::tempdir().unwrap();
    let memory = decide(usize::MAX, &d.path().join("m"));
    let reasons: BTreeSet<&str> = memory.iter().flatten().map(|(r, _)| r.as_str()).collect();
    for r in [
        "duplicate_across_sources",
        "near_duplicate_across_sources",
        "near_duplicate_within_source",
    ] {
        assert!(reasons.contains(r), "the stream exercises {r}: {reasons:?}");
    }
    assert_eq!(
        decide(0, &d.path().join("d")),
        memory,
        "on disk from the start"
    );
    assert_eq!(
        decide(20_000, &d.path().join("s")),
        memory,
        "moved to disk in batches"
    );
}

#[test]
fn an_exact_repeat_of_a_pair_near_dedup_turned_down_is_not_called_its_duplicate() {
    // Issue 14, item 8: exact dedup remembered every edit it passed, so a
    // later exact repeat was rejected as a duplicate of a pair that
    // near-dedup had then turned down and that was never written.
    let d = tempfile::tempdir().unwrap();
    let edit = text(9, &[(50, "changed")]);
    let far: Vec<(usize, &str)> = [5, 17, 29, 41, 53, 65, 77, 89]
        .iter()
        .map(|&i| (i, "orig"))
        .collect();
    let rows = vec![
        // Collapses back to its original: near-dedup turns it down.
        json!({"id": "collapse", "original": text(9, &[]), "edited": edit}),
        // The same edit from an original it really changes.
        json!({"id": "repeat", "original": text(9, &far), "edited": edit}),
    ];
    let input = d.path().join("in.jsonl");
    write_jsonl(&input, &rows);
    let out = d.path().join("out");
    run_pairs(&input, &out, &[]);
    let rejected = rejected_by(&out);
    assert_eq!(
        rejected.get("collapse").map(String::as_str),
        Some("near_duplicate_of_original")
    );
    assert_eq!(accepted(&out), vec!["repeat".to_string()], "{rejected:?}");
    assert_funnel_adds_up(&manifest(&out));
}
