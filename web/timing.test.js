// The benchmark timing loop (web/timing.js) and the tier selection a client can ask for
// (selectTiers in web/bundle.js), on fake clocks and plain manifests.

import { test } from "node:test";
import assert from "node:assert/strict";

import { selectTiers } from "./bundle.js";
import { BundleError } from "./errors.js";
import { defaultThreads, wasmThreads } from "./backends.js";
import { quantile, summarize, timeCalls, timeSets } from "./timing.js";

/** A clock that moves `step` ms each time it is read. */
function fakeClock(step = 1) {
  let now = 0;
  return () => (now += step);
}

test("summarize: median, nearest-rank p95, mean, min, max", () => {
  const s = summarize(Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual(s, { calls: 20, median_ms: 10.5, p95_ms: 19, mean_ms: 10.5, min_ms: 1, max_ms: 20 });
  assert.equal(summarize([3, 1, 2]).median_ms, 2);
  assert.ok(Number.isNaN(summarize([]).median_ms));
  assert.equal(quantile([1, 2, 3, 4], 1), 4);
});

test("timeCalls: first call, warm-up by calls, timed calls, outputs from the timed phase", async () => {
  const seen = [];
  const out = await timeCalls(
    (text) => {
      seen.push(text);
      return `${text}:${seen.length}`;
    },
    ["a", "b", "c"],
    { warmupMs: 0, warmupCalls: 4, warmupMaxMs: 1000, budgetMs: 0, minCalls: 2, maxCalls: 10 },
    fakeClock(),
  );
  assert.equal(out.warmup_calls, 4);
  assert.equal(out.calls, 2);
  assert.equal(out.first_ms, 1);
  // 1 first + 4 warm-up + 2 timed (a, b) + 1 more so that c also has a timed-phase output
  assert.deepEqual(seen, ["a", "b", "c", "a", "b", "a", "b", "c"]);
  assert.deepEqual(out.outputs, ["a:6", "b:7", "c:8"]);
});

test("timeCalls: the warm-up stops at warmupMaxMs when calls are slow, and timing at maxCalls", async () => {
  const out = await timeCalls((t) => t, ["x"], { warmupMs: 5, warmupCalls: 1000, warmupMaxMs: 50, budgetMs: 1e9, minCalls: 1, maxCalls: 7 }, fakeClock(5));
  assert.ok(out.warmup_calls < 1000 && out.warmup_calls > 0);
  assert.equal(out.calls, 7);
});

test("timeCalls: bad input is a TypeError naming the option", async () => {
  await assert.rejects(timeCalls((t) => t, []), /non-empty list/);
  await assert.rejects(timeCalls((t) => t, ["x"], { budgetMs: -1 }), /budgetMs/);
  await assert.rejects(timeCalls((t) => t, ["x"], { minCalls: 5, maxCalls: 2 }), /minCalls <= maxCalls/);
});

test("timeSets: one summary per named set", async () => {
  const out = await timeSets((t) => t.length, { short: ["ab"], long: ["abcd"] }, { warmupMs: 0, warmupCalls: 0, budgetMs: 0, minCalls: 1, maxCalls: 1 });
  assert.deepEqual(Object.keys(out), ["short", "long"]);
  assert.deepEqual(out.long.outputs, [4]);
});

const MANIFEST = { tiers: [{ name: "bow", kind: "bow" }, { name: "big", kind: "transformer" }] };

test("selectTiers: all by default, else by name or kind, unknown names refused", () => {
  assert.equal(selectTiers(MANIFEST, null), MANIFEST.tiers);
  assert.deepEqual(selectTiers(MANIFEST, ["bow"]).map((t) => t.name), ["bow"]);
  assert.deepEqual(selectTiers(MANIFEST, ["transformer"]).map((t) => t.name), ["big"]);
  assert.throws(() => selectTiers(MANIFEST, ["nope"]), (e) => e instanceof BundleError && /no tier "nope".*bow \(bow\), big \(transformer\)/.test(e.message));
  assert.throws(() => selectTiers(MANIFEST, []), /non-empty list/);
  assert.throws(() => selectTiers(MANIFEST, "bow"), /non-empty list/);
});

test("wasmThreads: a requested count applies only when isolated; bad counts are refused", () => {
  const before = globalThis.crossOriginIsolated;
  try {
    globalThis.crossOriginIsolated = false;
    assert.equal(wasmThreads(3), 1);
    globalThis.crossOriginIsolated = true;
    assert.equal(wasmThreads(3), 3);
    assert.throws(() => wasmThreads(0), /whole number >= 1/);
    assert.throws(() => wasmThreads(1.5), /whole number >= 1/);
  } finally {
    globalThis.crossOriginIsolated = before;
  }
});

test("defaultThreads: one per two cores, at least 1, at most 4", () => {
  assert.deepEqual([1, 2, 3, 4, 6, 8, 16, 64].map(defaultThreads), [1, 1, 1, 2, 3, 4, 4, 4]);
});
