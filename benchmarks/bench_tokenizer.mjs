// JavaScript side of benchmarks/bench_tokenizer.py (run by it; usable alone):
//   node benchmarks/bench_tokenizer.mjs --tokenizer-json PATH --texts TEXTS.json [--repeats 15]
// Prints one JSON object: microseconds per utterance (median over repeats), tokens per repeat.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { WordPieceTokenizer } from "../web/wordpiece.js";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`missing --${name}`);
  return fallback;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const config = readFileSync(arg("tokenizer-json"), "utf8");
const texts = JSON.parse(readFileSync(arg("texts"), "utf8"));
const repeats = Number(arg("repeats", "15"));

let t0 = performance.now();
const tok = WordPieceTokenizer.fromTokenizerJson(config);
const loadMs = performance.now() - t0;

// Cold: a fresh tokenizer (empty caches), one pass over the texts.
const cold = [];
for (let r = 0; r < Math.min(repeats, 5); r++) {
  const fresh = WordPieceTokenizer.fromTokenizerJson(config);
  t0 = performance.now();
  for (const text of texts) fresh.encode(text);
  cold.push(((performance.now() - t0) * 1000) / texts.length);
}

let tokens = 0;
for (const text of texts) tokens += tok.encode(text).ids.length;
for (let i = 0; i < 20; i++) for (const text of texts) tok.encode(text); // warm-up (JIT tiers, caches)
const warm = [];
for (let r = 0; r < repeats; r++) {
  t0 = performance.now();
  for (let k = 0; k < 10; k++) for (const text of texts) tok.encode(text);
  warm.push(((performance.now() - t0) * 1000) / (10 * texts.length));
}
console.log(JSON.stringify({ loadMs, coldUs: median(cold), warmUs: median(warm), tokens, node: process.version }));
