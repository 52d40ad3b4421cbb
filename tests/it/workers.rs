//! Sharded workers and `foil merge`: N workers plus a merge equal one
//! process on the same input (the same accepted pairs in the same order,
//! the same rejections, the same funnel); the deploy examples' environment
//! contract (Slurm arrays, Kubernetes Indexed Jobs) run as local processes;
//! a changed worker count is refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{foil, manifest, read_rows, repo};

/// The sample questions, then each again under a new id (so exact
/// duplicates cross sources and workers), as CSV.
fn input(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("data/samples/questions.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let rows: Vec<String> = lines[1..].to_vec();
    for (i, r) in rows.iter().enumerate() {
        if i % 2 == 0 {
            let rest = r.split_once(',').unwrap().1;
            lines.push(format!("again{i:02},{rest}"));
        }
    }
    let path = dir.join("questions.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn pipeline(dir: &Path, input: &Path) -> PathBuf {
    let text = format!(
        r#"task = "question"
concurrency = 4

[source]
path = "{}"
id = "id"
fields = {{ text = "question", label = "answer" }}

[generator]
kind = "rules"

[embedder]
kind = "local"

[sink]
rows_per_shard = 7
"#,
        input.display()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// (accepted pair ids in order, rejected (pair, stage, reason), funnel).
type Outcome = (Vec<String>, BTreeSet<(String, String, String)>, Value);

fn outcome(dir: &Path) -> Outcome {
    let accepted = read_rows(dir, "shards")
        .into_iter()
        .map(|r| r["pair_id"].as_str().unwrap().to_string())
        .collect();
    let rejected = read_rows(dir, "rejected_shards")
        .into_iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("pair_id"), s("reject_stage"), s("reject_reason"))
        })
        .collect();
    (accepted, rejected, manifest(dir)["funnel"].clone())
}

fn single(pipeline: &Path, out: &Path) -> Outcome {
    foil()
        .args(["run", pipeline.to_str().unwrap(), "--out"])
        .arg(out)
        .arg("--quiet")
        .assert()
        .success();
    outcome(out)
}

/// Run `pipeline` as `n` local workers into `sharded`, one after another.
fn run_workers(pipeline: &Path, sharded: &Path, n: usize) {
    for i in 0..n {
        foil()
            .args(["run", pipeline.to_str().unwrap(), "--out"])
            .arg(sharded)
            .args(["--shard", &format!("{i}/{n}"), "--quiet", "--no-worker-env"])
            .assert()
            .success();
    }
}

/// `foil merge` of `dir` exits 2 with a message containing `says`.
fn merge_is_refused(dir: &Path, into: &Path, says: &str) {
    foil()
        .args(["merge", dir.to_str().unwrap(), "--into"])
        .arg(into)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(says));
}

fn merge(dir: &Path, into: &Path) -> Outcome {
    foil()
        .args(["merge", dir.to_str().unwrap(), "--into"])
        .arg(into)
        .args(["--rows-per-shard", "10"])
        .assert()
        .success();
    let m = manifest(into);
    crate::support::assert_funnel_adds_up(&m);
    outcome(into)
}

fn assert_same(merged: &Outcome, one: &Outcome) {
    assert_eq!(merged.0, one.0, "accepted pairs, in order");
    assert_eq!(merged.1, one.1, "rejections");
    assert_eq!(merged.2, one.2, "funnel");
}

#[test]
fn n_workers_then_merge_equal_one_process() {
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());
    let file = pipeline(d.path(), &input);
    let one = single(&file, &d.path().join("one"));
    assert!(
        one.1
            .iter()
            .any(|(_, _, r)| r == "duplicate_across_sources"),
        "the input makes duplicates across sources"
    );

    let sharded = d.path().join("sharded");
    run_workers(&file, &sharded, 3);
    // Each worker took a part, and together all of it.
    let parts: Vec<u64> = (0..3)
        .map(|i| {
            manifest(&sharded.join(format!("worker-{i:05}-of-00003")))["counts"]["sources"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(parts.iter().all(|&p| p > 0), "{parts:?}");
    assert_eq!(
        parts.iter().sum::<u64>(),
        manifest(&d.path().join("one"))["counts"]["sources"]
            .as_u64()
            .unwrap()
    );
    let merged_dir = d.path().join("merged");
    let merged = merge(&sharded, &merged_dir);
    assert_same(&merged, &one);
    // Evenly sized shards.
    let sizes: Vec<u64> = manifest(&merged_dir)["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_u64().unwrap())
        .collect();
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{sizes:?}"
    );
    assert!(sizes.iter().all(|&s| s <= 10));

    // Resuming the run with another worker count is refused.
    foil()
        .args(["run", file.to_str().unwrap(), "--out"])
        .arg(&sharded)
        .args(["--shard", "0/2", "--quiet", "--no-worker-env"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("run with 3 workers"));
    // A merge with a worker missing says which.
    std::fs::remove_dir_all(sharded.join("worker-00001-of-00003")).unwrap();
    foil()
        .args(["merge", sharded.to_str().unwrap(), "--into"])
        .arg(d.path().join("m2"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("worker-00001-of-00003"));
}

fn foil_bin_dir() -> PathBuf {
    assert_cmd::cargo::cargo_bin("foil")
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_deploy_examples_env_contract_runs_as_local_workers() {
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());
    let file = pipeline(d.path(), &input);
    let one = single(&file, &d.path().join("one"));
    let path_env = format!(
        "{}:{}",
        foil_bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // Slurm: the array size comes from the script's own #SBATCH line; each
    // task runs the script with the variables Slurm sets (array from 1 here,
    // to exercise SLURM_ARRAY_TASK_MIN).
    let script = repo().join("deploy/slurm/foil-array.sbatch");
    let text = std::fs::read_to_string(&script).unwrap();
    let status = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success(), "the sbatch script parses");
    let range = text
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("an --array line");
    let (lo, hi) = range.split_once('-').unwrap();
    let n = hi.parse::<u32>().unwrap() - lo.parse::<u32>().unwrap() + 1;
    let slurm_out = d.path().join("slurm");
    for task in 1..=n {
        let out = Command::new("bash")
            .arg(&script)
            .env("PATH", &path_env)
            .env("FOIL_PIPELINE", &file)
            .env("FOIL_OUT", &slurm_out)
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", n.to_string())
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert!(slurm_out.join(format!("worker-00000-of-{n:05}")).is_dir());
    assert_same(&merge(&slurm_out, &d.path().join("slurm-merged")), &one);

    // Kubernetes Indexed Job: the container's args with the local paths,
    // JOB_COMPLETION_INDEX per pod, the count from --workers.
    let job: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/kubernetes/indexed-job.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let at = args.iter().position(|a| a == "--workers").unwrap();
    assert_eq!(
        args[at + 1],
        completions.to_string(),
        "--workers equals completions"
    );
    let k8s_out = d.path().join("k8s");
    for index in 0..completions {
        let local: Vec<String> = args
            .iter()
            .map(|a| match a.as_str() {
                "/config/pipeline.toml" => file.display().to_string(),
                "/data/out" => k8s_out.display().to_string(),
                _ => a.clone(),
            })
            .collect();
        foil()
            .args(&local)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env_remove("SLURM_ARRAY_TASK_ID")
            .assert()
            .success();
    }
    assert_same(&merge(&k8s_out, &d.path().join("k8s-merged")), &one);

    // The CronJob and the systemd units run `foil run` on a schedule.
    let cron: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/kubernetes/cronjob.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(cron["kind"].as_str(), Some("CronJob"));
    assert_eq!(
        cron["spec"]["schedule"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        5
    );
    assert_eq!(cron["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"));
    let cargs = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(cargs[0].as_str(), Some("run"));
    let service = std::fs::read_to_string(repo().join("deploy/systemd/foil.service")).unwrap();
    let timer = std::fs::read_to_string(repo().join("deploy/systemd/foil.timer")).unwrap();
    assert!(
        service
            .lines()
            .any(|l| l.starts_with("ExecStart=") && l.contains(" run "))
    );
    assert!(service.contains("SuccessExitStatus=3 4"));
    assert!(timer.lines().any(|l| l.starts_with("OnCalendar=")));
    assert!(timer.contains("[Install]"));
}

#[test]
fn merge_keeps_seeds_above_2_pow_53_exact() {
    // Issue 14, item 9: seeds were read back through f64.
    use crate::support::fake_openai::FakeOpenAi;
    let fake = FakeOpenAi::start(crate::llm::question_editor(), std::time::Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let seed: u64 = (1 << 53) + 1;
    let text = format!(
        r#"task = "question"
concurrency = 2

[source]
path = "{input}"
id = "id"
limit = 12

[generator]
kind = "llm"
url = "{url}"
model = "fake-model"
n = 2
seed = {seed}

[[filters]]
kind = "edit_distance"
max_word_edits = 10
max_edit_ratio = 2.0
"#,
        input = repo().join("data/samples/questions.csv").display(),
        url = fake.base_url(),
    );
    let file = d.path().join("llm.toml");
    std::fs::write(&file, text).unwrap();
    let seeds = |dir: &Path| -> Vec<u64> {
        read_rows(dir, "shards")
            .iter()
            .map(|r| r["seed"].as_u64().expect("an integer seed"))
            .collect()
    };
    let one = d.path().join("one");
    foil()
        .args(["run", file.to_str().unwrap(), "--quiet", "--out"])
        .arg(&one)
        .assert()
        .success();
    let sharded = d.path().join("sharded");
    run_workers(&file, &sharded, 2);
    let merged = d.path().join("merged");
    foil()
        .args(["merge", sharded.to_str().unwrap(), "--into"])
        .arg(&merged)
        .assert()
        .success();
    let expected = seeds(&one);
    assert!(expected.len() > 6);
    assert!(
        expected.iter().all(|&s| s == seed || s == seed + 1),
        "{expected:?}"
    );
    assert!(expected.contains(&(seed + 1)) || expected.contains(&seed));
    assert_eq!(seeds(&merged), expected);
}

#[test]
fn merge_refuses_near_dedup_without_the_rejected_pairs() {
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());
    let file = pipeline(d.path(), &input);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "rows_per_shard = 7",
        "rows_per_shard = 7\nwrite_rejected = false",
    );
    std::fs::write(&file, text).unwrap();
    let sharded = d.path().join("sharded");
    run_workers(&file, &sharded, 2);
    merge_is_refused(
        &sharded,
        &d.path().join("merged"),
        "without writing rejected pairs",
    );
}

#[test]
fn merge_refuses_a_worker_whose_shards_are_not_in_input_order() {
    let d = tempfile::tempdir().unwrap();
    let input = input(d.path());
    let file = pipeline(d.path(), &input);
    let sharded = d.path().join("sharded");
    run_workers(&file, &sharded, 2);
    // New rows (every row again, under new ids) inserted at the top: an
    // incremental rerun takes them after the rows it had already written,
    // so its shards are out of input order.
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let fresh: Vec<String> = lines[1..]
        .iter()
        .enumerate()
        .map(|(i, r)| format!("early{i:02},{}", r.split_once(',').unwrap().1))
        .collect();
    lines.splice(1..1, fresh);
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    run_workers(&file, &sharded, 2);
    merge_is_refused(&sharded, &d.path().join("merged"), "not in input order");
}
