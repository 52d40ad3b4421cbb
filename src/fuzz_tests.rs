//! Property tests over the text paths: arbitrary Unicode (multi-byte
//! punctuation, combining marks, right-to-left and CJK text, emoji,
//! stray whitespace) through the rules generator, the span swap, the edit
//! measure and the word splitter; arbitrary bytes through the CSV and JSONL
//! readers (the tokenizer's input is fuzzed in `tests/it/embed.rs`, which
//! has the model). Bounded: a fixed number of inputs from a fixed seed, so
//! a failure reproduces.

use crate::config::RuleOp;
use crate::filter::edit_measure::EditMeasure;

/// xorshift64*: enough randomness for input shapes, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "a",
    "an",
    "A",
    "the",
    "is",
    "not",
    "does",
    "did",
    "n't",
    "can",
    "two",
    "3",
    "1889",
    "tall",
    "old",
    "man",
    "woman",
    "all",
    "some",
    "no",
    "before",
    "after",
    "most",
    "more",
    "“",
    "”",
    "«",
    "»",
    "‘",
    "’",
    "'",
    "-",
    "—",
    ".",
    ",",
    "?",
    "!",
    "|||",
    "  ",
    "\t",
    "\n",
    "é",
    "ß",
    "İ",
    "ǅ",
    "ﬁ",
    "e\u{301}",
    "Σ",
    "ς",
    "東京",
    "مرحبا",
    "עברית",
    "🙂",
    "👩‍👩‍👧",
    "\u{200b}",
    "\u{feff}",
    "Ⅻ",
    "½",
    "A\u{30a}",
    "ΐ",
    "ŉ",
];

fn random_text(rng: &mut Rng) -> String {
    let n = rng.below(14);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(PIECES[rng.below(PIECES.len())]);
        if rng.below(3) > 0 {
            s.push(' ');
        }
    }
    s
}

#[test]
fn no_text_path_panics_on_arbitrary_unicode() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let text = random_text(&mut rng);
        let other = random_text(&mut rng);
        for op in RuleOp::ALL {
            for edited in crate::generate::rules::apply_op(op, &text) {
                assert!(!edited.is_empty() || text.trim().is_empty());
            }
        }
        let _ = crate::generate::span_swap::swap(&text, &other, "pear");
        let span = text.split_whitespace().next().unwrap_or("x");
        let _ = crate::generate::span_swap::swap(&text, span, &other);
        let m = EditMeasure::of([("text", text.as_str(), other.as_str())]);
        let _ = m.ops();
        let _ = crate::text::words(&text);
        let _ = crate::text::normalize(&text);
    }
}

/// Random bytes shaped like a CSV or JSONL input: real rows, broken
/// quoting, stray delimiters, invalid UTF-8, NULs, CRs, huge and empty
/// fields, JSON of every type where a string belongs.
fn random_input(rng: &mut Rng, jsonl: bool) -> Vec<u8> {
    const BYTES: &[&[u8]] = &[
        b"\"",
        b",",
        b"\r",
        b"\n",
        b"\0",
        b"\xff",
        b"\xc3",
        b"\xe2\x80",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b"null",
        b"\\u0000",
        b"\\ud800",
    ];
    let mut out: Vec<u8> = if jsonl {
        Vec::new()
    } else {
        b"id,question,answer\n".to_vec()
    };
    for i in 0..rng.below(12) {
        if jsonl {
            let field = |rng: &mut Rng| -> serde_json::Value {
                match rng.below(6) {
                    0 => serde_json::Value::Null,
                    1 => serde_json::json!(rng.next() as f64 / 7.0),
                    2 => serde_json::json!([random_text(rng)]),
                    3 => serde_json::json!({"x": random_text(rng)}),
                    4 => serde_json::json!(true),
                    _ => serde_json::json!(random_text(rng)),
                }
            };
            let mut v = serde_json::json!({"id": format!("r{i}"), "question": random_text(rng), "answer": random_text(rng)});
            if rng.below(3) == 0 {
                let k = ["id", "question", "answer"][rng.below(3)];
                v[k] = field(rng);
            }
            out.extend_from_slice(v.to_string().as_bytes());
        } else {
            out.extend_from_slice(
                format!("r{i},{},{}", random_text(rng), random_text(rng)).as_bytes(),
            );
        }
        for _ in 0..rng.below(3) {
            let at = rng.below(out.len() + 1);
            let piece = BYTES[rng.below(BYTES.len())];
            out.splice(at..at, piece.iter().copied());
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn no_reader_panics_on_arbitrary_bytes_and_every_bad_row_names_its_place() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let dir = tempfile::tempdir().unwrap();
    let task = crate::tasks::preset("question").unwrap();
    for trial in 0..300 {
        let jsonl = trial % 2 == 1;
        let path = dir
            .path()
            .join(format!("in{trial}.{}", if jsonl { "jsonl" } else { "csv" }));
        std::fs::write(&path, random_input(&mut rng, jsonl)).unwrap();
        let config: crate::config::SourceConfig = serde_json::from_value(serde_json::json!({
            "path": path, "id": "id", "max_field_bytes": 64,
        }))
        .unwrap();
        let Ok(items) = crate::source::open(&config, task) else {
            continue;
        };
        for item in items {
            match item {
                Ok(crate::source::SourceItem::Bad(bad)) => {
                    assert!(
                        bad.file
                            .ends_with(path.file_name().unwrap().to_str().unwrap())
                    );
                    assert!(bad.line >= 1, "{bad}");
                }
                Ok(crate::source::SourceItem::Example(ex)) => {
                    assert!(ex.fields.values().all(|v| v.len() <= 64));
                }
                // A file-level error ends the file (named in the error).
                Err(e) => {
                    let name = path.file_name().unwrap().to_str().unwrap();
                    assert!(e.to_string().contains(name), "{e}");
                    break;
                }
            }
        }
    }
}
