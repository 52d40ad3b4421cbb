//! Tests of near-duplicate dedup.
use super::*;

#[test]
fn signatures_are_seeded_and_stable() {
    let h = MinHasher::new(3, 16, 8, 1);
    let a = h.signature("a man slices bread on a wooden board").unwrap();
    assert_eq!(
        a,
        h.signature("A man slices bread, on a wooden board.")
            .unwrap()
    );
    let other_seed = MinHasher::new(3, 16, 8, 2);
    assert_ne!(
        a,
        other_seed
            .signature("a man slices bread on a wooden board")
            .unwrap()
    );
    assert!(h.signature("  ...  ").is_none());
}

#[test]
fn short_texts_still_have_shingles() {
    let h = MinHasher::new(5, 4, 4, 1);
    assert!(!h.shingles("hello").is_empty());
    assert_ne!(h.shingles("hello"), h.shingles("goodbye"));
}

#[test]
fn one_word_edit_of_a_short_text_is_not_the_original() {
    let c = NearDedupConfig::default();
    let h = MinHasher::from_config(&c);
    let o = compact(
        &h.signature("a man slices bread on a wooden board in the kitchen")
            .unwrap(),
    );
    let e = compact(
        &h.signature("a man slices cheese on a wooden board in the kitchen")
            .unwrap(),
    );
    // At the documented 0.9, a one-word edit of a 10-word text is not a
    // near-copy of its original.
    assert!(estimate(&o, &e) < 0.9, "{}", estimate(&o, &e));
    assert_eq!(estimate(&o, &o), 1.0);
}

#[test]
fn band_keys_depend_on_scope() {
    let h = MinHasher::new(3, 16, 8, 1);
    let s = h.signature("the cat sat").unwrap();
    assert_ne!(h.band_keys(1, &s), h.band_keys(2, &s));
    assert_eq!(h.band_keys(1, &s), h.band_keys(1, &s));
}

/// `n` texts of `words` random words (seeded), each followed by the same
/// text with one word appended: Jaccard `words / (words + 5)` over padded
/// word 3-grams.
fn appended_pairs(n: usize, words: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut word = || {
        state = crate::text::mix64(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
        format!("w{}", state % 5000)
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let base: Vec<String> = (0..words).map(|_| word()).collect();
        let text = base.join(" ");
        out.push(format!("{text} {}", word()));
        out.insert(out.len() - 1, text);
    }
    out
}

/// Which of `texts`, streamed in order, near-dedup rejects, with details.
fn flagged(texts: &[String]) -> Vec<(usize, String)> {
    let mut near = NearDedup::new(NearDedupConfig::default());
    let mut out = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let mut c = [Candidate {
            pair_id: format!("{i:016x}"),
            edited: t.clone(),
            ..Candidate::blank()
        }];
        near.check(i as u64, &mut c, |_| None).unwrap();
        if let Some(r) = &c[0].rejection {
            out.push((i, r.detail.clone()));
        }
    }
    out
}

#[test]
fn short_texts_are_judged_by_their_exact_jaccard() {
    // 19 words plus one: Jaccard 19/24 = 0.79, under the 0.8 threshold. The
    // 128-slot estimate puts about 40% of such pairs at 0.8 or above; the
    // exact set a short text keeps puts none there.
    let below = appended_pairs(300, 19, 1);
    assert_eq!(flagged(&below), vec![], "Jaccard 0.79 is not a duplicate");
    // 25 words plus one: Jaccard 25/30 = 0.83. LSH finds a candidate with
    // probability 1 - (1 - 0.83^8)^16 = 0.985, and the exact check keeps it.
    let above = appended_pairs(300, 25, 2);
    let found = flagged(&above);
    assert!(found.len() >= 285, "{} of 300 found", found.len());
    assert!(found.iter().all(|(i, _)| i % 2 == 1));
    assert!(
        found[0].1.starts_with("Jaccard 0.83 with pair"),
        "{}",
        found[0].1
    );
}

#[test]
fn a_long_text_keeps_its_signature_and_is_estimated() {
    let h = MinHasher::from_config(&NearDedupConfig::default());
    let long: Vec<String> = (0..80).map(|i| format!("w{i}")).collect();
    let text = long.join(" ");
    let shingles = h.shingles(&text);
    let sig = h.signature_of(&shingles).unwrap();
    let set = shingle_set(&shingles);
    let stored = payload(&sig, &set);
    assert_eq!(stored, compact(&sig), "82 shingles do not fit 128 slots");
    let probe = Probe {
        compact: compact(&sig),
        set,
    };
    assert_eq!(similarity(&stored, &probe), (1.0, false));
    // A short one holds its set and compares exactly.
    let short = h.shingles("a man slices bread on a wooden board");
    let sig = h.signature_of(&short).unwrap();
    let stored = payload(&sig, &shingle_set(&short));
    assert_eq!(stored.len(), sig.len());
    let edit = h.shingles("a man slices cheese on a wooden board");
    let probe = Probe {
        compact: compact(&h.signature_of(&edit).unwrap()),
        set: shingle_set(&edit),
    };
    // 10 shingles each, 7 shared: 7 / 13.
    assert_eq!(similarity(&stored, &probe), (7.0 / 13.0, true));
}
