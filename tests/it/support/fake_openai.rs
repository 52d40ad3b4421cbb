//! A fake OpenAI-compatible server on 127.0.0.1 (random port) for tests:
//! plain HTTP/1.1 over tokio, keep-alive, scripted chat replies, bag-of-words
//! embeddings, and a record of every request. Hand-rolled rather than a web
//! framework so that later tests can break the protocol on purpose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the server saw it, and when.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub at: std::time::Instant,
}

/// A fault below the HTTP body: what a flaky network or server does.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Say nothing for this long (past the client's timeout), then answer.
    Stall(Duration),
    /// Send the headers and half the body, then drop the connection.
    ResetMidBody,
}

/// What to answer: status, extra headers, body, and an optional fault.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub fault: Option<Fault>,
}

impl Reply {
    pub fn json(status: u16, v: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: v.to_string(),
            fault: None,
        }
    }

    /// A 200 whose body is this text, JSON or not.
    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            fault: None,
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn with_fault(mut self, f: Fault) -> Self {
        self.fault = Some(f);
        self
    }

    /// A chat completion whose message content is `content`.
    pub fn chat(content: &str) -> Self {
        Reply::json(
            200,
            json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
            }),
        )
    }
}

pub type ChatHandler = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

pub struct FakeOpenAi {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// The server's own log of replies it finished sending (every byte
    /// written), with when: what a client may have received.
    pub replied: Arc<Mutex<Vec<Recorded>>>,
    /// Files served to GET requests by path (a stand-in model hub).
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A deterministic embedding: words hashed into 64 buckets, normalised.
/// Texts sharing words get high cosine, as with a real model.
pub fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 64];
    for w in text.split_whitespace() {
        let w = w
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        let h = w.bytes().fold(1469598103934665603u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(1099511628211)
        });
        v[(h % 64) as usize] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.iter().map(|x| x / n).collect()
}

impl FakeOpenAi {
    /// Start on its own runtime thread, so blocking tests can use it.
    /// `latency` adds a pseudo-random delay (up to that long) per request.
    pub fn start(chat: ChatHandler, latency: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let replied: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let replied_log = replied.clone();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let served = files.clone();
        let task = runtime.spawn(async move {
            let counter = Arc::new(Mutex::new(0u64));
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                // Head and body go out in two writes: without this, Nagle's
                // algorithm and the client's delayed ACK add ~40 ms.
                let _ = stream.set_nodelay(true);
                let chat = chat.clone();
                let recorded = recorded.clone();
                let replied_log = replied_log.clone();
                let counter = counter.clone();
                let served = served.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                        let mut headers = HashMap::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = line.split_once(':') {
                                headers.insert(k.trim().to_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                        let mut body = vec![0u8; len];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let this = Recorded {
                            path: path.clone(),
                            headers,
                            body: body.clone(),
                            at: std::time::Instant::now(),
                        };
                        recorded.lock().unwrap().push(this.clone());
                        if !latency.is_zero() {
                            let n = {
                                let mut c = counter.lock().unwrap();
                                *c += 1;
                                *c
                            };
                            let frac = ((n.wrapping_mul(2654435761)) % 1000) as f64 / 1000.0;
                            tokio::time::sleep(latency.mul_f64(frac)).await;
                        }
                        let file = request_line
                            .starts_with("GET ")
                            .then(|| served.lock().unwrap().get(&path).cloned())
                            .flatten();
                        if let Some(bytes) = file {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
                                bytes.len()
                            );
                            if write.write_all(head.as_bytes()).await.is_err() || write.write_all(&bytes).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        let reply = if path.ends_with("/chat/completions") {
                            chat(&body)
                        } else if path.ends_with("/embeddings") {
                            let inputs: Vec<String> = match &body["input"] {
                                Value::String(s) => vec![s.clone()],
                                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                                _ => Vec::new(),
                            };
                            let data: Vec<Value> = inputs
                                .iter()
                                .enumerate()
                                .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": bag_of_words(t)}))
                                .collect();
                            Reply::json(200, json!({"object": "list", "data": data, "model": body["model"]}))
                        } else {
                            Reply::json(404, json!({"error": {"message": "not found"}}))
                        };
                        let mut head = format!(
                            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                            reply.status,
                            reply.body.len()
                        );
                        for (k, v) in &reply.headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        match reply.fault {
                            Some(Fault::Stall(d)) => tokio::time::sleep(d).await,
                            Some(Fault::ResetMidBody) => {
                                let half = &reply.body.as_bytes()[..reply.body.len() / 2];
                                let _ = write.write_all(head.as_bytes()).await;
                                let _ = write.write_all(half).await;
                                let _ = write.flush().await;
                                return; // dropping the socket cuts the body short
                            }
                            None => {}
                        }
                        if write.write_all(head.as_bytes()).await.is_err()
                            || write.write_all(reply.body.as_bytes()).await.is_err()
                            || write.flush().await.is_err()
                        {
                            return;
                        }
                        replied_log.lock().unwrap().push(Recorded {
                            at: std::time::Instant::now(),
                            ..this
                        });
                    }
                });
            }
        });
        FakeOpenAi {
            addr,
            requests,
            replied,
            files,
            task,
            _runtime: Some(runtime),
        }
    }

    /// Serve `bytes` at `path` to GET requests.
    pub fn serve_file(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), bytes);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replies the server finished sending, in order.
    pub fn replies_sent(&self) -> Vec<Recorded> {
        self.replied.lock().unwrap().clone()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self, path_suffix: &str) -> usize {
        self.recorded()
            .iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .count()
    }
}

/// The user message of a chat request.
pub fn user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The value after `label: ` on the last line that starts with it.
pub fn line_value(text: &str, label: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{label}: ")))
        .map(|s| s.trim().to_string())
}
