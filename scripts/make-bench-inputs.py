"""Write the inputs docs/BENCHMARKS.md measures, deterministically.

    python3 scripts/make-bench-inputs.py /tmp

big.csv         data/samples/questions.csv repeated 100 times with distinct
                ids and texts (3,600 rows)
pairs100k.jsonl 100,000 random 12-word texts, each with one word changed
                (pairs mode input), seeded
pairs1m.jsonl   1,000,000 random 12-word texts from a 5,000-word vocabulary,
                one word changed (the memory benchmark), seeded
pairs10m.jsonl  the same, 10,000,000 rows (only with --10m)
questions1m.csv 1,000,000 sample questions, each with 8 random words (only with --questions1m)

    python3 scripts/make-bench-inputs.py /tmp --10m --questions1m
"""
import csv
import json
import os
import random
import sys

out = next((a for a in sys.argv[1:] if not a.startswith("--")), "/tmp")
here = os.path.dirname(os.path.abspath(__file__))

rows = list(csv.reader(open(os.path.join(here, "..", "data", "samples", "questions.csv"))))
with open(os.path.join(out, "big.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(rows[0])
    for i in range(100):
        for r in rows[1:]:
            w.writerow([f"{r[0]}-{i}", r[1].replace("?", f" in case {i}?"), r[2], r[3]])

random.seed(1)
words = "the a man woman dog cat runs walks owns likes big small red blue house car tree river city old new".split()
with open(os.path.join(out, "pairs100k.jsonl"), "w") as f:
    for i in range(100_000):
        text = [random.choice(words) for _ in range(12)]
        edited = list(text)
        edited[random.randrange(12)] = random.choice(words)
        f.write(json.dumps({"id": f"p{i}", "text": " ".join(text), "edited": " ".join(edited),
                            "label": "a", "edited_label": "b"}) + "\n")
random.seed(1)
vocab = [f"w{i}" for i in range(5000)]
with open(os.path.join(out, "pairs1m.jsonl"), "w") as f:
    for i in range(1_000_000):
        text = [random.choice(vocab) for _ in range(12)]
        edited = list(text)
        edited[random.randrange(12)] = random.choice(vocab)
        f.write(json.dumps({"id": f"p{i}", "text": " ".join(text), "label": "a",
                            "edited": " ".join(edited), "edited_label": "b"}) + "\n")
print("wrote big.csv, pairs100k.jsonl and pairs1m.jsonl in", out)
if "--questions1m" in sys.argv:
    # 1,000,000 question rows for the rules generator: a sample question
    # with eight random words from a 5,000-word vocabulary before its
    # question mark, so rows are distinct and not near-duplicates of each
    # other (a number alone as the difference, as in big.csv, makes every
    # row a near-duplicate candidate of thousands of others: a degenerate
    # input for LSH, not a large one).
    rng = random.Random(11)
    vocab = [f"w{i}" for i in range(5000)]
    with open(os.path.join(out, "questions1m.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(rows[0])
        n = 0
        i = 0
        while n < 1_000_000:
            for r in rows[1:]:
                if n == 1_000_000:
                    break
                tail = " ".join(rng.choice(vocab) for _ in range(8))
                w.writerow([f"{r[0]}-{i}", r[1].rstrip("?") + f" {tail}?", r[2], r[3]])
                n += 1
            i += 1
    print("wrote questions1m.csv in", out)
if "--10m" in sys.argv:
    # The same generator, ten times as long (about 2.2 GB).
    random.seed(1)
    with open(os.path.join(out, "pairs10m.jsonl"), "w") as f:
        for i in range(10_000_000):
            text = [random.choice(vocab) for _ in range(12)]
            edited = list(text)
            edited[random.randrange(12)] = random.choice(vocab)
            f.write(json.dumps({"id": f"p{i}", "text": " ".join(text), "label": "a",
                                "edited": " ".join(edited), "edited_label": "b"}) + "\n")
    print("wrote pairs10m.jsonl in", out)
