// The JavaScript engine: the whole cascade in JavaScript. The BoW tier answers as soon as its
// JSON arrives; the transformer tier joins when its session is ready (progressive start). A GPU
// backend that cannot run says why and the tier falls back to WASM.

import { BowModel, BowTier } from "./bow.js";
import { NO_BUNDLE_FACTS, RemoteBundle, selectTiers, tierSettings } from "./bundle.js";
import { BACKENDS, importOrt, probeBackend, wasmThreads } from "./backends.js";
import { errorToObject } from "./errors.js";
import { Router } from "./router.js";
import { timeSets } from "./timing.js";

/**
 * @typedef {{bundleUrl: string, vendorUrl: string, backend?: string, variant?: string | null, threads?: number | null, tiers?: string[] | null,
 *   prefetch?: import("./bundle.js").Prefetch | null,
 *   router?: import("./router.js").RouterOptions, onEvent?: (event: Record<string, any>) => void}} EngineOptions
 */

/** Per-tier load state as status() reports it. */
function tierEntry(spec) {
  // What a browser downloads by default: every file but the other model variants.
  const bytes = Object.entries(spec.files).reduce((sum, [role, f]) => sum + (role === "model" || !role.startsWith("model") ? f.bytes : 0), 0);
  return { name: spec.name, kind: spec.kind, state: "loading", available: false, error: null, bytes: null, listed_bytes: bytes, from_cache: null, load_ms: null };
}

export class JsEngine {
  /** @param {EngineOptions} options */
  constructor(options) {
    this.options = options;
    this.requested = options.backend ?? "wasm";
    this.backend = null;
    this.fallbackReason = null;
    this.adapter = null;
    this.bundle = null;
    /** @type {import("./bundle.js").TierSpec[] | null} the tiers this engine loads */
    this.specs = null;
    /** @type {Map<string, any>} */
    this.loaded = new Map();
    this.tierState = [];
    this.router = new Router([], options.router);
    this.started = performance.now();
    // started_at is wall-clock (epoch ms), so a page can place the worker's start on its own clock.
    this.timings = { started_at: performance.timeOrigin + this.started };
    this.fatal = null;
    this.requestedAdapter = null;
  }

  emit(event) {
    this.options.onEvent?.({ ...event, status: this.status() });
  }

  /** Load the bundle: resolves when every tier is loaded or has failed. */
  async load() {
    try {
      this.bundle = await RemoteBundle.open(this.options.bundleUrl, this.options.prefetch ?? null);
      this.specs = selectTiers(this.bundle.manifest, this.options.tiers);
    } catch (error) {
      this.fatal = errorToObject(error);
      this.emit({ event: "failed" });
      throw error;
    }
    this.timings.manifest_ms = performance.now() - this.started;
    this.tierState = this.specs.map(tierEntry);
    this.rebuildRouter();
    this.emit({ event: "manifest" });
    // Tiers load in parallel; the cheap ones finish first and answer meanwhile.
    await Promise.all(this.specs.map((spec) => this.loadTier(spec)));
    await this.bundle.stored(); // "ready" promises a second visit that starts from the cache
    this.timings.all_ms = performance.now() - this.started;
    this.bundle.prune().catch(() => 0);
    this.emit({ event: "ready" });
    return this.status();
  }

  rebuildRouter() {
    const specs = this.specs.filter((s) => this.loaded.has(s.name));
    this.router = new Router(specs.map((s) => this.loaded.get(s.name)), { ...this.options.router, manifest: this.bundle.manifest });
  }

  async loadTier(spec) {
    const entry = this.tierState.find((t) => t.name === spec.name);
    const start = performance.now();
    try {
      let tier;
      if (spec.kind === "bow") tier = await this.loadBow(spec, entry);
      else if (spec.kind === "transformer") tier = await this.loadTransformer(spec, entry);
      else throw new Error(`tier kind ${JSON.stringify(spec.kind)} is not supported by the JavaScript runtime (known: bow, transformer)`);
      this.loaded.set(spec.name, tier);
      Object.assign(entry, { state: "ready", available: true, load_ms: performance.now() - start });
      if (spec.kind === "bow" && this.timings.first_tier_ms === undefined) this.timings.first_tier_ms = performance.now() - this.started;
      this.rebuildRouter();
      this.emit({ event: "tier", tier: spec.name });
    } catch (error) {
      Object.assign(entry, { state: "failed", error: errorToObject(error).message, load_ms: performance.now() - start });
      this.emit({ event: "tier", tier: spec.name });
    }
  }

  async loadBow(spec, entry) {
    tierSettings(spec); // the model file is listed
    const file = spec.files.model;
    const got = await this.bundle.json(file);
    Object.assign(entry, { bytes: file.bytes, from_cache: got.fromCache, download_ms: got.ms });
    return new BowTier(spec.name, BowModel.fromJson(got.data, this.bundle.url(file.path)));
  }

  /** The transformer on the requested backend, else on WASM with the reason recorded. */
  async loadTransformer(spec, entry) {
    tierSettings(spec); // files, max_length and temperature, before any download
    const wanted = BACKENDS.includes(this.requested) ? this.requested : "wasm";
    if (wanted !== this.requested) this.fallbackReason = `unknown backend ${JSON.stringify(this.requested)}; using wasm`;
    const [tokenizer, config] = await Promise.all([this.bundle.json(spec.files.tokenizer), this.bundle.json(spec.files.config)]);
    let reason = null;
    const probe = await probeBackend(wanted, this.options.threads);
    this.requestedAdapter = probe.adapter ?? null;
    const hasWebglVariant = Object.values(spec.extra.variants ?? {}).some((v) => v?.backend === "webgl");
    if (probe.ok && wanted === "webgl" && !hasWebglVariant && !this.options.variant) {
      // Standard BERT graphs use ops WebGL lacks: do not download a model that cannot load.
      reason = "this bundle has no WebGL variant (standard transformer graphs use operators the WebGL backend lacks); add one with `python -m builder webgl`";
    } else if (probe.ok) {
      try {
        return await this.transformerOn(wanted, spec, entry, tokenizer, config, probe.adapter);
      } catch (error) {
        if (wanted === "wasm") throw error;
        reason = errorToObject(error).message;
      }
    } else {
      reason = probe.reason;
    }
    if (reason.startsWith(`${wanted}: `)) reason = reason.slice(wanted.length + 2);
    this.fallbackReason = `${wanted}: ${reason}; fell back to wasm`;
    this.emit({ event: "fallback", reason: this.fallbackReason });
    return await this.transformerOn("wasm", spec, entry, tokenizer, config, (await probeBackend("wasm", this.options.threads)).adapter);
  }

  async transformerOn(backend, spec, entry, tokenizer, config, adapter) {
    // Loaded here, not up front: the tokenizer and its Unicode tables are not on the BoW tier's path to the first answer.
    const { chooseVariant, createTransformerTier, variantBuckets } = await import("./transformer.js");
    const role = chooseVariant(spec, backend, this.options.variant);
    // Fixed-length graphs (WebGL): the shortest now, the longer ones when a text first needs them.
    const buckets = variantBuckets(spec, role, !this.options.variant);
    const file = spec.files[role];
    const ortStart = performance.now();
    const ort = await importOrt(backend, this.options.vendorUrl, this.options.threads);
    const ortMs = performance.now() - ortStart;
    const model = await this.bundle.file(file, (loaded, total) => this.emit({ event: "progress", tier: spec.name, loaded, total }));
    const fromCache = model.fromCache && tokenizer.fromCache && config.fromCache;
    Object.assign(entry, { bytes: file.bytes, from_cache: fromCache, download_ms: model.ms });
    const tier = await createTransformerTier({
      spec,
      bundleLabels: this.bundle.manifest.labels,
      role,
      model: model.bytes,
      tokenizerJson: tokenizer.data,
      config: config.data,
      ort,
      backend,
      buckets,
      loadModel: async (other) => (await this.bundle.file(spec.files[other])).bytes,
      info: { ort_import_ms: ortMs, threads: backend === "wasm" ? wasmThreads(this.options.threads) : null, adapter },
    });
    this.backend = backend;
    this.adapter = adapter;
    return tier;
  }

  /** @param {unknown} text */
  classify(text) {
    return this.router.classify(text);
  }

  /**
   * Time one loaded tier's probabilities (tokenizer, model, softmax; no routing) on named text
   * sets; with each text's probabilities, for comparing against runtime_py.
   * @param {{tier: string, sets: Record<string, string[]>, timing?: import("./timing.js").TimingOptions}} request
   *   `tier`: a tier name or kind ("bow", "transformer")
   */
  async bench({ tier, sets, timing = {} }) {
    const specs = this.specs ?? [];
    const spec = specs.find((s) => s.name === tier) ?? specs.find((s) => s.kind === tier);
    const loaded = spec ? this.loaded.get(spec.name) : undefined;
    if (!loaded) {
      const state = spec ? this.tierState.find((t) => t.name === spec.name) : null;
      throw new Error(`no loaded tier ${JSON.stringify(tier)} to time${state?.error ? ` (${state.error})` : ""}`);
    }
    const results = await timeSets((text) => loaded.probabilities(text), sets, timing);
    return { tier: spec.name, kind: spec.kind, labels: loaded.labels, describe: loaded.describe(), sets: results };
  }

  status() {
    const manifest = this.bundle?.manifest;
    const tiers = this.tierState.map((t) => {
      // the router's tier: a blended one describes its blend too
      const tier = this.router.tiers.find((r) => r.name === t.name) ?? this.loaded.get(t.name);
      return tier ? { ...t, ...tier.describe() } : { ...t };
    });
    const done = tiers.length > 0 && tiers.every((t) => t.state !== "loading");
    return {
      engine: "js",
      phase: this.fatal ? "failed" : !manifest ? "loading" : done ? "all" : this.loaded.size ? "partial" : "loading",
      error: this.fatal,
      requested_backend: this.requested,
      backend: this.backend,
      fallback_reason: this.fallbackReason,
      adapter: this.adapter,
      requested_adapter: this.requestedAdapter ?? null,
      crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
      ...(this.bundle ? this.bundle.facts() : NO_BUNDLE_FACTS),
      tiers,
      timings: this.timings,
      // as runtime_py's status()["problems"]: tiers that failed to load, blends that were not applied
      problems: [
        ...tiers.filter((t) => t.state === "failed").map((t) => ({ where: `tier ${t.name}`, error: t.error })),
        ...this.router.problems,
      ],
      ...this.router.settings(),
    };
  }
}
