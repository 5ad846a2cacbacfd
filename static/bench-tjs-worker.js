// transformers.js (npm @huggingface/transformers, browser build) for the benchmark page: loads the
// bundle's own files as a local model (remote models off) and times its text-classification
// pipeline with the same loop as our worker (web/timing.js).
//
// Its browser build imports "onnxruntime-web/webgpu" and "onnxruntime-common", bare names that
// a worker cannot map (no import maps in workers): this worker imports a copy whose two names
// point at the onnxruntime-web build our WebGPU backend serves (vendor/ort/ort.webgpu.min.mjs).

import { errorToObject } from "./web/errors.js";
import { timeSets } from "./web/timing.js";

const VENDOR = new URL("./vendor/", import.meta.url).href;
const ORT_URL = `${VENDOR}ort/ort.webgpu.min.mjs`;
const TRANSFORMERS_URL = `${VENDOR}transformers/transformers.web.min.js`;
const BARE_NAMES = ["onnxruntime-web/webgpu", "onnxruntime-common"];

let transformers = null;
let classifier = null;
let labels = null;

async function importTransformers() {
  const response = await fetch(TRANSFORMERS_URL);
  if (!response.ok) throw new Error(`${TRANSFORMERS_URL}: HTTP ${response.status}`);
  let source = await response.text();
  for (const name of BARE_NAMES) {
    const quoted = JSON.stringify(name);
    if (!source.includes(quoted)) throw new Error(`transformers.js no longer imports ${quoted}; update static/bench-tjs-worker.js`);
    source = source.replaceAll(quoted, JSON.stringify(ORT_URL));
  }
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return await import(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

const OPS = {
  /** {modelRoot, model, device: "wasm" | "webgpu", dtype: "q8" | "fp32", threads} */
  async load({ modelRoot, model, device, dtype, threads }) {
    const start = performance.now();
    transformers ??= await importTransformers();
    const { env, pipeline } = transformers;
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = modelRoot;
    env.useBrowserCache = false;
    env.useWasmCache = false;
    const onnx = env.backends.onnx;
    onnx.wasm.wasmPaths = `${VENDOR}ort/`;
    onnx.wasm.proxy = false;
    onnx.wasm.numThreads = threads ?? (globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
    const importMs = performance.now() - start;
    classifier = await pipeline("text-classification", model, { device, dtype });
    const id2label = classifier.model.config.id2label;
    labels = Object.keys(id2label)
      .sort((a, b) => Number(a) - Number(b))
      .map((k) => id2label[k]);
    return {
      engine: "transformers.js",
      version: env.version,
      onnxruntime_web: onnx.versions?.web ?? null,
      device,
      backend: device,
      dtype,
      threads: device === "wasm" ? onnx.wasm.numThreads : null,
      import_ms: importMs,
      load_ms: performance.now() - start,
    };
  },
  /** Time the pipeline on every label's score (top_k: null); outputs are probabilities in id order. */
  async bench({ sets, timing }) {
    if (!classifier) throw new Error("load first");
    const index = new Map(labels.map((label, i) => [label, i]));
    const probabilities = async (text) => {
      const scores = await classifier(text, { top_k: null });
      const out = new Array(labels.length).fill(0);
      for (const { label, score } of scores) out[index.get(label)] = score;
      return out;
    };
    return { tier: "transformer", kind: "transformer", labels, describe: {}, sets: await timeSets(probabilities, sets, timing) };
  },
};

self.onmessage = async (e) => {
  const { id, op, ...fields } = e.data ?? {};
  try {
    if (!OPS[op]) throw new Error(`unknown op ${JSON.stringify(op)}`);
    self.postMessage({ id, ok: true, value: await OPS[op](fields) });
  } catch (error) {
    self.postMessage({ id, ok: false, error: errorToObject(error) });
  }
};
