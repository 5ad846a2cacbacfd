// The Pyodide engine: runtime_py itself, inside Pyodide (CPython compiled to WebAssembly), on the
// bundle's BoW tiers. Pyodide ships no onnxruntime, so transformer tiers are reported, not run.
// Results are runtime_py's RouteResult.to_dict(), bit for bit what CPython answers. runtime_py is
// installed as its wheel (built with python -m build) by micropip, both from our own origin.

import { NO_BUNDLE_FACTS, RemoteBundle, selectTiers } from "./bundle.js";
import { errorFromObject, errorToObject } from "./errors.js";
import { timeSets } from "./timing.js";

const WHEELS = "/tmp/wheels";
const BUNDLE_DIR = "/home/pyodide/bundle";

const BOOT = `
import json, sys
from importlib.metadata import distribution
from runtime_py import Router, __version__ as runtime_version
from runtime_py.errors import IntentKitError

def make_router(tiers, options):
    global router
    router = Router.from_bundle(${JSON.stringify(BUNDLE_DIR)}, tiers=list(tiers), environ={}, **json.loads(options))
    installer = (distribution("edge-intent-runtime").read_text("INSTALLER") or "").strip()
    return json.dumps({"problems": router.problems, "version": runtime_version, "installer": installer, "python": sys.version.split()[0]})

def _tier(name):
    return next(t for t in router.tiers if t.name == name)

def tier_labels(name):
    return json.dumps(_tier(name).labels)

def tier_probabilities(name):
    return _tier(name).probabilities

def classify_json(text):
    try:
        return json.dumps(router.classify(text).to_dict())
    except IntentKitError as exc:
        return json.dumps({"__error__": {"name": type(exc).__name__, "message": str(exc)}})
`;

/** RouterOptions (camelCase) as runtime_py Router keyword arguments. */
function pythonOptions(options = {}) {
  const names = {
    threshold: "threshold", handoffThreshold: "handoff_threshold", tierThresholds: "tier_thresholds", margin: "margin",
    force: "force", maxChars: "max_chars", knownIntents: "known_intents", oosLabels: "oos_labels",
  };
  const out = {};
  for (const [key, value] of Object.entries(options)) if (key in names && value !== undefined && value !== null) out[names[key]] = value;
  return out;
}

/**
 * Install runtime_py's wheel (`bytes`, named `name`) with micropip, loaded from Pyodide's own folder
 * (make puts micropip's wheel there: Pyodide from npm ships no packages).
 * @param {any} pyodide @param {string} pyodideUrl @param {string} name @param {Uint8Array} bytes
 */
async function installRuntime(pyodide, pyodideUrl, name, bytes) {
  const problems = [];
  // PyPI's micropip wheel holds what Pyodide's does, but in other bytes than its lock file's sha256.
  await pyodide.loadPackage("micropip", { checkIntegrity: false, messageCallback: () => {}, errorCallback: (m) => problems.push(m) });
  if (!pyodide.loadedPackages.micropip) {
    throw new Error(`micropip did not load from ${pyodideUrl} (${problems.join("; ") || "no reason given"}); make downloads it (python -m builder.serve.wheels)`);
  }
  pyodide.FS.mkdirTree(WHEELS);
  pyodide.FS.writeFile(`${WHEELS}/${name}`, bytes);
  const micropip = pyodide.pyimport("micropip");
  try {
    await micropip.install(`emfs:${WHEELS}/${name}`);
  } finally {
    micropip.destroy();
  }
}

export class PyodideEngine {
  /** @param {import("./engine.js").EngineOptions & {pyodideUrl: string, runtimeWheelUrl: string}} options */
  constructor(options) {
    this.options = options;
    this.tierState = [];
    this.started = performance.now();
    this.timings = { started_at: performance.timeOrigin + this.started };
    this.info = null;
    this.fatal = null;
    this.classifyJson = null;
    this.bundle = null;
  }

  emit(event) {
    this.options.onEvent?.({ ...event, status: this.status() });
  }

  async load() {
    try {
      await this._load();
    } catch (error) {
      this.fatal = errorToObject(error);
      for (const t of this.tierState) if (t.state === "loading") Object.assign(t, { state: "failed", error: this.fatal.message });
      this.emit({ event: "failed" });
      throw error;
    }
    this.emit({ event: "ready" });
    return this.status();
  }

  async _load() {
    const bundleP = RemoteBundle.open(this.options.bundleUrl, this.options.prefetch ?? null);
    const wheelUrl = this.options.runtimeWheelUrl;
    const wheelP = fetch(wheelUrl).then((r) => {
      if (!r.ok) throw new Error(`${wheelUrl}: HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    const { loadPyodide } = await import(new URL("pyodide.mjs", this.options.pyodideUrl).href);
    const pyodideP = loadPyodide({ indexURL: this.options.pyodideUrl, stdout: () => {}, stderr: () => {} });
    this.bundle = await bundleP;
    const manifest = this.bundle.manifest;
    const specs = selectTiers(manifest, this.options.tiers);
    this.tierState = specs.map((spec) => ({
      name: spec.name,
      kind: spec.kind,
      state: spec.kind === "bow" ? "loading" : "skipped",
      available: false,
      error: spec.kind === "bow" ? null : "not run inside Pyodide: it ships no onnxruntime (the JavaScript engine runs this tier)",
      bytes: spec.kind === "bow" ? spec.files.model?.bytes ?? null : null,
      from_cache: null,
    }));
    this.emit({ event: "manifest" });
    const bowSpecs = specs.filter((s) => s.kind === "bow");
    const files = await Promise.all(bowSpecs.map((s) => this.bundle.file(s.files.model)));
    const [pyodide, wheel] = await Promise.all([pyodideP, wheelP]);
    this.timings.pyodide_ms = performance.now() - this.started;
    await installRuntime(pyodide, this.options.pyodideUrl, new URL(wheelUrl).pathname.split("/").pop(), new Uint8Array(wheel));
    this.timings.install_ms = performance.now() - this.started - this.timings.pyodide_ms;
    pyodide.FS.mkdirTree(BUNDLE_DIR);
    pyodide.FS.writeFile(`${BUNDLE_DIR}/manifest.json`, JSON.stringify(manifest.raw));
    bowSpecs.forEach((spec, i) => {
      const path = `${BUNDLE_DIR}/${spec.files.model.path}`;
      pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
      pyodide.FS.writeFile(path, files[i].bytes);
    });
    pyodide.runPython(BOOT);
    const makeRouter = pyodide.globals.get("make_router");
    const names = pyodide.toPy(bowSpecs.map((s) => s.name));
    try {
      this.info = JSON.parse(makeRouter(names, JSON.stringify(pythonOptions(this.options.router))));
    } finally {
      names.destroy();
      makeRouter.destroy();
    }
    this.classifyJson = pyodide.globals.get("classify_json");
    this.pyodide = pyodide;
    bowSpecs.forEach((spec, i) => {
      const problem = this.info.problems.find((p) => p.where === `tier ${spec.name}`);
      Object.assign(this.tierState.find((t) => t.name === spec.name), {
        state: problem ? "failed" : "ready",
        available: !problem,
        error: problem ? problem.error : null,
        from_cache: files[i].fromCache,
      });
    });
    await this.bundle.stored();
    this.timings.all_ms = this.timings.first_tier_ms = performance.now() - this.started;
  }

  /** @param {unknown} text */
  async classify(text) {
    if (!this.classifyJson) throw new Error("the Pyodide engine is still loading");
    if (typeof text !== "string") {
      const kind = text === null ? "null" : Array.isArray(text) ? "array" : typeof text;
      throw errorFromObject({ name: "InputError", message: `expected text as a string, got ${kind}` });
    }
    const out = JSON.parse(this.classifyJson(text));
    if (out.__error__) throw errorFromObject(out.__error__);
    return out;
  }

  /**
   * Time a BoW tier's probabilities in runtime_py (as JsEngine.bench), the call from JavaScript
   * into Python included and the list read as an application reads it (toJs: a JS array of the
   * same float64 values), not through JSON, whose float formatting costs about as much as the
   * prediction (in native CPython).
   * @param {{tier: string, sets: Record<string, string[]>, timing?: import("./timing.js").TimingOptions}} request
   */
  async bench({ tier, sets, timing = {} }) {
    const entry = this.tierState.find((t) => t.name === tier) ?? this.tierState.find((t) => t.kind === tier);
    if (!entry || !entry.available) throw new Error(`no loaded tier ${JSON.stringify(tier)} to time in Pyodide${entry?.error ? ` (${entry.error})` : ""}`);
    const [makeFn, labelsOf] = ["tier_probabilities", "tier_labels"].map((name) => this.pyodide.globals.get(name));
    const probabilities = makeFn(entry.name);
    try {
      const call = (text) => {
        const list = probabilities(text);
        try {
          return list.toJs();
        } finally {
          list.destroy();
        }
      };
      const results = await timeSets(call, sets, timing);
      return { tier: entry.name, kind: entry.kind, labels: JSON.parse(labelsOf(entry.name)), describe: { python: this.info?.python ?? null }, sets: results };
    } finally {
      for (const proxy of [probabilities, makeFn, labelsOf]) proxy.destroy();
    }
  }

  status() {
    const done = this.tierState.length > 0 && this.tierState.every((t) => t.state !== "loading");
    return {
      engine: "pyodide",
      phase: this.fatal ? "failed" : done && this.classifyJson ? "all" : "loading",
      error: this.fatal,
      requested_backend: null,
      backend: null,
      fallback_reason: null,
      adapter: null,
      python: this.info?.python ?? null,
      runtime_py: this.info?.version ?? null,
      runtime_installer: this.info?.installer ?? null,
      crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
      ...(this.bundle ? this.bundle.facts() : NO_BUNDLE_FACTS),
      tiers: this.tierState.map((t) => ({ ...t })),
      timings: this.timings,
    };
  }
}
