#!/usr/bin/env python3
"""Share of judged rules edits that are valid, per task and operation.

  validity-score.py JUDGED.csv

JUDGED.csv is a sample written by scripts/bench-validity with the `valid`
column filled (y/n). Prints a Markdown table: valid / judged per task and
operation, and per task overall; finished pairs (a flip or invariant with
its label) and pairs routed to review are shown apart.
"""
import collections, csv, sys

rows = list(csv.DictReader(open(sys.argv[1])))
rows = [r for r in rows if r["valid"].strip().lower() in ("y", "n")]
cell = collections.defaultdict(lambda: [0, 0])
task_total = collections.defaultdict(lambda: [0, 0])
kind_total = collections.defaultdict(lambda: [0, 0])
for r in rows:
    ok = r["valid"].strip().lower() == "y"
    kind = "review" if r["needs_review"] else "finished"
    for key, table in (((r["task"], r["op"]), cell), (r["task"], task_total), ((r["task"], kind), kind_total)):
        table[key][0] += ok
        table[key][1] += 1
fmt = lambda c: f"{c[0]}/{c[1]} ({c[0] / c[1]:.0%})" if c[1] else "—"
ops = sorted({op for _, op in cell})
tasks = sorted(task_total)
print("| task | " + " | ".join(ops) + " | all | finished | to review |")
print("|---|" + "---|" * (len(ops) + 3))
for t in tasks:
    print(f"| {t} | " + " | ".join(fmt(cell[(t, op)]) for op in ops)
          + f" | {fmt(task_total[t])} | {fmt(kind_total[(t, 'finished')])} | {fmt(kind_total[(t, 'review')])} |")
