//! The production runtime under faults: each fault class of a flaky
//! endpoint, the response cache, budgets, signals, SIGKILL at random
//! moments, rate limits, and the key staying secret at full verbosity.
//! See docs/RELIABILITY.md for the guarantee each test proves.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::llm::question_editor;
use crate::support::fake_openai::{FakeOpenAi, Fault, Reply, line_value, user_message};
use crate::support::{all_output_text, assert_funnel_adds_up, foil, manifest, pair_ids, repo};

/// A pipeline file for the sample questions through `url`.
fn pipeline(dir: &Path, url: &str, extra_endpoint: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"task = "question"
concurrency = 4
{extra}

[source]
path = "{input}"
id = "id"
limit = 6

[generator]
kind = "llm"
url = "{url}"
model = "fake-model"
api_key_env = "FOIL_TEST_KEY"
n = 1
seed = 0
retry_base_ms = 20
timeout_s = 2.0
max_attempts = 3
{extra_endpoint}

[[filters]]
kind = "edit_distance"
max_word_edits = 10
max_edit_ratio = 2.0
"#,
        input = repo().join("data/samples/questions.csv").display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Always a usable edit (unlike `question_editor`, which has bad replies
/// for some questions), so counts below are exact.
fn clean_editor() -> Arc<dyn Fn(&Value) -> Reply + Send + Sync> {
    Arc::new(|body| {
        let q = line_value(&user_message(body), "Question").unwrap_or_default();
        let seed = body["seed"].as_u64().unwrap_or(0);
        let edited = format!("{} in year {}?", q.trim_end_matches('?'), 1900 + seed);
        Reply::chat(
            &json!({"edited": edited, "new_answer": "x", "edit_type": "temporal"}).to_string(),
        )
    })
}

/// A chat handler that answers the first request for each distinct body
/// with `fault`, and every later one properly.
fn first_attempt_fails(fault: Reply) -> Arc<dyn Fn(&Value) -> Reply + Send + Sync> {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let good = clean_editor();
    Arc::new(move |body| {
        let n = {
            let mut s = seen.lock().unwrap();
            let e = s.entry(body.to_string()).or_default();
            *e += 1;
            *e
        };
        if n == 1 { fault.clone() } else { good(body) }
    })
}

fn run_pipeline(file: &Path, out: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    foil()
        .env("FOIL_TEST_KEY", "sk-fault-test")
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(args)
        .arg("--quiet")
        .assert()
}

fn stage_usage(m: &Value, key: &str) -> u64 {
    m["usage"]["stages"]["generate"][key].as_u64().unwrap_or(0)
}

#[test]
fn every_fault_class_is_retried_and_the_run_completes_with_the_right_output() {
    let clean = FakeOpenAi::start(clean_editor(), Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let baseline_out = dir.path().join("baseline");
    run_pipeline(
        &pipeline(dir.path(), &clean.base_url(), "", ""),
        &baseline_out,
        &[],
    )
    .code(0);
    let baseline = pair_ids(&baseline_out);
    assert!(!baseline.is_empty());

    let truncated = r#"{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"edi"#;
    let faults: Vec<(&str, Reply)> = vec![
        (
            "429 with Retry-After",
            Reply::json(429, json!({"error": "slow down"})).with_header("retry-after", "1"),
        ),
        (
            "429 without Retry-After",
            Reply::json(429, json!({"error": "slow down"})),
        ),
        ("500", Reply::json(500, json!({"error": "boom"}))),
        ("502", Reply::raw(502, "<html>bad gateway</html>")),
        ("503", Reply::json(503, json!({"error": "overloaded"}))),
        (
            "stall past the timeout",
            Reply::chat("{}").with_fault(Fault::Stall(Duration::from_secs(4))),
        ),
        (
            "reset mid-body",
            Reply::chat(&"x".repeat(400)).with_fault(Fault::ResetMidBody),
        ),
        ("truncated JSON", Reply::raw(200, truncated)),
        (
            "not JSON",
            Reply::raw(200, "Internal hiccup, please try later"),
        ),
        ("empty choices", Reply::json(200, json!({"choices": []}))),
    ];
    for (name, fault) in faults {
        let fake = FakeOpenAi::start(first_attempt_fails(fault), Duration::ZERO);
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        run_pipeline(&pipeline(d.path(), &fake.base_url(), "", ""), &out, &[]).code(0);
        let m = manifest(&out);
        assert_eq!(
            pair_ids(&out),
            baseline,
            "{name}: same output as a clean run"
        );
        assert_eq!(m["counts"]["dead_letters"], 0, "{name}");
        assert_eq!(
            stage_usage(&m, "retries"),
            6,
            "{name}: one retry per source"
        );
        assert_eq!(
            fake.count("/chat/completions"),
            12,
            "{name}: each request sent twice"
        );
        if name.starts_with("429") {
            assert_eq!(stage_usage(&m, "rate_limited"), 6, "{name}");
        }
        assert_funnel_adds_up(&m);
    }

    // A reply that breaks the schema is a bad reply: asked again once.
    let fake = FakeOpenAi::start(
        first_attempt_fails(Reply::chat(
            r#"{"edited": 7, "new_answer": "x", "edit_type": "entity"}"#,
        )),
        Duration::ZERO,
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    run_pipeline(&pipeline(d.path(), &fake.base_url(), "", ""), &out, &[]).code(0);
    let m = manifest(&out);
    assert_eq!(pair_ids(&out), baseline, "schema violation retried");
    assert_eq!(m["usage"]["invalid_replies"], 6);
}

#[test]
fn permanent_failures_and_exhausted_attempts_go_to_dead_letters() {
    for (name, reply, attempts) in [
        ("401", Reply::json(401, json!({"error": "bad key"})), 1),
        ("always 503", Reply::json(503, json!({"error": "down"})), 3),
    ] {
        let fake = FakeOpenAi::start(Arc::new(move |_| reply.clone()), Duration::ZERO);
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let run = run_pipeline(&pipeline(d.path(), &fake.base_url(), "", ""), &out, &[]).code(3);
        let err = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(err.contains("6 source(s) failed"), "{name}: {err}");
        let dead: Vec<Value> = std::fs::read_to_string(out.join("dead-letter.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(dead.len(), 6, "{name}");
        assert!(
            dead.iter().all(|d| d["attempts"] == attempts),
            "{name}: {dead:?}"
        );
        assert_eq!(
            fake.count("/chat/completions"),
            6 * attempts as usize,
            "{name}"
        );
        let m = manifest(&out);
        assert_eq!(m["counts"]["dead_letters"], 6);
        assert_eq!(m["status"], "complete", "the run goes on");
    }
}

#[test]
fn the_cache_answers_identical_requests_and_misses_when_anything_changes() {
    let fake = FakeOpenAi::start(clean_editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let shared = d.path().join("shared-cache.sqlite");
    let file = pipeline(
        d.path(),
        &fake.base_url(),
        "",
        &format!("[cache]\npath = \"{}\"", shared.display()),
    );
    run_pipeline(&file, &d.path().join("a"), &[]).code(0);
    assert_eq!(fake.count("/chat/completions"), 6);
    // Same config, another output folder: all answers from the cache.
    run_pipeline(&file, &d.path().join("b"), &[]).code(0);
    assert_eq!(
        fake.count("/chat/completions"),
        6,
        "an identical rerun sends zero requests"
    );
    assert_eq!(pair_ids(&d.path().join("a")), pair_ids(&d.path().join("b")));
    assert_eq!(stage_usage(&manifest(&d.path().join("b")), "cache_hits"), 6);
    // A rerun of a complete folder does nothing and says so.
    let again = foil()
        .env("FOIL_TEST_KEY", "k")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(d.path().join("b"))
        .assert()
        .code(0);
    assert!(String::from_utf8_lossy(&again.get_output().stdout).contains("already complete"));
    // --refresh-cache sends everything again; --no-cache too, without writing.
    run_pipeline(&file, &d.path().join("c"), &["--refresh-cache"]).code(0);
    assert_eq!(fake.count("/chat/completions"), 12);
    run_pipeline(&file, &d.path().join("d"), &["--no-cache"]).code(0);
    assert_eq!(fake.count("/chat/completions"), 18);
    // Another temperature is another question.
    let warmer = pipeline(
        d.path(),
        &fake.base_url(),
        "temperature = 0.9",
        &format!("[cache]\npath = \"{}\"", shared.display()),
    );
    run_pipeline(&warmer, &d.path().join("e"), &[]).code(0);
    assert_eq!(
        fake.count("/chat/completions"),
        24,
        "temperature is part of the key"
    );
    // So is the prompt file.
    let prompts = d.path().join("prompts/question");
    std::fs::create_dir_all(&prompts).unwrap();
    for f in ["system.jinja", "schema.json"] {
        std::fs::copy(repo().join("prompts/question").join(f), prompts.join(f)).unwrap();
    }
    let user = std::fs::read_to_string(repo().join("prompts/question/user.jinja")).unwrap();
    std::fs::write(prompts.join("user.jinja"), format!("Be brief.\n{user}")).unwrap();
    let reworded = pipeline(
        d.path(),
        &fake.base_url(),
        &format!("prompts_dir = \"{}\"", d.path().join("prompts").display()),
        &format!("[cache]\npath = \"{}\"", shared.display()),
    );
    run_pipeline(&reworded, &d.path().join("f"), &[]).code(0);
    assert_eq!(
        fake.count("/chat/completions"),
        30,
        "the prompt is part of the key"
    );
    // The cache holds answers, never the key.
    let cache_text = String::from_utf8_lossy(&std::fs::read(&shared).unwrap()).into_owned();
    assert!(!cache_text.contains("sk-fault-test"));
}

#[test]
fn the_key_appears_nowhere_even_at_trace_level() {
    let key = "sk-live-0123456789-SECRET-canary";
    let fake = FakeOpenAi::start(
        Arc::new(move |body| {
            // A hostile server echoing the key back, in an error and inside
            // an otherwise good reply.
            let text = body.to_string();
            if text.contains("Hamlet") {
                Reply::json(
                    400,
                    json!({"error": format!("invalid request for key {key}")}),
                )
            } else if text.contains("ocean") {
                let reply = json!({"edited": "Which ocean is the smallest?", "new_answer": "Arctic",
                    "edit_type": "comparative", "rationale": format!("as told by {key}")});
                Reply::chat(&reply.to_string())
            } else {
                question_editor()(body)
            }
        }),
        Duration::ZERO,
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let file = pipeline(d.path(), &fake.base_url(), "", "");
    let run = foil()
        .env("FOIL_TEST_KEY", key)
        .env("RUST_LOG", "trace")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("-vvv")
        .assert()
        .code(3);
    let printed = String::from_utf8_lossy(&run.get_output().stdout).into_owned()
        + &String::from_utf8_lossy(&run.get_output().stderr);
    assert!(
        printed.contains("TRACE") || printed.contains("DEBUG"),
        "verbose logging was on"
    );
    assert!(
        fake.recorded()
            .iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {key}"))
    );
    let rows = crate::support::read_rows(&out, "shards");
    assert!(
        rows.iter()
            .any(|r| r["rationale"] == "as told by <redacted>"),
        "the echoed key was replaced and the reply kept"
    );
    for (what, text) in [
        ("output files", all_output_text(&out)),
        ("printed output", printed),
    ] {
        assert!(!text.contains(key), "the key leaked into {what}");
        assert!(
            !text.contains("0123456789-SECRET"),
            "part of the key leaked into {what}"
        );
    }
}

#[test]
fn requests_per_minute_hold_on_the_servers_clock() {
    let fake = FakeOpenAi::start(clean_editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    // 600 per minute: one every 100 ms, with 4 workers pushing.
    let file = pipeline(
        d.path(),
        &fake.base_url(),
        "requests_per_minute = 600.0\nn = 3",
        "",
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("n = 1\n", "");
    std::fs::write(&file, text).unwrap();
    run_pipeline(&file, &d.path().join("out"), &[]).code(0);
    let times: Vec<Instant> = fake.recorded().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 18);
    // Any k+1 consecutive requests span at least k intervals (10% margin
    // for scheduling jitter on either side).
    for i in 0..times.len() {
        for j in i + 1..times.len() {
            let span = times[j].duration_since(times[i]);
            let floor = Duration::from_millis(100).mul_f64((j - i) as f64 * 0.9);
            assert!(
                span >= floor,
                "requests {i}..{j} came {span:?} apart, limit allows {floor:?}"
            );
        }
    }
}

/// A deterministic pseudo-random sequence for the crash trials.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn crash_pipeline(dir: &Path, url: &str) -> PathBuf {
    let text = format!(
        r#"task = "question"
concurrency = 4

[source]
path = "{input}"
id = "id"

[generator]
kind = "llm"
url = "{url}"
model = "fake-model"
n = 2
seed = 0

[embedder]
kind = "http"
url = "{url}"
model = "fake-embed"

[[filters]]
kind = "edit_distance"
max_word_edits = 10
max_edit_ratio = 2.0

[[filters]]
kind = "similarity"
min = 0.0
max = 0.999

[sink]
rows_per_shard = 5
checkpoint_every = 2
"#,
        input = repo().join("data/samples/questions.csv").display(),
    );
    let path = dir.join("crash.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn sigkill_at_random_moments_then_rerun_equals_an_uninterrupted_run() {
    let fake = FakeOpenAi::start(question_editor(), Duration::from_millis(30));
    let d = tempfile::tempdir().unwrap();
    let file = crash_pipeline(d.path(), &fake.base_url());
    let baseline_out = d.path().join("baseline");
    let t0 = Instant::now();
    run_pipeline(&file, &baseline_out, &[]).code(0);
    let baseline_time = t0.elapsed();
    let baseline = sorted(pair_ids(&baseline_out));
    assert!(baseline.len() > 20);
    let base = fake.base_url();
    let key_of = |r: &crate::support::fake_openai::Recorded| {
        foil::llm::cache::cache_key(&base, r.path.trim_start_matches("/v1/"), &r.body)
    };
    // How often an uninterrupted run sends each chat request (bad replies
    // are asked again, so some bodies go out twice).
    let mut baseline_sends: HashMap<String, usize> = HashMap::new();
    for r in fake
        .recorded()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
    {
        *baseline_sends.entry(key_of(r)).or_default() += 1;
    }

    let bin = assert_cmd::cargo::cargo_bin("foil");
    let mut rng = Lcg(20261129);
    let mut killed_mid_run = 0;
    let (mut resent_total, mut replied_total, mut worst) = (0usize, 0usize, 0usize);
    for trial in 0..20 {
        let replied_start = fake.replies_sent().len();
        let out = d.path().join(format!("trial-{trial}"));
        let delay =
            Duration::from_millis(rng.next() % (baseline_time.as_millis() as u64 + 50).max(60));
        let mut child = StdCommand::new(&bin)
            .args(["run", file.to_str().unwrap(), "--quiet", "--out"])
            .arg(&out)
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished_before_kill = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !finished_before_kill {
            killed_mid_run += 1;
        }
        // What the killed run was answered, by the server's own log of the
        // replies it finished sending (not by what foil's cache holds).
        let mut replied: HashMap<String, usize> = HashMap::new();
        for r in &fake.replies_sent()[replied_start..] {
            *replied.entry(key_of(r)).or_default() += 1;
        }
        let before = fake.recorded().len();
        run_pipeline(&file, &out, &[]).code(0);
        let mut resumed_sends: HashMap<String, usize> = HashMap::new();
        for r in fake.recorded()[before..].iter() {
            *resumed_sends.entry(key_of(r)).or_default() += 1;
        }
        // Sent again: a request the server had answered before the kill and
        // that the resumed run asked once more than an uninterrupted run
        // needs (for chat requests, whose count per body is fixed; for
        // embeddings, any repeat). foil stores a reply before it uses it,
        // so only replies still on their way in at the kill can be lost:
        // at most one per request in flight (concurrency 4 × n 2 chat,
        // plus the similarity stage's 4 embedding requests).
        let mut resent = 0;
        for (key, &answered) in &replied {
            let again = resumed_sends.get(key).copied().unwrap_or(0);
            resent += match baseline_sends.get(key) {
                Some(&needed) => (again + answered).saturating_sub(needed),
                None => again.min(answered),
            };
        }
        // Nothing is lost either: every chat request an uninterrupted run
        // sends was answered before the kill or is sent now.
        for (key, &needed) in &baseline_sends {
            let got = replied.get(key).copied().unwrap_or(0)
                + resumed_sends.get(key).copied().unwrap_or(0);
            assert!(
                got >= needed,
                "trial {trial}: a request was never completed"
            );
        }
        assert!(
            resent <= 12,
            "trial {trial}: {resent} requests answered before the kill were sent again"
        );
        resent_total += resent;
        replied_total += replied.values().sum::<usize>();
        worst = worst.max(resent);
        let ids = pair_ids(&out);
        assert_eq!(
            sorted(ids.clone()),
            baseline,
            "trial {trial} (killed after {delay:?})"
        );
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "trial {trial}: duplicated pairs");
        let m = manifest(&out);
        assert_eq!(m["status"], "complete");
        assert_funnel_adds_up(&m);
        assert_eq!(
            m["counts"],
            manifest(&baseline_out)["counts"],
            "trial {trial}: counts"
        );
        assert!(
            !out.read_dir().unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }
    assert!(
        killed_mid_run >= 10,
        "most trials must kill a running process: {killed_mid_run}"
    );
    eprintln!(
        "crash test: 20 trials, {killed_mid_run} killed mid-run, all equal to the uninterrupted run; \
         {resent_total} of {replied_total} replies sent before a kill were asked again (at most {worst} in one trial)"
    );
}

#[test]
fn sigint_commits_and_exits_130_then_a_rerun_finishes_the_job() {
    let fake = FakeOpenAi::start(question_editor(), Duration::from_millis(40));
    let d = tempfile::tempdir().unwrap();
    let file = crash_pipeline(d.path(), &fake.base_url());
    let baseline_out = d.path().join("baseline");
    run_pipeline(&file, &baseline_out, &[]).code(0);
    let baseline = sorted(pair_ids(&baseline_out));

    let out = d.path().join("out");
    let before = fake.recorded().len();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("foil"))
        .args(["run", file.to_str().unwrap(), "--quiet", "--out"])
        .arg(&out)
        .spawn()
        .unwrap();
    while fake.recorded().len() < before + 10 {
        std::thread::sleep(Duration::from_millis(5));
    }
    StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let m = manifest(&out);
    assert!(
        m["status"].as_str().unwrap().starts_with("interrupted"),
        "{}",
        m["status"]
    );
    let partial = pair_ids(&out);
    assert!(partial.len() < baseline.len(), "stopped early");
    run_pipeline(&file, &out, &[]).code(0);
    assert_eq!(sorted(pair_ids(&out)), baseline);
}

#[test]
fn a_request_budget_stops_cleanly_and_a_rerun_resumes_without_resending() {
    let fake = FakeOpenAi::start(question_editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let file = crash_pipeline(d.path(), &fake.base_url());
    let baseline_out = d.path().join("baseline");
    run_pipeline(&file, &baseline_out, &["--no-cache"]).code(0);
    let baseline = sorted(pair_ids(&baseline_out));
    let baseline_requests = fake.recorded().len();

    let out = d.path().join("out");
    let run = run_pipeline(&file, &out, &["--max-requests", "20"]).code(4);
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("max_requests = 20"));
    let m = manifest(&out);
    assert!(
        m["status"].as_str().unwrap().starts_with("stopped"),
        "{}",
        m["status"]
    );
    assert_eq!(m["usage"]["requests"], 20);
    run_pipeline(&file, &out, &[]).code(0);
    assert_eq!(sorted(pair_ids(&out)), baseline);
    assert_eq!(
        fake.recorded().len() - baseline_requests,
        baseline_requests,
        "both invocations together sent exactly what one run sends"
    );
    assert_eq!(
        manifest(&out)["usage"]["requests"].as_u64().unwrap() as usize,
        baseline_requests
    );
}

/// A budget refused to a *filter's* endpoint (here the HTTP embedder in
/// pairs mode, where it is the only endpoint) stops the run at that source
/// like one refused to the generator: no dead letters, and a rerun
/// finishes with what an uninterrupted run writes.
#[test]
fn a_budget_spent_in_a_filter_stops_cleanly_instead_of_dead_lettering() {
    let fake = FakeOpenAi::start(clean_editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let input = repo().join("tests/fixtures/contrast-real/creak_contrast.jsonl");
    let run = |out: &Path, extra: &[&str]| {
        foil()
            .args([
                "generate",
                input.to_str().unwrap(),
                "--task",
                "claim",
                "--out",
            ])
            .arg(out)
            .args(["--id-field", "id", "--text-field", "original"])
            .args([
                "--label-field",
                "original_label",
                "--edited-field",
                "edited",
            ])
            .args(["--edited-label-field", "edited_label"])
            .args([
                "--embed-url",
                &fake.base_url(),
                "--embed-model",
                "fake-embed",
            ])
            .args(["--concurrency", "4", "--quiet"])
            .args(extra)
            .assert()
    };
    let baseline = d.path().join("baseline");
    run(&baseline, &["--no-cache"]).code(0);
    let out = d.path().join("out");
    run(&out, &["--max-requests", "3"]).code(4);
    let m = manifest(&out);
    assert_eq!(m["counts"]["dead_letters"], 0, "{}", m["status"]);
    assert!(m["status"].as_str().unwrap().starts_with("stopped"));
    run(&out, &[]).code(0);
    assert_eq!(pair_ids(&out), pair_ids(&baseline));
    assert_eq!(manifest(&out)["counts"]["dead_letters"], 0);
}

/// An editor whose edits name the server that made them.
fn editor_named(tag: &'static str) -> Arc<dyn Fn(&Value) -> Reply + Send + Sync> {
    Arc::new(move |body| {
        let q = line_value(&user_message(body), "Question").unwrap_or_default();
        let edited = format!("{} according to {tag}?", q.trim_end_matches('?'));
        Reply::chat(
            &json!({"edited": edited, "new_answer": tag, "edit_type": "temporal"}).to_string(),
        )
    })
}

#[test]
fn two_servers_with_one_model_name_never_answer_for_each_other() {
    // Issue 14, item 3: the cache key held the request, not the server.
    let alpha = FakeOpenAi::start(editor_named("alpha"), Duration::ZERO);
    let beta = FakeOpenAi::start(editor_named("beta"), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let shared = d.path().join("shared-cache.sqlite");
    let cache = |ns: &str| format!("[cache]\npath = \"{}\"\n{ns}", shared.display());
    let config = |name: &str, url: &str, ns: &str| {
        let dir = d.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        pipeline(&dir, url, "", &cache(ns))
    };
    run_pipeline(
        &config("a", &alpha.base_url(), ""),
        &d.path().join("a/out"),
        &[],
    )
    .code(0);
    assert_eq!(alpha.count("/chat/completions"), 6);
    // The same requests to another server, through the same cache file.
    run_pipeline(
        &config("b", &beta.base_url(), ""),
        &d.path().join("b/out"),
        &[],
    )
    .code(0);
    assert_eq!(
        beta.count("/chat/completions"),
        6,
        "the second server must be asked: its answers are its own"
    );
    let text = all_output_text(&d.path().join("b/out"));
    assert!(text.contains("according to beta") && !text.contains("alpha"));
    // A namespace shares answers across URLs on purpose.
    let ns = "namespace = \"one-model\"";
    run_pipeline(
        &config("c", &alpha.base_url(), ns),
        &d.path().join("c/out"),
        &[],
    )
    .code(0);
    assert_eq!(alpha.count("/chat/completions"), 12);
    run_pipeline(
        &config("e", &beta.base_url(), ns),
        &d.path().join("e/out"),
        &[],
    )
    .code(0);
    assert_eq!(
        beta.count("/chat/completions"),
        6,
        "answered from the namespace"
    );
    assert!(all_output_text(&d.path().join("e/out")).contains("according to alpha"));
}

#[test]
fn a_second_run_on_a_busy_folder_is_refused_and_the_first_finishes_untouched() {
    // Issue 14, item 4: two runs on one folder deleted each other's work.
    let fake = FakeOpenAi::start(clean_editor(), Duration::from_millis(1500));
    let d = tempfile::tempdir().unwrap();
    let file = pipeline(d.path(), &fake.base_url(), "", "");
    let out = d.path().join("out");
    let first = StdCommand::new(assert_cmd::cargo::cargo_bin("foil"))
        .env("FOIL_TEST_KEY", "k")
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while fake.count("/chat/completions") == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the first run never asked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run_pipeline(&file, &out, &[]).code(2);
    let err = String::from_utf8_lossy(&second.get_output().stderr).into_owned();
    assert!(err.contains("in use by another foil process"), "{err}");
    let status = first.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(0));
    // The first run's output is whole: the same pairs a run alone writes,
    // and nothing was asked twice.
    let alone = d.path().join("alone");
    run_pipeline(&file, &alone, &["--no-cache"]).code(0);
    assert_eq!(pair_ids(&out), pair_ids(&alone));
    assert_eq!(pair_ids(&out).len(), 6);
    assert_eq!(fake.count("/chat/completions"), 12);
}

/// `clean_editor`, except that questions about spiders get a 503 while
/// `outage` is set.
fn spider_outage(
    outage: Arc<std::sync::atomic::AtomicBool>,
) -> Arc<dyn Fn(&Value) -> Reply + Send + Sync> {
    let good = clean_editor();
    Arc::new(move |body| {
        if outage.load(std::sync::atomic::Ordering::SeqCst) && user_message(body).contains("spider")
        {
            Reply::json(503, json!({"error": "down"}))
        } else {
            good(body)
        }
    })
}

fn spider_requests(fake: &FakeOpenAi) -> usize {
    fake.recorded()
        .iter()
        .filter(|r| user_message(&r.body).contains("spider"))
        .count()
}

#[test]
fn dead_letters_are_retried_by_the_next_run_until_they_succeed() {
    // Issue 14, item 2: a dead-lettered source was recorded as done, so
    // the next run skipped it and an outage silently dropped it.
    use std::sync::atomic::{AtomicBool, Ordering};
    let outage = Arc::new(AtomicBool::new(true));
    let fake = FakeOpenAi::start(spider_outage(outage.clone()), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let file = pipeline(d.path(), &fake.base_url(), "", "");
    let out = d.path().join("out");
    run_pipeline(&file, &out, &[]).code(3);
    assert_eq!(spider_requests(&fake), 3, "three attempts");
    assert_eq!(pair_ids(&out).len(), 5);
    // The endpoint is still down: the next run tries again, says so, and
    // the source stays in the dead letters.
    let again = foil()
        .env("FOIL_TEST_KEY", "k")
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .code(3);
    let err = String::from_utf8_lossy(&again.get_output().stderr).into_owned();
    assert!(
        err.contains("retrying 1 source(s) from the dead letters"),
        "{err}"
    );
    assert_eq!(spider_requests(&fake), 6);
    assert_eq!(manifest(&out)["counts"]["dead_letters"], 1);
    // The outage ends: the next run finishes the source.
    outage.store(false, Ordering::SeqCst);
    run_pipeline(&file, &out, &[]).code(0);
    assert_eq!(spider_requests(&fake), 7);
    let m = manifest(&out);
    assert_eq!(m["counts"]["dead_letters"], 0);
    assert_eq!(m["counts"]["dead_letters_recovered"], 1);
    assert_eq!(m["counts"]["sources"], 6);
    assert_funnel_adds_up(&m);
    // The same pairs as a run that never saw the outage.
    let clean = d.path().join("clean");
    run_pipeline(&file, &clean, &["--no-cache"]).code(0);
    assert_eq!(sorted(pair_ids(&out)), sorted(pair_ids(&clean)));
    // Nothing left to retry.
    run_pipeline(&file, &out, &[]).code(0);
    assert_eq!(spider_requests(&fake), 8, "only the clean run asked");
}

#[test]
fn a_dead_letter_is_given_up_after_its_retries() {
    let outage = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fake = FakeOpenAi::start(spider_outage(outage), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let file = pipeline(d.path(), &fake.base_url(), "", "");
    let out = d.path().join("out");
    run_pipeline(&file, &out, &["--dead-letter-retries", "1"]).code(3);
    run_pipeline(&file, &out, &["--dead-letter-retries", "1"]).code(3);
    assert_eq!(spider_requests(&fake), 6, "tried in two runs");
    let dead: Vec<Value> = std::fs::read_to_string(out.join("dead-letter.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let left: Vec<&Value> = dead.iter().map(|d| &d["retries_left"]).collect();
    assert_eq!(left, [&json!(1), &json!(0)]);
    // Given up: not asked again, still reported.
    run_pipeline(&file, &out, &["--dead-letter-retries", "1"]).code(3);
    assert_eq!(spider_requests(&fake), 6);
    let m = manifest(&out);
    assert_eq!(m["counts"]["dead_letters"], 1);
    assert_eq!(m["counts"]["dead_letters_given_up"], 1);
}

#[test]
fn a_reply_is_in_the_cache_before_it_is_used() {
    // Issue 14, item 6: replies were used while still waiting for the
    // cache's writer, so a kill lost replies whose pairs were already
    // committed, and any later run had to ask for them again.
    let fake = FakeOpenAi::start(clean_editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let shared = d.path().join("cache.sqlite");
    drop(foil::llm::cache::ResponseCache::open(&shared, foil::llm::cache::CacheMode::Use).unwrap());
    let file = pipeline(
        d.path(),
        &fake.base_url(),
        "",
        &format!("[cache]\npath = \"{}\"", shared.display()),
    );
    // Someone else holds the cache's write lock: writes wait.
    let holder = rusqlite::Connection::open(&shared).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = d.path().join("out");
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("foil"))
        .env("FOIL_TEST_KEY", "k")
        .args([
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--checkpoint-every",
            "1",
            "--out",
        ])
        .arg(&out)
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while fake.replies_sent().len() < 4 {
        assert!(waited.elapsed() < Duration::from_secs(60), "no replies");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Time enough to use the replies, were foil to use them unstored.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    let answered_before_kill = fake.replies_sent().len();
    holder.execute_batch("ROLLBACK").unwrap();
    // Resume: what was not stored is asked again (at most the 4 requests
    // in flight), the rest is answered by the cache.
    let before = fake.count("/chat/completions");
    run_pipeline(&file, &out, &[]).code(0);
    let resumed = fake.count("/chat/completions") - before;
    assert!(
        resumed + answered_before_kill <= 6 + 4,
        "{resumed} sent on resume after {answered_before_kill} answered"
    );
    assert_eq!(pair_ids(&out).len(), 6);
    // Every reply the job used is in the cache: a run into a fresh folder
    // asks nothing (counted by the server).
    let before = fake.count("/chat/completions");
    run_pipeline(&file, &d.path().join("fresh"), &[]).code(0);
    assert_eq!(
        fake.count("/chat/completions") - before,
        0,
        "replies used before the kill were never stored"
    );
}

#[test]
fn a_user_schema_with_a_keyword_foil_does_not_check_is_refused_at_load() {
    // A `pattern` foil ignored would let through replies the user meant
    // to refuse.
    let fake = FakeOpenAi::start(clean_editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let prompts = d.path().join("prompts/question");
    std::fs::create_dir_all(&prompts).unwrap();
    for f in ["system.jinja", "user.jinja"] {
        std::fs::copy(repo().join("prompts/question").join(f), prompts.join(f)).unwrap();
    }
    let mut schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("prompts/question/schema.json")).unwrap(),
    )
    .unwrap();
    schema["properties"]["edited"]["pattern"] = json!("\\?$");
    std::fs::write(prompts.join("schema.json"), schema.to_string()).unwrap();
    let file = pipeline(
        d.path(),
        &fake.base_url(),
        &format!("prompts_dir = \"{}\"", d.path().join("prompts").display()),
        "",
    );
    let run = run_pipeline(&file, &d.path().join("out"), &[]).code(2);
    let err = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        err.contains("$.properties.edited.pattern") && err.contains(&prompts.display().to_string()),
        "{err}"
    );
    assert_eq!(
        fake.count("/chat/completions"),
        0,
        "refused before any request"
    );
}
