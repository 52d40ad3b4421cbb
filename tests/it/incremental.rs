//! Incremental scheduled runs: the same pipeline over a source that grew
//! processes only the new source ids, appends shards (old ones untouched,
//! byte for byte), keeps deduplicating against what is already there, and
//! ends equal to one run over the whole grown input.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{assert_funnel_adds_up, foil, manifest, pair_ids, repo};

/// The pipeline file; with `index_memory_mib` its dedup indexes move to
/// disk past that much memory (0: from the first pair).
fn pipeline(dir: &Path, input: &Path, index_memory_mib: Option<usize>) -> std::path::PathBuf {
    let dedup = index_memory_mib
        .map(|m| format!("\n[dedup]\nindex_memory_mib = {m}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"task = "question"

[source]
path = "{}"
id = "id"
fields = {{ text = "question", label = "answer" }}

[generator]
kind = "rules"
ops = ["negation", "antonym", "number", "quantifier", "comparative", "temporal", "gender"]

[embedder]
kind = "local"

[sink]
rows_per_shard = 20
{dedup}"#,
        input.display()
    );
    let path = dir.join(if dedup.is_empty() {
        "nightly.toml"
    } else {
        "nightly-disk-index.toml"
    });
    std::fs::write(&path, text).unwrap();
    path
}

fn run(file: &Path, out: &Path) -> String {
    let a = foil()
        .args(["run", file.to_str().unwrap(), "--out"])
        .arg(out)
        .assert()
        .success();
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "rejected"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "parquet") {
                out.insert(
                    format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn a_grown_source_is_processed_incrementally() {
    let d = tempfile::tempdir().unwrap();
    let all = std::fs::read_to_string(repo().join("data/samples/questions.csv")).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    let input = d.path().join("questions.csv");
    // Day 1: the header and the first 20 questions.
    std::fs::write(&input, lines[..21].join("\n") + "\n").unwrap();
    // The scheduled runs keep their dedup indexes on disk, rebuilt from the
    // run state at each start; the one-run reference below keeps them in
    // memory.
    let file = pipeline(d.path(), &input, Some(0));
    let out = d.path().join("out");
    run(&file, &out);
    let day1 = manifest(&out);
    let day1_files = files(&out);
    let day1_ids = pair_ids(&out);
    assert_eq!(day1["counts"]["sources"], 20);

    // Day 2: the rest appended, plus a repeat of question 2 under a new id.
    let repeat = format!("again02,{}", lines[2].split_once(',').unwrap().1);
    let grown: Vec<&str> = lines.iter().copied().chain([repeat.as_str()]).collect();
    std::fs::write(&input, grown.join("\n") + "\n").unwrap();
    run(&file, &out);
    let day2 = manifest(&out);
    assert_eq!(day2["status"], "complete");
    assert_funnel_adds_up(&day2);
    let new_sources = (lines.len() - 21 + 1) as u64;
    assert_eq!(day2["counts"]["sources"], 20 + new_sources);
    assert_eq!(
        day2["funnel"][0]["in"],
        20 + new_sources,
        "every row read once in all"
    );
    // Old shards untouched, new ones appended.
    let day2_files = files(&out);
    for (name, bytes) in &day1_files {
        assert_eq!(day2_files.get(name), Some(bytes), "{name} was rewritten");
    }
    assert!(day2_files.len() > day1_files.len());
    let day2_ids = pair_ids(&out);
    assert_eq!(&day2_ids[..day1_ids.len()], &day1_ids[..]);
    // The repeat's edits are duplicates of day 1's.
    let rejected = crate::support::read_rows(&out, "rejected_shards");
    assert!(
        rejected.iter().any(
            |r| r["source_id"] == "again02" && r["reject_reason"] == "duplicate_across_sources"
        ),
        "new sources are deduplicated against earlier output"
    );

    // Day 3: nothing new.
    let said = run(&file, &out);
    assert!(said.contains("no new sources"), "{said}");
    assert_eq!(files(&out), day2_files);

    // The same as one run over the whole grown input.
    let once = d.path().join("once");
    run(&pipeline(d.path(), &input, None), &once);
    assert_eq!(pair_ids(&once), day2_ids);
    assert_eq!(manifest(&once)["funnel"], day2["funnel"]);
}
