#!/usr/bin/env python3
"""Originals for the rules-validity benchmark, from real sets people wrote.

  make-validity-inputs.py OUT_DIR SETS_DIR [SAMPLES_DIR]

Writes one JSONL per task (claim, caption, nli, question) with the fields
the task presets read by default. Both sides of every real pair are used
as originals (each with its own gold label): the rules never saw them.
- claim:    CREAK claims with true/false labels;
- caption:  COCO-CON and VideoCon captions (descriptions of their media);
- nli:      CAD and ScoNe premise/hypothesis pairs with their labels;
- question: COCO-CON's VQA questions with their answers, and the sample
            questions shipped in data/samples/.
"""
import csv, json, os, sys

out, sets = sys.argv[1], sys.argv[2]
samples = sys.argv[3] if len(sys.argv) > 3 else "data/samples"
os.makedirs(out, exist_ok=True)


def rows(name):
    path = os.path.join(sets, name + ".jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def write(task, items):
    seen, kept = set(), []
    for it in items:
        key = json.dumps({k: v for k, v in it.items() if k != "id"}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(it)
    with open(os.path.join(out, task + ".jsonl"), "w") as f:
        for it in kept:
            f.write(json.dumps(it) + "\n")
    print(f"{task}: {len(kept)} originals", file=sys.stderr)


claims = []
for r in rows("creak_contrast"):
    for side in ("original", "edited"):
        claims.append({"id": f"{r['id']}-{side}", "claim": r[side], "label": r[f"{side}_label"]})
write("claim", claims)

captions = []
for r in rows("cococon"):
    captions.append({"id": r["id"], "caption": r["original"]})
for r in rows("videocon_prompt_exemplars"):
    captions.append({"id": r["id"], "caption": r["original"], "label": r["original_label"]})
write("caption", captions)

nli = []
for name in ("cad_nli", "scone"):
    for r in rows(name):
        for side in ("original", "edited"):
            parts = r[side].split(" ||| ")
            if len(parts) == 2:
                nli.append({"id": f"{r['id']}-{side}", "premise": parts[0],
                            "hypothesis": parts[1], "label": r[f"{side}_label"]})
write("nli", nli)

questions = []
for r in rows("cococon"):
    q = (r.get("extra") or {}).get("vqa_question")
    if q:
        questions.append({"id": f"vqa-{r['id']}", "question": q, "answer": r["original_label"]})
qpath = os.path.join(samples, "questions.csv")
if os.path.exists(qpath):
    with open(qpath) as f:
        for r in csv.DictReader(f):
            questions.append({"id": r["id"], "question": r["question"], "answer": r["answer"]})
write("question", questions)
