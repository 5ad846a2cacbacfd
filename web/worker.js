// The Web Worker that runs inference, so typing never waits on a model (client.js talks to it).
//
// Messages in:  {id, op: "init", bundleUrl, backend, engine, variant, threads, tiers, router, prefetch,
//                ortUrl, pyodideUrl, runtimeWheelUrl}
//               {id, op: "classify", text} | {id, op: "status"} | {id, op: "bench", tier, sets, timing}
// Messages out: {id, ok: true, value} | {id, ok: false, error: {name, message}}
//               {event: "manifest" | "tier" | "fallback" | "progress" | "ready" | "failed", status, ...}

import { JsEngine } from "./engine.js";
import { wasmThreads } from "./backends.js";
import { errorToObject } from "./errors.js";
import { PyodideEngine } from "./pyodide-engine.js";
import { runtimeWheelName } from "./version.js";

// Where `serve` and `site` put onnxruntime-web, Pyodide and runtime_py's wheel; a page that bundles
// this package elsewhere names its own (IntentClient.create's ortUrl, pyodideUrl, runtimeWheelUrl).
const VENDOR = new URL("../vendor/", import.meta.url).href;
const RUNTIME_WHEEL = new URL(`../py/${runtimeWheelName()}`, import.meta.url).href;

/** @type {JsEngine | PyodideEngine | null} */
let engine = null;
/** @type {Promise<unknown> | null} */
let loading = null;
let lastProgress = 0;

function post(message) {
  self.postMessage(message);
}

function onEvent(event) {
  if (event.event === "progress") {
    // at most ~20 progress messages a second
    const now = performance.now();
    if (now - lastProgress < 50 && event.loaded < event.total) return;
    lastProgress = now;
  }
  post(event);
}

async function init(message) {
  if (engine) throw new Error("this worker is already initialised; create another client");
  wasmThreads(message.threads ?? null); // a bad value fails here, not when the transformer loads
  const base = message.pageUrl ?? self.location.href;
  const url = (given, fallback) => (given ? new URL(given, base).href : fallback);
  const folder = (given, fallback) => url(given && !given.endsWith("/") ? `${given}/` : given, fallback);
  const options = {
    bundleUrl: new URL(message.bundleUrl, base).href,
    vendorUrl: folder(message.ortUrl, `${VENDOR}ort/`),
    backend: message.backend ?? "wasm",
    variant: message.variant ?? null,
    threads: message.threads ?? null,
    tiers: message.tiers ?? null,
    router: message.router ?? {},
    prefetch: message.prefetch ?? null,
    onEvent,
  };
  if (message.engine === "pyodide") {
    engine = new PyodideEngine({
      ...options,
      pyodideUrl: folder(message.pyodideUrl, `${VENDOR}pyodide/`),
      runtimeWheelUrl: url(message.runtimeWheelUrl, RUNTIME_WHEEL),
    });
  } else if (!message.engine || message.engine === "js") {
    engine = new JsEngine(options);
  } else {
    throw new Error(`unknown engine ${JSON.stringify(message.engine)} (known: js, pyodide)`);
  }
  loading = engine.load();
  loading.catch(() => undefined); // reported through the "failed" event and the ready op
  return engine.status();
}

const OPS = {
  init,
  async ready() {
    if (!loading) throw new Error("not initialised");
    await loading;
    return engine.status();
  },
  async classify(message) {
    if (!engine) throw new Error("not initialised");
    return await engine.classify(message.text);
  },
  async status() {
    if (!engine) throw new Error("not initialised");
    return engine.status();
  },
  async bench(message) {
    if (!loading) throw new Error("not initialised");
    await loading.catch(() => undefined);
    return await engine.bench(message);
  },
};

self.onmessage = async (e) => {
  const message = e.data ?? {};
  const op = OPS[message.op];
  try {
    if (!op) throw new Error(`unknown op ${JSON.stringify(message.op)}`);
    post({ id: message.id, ok: true, value: await op(message) });
  } catch (error) {
    post({ id: message.id, ok: false, error: errorToObject(error) });
  }
};
