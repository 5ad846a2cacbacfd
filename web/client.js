// The page-side API: an IntentClient owns one Web Worker (worker.js) that loads a bundle and
// classifies text, so the page never blocks on a model.
//
//   const client = await IntentClient.create({ bundleUrl: "./bundle/", backend: "wasm" });
//   client.onStatus = (status, event) => render(status);   // progressive start, fallbacks, progress
//   const result = await client.classify("how is AAPL doing");  // answers as soon as BoW is loaded
//   await client.ready();                                   // every tier loaded (or failed)
//
// Bundlers (Vite, webpack, esbuild with worker.js as a second entry point) find the worker through
// `new Worker(new URL("./worker.js", import.meta.url), { type: "module" })`: keep that line as it is.

import { RemoteBundle } from "./bundle.js";
import { errorFromObject } from "./errors.js";

export class IntentClient {
  /** @param {Worker} worker */
  constructor(worker) {
    this.worker = worker;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    /** @type {((status: any, event: any) => void) | null} */
    this.onStatus = null;
    this.lastStatus = null;
    worker.onmessage = (e) => this.receive(e.data);
    worker.onerror = (e) => {
      e.preventDefault?.();
      const error = new Error(`the inference worker failed: ${e.message || "could not start (is web/worker.js served?)"}`);
      for (const { reject } of this.pending.values()) reject(error);
      this.pending.clear();
    };
  }

  /**
   * Start a worker and load the bundle at `bundleUrl` (relative to the page).
   * @param {{bundleUrl?: string, backend?: "wasm" | "webgpu" | "webgl", engine?: "js" | "pyodide",
   *   variant?: string | null, threads?: number | null, tiers?: string[] | null, router?: import("./router.js").RouterOptions,
   *   prefetch?: boolean, ortUrl?: string | null, pyodideUrl?: string | null, runtimeWheelUrl?: string | null,
   *   onStatus?: (status: any, event: any) => void}} [options] `ortUrl`: the folder holding onnxruntime-web's
   *   dist files (default `../vendor/ort/` from the worker, where `serve` and `site` put them); `pyodideUrl`:
   *   Pyodide's folder with micropip's wheel; `runtimeWheelUrl`: runtime_py's wheel (the Pyodide engine).
   */
  static async create(options = {}) {
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const client = new IntentClient(worker);
    client.onStatus = options.onStatus ?? null;
    const bundleUrl = options.bundleUrl ?? "./bundle/";
    // While the worker starts (~100 ms), the page fetches the manifest and the BoW tier, and hands
    // them over; if that fails, the worker fetches them itself and reports what went wrong.
    const prefetch = options.prefetch === false ? null : await RemoteBundle.prefetch(new URL(bundleUrl, globalThis.location?.href), options.tiers ?? null).catch(() => null);
    client.lastStatus = await client.call("init", {
      bundleUrl,
      prefetch,
      pageUrl: globalThis.location?.href,
      backend: options.backend ?? "wasm",
      engine: options.engine ?? "js",
      variant: options.variant ?? null,
      threads: options.threads ?? null,
      tiers: options.tiers ?? null,
      router: options.router ?? {},
      ortUrl: options.ortUrl ?? null,
      pyodideUrl: options.pyodideUrl ?? null,
      runtimeWheelUrl: options.runtimeWheelUrl ?? null,
    });
    return client;
  }

  receive(data) {
    if (data && data.event) {
      this.lastStatus = data.status;
      this.onStatus?.(data.status, data);
      return;
    }
    const waiter = this.pending.get(data?.id);
    if (!waiter) return;
    this.pending.delete(data.id);
    if (data.ok) waiter.resolve(data.value);
    else waiter.reject(errorFromObject(data.error));
  }

  /** @returns {Promise<any>} */
  call(op, fields = {}) {
    const id = this.nextId++;
    // prefetched bytes move to the worker instead of being copied
    const transfer = [...new Set((fields.prefetch?.files ?? []).map((f) => f.bytes.buffer))];
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...fields }, transfer);
    });
  }

  /** Resolves with the status once every tier has loaded or failed; rejects if the bundle cannot load. */
  ready() {
    return this.call("ready");
  }

  /**
   * The routed result (runtime_py's RouteResult.to_dict() shape); rejects with InputError for bad input.
   * @param {string} text
   * @returns {Promise<import("./router.js").RouteResult>}
   */
  classify(text) {
    return this.call("classify", { text });
  }

  /**
   * Time one tier's probabilities inside the worker (see JsEngine.bench); waits for loading first.
   * @param {{tier: string, sets: Record<string, string[]>, timing?: import("./timing.js").TimingOptions}} request
   */
  bench(request) {
    return this.call("bench", request);
  }

  /** What is loaded: engine, backend (and why another was used), tiers with sizes, cache and timings. */
  status() {
    return this.call("status");
  }

  terminate() {
    this.worker.terminate();
    const error = new Error("the client was terminated");
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }
}
