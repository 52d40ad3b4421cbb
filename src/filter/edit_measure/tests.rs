use super::*;

fn m(a: &str, b: &str) -> FieldMeasure {
    measure_field("text", a, b)
}

fn kinds(f: &FieldMeasure) -> Vec<OpKind> {
    f.ops.iter().map(|o| o.op).collect()
}

const CLAIM: EditBounds = EditBounds {
    max_ops: 3,
    ops_per_100_words: 4.0,
    max_changed_words: 8,
    max_changed_share: 0.5,
    min_related_share: 0.25,
};

#[test]
fn a_swap_of_two_phrases_is_one_operation() {
    let f = m(
        "W. B. Yeats was born in London and educated in Ireland.",
        "W. B. Yeats was born in Ireland and educated in London.",
    );
    assert_eq!(kinds(&f), vec![OpKind::Swap]);
    assert_eq!(f.ops[0].from, "London");
    assert_eq!(f.ops[0].to, "Ireland.");
    assert_eq!(f.changed_words(), 0, "swapped words are not changed words");
    assert_eq!(f.broken, None);
    let f = m("a white dog and a black cat", "a black dog and a white cat");
    assert_eq!(kinds(&f), vec![OpKind::Swap]);
    let f = m(
        "the big red ball is next to the small blue box",
        "the small blue box is next to the big red ball",
    );
    assert_eq!(kinds(&f), vec![OpKind::Swap], "{:?}", f.ops);
    assert_eq!(f.check(&CLAIM), None);
}

#[test]
fn a_phrase_moved_elsewhere_is_one_operation() {
    let f = m(
        "yesterday the man walked his dog in the park",
        "the man walked his dog in the park yesterday",
    );
    assert_eq!(kinds(&f), vec![OpKind::Move]);
    assert_eq!(f.broken, None);
}

#[test]
fn a_replaced_phrase_is_one_operation_whatever_its_length() {
    let f = m(
        "Jimmy Page plays a musical instrument.",
        "Jimmy Page invented a web search algorithm.",
    );
    assert_eq!(kinds(&f), vec![OpKind::Substitute], "{:?}", f.ops);
    assert_eq!(f.ops[0].from, "plays a musical instrument.");
    assert_eq!(f.check(&CLAIM), None);
    let f = m("the man owns a dog", "the man does not own a dog");
    assert_eq!(kinds(&f), vec![OpKind::Substitute]);
    let f = m("the man is tall", "the man is not tall");
    assert_eq!(kinds(&f), vec![OpKind::Insert]);
    assert_eq!(f.ops[0].to, "not");
}

#[test]
fn tokenised_contractions_align_with_written_ones() {
    let f = m(
        "You do n't need the Pentagon 's approval , and you 're right .",
        "You don't need the Pentagon's approval, and you're wrong.",
    );
    assert_eq!(kinds(&f), vec![OpKind::Substitute], "{:?}", f.ops);
    assert_eq!(f.ops[0].to, "wrong.");
}

#[test]
fn spans_point_at_the_words_as_written() {
    let a = "A “dog” runs on   the beach.";
    let b = "A “cat” runs on the beach.";
    let f = m(a, b);
    let op = &f.ops[0];
    assert_eq!(&a[op.original_at.0..op.original_at.1], "“dog”");
    assert_eq!(&b[op.edited_at.0..op.edited_at.1], "“cat”");
}

#[test]
fn a_truncation_is_caught() {
    let f = m("Popeye is famous for eating Spinach.", "Popeye is famous");
    assert_eq!(f.broken, Some(Broken::Truncated));
    assert_eq!(f.check(&CLAIM).map(|r| r.0), Some("truncated"));
    // The second half alone, too.
    let f = m(
        "A man in a red shirt is riding a bike down the hill.",
        "riding a bike down the hill.",
    );
    assert_eq!(f.broken, Some(Broken::Truncated));
    // A small deletion inside the sentence is an edit, not a truncation.
    let f = m(
        "someone who is lying down on the street",
        "someone who is on the street",
    );
    assert_eq!(f.broken, None);
}

#[test]
fn scrambled_doubled_and_unchanged_texts_are_named() {
    let f = m(
        "A butler may work in a factory.",
        "factory. a may work in butler A",
    );
    assert_eq!(f.broken, Some(Broken::Scrambled), "{:?}", f.ops);
    let t = "A dog catches a red frisbee in the park.";
    let f = m(t, &format!("{t} {t}"));
    assert_eq!(f.broken, Some(Broken::Duplicated));
    let f = m(t, "a dog catches a  red Frisbee in the park");
    assert!(!f.changed());
    assert_eq!(
        EditMeasure::of([("text", t, "A dog catches a red frisbee in the park")])
            .check(&CLAIM)
            .map(|r| r.0),
        Some("no_op")
    );
}

#[test]
fn an_unrelated_text_keeps_too_little_of_the_original() {
    let f = m(
        "A dog catches a red frisbee in the park.",
        "Two women are cooking dinner in a small kitchen.",
    );
    assert!(f.related_share < 0.25, "{}", f.related_share);
    assert_eq!(f.check(&CLAIM).map(|r| r.0), Some("unrelated_text"));
}

#[test]
fn a_long_review_with_three_phrase_changes_passes() {
    let sentence = "The plot moves along at a steady pace and the actors seem to \
                    enjoy their roles, even when the script gives them little to do.";
    let original: Vec<String> = (0..12).map(|i| format!("{sentence} Scene {i}.")).collect();
    let mut edited = original.clone();
    edited[2] = edited[2].replace("a steady pace", "a painfully slow crawl");
    edited[6] = edited[6].replace("seem to enjoy", "clearly resent");
    edited[10] = edited[10].replace("little to do", "nothing worth doing");
    let (a, b) = (original.join(" "), edited.join(" "));
    let f = m(&a, &b);
    assert!(f.original_words > 250, "{}", f.original_words);
    assert_eq!(f.ops.len(), 3, "{:?}", f.ops);
    let text = EditBounds {
        max_ops: 4,
        ops_per_100_words: 5.0,
        max_changed_words: 8,
        max_changed_share: 0.4,
        min_related_share: 0.3,
    };
    assert_eq!(f.check(&text), None);
    // The same three changes are too many for a short caption's bound…
    assert!(text.allowed_ops(12) >= 3);
    // …while a bound scales with length.
    assert!(text.allowed_ops(600) > text.allowed_ops(12));
}

#[test]
fn joined_fields_are_measured_one_by_one() {
    let e = EditMeasure::of([(
        "text",
        "the man does not own a dog ||| the man does not own a mammal",
        "the man owns a dog ||| the man owns a mammal",
    )]);
    assert_eq!(e.changed_fields(), "text#1,text#2");
    assert_eq!(e.ops(), 2);
    // Spans point into the joined text, not into its segment.
    let second = &e.fields[1].ops[0];
    let a = "the man does not own a dog ||| the man does not own a mammal";
    let b = "the man owns a dog ||| the man owns a mammal";
    assert_eq!(
        &a[second.original_at.0..second.original_at.1],
        "does not own"
    );
    assert_eq!(&b[second.edited_at.0..second.edited_at.1], "owns");
    assert!(e.fields.iter().all(|f| f.broken.is_none()));
    let e = EditMeasure::of([("premise", "a b c d", "a b c d"), ("text", "x y", "x z")]);
    assert_eq!(e.changed_fields(), "text");
    assert_eq!(e.fields.len(), 1, "an unchanged field is not aligned");
}

/// Random texts and random edits of them (from a vocabulary with
/// multi-byte punctuation, clitics and separators): the measure never
/// panics, its spans are valid slices of the texts, and it finds a
/// change exactly when the words differ.
#[test]
fn random_edits_keep_the_measure_consistent() {
    const VOCAB: &[&str] = &[
        "a",
        "the",
        "dog",
        "Dog.",
        "“cat”",
        "don't",
        "n't",
        "'s",
        "|||",
        "—",
        "é",
        "niño",
        "runs",
        "runs,",
        "…",
        "big",
        "red",
        "-",
        "l'",
        "x’s",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..3000 {
        let len = next(12);
        let a: Vec<&str> = (0..len).map(|_| VOCAB[next(VOCAB.len())]).collect();
        let mut b = a.clone();
        for _ in 0..next(4) {
            match next(4) {
                0 if !b.is_empty() => {
                    let i = next(b.len());
                    b[i] = VOCAB[next(VOCAB.len())];
                }
                1 => b.insert(next(b.len() + 1), VOCAB[next(VOCAB.len())]),
                2 if !b.is_empty() => {
                    b.remove(next(b.len()));
                }
                _ if b.len() > 1 => {
                    let (i, j) = (next(b.len()), next(b.len()));
                    b.swap(i, j);
                }
                _ => {}
            }
        }
        let (ta, tb) = (a.join(" "), b.join("  "));
        let e = EditMeasure::of([("text", ta.as_str(), tb.as_str())]);
        let _ = e.check(&CLAIM);
        let _ = e.spans_json();
        for f in &e.fields {
            for op in &f.ops {
                assert!(
                    ta.get(op.original_at.0..op.original_at.1).is_some(),
                    "{ta:?}"
                );
                assert!(tb.get(op.edited_at.0..op.edited_at.1).is_some(), "{tb:?}");
            }
            assert!(f.removed_words <= f.original_words);
            assert!((0.0..=1.0).contains(&f.related_share));
        }
        let f = measure_field("text", &ta, &tb);
        let same = tokens(&ta)
            .iter()
            .map(|t| &t.key)
            .eq(tokens(&tb).iter().map(|t| &t.key));
        assert_eq!(f.changed(), !same, "{ta:?} → {tb:?}");
    }
}

#[test]
fn any_text_is_measured_without_panicking() {
    for (a, b) in [
        ("", ""),
        ("", "a"),
        ("…", "“"),
        ("é à ü", "ü à é"),
        ("a a a a", "a a"),
        ("x ||| y ||| z", "||| |||"),
    ] {
        let _ = EditMeasure::of([("text", a, b)]).check(&CLAIM);
    }
}
