//! The test suite's fake OpenAI-compatible server as a standalone process,
//! for benchmarks: every chat completion answers after a fixed latency with
//! a valid `question` edit. Prints its base URL, then serves until killed.
//!
//!   cargo run --release --example fake_openai_server -- 50   # 50 ms

#[path = "../tests/it/support/fake_openai.rs"]
#[allow(dead_code)]
mod fake_openai;

use std::sync::Arc;
use std::time::Duration;

use fake_openai::{FakeOpenAi, Fault, Reply, line_value, user_message};
use serde_json::json;

fn main() {
    let latency_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let latency = Duration::from_millis(latency_ms);
    let server = FakeOpenAi::start(
        Arc::new(move |body| {
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
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
