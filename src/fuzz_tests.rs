//! Property tests over the text paths: arbitrary Unicode (multi-byte
//! punctuation, combining marks, right-to-left and CJK text, emoji,
//! stray whitespace) through the rules generator, the span swap, the edit
//! measure and the word splitter. Bounded: a fixed number of strings from
//! a fixed seed, so a failure reproduces.

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
