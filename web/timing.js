// Timing loops for benchmarks (the worker's "bench" op and static/bench.html): a warm-up long
// enough for the WebAssembly tier-up, then timed calls within a budget, reported as a summary.

/**
 * @typedef {{warmupMs?: number, warmupCalls?: number, warmupMaxMs?: number, budgetMs?: number, minCalls?: number, maxCalls?: number}} TimingOptions
 * @typedef {{calls: number, median_ms: number, p95_ms: number, mean_ms: number, min_ms: number, max_ms: number}} TimingSummary
 */

/** Defaults: a warm-up of at least 2 s and, unless that takes over 10 s, 30 calls (V8 moves hot
 * WebAssembly from Liftoff to TurboFan in the background, so early calls run slower code), then
 * timed calls for 5 s: at least 5, at most 200. */
export const DEFAULT_TIMING = Object.freeze({ warmupMs: 2000, warmupCalls: 30, warmupMaxMs: 10000, budgetMs: 5000, minCalls: 5, maxCalls: 200 });

/** The value at quantile `q` (nearest rank) of ascending `sorted`. */
export function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Median, p95 (nearest rank), mean, min and max of `times` (ms). @param {number[]} times @returns {TimingSummary} */
export function summarize(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? NaN : n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return {
    calls: n,
    median_ms: median,
    p95_ms: quantile(sorted, 0.95),
    mean_ms: n ? sorted.reduce((a, b) => a + b, 0) / n : NaN,
    min_ms: n ? sorted[0] : NaN,
    max_ms: n ? sorted[n - 1] : NaN,
  };
}

function checkOptions(o) {
  for (const [key, value] of Object.entries(o)) {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new TypeError(`timing option ${key}: expected a number >= 0, got ${JSON.stringify(value)}`);
  }
  if (o.minCalls < 1 || o.maxCalls < o.minCalls) throw new TypeError(`timing options: need 1 <= minCalls <= maxCalls, got ${o.minCalls} and ${o.maxCalls}`);
}

/**
 * Time `fn` over `texts` in turn: the first call alone (`first_ms`), a warm-up of at least
 * `warmupMs` and `warmupCalls` calls (fewer if they take over `warmupMaxMs`), then timed calls
 * until `budgetMs` has passed (at least `minCalls`, at most `maxCalls`). Returns the summary and
 * the output of each text from the timed phase.
 * @template T
 * @param {(text: string) => T | Promise<T>} fn
 * @param {string[]} texts
 * @param {TimingOptions} [options]
 * @param {() => number} [clock]
 * @returns {Promise<TimingSummary & {first_ms: number, warmup_calls: number, outputs: T[]}>}
 */
export async function timeCalls(fn, texts, options = {}, clock = () => performance.now()) {
  if (!Array.isArray(texts) || !texts.length || !texts.every((t) => typeof t === "string")) throw new TypeError("timeCalls: expected a non-empty list of texts");
  const o = { ...DEFAULT_TIMING, ...options };
  checkOptions(o);
  const outputs = new Array(texts.length);
  let i = 0;
  const call = async () => {
    const k = i++ % texts.length;
    const start = clock();
    outputs[k] = await fn(texts[k]);
    return clock() - start;
  };
  const first = await call();
  const warmStart = clock();
  let warmup = 0;
  for (let elapsed = 0; elapsed < o.warmupMs || (warmup < o.warmupCalls && elapsed < o.warmupMaxMs); elapsed = clock() - warmStart) {
    await call();
    warmup++;
  }
  i = 0; // every text once more in order, so each output is from the timed phase
  const times = [];
  const start = clock();
  while (times.length < o.minCalls || (times.length < o.maxCalls && clock() - start < o.budgetMs)) times.push(await call());
  while (i < texts.length) await call(); // outputs for texts the timed phase did not reach
  return { ...summarize(times), first_ms: first, warmup_calls: warmup, outputs };
}

/**
 * {@link timeCalls} on each named set of texts in turn ({short: [...], long: [...]}).
 * @template T
 * @param {(text: string) => T | Promise<T>} fn
 * @param {Record<string, string[]>} sets
 * @param {TimingOptions} [options]
 */
export async function timeSets(fn, sets, options = {}) {
  if (sets === null || typeof sets !== "object" || !Object.keys(sets).length) throw new TypeError("timeSets: expected named lists of texts");
  /** @type {Record<string, Awaited<ReturnType<typeof timeCalls<T>>>>} */
  const out = {};
  for (const [name, texts] of Object.entries(sets)) out[name] = await timeCalls(fn, texts, options);
  return out;
}
