// ONNX graphs side by side in onnxruntime-web's WASM build under Node (the same kernels as in
// Chromium, without a browser): session creation, then warm medians at one length, interleaved
// (docs/BENCHMARKS.md, "Pre-fused graphs in WASM"). Prints the first logits, to compare outputs.
//
//   [THREADS=1] [LEN=16] [ROUNDS=7] [FEEDS=feeds.json OUT=out.json] node benchmarks/wasm_graphs.mjs A.onnx B.onnx ...
//
// FEEDS: a JSON list of encodings ({"input_ids": [...], "attention_mask": [...], "token_type_ids": [...]},
// one text each, batch 1); with OUT, every graph's first output for each of them is written there
// with the timings ({"graphs": [{path, create_ms, median_ms, medians_ms, logits: [[...], ...]}]}).
//
// The first session also pays for instantiating the WebAssembly module: compare creation times
// from separate runs, inference medians within one.
import { readFileSync, writeFileSync } from "node:fs";
import * as ort from "onnxruntime-web";

ort.env.wasm.numThreads = Number(process.env.THREADS ?? 1);
ort.env.logLevel = "error";
const length = Number(process.env.LEN ?? 16);
const rounds = Number(process.env.ROUNDS ?? 7);
const ids = BigInt64Array.from({ length }, (_, i) => BigInt(i === 0 ? 101 : i === length - 1 ? 102 : 1000 + 37 * i));
const encodings = process.env.FEEDS ? JSON.parse(readFileSync(process.env.FEEDS, "utf8")) : [];

function tensors(session, by) {
  const n = by.input_ids.length;
  const make = (name) => new ort.Tensor("int64", by[name] ?? new BigInt64Array(n), [1, n]);
  return Object.fromEntries(session.inputNames.map((name) => [name, make(name)]));
}

const timed = { input_ids: ids, attention_mask: new BigInt64Array(length).fill(1n) };
const asBigInts = (enc) => Object.fromEntries(Object.entries(enc).map(([k, v]) => [k, BigInt64Array.from(v, BigInt)]));

const runs = [];
for (const path of process.argv.slice(2)) {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(path, { executionProviders: ["wasm"] });
  const input = tensors(session, timed);
  const out = await session.run(input);
  const create = performance.now() - t0;
  const logits = [];
  for (const enc of encodings) logits.push(Array.from(Object.values(await session.run(tensors(session, asBigInts(enc))))[0].data));
  runs.push({ path, session, input, create, first: Array.from(Object.values(out)[0].data).slice(0, 4), logits, medians: [] });
}
for (const r of runs) for (const t = performance.now(); performance.now() - t < 1500; ) await r.session.run(r.input); // tier-up
for (let i = 0; i < rounds; i++) {
  for (const r of runs) {
    const times = [];
    for (let j = 0; j < 41; j++) {
      const t = performance.now();
      await r.session.run(r.input);
      times.push(performance.now() - t);
    }
    r.medians.push(times.sort((a, b) => a - b)[20]);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const r of runs) {
  console.log(`${r.path}: session ${r.create.toFixed(0)} ms; medians ${r.medians.map((m) => m.toFixed(2)).join(" ")} -> ${median(r.medians).toFixed(2)} ms; logits ${r.first.map((v) => v.toFixed(4)).join(", ")}`);
}
if (process.env.OUT) {
  const graphs = runs.map((r) => ({ path: r.path, create_ms: r.create, median_ms: median(r.medians), medians_ms: r.medians, logits: r.logits }));
  writeFileSync(process.env.OUT, JSON.stringify({ threads: ort.env.wasm.numThreads, length, graphs }));
}
