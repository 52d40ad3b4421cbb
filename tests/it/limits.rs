//! Endpoint limits and budgets, end to end against the fake server, with
//! assertions on what the server saw (arrival and reply times, requests in
//! flight, request counts), not on foil's own counters: `Retry-After` in
//! both forms, the `max_concurrent` cap, tokens per minute, and the token
//! and cost budgets (issue 14, "promises without a test").

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::support::fake_openai::{FakeOpenAi, Reply, line_value, user_message};
use crate::support::{foil, manifest, pair_ids, repo};

/// A question pipeline against `url`: `limit` questions, `n` requests per
/// question, `endpoint` lines added to `[generator]`.
fn pipeline(dir: &Path, url: &str, limit: u64, concurrency: usize, endpoint: &str) -> PathBuf {
    let text = format!(
        r#"task = "question"
concurrency = {concurrency}

[source]
path = "{input}"
id = "id"
limit = {limit}

[generator]
kind = "llm"
url = "{url}"
model = "fake-model"
api_key_env = "FOIL_TEST_KEY"
seed = 0
retry_base_ms = 20
timeout_s = 5.0
max_attempts = 4
{endpoint}

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

fn run(file: &Path, out: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    foil()
        .env("FOIL_TEST_KEY", "k")
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(args)
        .arg("--quiet")
        .assert()
}

/// Edits each question; 70 tokens of usage per reply.
fn editor() -> Arc<dyn Fn(&Value) -> Reply + Send + Sync> {
    Arc::new(|body| {
        let q = line_value(&user_message(body), "Question").unwrap_or_default();
        let seed = body["seed"].as_u64().unwrap_or(0);
        let edited = format!("{} in year {}?", q.trim_end_matches('?'), 1900 + seed);
        Reply::chat(
            &json!({"edited": edited, "new_answer": "x", "edit_type": "temporal"}).to_string(),
        )
    })
}

/// An HTTP-date (IMF-fixdate) for a moment.
fn http_date(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm), written out here
    // independently of foil's parser.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[month as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn retry_after_holds_the_retry_in_seconds_and_as_an_http_date() {
    for form in ["seconds", "http-date"] {
        // The first request is told to come back later; the server notes
        // when the retry arrives.
        let first = Arc::new(Mutex::new(true));
        let good = editor();
        let f = first.clone();
        let fake = FakeOpenAi::start(
            Arc::new(move |body| {
                let mut first = f.lock().unwrap();
                if *first {
                    *first = false;
                    let value = match form {
                        "seconds" => "2".to_string(),
                        // Three seconds ahead: whole seconds, so at least
                        // two from now.
                        _ => http_date(SystemTime::now() + Duration::from_secs(3)),
                    };
                    Reply::json(429, json!({"error": "slow down"}))
                        .with_header("retry-after", &value)
                } else {
                    good(body)
                }
            }),
            Duration::ZERO,
        );
        let d = tempfile::tempdir().unwrap();
        let file = pipeline(d.path(), &fake.base_url(), 1, 1, "n = 1");
        run(&file, &d.path().join("out"), &[]).code(0);
        let at: Vec<Instant> = fake.recorded().iter().map(|r| r.at).collect();
        assert_eq!(at.len(), 2, "{form}");
        let gap = at[1].duration_since(at[0]);
        // Without the header the retry would come after ~20 ms of backoff.
        assert!(
            gap >= Duration::from_millis(1900),
            "{form}: retried after {gap:?}"
        );
        assert!(
            gap < Duration::from_secs(10),
            "{form}: retried after {gap:?}"
        );
    }
}

/// Most requests the server had in flight at once: arrivals minus replies
/// finished, at every moment.
fn peak_in_flight(fake: &FakeOpenAi) -> usize {
    let mut events: Vec<(Instant, i32)> = fake.recorded().iter().map(|r| (r.at, 1)).collect();
    events.extend(fake.replies_sent().iter().map(|r| (r.at, -1)));
    // A reply finished at the same instant as an arrival counts first.
    events.sort_by_key(|(t, d)| (*t, *d));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        peak = peak.max(now);
    }
    peak as usize
}

#[test]
fn max_concurrent_caps_the_requests_in_flight_at_the_server() {
    let d = tempfile::tempdir().unwrap();
    // Eight workers, each request held ~0.1-0.2 s by the server.
    let uncapped = FakeOpenAi::start(editor(), Duration::from_millis(200));
    let file = pipeline(d.path(), &uncapped.base_url(), 16, 8, "n = 1");
    run(&file, &d.path().join("free"), &["--no-cache"]).code(0);
    assert!(
        peak_in_flight(&uncapped) > 2,
        "without a cap the test must exceed it"
    );
    let capped = FakeOpenAi::start(editor(), Duration::from_millis(200));
    let file = pipeline(
        d.path(),
        &capped.base_url(),
        16,
        8,
        "n = 1\nmax_concurrent = 2",
    );
    run(&file, &d.path().join("capped"), &[]).code(0);
    assert_eq!(capped.count("/chat/completions"), 16);
    assert_eq!(peak_in_flight(&capped), 2);
}

#[test]
fn tokens_per_minute_hold_on_the_servers_clock() {
    // 2,300 tokens a minute (a full bucket to start, then 38.3 a second);
    // every reply reports 70 tokens and each request is charged at least
    // that, so the k-th request (from 0) cannot arrive before
    // (70 (k + 1) - 2300) / 38.3 s after the limiter started.
    let fake = FakeOpenAi::start(editor(), Duration::ZERO);
    let d = tempfile::tempdir().unwrap();
    let file = pipeline(
        d.path(),
        &fake.base_url(),
        12,
        4,
        "n = 3\nmax_tokens = 16\ntokens_per_minute = 2300.0",
    );
    run(&file, &d.path().join("out"), &[]).code(0);
    let at: Vec<Instant> = fake.recorded().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 36);
    let rate = 2300.0 / 60.0;
    for (k, t) in at.iter().enumerate() {
        let floor = (70.0 * (k + 1) as f64 - 2300.0) / rate;
        // One second for the limiter's start before the first request.
        let since = t.duration_since(at[0]).as_secs_f64() + 1.0;
        assert!(
            since >= floor,
            "request {k} came {since:.2} s in, the limit allows {floor:.2}"
        );
    }
    let span = at[35].duration_since(at[0]);
    assert!(
        span >= Duration::from_secs(4),
        "{span:?}: the limit held nothing back"
    );
}

#[test]
fn a_token_budget_and_a_cost_budget_stop_cleanly_and_resume_without_resending() {
    for (name, args) in [
        ("tokens", vec!["--max-tokens", "200"]),
        // 1000 per million tokens: 0.07 a reply; 0.15 allows three.
        ("cost", vec!["--max-cost", "0.15"]),
    ] {
        let fake = FakeOpenAi::start(editor(), Duration::ZERO);
        let d = tempfile::tempdir().unwrap();
        let file = pipeline(d.path(), &fake.base_url(), 6, 1, "n = 1");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text = text.replacen(
            "[generator]",
            "[budget.prices.fake-model]\nprompt_per_million = 1000.0\ncompletion_per_million = 1000.0\n\n[generator]",
            1,
        );
        std::fs::write(&file, text).unwrap();
        let out = d.path().join("out");
        run(&file, &out, &args).code(4);
        // 70 tokens a reply: after two (140 tokens, 0.14) the budget still
        // has room, after three (210, 0.21) it has none.
        assert_eq!(fake.count("/chat/completions"), 3, "{name}");
        let m = manifest(&out);
        assert!(
            m["status"].as_str().unwrap().starts_with("stopped"),
            "{name}: {}",
            m["status"]
        );
        assert_eq!(
            m["usage"]["prompt_tokens"].as_u64().unwrap()
                + m["usage"]["completion_tokens"].as_u64().unwrap(),
            210,
            "{name}"
        );
        if name == "cost" {
            let cost = m["usage"]["cost"].as_f64().unwrap();
            assert!((cost - 0.21).abs() < 1e-9, "{cost}");
        }
        run(&file, &out, &[]).code(0);
        assert_eq!(
            fake.count("/chat/completions"),
            6,
            "{name}: nothing sent twice"
        );
        assert_eq!(pair_ids(&out).len(), 6, "{name}");
    }
}
