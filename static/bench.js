// The benchmark page. One case = one engine/backend/variant timed in a fresh Web Worker:
//   ?case=<JSON>  run that case at page load, then set window.benchResult and body[data-bench=done]
//                 (what `python -m builder bench` does, one fresh browser context per case);
//   no ?case      a form to run the standard cases in turn on built-in texts.
// A case: {id, engine: "js" | "pyodide" | "transformers.js", backend, variant, threads, tier,
//          dtype (transformers.js), prefetch (IntentClient option, default true), sets: {name: [texts]},
//          timing (web/timing.js options)}.

import { IntentClient } from "./web/client.js";

// Two texts of each length (16 and 64 tokens with the MiniLM vocabulary, [CLS] and [SEP] included);
// `builder bench` cuts its own with the bundle's tokenizer.
const BUILTIN_SETS = {
  short: [
    "how much money did I spend on groceries last month compared to the month",
    "can you move two hundred dollars from my savings account into checking before friday",
  ],
  long: [
    "how much money did I spend on groceries last month compared to the month before can you move two hundred dollars from my savings account into checking before friday my card was declined at the gas station this morning even though I have plenty of funds please show me every transaction over fifty euros that I made while I was travelling in",
    "can you move two hundred dollars from my savings account into checking before friday my card was declined at the gas station this morning even though I have plenty of funds please show me every transaction over fifty euros that I made while I was travelling in spain what is the exchange rate I would get if I sent money to my",
  ],
};
const STANDARD_CASES = [
  { id: "bow-js", label: "JavaScript BoW", engine: "js", tier: "bow" },
  { id: "bow-pyodide", label: "Pyodide BoW (runtime_py)", engine: "pyodide", tier: "bow" },
  { id: "wasm-1t", label: "WASM, 1 thread, int8", engine: "js", backend: "wasm", threads: 1, tier: "transformer" },
  { id: "wasm", label: "WASM, threads, int8", engine: "js", backend: "wasm", tier: "transformer" },
  { id: "webgpu", label: "WebGPU, int8", engine: "js", backend: "webgpu", tier: "transformer" },
  { id: "webgl", label: "WebGL (WebGL variant)", engine: "js", backend: "webgl", tier: "transformer" },
  { id: "tjs-wasm", label: "transformers.js, WASM, threads, int8", engine: "transformers.js", backend: "wasm", dtype: "q8", tier: "transformer" },
];

/** Follows a client's status events: when each tier (by name and kind) first left "loading",
 * in page time, and promises that resolve when a predicate on the status first holds. */
function statusTracker() {
  /** @type {Record<string, number>} */
  const settledAt = {};
  const waiters = [];
  let last = null;
  return {
    settledAt,
    onStatus(status) {
      const now = performance.now();
      last = status;
      for (const t of status?.tiers ?? []) {
        if (t.state === "loading") continue;
        settledAt[t.name] ??= now;
        settledAt[t.kind] ??= now;
      }
      for (const w of waiters.splice(0)) {
        if (w.predicate(status)) w.resolve(now);
        else waiters.push(w);
      }
    },
    until(predicate) {
      if (last && predicate(last)) return Promise.resolve(performance.now());
      return new Promise((resolve) => waiters.push({ predicate, resolve }));
    },
  };
}

const findTier = (status, tier) => (status?.tiers ?? []).find((t) => t.name === tier) ?? (status?.tiers ?? []).find((t) => t.kind === tier);
const anyReady = (status) => (status?.tiers ?? []).some((t) => t.state === "ready") || status?.phase === "failed";

/** Our runtime (web/client.js) in its worker: first answer, tier load, then the worker's timing loop. */
async function runOurs(c, sets) {
  const tracker = statusTracker();
  const started = performance.now();
  const client = await IntentClient.create({
    bundleUrl: "./bundle/",
    engine: c.engine,
    backend: c.backend ?? "wasm",
    variant: c.variant ?? null,
    threads: c.threads ?? null,
    tiers: [c.tier], // what this case measures, and only what it downloads
    prefetch: c.prefetch ?? true,
    onStatus: (status) => tracker.onStatus(status),
  });
  try {
    await tracker.until(anyReady);
    const answer = await client.classify(sets[Object.keys(sets)[0]][0]);
    const firstAnswer = performance.now();
    const status = await client.ready();
    const entry = findTier(status, c.tier);
    if (entry?.state !== "ready") throw new Error(`tier ${c.tier} did not load: ${entry?.error ?? status.error?.message ?? "the bundle has no such tier"}`);
    const bench = await client.bench({ tier: c.tier, sets, timing: c.timing ?? {} });
    const engineStartedAt = status.timings?.started_at;
    return {
      started_ms: started,
      // when the worker's engine started, on this page's clock (the worker's own clock starts elsewhere)
      engine_started_ms: typeof engineStartedAt === "number" ? engineStartedAt - performance.timeOrigin : null,
      first_answer_ms: firstAnswer,
      first_answer_tier: answer.tier,
      tier_ready_ms: tracker.settledAt[c.tier] ?? null,
      status: await client.status(),
      ...bench,
    };
  } finally {
    client.terminate();
  }
}

/** transformers.js on the same bundle files, in its own worker (static/bench-tjs-worker.js). */
async function runTransformersJs(c, sets) {
  // The same request/reply protocol as our own worker, so IntentClient carries it.
  const client = new IntentClient(new Worker(new URL("./bench-tjs-worker.js", import.meta.url), { type: "module", name: "bench-transformers.js" }));
  const started = performance.now();
  try {
    const loaded = await client.call("load", {
      modelRoot: new URL("./", location.href).pathname, // a path: transformers.js checks "local" files by path only
      model: c.model ?? "bundle", // "reference": bench --tjs-reference's model folder (served at /reference/)
      device: c.backend ?? "wasm",
      dtype: c.dtype ?? "q8",
      threads: c.threads ?? null,
    });
    const tierReadyAt = performance.now();
    const bench = await client.call("bench", { sets, timing: c.timing ?? {} });
    return { started_ms: started, tier_ready_ms: tierReadyAt, first_answer_ms: null, status: loaded, ...bench };
  } finally {
    client.terminate();
  }
}

/** Run one case; never throws: failures come back as {error}. */
export async function runCase(c, sets = c.sets ?? BUILTIN_SETS) {
  const t0 = performance.now();
  try {
    const result = c.engine === "transformers.js" ? await runTransformersJs(c, sets) : await runOurs(c, sets);
    return { id: c.id, ok: true, crossOriginIsolated: Boolean(globalThis.crossOriginIsolated), wall_ms: performance.now() - t0, ...result };
  } catch (error) {
    return { id: c.id, ok: false, error: String(error?.message ?? error), wall_ms: performance.now() - t0 };
  }
}

// ------------------------------------------------------------------ the page

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ms = (v) => (typeof v === "number" && Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v.toFixed(0)) + " ms" : "-");

function renderRow(c, r) {
  const cells = r.ok
    ? [
        c.label ?? c.id,
        r.status?.backend ?? r.status?.device ?? c.engine,
        ms(r.first_answer_ms),
        ms(r.tier_ready_ms),
        ...Object.values(r.sets).map((s) => `${ms(s.median_ms)} / ${ms(s.p95_ms)}`),
        [r.status?.fallback_reason, r.status?.adapter?.software ? `software adapter (${r.status.adapter.name})` : null].filter(Boolean).join("; "),
      ]
    : [c.label ?? c.id, "-", "-", "-", "-", "-", r.error];
  const row = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
  }
  $("results").querySelector("tbody")?.append(row);
}

async function runForm(event) {
  event.preventDefault();
  const chosen = STANDARD_CASES.filter((c) => /** @type {HTMLInputElement} */ ($(`case-${c.id}`)).checked);
  $("run").setAttribute("disabled", "");
  document.body.dataset.bench = "running";
  for (const c of chosen) {
    $("message").textContent = `running ${c.label}…`;
    renderRow(c, await runCase(c));
  }
  $("message").textContent = `done: ${chosen.length} case(s). Times are from inside each worker; "first answer" and "tier ready" count from this page's navigation.`;
  $("run").removeAttribute("disabled");
  document.body.dataset.bench = "done";
}

function setUp() {
  const list = $("case-list");
  for (const c of STANDARD_CASES) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    Object.assign(box, { type: "checkbox", id: `case-${c.id}`, checked: true });
    label.append(box, ` ${c.label}`);
    list.append(label);
  }
  $("cases").addEventListener("submit", runForm);
}

window.intentBench = { runCase, STANDARD_CASES, BUILTIN_SETS };
const requested = new URLSearchParams(location.search).get("case");
if (requested) {
  document.body.dataset.bench = "running";
  let parsed = null;
  try {
    parsed = JSON.parse(requested);
  } catch (error) {
    window.benchResult = { ok: false, error: `?case is not JSON (${error.message})` };
  }
  if (parsed) window.benchResult = await runCase(parsed);
  document.body.dataset.bench = "done";
} else {
  setUp();
}
