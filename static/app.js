// The demo page: a text box wired to an IntentClient (web/client.js), which runs the bundle in a
// Web Worker. ?engine=js|pyodide&backend=wasm|webgpu|webgl picks the runtime; the selects change it.

import { IntentClient } from "./web/client.js";

const EXAMPLES = [
  "how many shares of AAPL do I own",
  "how is TSLA doing this year",
  "what's my cash balance",
  "quote for $PLTR",
  "am i making money",
  "what is a Roth IRA",
  "what's the weather in paris",
];
const DEBOUNCE_MS = 120;

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const params = new URLSearchParams(location.search);
const state = {
  engine: params.get("engine") === "pyodide" ? "pyodide" : "js",
  backend: ["wasm", "webgpu", "webgl"].includes(params.get("backend") ?? "") ? params.get("backend") : "wasm",
  /** @type {IntentClient | null} */
  client: null,
  labels: /** @type {string[]} */ ([]),
  seq: 0,
  shown: 0,
  timer: 0,
};
/** The page's objects, for the console and the browser tests. */
window.intentDemo = state;

const fmtMs = (ms) => (ms === null || ms === undefined ? "-" : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`);
const fmtBytes = (n) => (n === null || n === undefined ? "-" : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`);
const pct = (p) => (p === null || p === undefined ? "-" : `${(p * 100).toFixed(1)}%`);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.setAttribute("style", v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function setMessage(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.dataset.kind = kind;
}

function renderBars(ranking) {
  const bars = $("bars");
  const byIntent = new Map(ranking.map((r) => [r.intent, r.confidence]));
  const order = ranking.length ? ranking.map((r) => r.intent) : state.labels;
  bars.replaceChildren(
    ...order.map((intent) => {
      const p = byIntent.get(intent) ?? 0;
      return el(
        "div",
        { class: "bar", "data-intent": intent },
        el("span", { class: "bar-label" }, intent),
        el("span", { class: "bar-track" }, el("span", { class: "bar-fill", style: `width:${(p * 100).toFixed(2)}%` })),
        el("span", { class: "bar-value" }, pct(byIntent.has(intent) ? p : null)),
      );
    }),
  );
}

const REASONS = {
  confident: "confident",
  forced: "forced (below threshold)",
  out_of_scope: "out of scope",
  below_threshold: "no tier was sure enough",
  ambiguous: "the top two intents were too close",
  unknown_label: "the model answered an intent the application does not know",
  empty_input: "nothing to classify",
  no_tier: "no tier is loaded yet",
};

function renderResult(text, result, roundTripMs) {
  const intent = $("intent");
  intent.textContent = result.intent;
  intent.dataset.lastText = text;
  intent.dataset.fallback = String(result.tier === null);
  $("confidence").textContent = pct(result.confidence);
  $("tier").textContent = result.tier ? `${result.tier}${tierBackend(result.tier)}` : "none";
  $("latency").textContent = fmtMs(result.latency_ms);
  $("latency").title = `in the worker: ${fmtMs(result.latency_ms)}; round trip from the page: ${fmtMs(roundTripMs)}`;
  $("why").textContent = `${REASONS[result.reason] ?? result.reason}` + (result.tier === null && result.reason !== "empty_input" ? ` → "${result.intent}"` : "");
  const slotItems = Object.entries(result.slots).map(([slot, values]) => el("span", { class: "slot" }, `${slot}: ${values.join(", ")}`));
  for (const missing of result.missing_slots) slotItems.push(el("span", { class: "slot missing" }, `${missing}: missing`));
  $("slots").replaceChildren(...slotItems);
  renderBars(result.ranking);
  $("tiers").replaceChildren(
    ...result.tiers.map((t) =>
      el(
        "div",
        { class: `tier-report ${t.accepted ? "accepted" : ""}` },
        `${t.tier}: ${t.label ?? "-"} ${pct(t.confidence)} (threshold ${pct(t.threshold)}, ${t.error ?? t.reason}) in ${fmtMs(t.latency_ms)}`,
      ),
    ),
  );
  if (result.reason === "empty_input") setMessage("Type something to classify: the text is empty or only spaces.", "warn");
  else setMessage("");
}

function tierBackend(tierName) {
  const status = state.client?.lastStatus;
  const tier = status?.tiers?.find((t) => t.name === tierName);
  if (!tier) return "";
  if (status.engine === "pyodide") return " · Pyodide";
  return tier.kind === "transformer" && tier.backend ? ` · ${tier.backend}` : " · JS";
}

async function classifyNow() {
  const text = /** @type {HTMLInputElement} */ ($("text")).value;
  if (!state.client) return;
  const seq = ++state.seq;
  const start = performance.now();
  try {
    const result = await state.client.classify(text);
    if (seq < state.shown) return; // an older request answered late
    state.shown = seq;
    renderResult(text, result, performance.now() - start);
  } catch (error) {
    if (seq < state.shown) return;
    state.shown = seq;
    $("intent").dataset.lastText = text;
    setMessage(error.name === "InputError" ? `Cannot classify this text: ${error.message}.` : `Error: ${error.message}`, "error");
  }
}

function scheduleClassify() {
  clearTimeout(state.timer);
  state.timer = setTimeout(classifyNow, DEBOUNCE_MS);
}

function renderStatus(status) {
  if (!status) return;
  document.body.dataset.ready = status.phase === "all" ? "all" : status.phase === "partial" ? "partial" : status.phase;
  $("phase").textContent = { loading: "loading…", partial: "BoW ready, transformer loading…", all: "ready", failed: "failed" }[status.phase] ?? status.phase;
  if (status.labels?.length && !state.labels.length) {
    state.labels = status.labels;
    renderBars([]);
  }
  const notices = [];
  if (status.error) notices.push(["error", `The bundle could not be loaded: ${status.error.message}`]);
  if (status.fallback_reason) notices.push(["warn", `Backend: ${status.fallback_reason}.`]);
  const gpu = status.backend && status.backend !== "wasm" ? status.adapter : status.requested_backend !== "wasm" ? status.requested_adapter : null;
  if (gpu?.software) {
    const which = status.backend && status.backend !== "wasm" ? status.backend : status.requested_backend;
    notices.push(["warn", `${which} here runs on a software adapter (${gpu.name}), not a GPU: expect it to be slower than WASM on this machine; on a real GPU it is not.`]);
  }
  if (!status.crossOriginIsolated && status.engine === "js") {
    notices.push(["info", "This page is not cross-origin isolated (the host sets no COOP/COEP headers): WASM runs on one thread."]);
  }
  if (status.verified && status.verified !== "sha256") notices.push(["warn", `Model files verified by ${status.verified}.`]);
  for (const t of status.tiers ?? []) if (t.state === "failed") notices.push(["error", `Tier ${t.name} is unavailable: ${t.error}`]);
  for (const p of status.problems ?? []) if (p.where.endsWith("(blend)")) notices.push(["warn", `${p.where}: not blended (${p.error}).`]);
  $("notices").replaceChildren(...notices.map(([kind, text]) => el("p", { class: `notice ${kind}` }, text)));

  const rows = (status.tiers ?? []).map((t) => {
    const detail = [];
    if (t.kind === "transformer" && t.backend) detail.push(`${t.backend}${t.threads ? `, ${t.threads} thread(s)` : ""}`, t.variant ?? "", t.precision ?? "", t.session_ms ? `session ${fmtMs(t.session_ms)}` : "");
    // Fixed-length graphs (WebGL): the pad lengths, and those still to be opened when a text first needs them.
    if (t.kind === "transformer" && t.buckets) {
      const later = t.buckets.filter((b) => !b.loaded).map((b) => b.pad_length);
      detail.push(`pad to ${t.buckets.map((b) => b.pad_length).join("/")} tokens${later.length ? ` (${later.join(", ")} loaded when first needed)` : ""}`);
    }
    if (t.kind === "bow" && t.vocab_size) detail.push(`${t.vocab_size.toLocaleString("en-US")} features`);
    if (t.temperature) detail.push(`T ${t.temperature.toFixed(3)}`);
    if (t.blend) detail.push(t.blend.active ? `blended with ${t.blend.tier} (weight ${t.blend.weight})` : `not blended (${t.blend.why})`);
    if (t.state === "skipped" || t.state === "failed") detail.push(t.error ?? "");
    const from = t.from_cache === null || t.from_cache === undefined ? "-" : t.from_cache ? "cache" : "network";
    return el(
      "tr",
      { "data-tier": t.name, "data-state": t.state },
      el("td", {}, `${t.name} (${t.kind})`),
      el("td", {}, t.state),
      el("td", {}, fmtBytes(t.bytes ?? t.listed_bytes)),
      el("td", {}, fmtMs(t.load_ms)),
      el("td", {}, from),
      el("td", {}, detail.filter(Boolean).join(" · ")),
    );
  });
  $("status-tiers").querySelector("tbody").replaceChildren(...rows);
  const facts = [
    ["engine", status.engine === "pyodide" ? `Pyodide (Python ${status.python ?? "…"}, runtime_py ${status.runtime_py ?? "…"})` : "JavaScript"],
    ["backend", status.engine === "pyodide" ? "-" : `${status.backend ?? (status.phase === "all" ? "none (no transformer tier)" : "…")}${status.requested_backend && status.backend && status.requested_backend !== status.backend ? ` (asked for ${status.requested_backend})` : ""}`],
    ["adapter", status.adapter ? `${status.adapter.name}${status.adapter.software ? " (software)" : ""}` : "-"],
    ["cross-origin isolated", status.crossOriginIsolated ? "yes (WASM threads available)" : "no (one WASM thread)"],
    ["bundle", status.name ? `${status.name}, ${status.labels.length} intents` : "…"],
    ["first tier ready", fmtMs(status.timings?.first_tier_ms)],
    ["all tiers ready", fmtMs(status.timings?.all_ms)],
    ["model cache", status.cache === null ? "-" : status.cache ? "Cache API" : "unavailable (downloads every visit)"],
  ];
  $("status-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

async function start() {
  state.client?.terminate();
  state.client = null;
  state.labels = [];
  document.body.dataset.ready = "none";
  /** @type {HTMLSelectElement} */ ($("engine")).value = state.engine;
  /** @type {HTMLSelectElement} */ ($("backend")).value = state.backend;
  /** @type {HTMLSelectElement} */ ($("backend")).disabled = state.engine === "pyodide";
  setMessage("");
  try {
    const client = await IntentClient.create({
      bundleUrl: "./bundle/",
      engine: state.engine,
      backend: state.backend,
      onStatus: (status, event) => {
        if (state.client !== client) return;
        renderStatus(status);
        if (event.event === "tier" && /** @type {HTMLInputElement} */ ($("text")).value) scheduleClassify();
      },
    });
    state.client = client;
    renderStatus(client.lastStatus);
    const status = await client.ready();
    if (state.client !== client) return;
    renderStatus(status);
    if (/** @type {HTMLInputElement} */ ($("text")).value) scheduleClassify();
  } catch (error) {
    document.body.dataset.ready = "failed";
    setMessage(`The classifier could not start: ${error.message}`, "error");
  }
}

function switchTo(engine, backend) {
  state.engine = engine;
  state.backend = backend;
  const url = new URL(location.href);
  url.searchParams.set("engine", engine);
  url.searchParams.set("backend", backend);
  history.replaceState(null, "", url);
  start();
}

$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  clearTimeout(state.timer);
  classifyNow();
});
$("text").addEventListener("input", scheduleClassify);
$("engine").addEventListener("change", (e) => switchTo(/** @type {HTMLSelectElement} */ (e.target).value, state.backend));
$("backend").addEventListener("change", (e) => switchTo(state.engine, /** @type {HTMLSelectElement} */ (e.target).value));
$("examples").replaceChildren(
  ...EXAMPLES.map((text) => {
    const chip = el("button", { type: "button", class: "chip" }, text);
    chip.addEventListener("click", () => {
      /** @type {HTMLInputElement} */ ($("text")).value = text;
      classifyNow();
    });
    return chip;
  }),
);
start();
