//! Every pipeline file in pipelines/ validates, and `foil run` of one
//! builds the same pipeline `foil generate` does.

use crate::support::{foil, manifest, repo};

#[test]
fn every_pipeline_file_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        foil().arg("validate").arg(&path).assert().success();
    }
    assert!(n >= 6, "one pipeline per task plus pairs mode, found {n}");
}

#[test]
fn run_and_generate_build_the_same_pipeline() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    foil()
        .args(["run", "pipelines/nli.toml", "--quiet", "--out"])
        .arg(a.path())
        .current_dir(repo())
        .assert()
        .success();
    foil()
        .args([
            "generate",
            "data/samples/nli.csv",
            "--task",
            "nli",
            "--id-field",
            "id",
            "--concurrency",
            "8",
        ])
        .args([
            "--ops",
            "negation,antonym,quantifier,number,temporal",
            "--quiet",
            "--out",
        ])
        .arg(b.path())
        .current_dir(repo())
        .assert()
        .success();
    let (ma, mb) = (manifest(a.path()), manifest(b.path()));
    assert_eq!(ma["funnel"], mb["funnel"]);
    assert_eq!(ma["config"]["generator"], mb["config"]["generator"]);
    assert_eq!(ma["config"]["filters"], mb["config"]["filters"]);
    assert_eq!(
        crate::support::pair_ids(a.path()),
        crate::support::pair_ids(b.path())
    );
    assert!(ma["counts"]["accepted"].as_u64().unwrap() > 0);
}
