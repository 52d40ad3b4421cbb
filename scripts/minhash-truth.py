#!/usr/bin/env python3
"""Precision and recall of near-duplicate flags against the true Jaccard.

    scripts/minhash-truth.py TEXTS.txt LIMIT THRESHOLD NAME=FLAGS.txt [NAME=FLAGS.txt ...]

TEXTS holds one text per line, streamed in order; a FLAGS file lists the
0-based lines a deduplicator flagged as a near-duplicate of an earlier
line it kept. The truth is the same streaming rule with the exact Jaccard
similarity of the padded word 3-gram sets foil and datasketch hash: line i
is a duplicate when some earlier *kept* line has Jaccard >= THRESHOLD with
it, else it is kept. Only the first LIMIT lines are judged (a stream's
flags for its first LIMIT lines do not depend on what comes after).

Exact, with no sampling and no hashing: candidate pairs come from a
prefix-filter join (tokens ordered rarest first; two sets with Jaccard >= t
share a token among the first |x| - ceil(t |x|) + 1 of either), every
candidate's Jaccard is computed from the sets themselves.
"""

import math
import sys
from collections import Counter, defaultdict

PUNCT = "".join(c for c in map(chr, range(128)) if not c.isalnum())


def shingles(text):
    words = [w.strip(PUNCT).lower() for w in text.split()]
    words = [w for w in words if w]
    toks = ["\x02", "\x02"] + words + ["\x03", "\x03"]
    return frozenset(" ".join(toks[i : i + 3]) for i in range(len(toks) - 2))


def main():
    path, limit, t = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    flag_files = [a.split("=", 1) for a in sys.argv[4:]]
    with open(path) as f:
        texts = [next(f).rstrip("\n") for _ in range(limit)] if limit else f.read().splitlines()
    sets = [shingles(x) for x in texts]
    freq = Counter(s for x in sets for s in x)
    order = {s: (n, s) for s, n in freq.items()}
    index = defaultdict(list)  # prefix token -> kept lines
    truth = set()
    verified = 0
    for i, x in enumerate(sets):
        toks = sorted(x, key=order.__getitem__)
        prefix = len(toks) - math.ceil(t * len(toks)) + 1
        seen = set()
        dup = False
        for tok in toks[:prefix]:
            for j in index.get(tok, ()):
                if j in seen:
                    continue
                seen.add(j)
                y = sets[j]
                if min(len(x), len(y)) < t * max(len(x), len(y)):
                    continue
                verified += 1
                inter = len(x & y)
                if inter / (len(x) + len(y) - inter) >= t:
                    dup = True
                    break
            if dup:
                break
        if dup:
            truth.add(i)
        else:
            # A kept line is found through any token of its own prefix.
            for tok in toks[:prefix]:
                index[tok].append(i)
    print(
        f"truth: {len(texts)} lines, {len(truth)} near-duplicates at Jaccard >= {t} "
        f"({verified} candidate pairs verified exactly)"
    )
    for name, flags_path in flag_files:
        with open(flags_path) as f:
            flagged = {int(x) for x in f.read().split() if int(x) < len(texts)}
        hit = len(flagged & truth)
        p = hit / len(flagged) if flagged else 1.0
        r = hit / len(truth) if truth else 1.0
        print(
            f"{name}: {len(flagged)} flagged; precision {p:.3f}, recall {r:.3f} "
            f"(false flags {len(flagged - truth)}, missed {len(truth - flagged)})"
        )


if __name__ == "__main__":
    main()
