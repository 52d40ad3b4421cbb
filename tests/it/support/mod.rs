//! Test support: running the real `foil` binary, temp folders, reading
//! output shards back, and the fake OpenAI-compatible server.

pub mod fake_openai;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use polars::prelude::{AnyValue, DataFrame, ParquetReader, SerReader};
use serde_json::{Value, json};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

pub fn sample(rel: &str) -> PathBuf {
    repo().join("data/samples").join(rel)
}

/// The `foil` binary, with logs quiet and the environment free of keys.
pub fn foil() -> Command {
    let mut c = Command::cargo_bin("foil").expect("foil binary");
    c.env_remove("OPENAI_API_KEY").env_remove("RUST_LOG");
    c
}

/// Write rows as JSONL, one object per line.
pub fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

pub fn manifest(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn cell(v: AnyValue<'_>) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::String(s) => json!(s),
        AnyValue::StringOwned(s) => json!(s.as_str()),
        AnyValue::Float64(x) => json!(x),
        AnyValue::UInt32(x) => json!(x),
        AnyValue::UInt64(x) => json!(x),
        other => json!(other.to_string()),
    }
}

fn rows_of(df: &DataFrame) -> Vec<BTreeMap<String, Value>> {
    (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| (c.name().to_string(), cell(c.get(i).expect("row"))))
                .collect()
        })
        .collect()
}

/// Every row of the shards listed under `key` ("shards" or
/// "rejected_shards") in the manifest.
pub fn read_rows(dir: &Path, key: &str) -> Vec<BTreeMap<String, Value>> {
    let m = manifest(dir);
    let entries: Vec<foil::sink::shards::ShardEntry> =
        serde_json::from_value(m[key].clone()).expect("shard list");
    foil::sink::shards::read_shards(dir, &entries)
        .expect("shards readable")
        .iter()
        .flat_map(rows_of)
        .collect()
}

pub fn pair_ids(dir: &Path) -> Vec<String> {
    read_rows(dir, "shards")
        .into_iter()
        .map(|r| r["pair_id"].as_str().expect("pair_id").to_string())
        .collect()
}

/// Every file under `dir`, as text (lossy; Parquet shards as their cells),
/// for secret scans.
pub fn all_output_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                // Shards are compressed: scan their decoded cells, not bytes.
                let df = ParquetReader::new(std::fs::File::open(&p).expect("open"))
                    .finish()
                    .expect("a readable shard");
                for row in rows_of(&df) {
                    out.push_str(&serde_json::to_string(&row).expect("json"));
                }
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).expect("read")));
            }
        }
    }
    out
}

/// Check every funnel stage adds up: in = out + rejected + failed.
pub fn assert_funnel_adds_up(m: &Value) {
    let funnel = m["funnel"].as_array().expect("funnel");
    assert!(!funnel.is_empty());
    for s in funnel {
        let rejected: u64 = s["rejected"]
            .as_object()
            .expect("rejected")
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let (i, o, f) = (
            s["in"].as_u64().unwrap(),
            s["out"].as_u64().unwrap(),
            s["failed"].as_u64().unwrap(),
        );
        assert_eq!(
            i,
            o + rejected + f,
            "stage {} does not add up: {s}",
            s["stage"]
        );
    }
    // Each stage takes what the one before it let through.
    for w in funnel.windows(2) {
        let (prev, next) = (&w[0], &w[1]);
        let expected = if next["stage"] == "generate" {
            prev["out"].as_u64()
        } else if prev["stage"] == "generate" {
            prev["produced"].as_u64()
        } else {
            prev["out"].as_u64()
        };
        assert_eq!(
            next["in"].as_u64(),
            expected,
            "{} -> {}",
            prev["stage"],
            next["stage"]
        );
    }
}

/// Every row of a data frame as JSON values.
pub fn frame_rows(df: &DataFrame) -> Vec<BTreeMap<String, Value>> {
    rows_of(df)
}

/// What headless Chromium made of a page.
pub struct ChromiumRun {
    /// The DOM after scripts ran (`--dump-dom`).
    pub dom: String,
    /// Every console message the page produced (our pages log nothing, so
    /// any message is a problem).
    pub console_errors: Vec<String>,
}

/// Render `page` in headless Chromium (Debian's `chromium`, installed by
/// `scripts/test`): a screenshot to `shot`, the DOM after scripts, and the
/// console messages from Chromium's log.
pub fn chromium(page: &Path, shot: &Path) -> ChromiumRun {
    let url = format!("file://{}", page.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let out = std::process::Command::new("chromium")
        .args(base)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .expect("chromium runs (scripts/test installs it)");
    assert!(out.status.success(), "chromium failed: {out:?}");
    let dom = std::process::Command::new("chromium")
        .args(base)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    let mut console_errors = Vec::new();
    for stderr in [&out.stderr, &dom.stderr] {
        for line in String::from_utf8_lossy(stderr).lines() {
            if line.contains(":CONSOLE") {
                console_errors.push(line.to_string());
            }
        }
    }
    ChromiumRun {
        dom: String::from_utf8_lossy(&dom.stdout).into_owned(),
        console_errors,
    }
}

/// (distinct colours, fraction of dark pixels) of a PNG screenshot.
pub fn png_stats(path: &Path) -> (usize, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("screenshot exists"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let bytes = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut dark = 0usize;
    let pixels = bytes.len() / channels;
    for px in bytes.chunks_exact(channels) {
        let rgb = [px[0], px[1.min(channels - 1)], px[2.min(channels - 1)]];
        colours.insert(rgb);
        if rgb.iter().map(|&c| u32::from(c)).sum::<u32>() < 200 {
            dark += 1;
        }
    }
    (colours.len(), dark as f64 / pixels.max(1) as f64)
}
