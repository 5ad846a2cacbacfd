// ONNX graphs side by side in onnxruntime-web's WASM build under Node (the same kernels as in
// Chromium, without a browser): session creation, then warm medians at one length, interleaved
// (docs/BENCHMARKS.md, "Pre-fused graphs in WASM"). Prints the first logits, to compare outputs.
//
//   [THREADS=1] [LEN=16] [ROUNDS=7] node benchmarks/wasm_graphs.mjs A.onnx B.onnx ...
//
// The first session also pays for instantiating the WebAssembly module: compare creation times
// from separate runs, inference medians within one.
import * as ort from "onnxruntime-web";

ort.env.wasm.numThreads = Number(process.env.THREADS ?? 1);
ort.env.logLevel = "error";
const length = Number(process.env.LEN ?? 16);
const rounds = Number(process.env.ROUNDS ?? 7);
const ids = BigInt64Array.from({ length }, (_, i) => BigInt(i === 0 ? 101 : i === length - 1 ? 102 : 1000 + 37 * i));

function feeds(session) {
  const make = (data) => new ort.Tensor("int64", data, [1, length]);
  const by = { input_ids: ids, attention_mask: new BigInt64Array(length).fill(1n) };
  return Object.fromEntries(session.inputNames.map((name) => [name, make(by[name] ?? new BigInt64Array(length))]));
}

const runs = [];
for (const path of process.argv.slice(2)) {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(path, { executionProviders: ["wasm"] });
  const input = feeds(session);
  const out = await session.run(input);
  runs.push({ path, session, input, create: performance.now() - t0, logits: Array.from(Object.values(out)[0].data).slice(0, 4), medians: [] });
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
for (const r of runs) {
  const sorted = [...r.medians].sort((a, b) => a - b);
  console.log(`${r.path}: session ${r.create.toFixed(0)} ms; medians ${r.medians.map((m) => m.toFixed(2)).join(" ")} -> ${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms; logits ${r.logits.map((v) => v.toFixed(4)).join(", ")}`);
}
