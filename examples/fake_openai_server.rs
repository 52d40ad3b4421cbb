//! The test suite's fake OpenAI-compatible server as a standalone process,
//! for benchmarks: every chat completion answers after a fixed latency with
//! a valid `question` edit. Prints its base URL, then serves until killed.
//!
//! It also times each burst of traffic from its own side, the same way for
//! every client: when no request has arrived for a second, it prints
//! `burst REQUESTS SECONDS`, the seconds running from the first request's
//! arrival to the last one's reply (its arrival plus the latency). Client
//! start-up and shut-down fall outside that span, so it measures the
//! client's request loop alone.
//!
//!   cargo run --release --example fake_openai_server -- 50   # 50 ms

#[path = "../tests/it/support/fake_openai.rs"]
#[allow(dead_code)]
mod fake_openai;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_openai::{FakeOpenAi, Fault, Reply, line_value, user_message};
use serde_json::json;

fn main() {
    let latency_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let latency = Duration::from_millis(latency_ms);
    // (requests, first arrival, last arrival) of the current burst.
    let burst: Arc<Mutex<(u64, Option<Instant>, Instant)>> =
        Arc::new(Mutex::new((0, None, Instant::now())));
    let seen = burst.clone();
    let server = FakeOpenAi::start(
        Arc::new(move |body| {
            {
                let now = Instant::now();
                let mut b = seen.lock().unwrap();
                b.0 += 1;
                b.1.get_or_insert(now);
                b.2 = now;
            }
            let q = line_value(&user_message(body), "Question").unwrap_or_default();
            let edited = format!("{} in 1999?", q.trim_end_matches('?'));
            Reply::chat(
                &json!({"edited": edited, "new_answer": "someone else", "edit_type": "temporal", "rationale": "r"})
                    .to_string(),
            )
            .with_fault(Fault::Stall(latency))
        }),
        Duration::ZERO,
    );
    println!("{}", server.base_url());
    std::io::stdout().flush().ok();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let mut b = burst.lock().unwrap();
        if let (n, Some(first), last) = *b
            && last.elapsed() > Duration::from_secs(1)
        {
            let span = (last - first + latency).as_secs_f64();
            println!("burst {n} {span:.4}");
            std::io::stdout().flush().ok();
            *b = (0, None, Instant::now());
        }
    }
}
