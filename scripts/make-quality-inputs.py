#!/usr/bin/env python3
"""Inputs of the quality benchmark (scripts/bench-quality).

For every real contrast set (JSONL: original, edited, labels; two-field NLI
texts joined with " ||| "), writes into OUT:

  real-<set>.jsonl            the pairs people made or accepted, as they are
  broken-<kind>-<set>.jsonl   broken edits built from the same originals,
                              each carrying the real pair's flipped label:
    no_op        the original again, lower-cased, final punctuation dropped
    unrelated    the original of another pair of the set that shares almost
                 no content words with this one
    truncated    the first half of the original's words
    shuffled     the original's words in a random order
    doubled      the original written twice

Two-field sets get separate `premise` / `hypothesis` columns (and
`edited_premise` / `edited_hypothesis`), so foil measures each field; the
broken edits then break the hypothesis. Deterministic (seeded), so every
run of the benchmark sees the same inputs.

  make-quality-inputs.py OUT SET.jsonl...
"""
import json
import os
import random
import sys

SEP = " ||| "


def split(text):
    parts = text.split(SEP)
    return parts if len(parts) == 2 else None


STOP = set("a an the of in on at to for with by from and or but is are was were be been "
           "being it its this that these those as he she they his her their there".split())


def content(text):
    words = (w.strip(".,;:!?\"'()").lower() for w in text.split())
    return {w for w in words if w and w not in STOP}


def unrelated_to(i, originals, text_of, rng):
    """Another original of the set that shares (almost) no content words
    with this one: sets built on templates (ScoNe) have many originals that
    are near-copies of each other, which are not unrelated texts."""
    mine = content(text_of(originals[i]))
    best = None
    for _ in range(50):
        j = (i + 1 + rng.randrange(len(originals) - 1)) % len(originals)
        theirs = content(text_of(originals[j]))
        jac = len(mine & theirs) / max(1, len(mine | theirs))
        if jac < 0.2:
            return originals[j]
        if best is None or jac < best[0]:
            best = (jac, originals[j])
    return best[1]


def broken(kind, text, other, rng):
    words = text.split()
    if kind == "no_op":
        return text.lower().rstrip(".!?")
    if kind == "unrelated":
        return other
    if kind == "truncated":
        return " ".join(words[: max(1, len(words) // 2)])
    if kind == "shuffled":
        for _ in range(20):
            w = words[:]
            rng.shuffle(w)
            if w != words:
                return " ".join(w)
        return " ".join(reversed(words))
    if kind == "doubled":
        return f"{text} {text}"
    raise ValueError(kind)


KINDS = ["no_op", "unrelated", "truncated", "shuffled", "doubled"]


def main():
    out, files = sys.argv[1], sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(l) for l in f if l.strip()]
        two_field = all(split(r["original"]) and split(r["edited"]) for r in rows)

        def shape(r, edited_text):
            row = {
                "id": r["id"],
                "original_label": r["original_label"],
                "edited_label": r["edited_label"],
                "edit_type": r.get("edit_type"),
            }
            if two_field:
                p, h = split(r["original"])
                row.update(premise=p, hypothesis=h)
                ep, eh = split(edited_text) if SEP in edited_text else (p, edited_text)
                row.update(edited_premise=ep, edited_hypothesis=eh)
            else:
                row.update(original=r["original"], edited=edited_text)
            return row

        with open(f"{out}/real-{name}.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(shape(r, r["edited"]), ensure_ascii=False) + "\n")

        # One broken edit per distinct original (sets repeat an original
        # across its several edits).
        seen, originals = set(), []
        for r in rows:
            if r["original"] not in seen:
                seen.add(r["original"])
                originals.append(r)
        rng = random.Random(12)
        for kind in KINDS:
            with open(f"{out}/broken-{kind}-{name}.jsonl", "w", encoding="utf-8") as f:
                text_of = lambda r: split(r["original"])[1] if two_field else r["original"]
                for i, r in enumerate(originals):
                    text = text_of(r)
                    other = text_of(unrelated_to(i, originals, text_of, rng))
                    e = broken(kind, text, other, rng)
                    row = shape(r, e)
                    # A broken edit claims the real pair's flipped label.
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} real pairs, {len(originals)} originals, "
              f"{'premise + hypothesis' if two_field else 'one field'}")


if __name__ == "__main__":
    main()
