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
