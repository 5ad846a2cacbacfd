// node --test web/ : the JavaScript runtime answers what runtime_py answers.
//
// tests/make_runtime_fixtures.py (`make fixtures`) writes small bundles and, for every
// (bundle, router settings, text), runtime_py's RouteResult.to_dict() or the error it raised, plus
// each tier's logits. Here the same bundles are read from disk (and once over HTTP) and routed by
// web/router.js with the same settings:
//
// * BoW tiers run in JavaScript; they compute in float64 with the sums in Python's order, so logits,
//   confidences, margins and rankings must agree to 1e-9 and rankings in exactly the same order.
// * The cascade of `bundle` (BoW, then a tiny transformer) runs twice: once with the transformer
//   replaying runtime_py's logits (routing logic, 1e-9), and once with the shipped int8 ONNX
//   variant on onnxruntime-web's WASM build (logits and confidences to 1e-4: its integer sums are
//   exact in both runtimes), which is skipped with the reason when onnxruntime-web cannot run in
//   this Node. The fp32 variant's logits are compared too.
// * Where runtime_py raised, the router must throw the same error class.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";

import { BOW_FORMAT_VERSION, BowModel, BowTier, PIECES_FORMAT_VERSION, READABLE_VERSIONS, TOKEN_CACHE_SIZE, unpackFloats } from "./bow.js";
import { parseManifest, RemoteBundle } from "./bundle.js";
import { softmax } from "./calibration.js";
import { JsEngine } from "./engine.js";
import { BundleError, InputError, IntentKitError } from "./errors.js";
import { FeatureConfig, Vectorizer, wordPieces } from "./features.js";
import { Router } from "./router.js";
import { prepareText } from "./text.js";
import { createTransformerTier, labelsFromConfig } from "./transformer.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const FIXTURES = join(ROOT, "tests", "fixtures", "generated", "runtime");
const FIXTURE_MANIFEST = join(FIXTURES, "manifest.json");
const HINT =
  `runtime parity fixtures are missing (${FIXTURE_MANIFEST}): run \`make fixtures\` ` +
  "(or `.venv/bin/python -m tests.make_runtime_fixtures --out tests/fixtures/generated/runtime`)";

/** Tolerance of numbers computed in float64 by both runtimes (BoW, replayed logits). */
const EXACT_TOL = 1e-9;
/** Tolerance of what onnxruntime (Python) and onnxruntime-web compute in float32. */
const ORT_TOL = 1e-4;
/** The onnxruntime-web build the worker loads for the wasm backend (web/backends.js). */
const ORT_WASM_BUILD = new URL("../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs", import.meta.url);

/** runtime_py Router keyword -> web/router.js option. An unknown one fails: a new setting needs mapping. */
const OPTION_NAMES = {
  threshold: "threshold",
  handoff_threshold: "handoffThreshold",
  tier_thresholds: "tierThresholds",
  margin: "margin",
  force: "force",
  max_chars: "maxChars",
  known_intents: "knownIntents",
  oos_labels: "oosLabels",
};

const RESULT_KEYS = ["confidence", "escalation", "intent", "missing_slots", "ranking", "reason", "slots", "tier", "tiers"];

// ---------------------------------------------------------------------------------------------
// Fixture loading

function readJsonl(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line));
}

/** A bundle file's bytes, checked against its manifest entry as RemoteBundle and runtime_py check them. */
function readVerified(dir, entry) {
  const bytes = readFileSync(join(dir, entry.path));
  assert.equal(bytes.byteLength, entry.bytes, `${entry.path}: size differs from the manifest`);
  assert.equal(createHash("sha256").update(bytes).digest("hex"), entry.sha256, `${entry.path}: sha256 differs from the manifest`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const decodeJson = (bytes) => JSON.parse(new TextDecoder("utf-8").decode(bytes));

/** A bundle folder of the fixtures: its parsed manifest and its BoW tiers (built from disk). */
function loadBundle(name) {
  const dir = join(FIXTURES, name);
  const manifest = parseManifest(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")), `${name}/manifest.json`);
  /** @type {Map<string, BowTier>} */
  const bow = new Map();
  for (const spec of manifest.tiers) {
    if (spec.kind !== "bow") continue;
    const data = decodeJson(readVerified(dir, spec.files.model));
    bow.set(spec.name, new BowTier(spec.name, BowModel.fromJson(data, `${name}/${spec.files.model.path}`)));
  }
  return { name, dir, manifest, bow };
}

/** Router options of a fixture settings set. */
function routerOptions(settings) {
  const options = {};
  for (const [key, value] of Object.entries(settings)) {
    const name = OPTION_NAMES[key];
    if (!name) throw new Error(`fixture setting ${JSON.stringify(key)} has no web/router.js option in OPTION_NAMES`);
    options[name] = value;
  }
  return options;
}

/**
 * A transformer tier that answers runtime_py's logits (the fixture's tier_logits) through the
 * same softmax(logits / temperature): the cascade's routing without onnxruntime-web.
 */
class ReplayTier {
  constructor(spec, labels, logitsByText) {
    this.name = spec.name;
    this.kind = spec.kind;
    this.labels = labels;
    this.temperature = spec.extra.temperature ?? 1.0;
    this.logitsByText = logitsByText;
  }

  async probabilities(text) {
    const logits = this.logitsByText.get(text);
    if (!logits) throw new Error(`no runtime_py logits for ${JSON.stringify(text.slice(0, 60))}`);
    return softmax(logits, this.temperature);
  }
}

// ---------------------------------------------------------------------------------------------
// Comparison

const show = (text) => JSON.stringify(text.length > 70 ? `${text.slice(0, 70)}...(${text.length} chars)` : text);

/** Collects differences between runtime_py's answers and ours, with number statistics. */
class Comparison {
  constructor(tol) {
    this.tol = tol;
    this.cases = 0;
    this.numbers = 0;
    this.exact = 0;
    this.maxDiff = 0;
    /** @type {string[]} */
    this.problems = [];
    this.where = "";
  }

  bad(path, want, got) {
    this.problems.push(`${this.where} ${path}: runtime_py ${JSON.stringify(want)}, JS ${JSON.stringify(got)}`);
  }

  same(path, want, got) {
    if (!isDeepStrictEqual(want, got)) this.bad(path, want, got);
  }

  number(path, want, got) {
    if (want === null || got === null || want === undefined || got === undefined) {
      if (want !== got) this.bad(path, want, got);
      return;
    }
    if (typeof got !== "number" || !Number.isFinite(got)) return this.bad(path, want, got);
    const diff = Math.abs(want - got);
    this.numbers++;
    if (diff === 0) this.exact++;
    if (diff > this.maxDiff) this.maxDiff = diff;
    if (!(diff <= this.tol)) this.bad(path, want, got);
  }

  keys(path, want, got) {
    const gotKeys = Object.keys(got).filter((k) => k !== "latency_ms").sort();
    this.same(`${path} keys`, Object.keys(want).sort(), gotKeys);
  }

  /**
   * One case: `got` is {result} or {error} of the JS router.
   * @param {{exactOrder: boolean}} mode exactOrder: rankings in the same label order (else near-ties may swap)
   */
  route(c, got, { exactOrder }) {
    this.cases++;
    this.where = `[${c.bundle}/${c.settings}] ${show(c.text)}:`;
    if (c.error) {
      if (!got.error) return this.bad("outcome", { error: c.error.name }, { intent: got.result.intent, reason: got.result.reason });
      const e = got.error;
      this.same("error class", c.error.name, e?.name);
      if (!(e instanceof IntentKitError)) this.bad("error is an IntentKitError", true, false);
      // Messages differ only in the setting they name (max_chars / maxChars).
      this.same("error message", c.error.message.split(" (")[0], String(e?.message).split(" (")[0]);
      return;
    }
    if (got.error) return this.bad("outcome", { intent: c.result.intent, reason: c.result.reason }, { error: `${got.error.name}: ${got.error.message}` });
    const want = c.result;
    const r = got.result;
    this.keys("result", want, r);
    for (const key of ["intent", "tier", "reason", "slots", "missing_slots", "escalation"]) this.same(key, want[key], r[key]);
    this.number("confidence", want.confidence, r.confidence);
    this.ranking(want.ranking, r.ranking, exactOrder);
    if (!Array.isArray(r.tiers) || r.tiers.length !== want.tiers.length) {
      return this.bad("tiers", want.tiers.map((t) => t.tier), r.tiers?.map((t) => t.tier));
    }
    want.tiers.forEach((w, i) => {
      const g = r.tiers[i];
      this.keys(`tiers[${i}]`, w, g);
      for (const key of ["tier", "kind", "label", "reason", "accepted", "threshold", "error"]) this.same(`tiers[${i}].${key}`, w[key], g[key]);
      this.number(`tiers[${i}].confidence`, w.confidence, g.confidence);
      this.number(`tiers[${i}].margin`, w.margin, g.margin);
    });
  }

  ranking(want, got, exactOrder) {
    if (!Array.isArray(got) || got.length !== want.length) return this.bad("ranking length", want.length, got?.length);
    const wantByLabel = new Map(want.map((x) => [x.intent, x.confidence]));
    got.forEach((g, i) => {
      this.keys(`ranking[${i}]`, want[i], g);
      // Position by position: the sorted probabilities agree, whatever the labels.
      this.number(`ranking[${i}].confidence`, want[i].confidence, g.confidence);
      if (exactOrder) this.same(`ranking[${i}].intent`, want[i].intent, g.intent);
      // Label by label: each label's probability agrees, so labels can only swap on near-ties.
      else if (want[i].intent !== g.intent) this.number(`ranking ${g.intent}`, wantByLabel.get(g.intent) ?? null, g.confidence);
    });
  }

  logits(path, want, got) {
    if (!Array.isArray(got) || got.length !== want.length) return this.bad(`${path} length`, want.length, got?.length);
    want.forEach((w, i) => this.number(`${path}[${i}]`, w, got[i]));
  }

  /** Fail with the first differences, readably. */
  check(what) {
    if (this.problems.length) {
      const first = this.problems.slice(0, 8).join("\n  ");
      assert.fail(`${this.problems.length} differences from runtime_py in ${what}; first ones:\n  ${first}`);
    }
  }

  summary() {
    return `${this.cases} cases, ${this.numbers} numbers (${this.exact} bit-identical), max |diff| ${this.maxDiff.toExponential(2)}`;
  }
}

async function classify(router, text) {
  try {
    return { result: await router.classify(text) };
  } catch (error) {
    return { error };
  }
}

/** Route every case of `cases` with a router built per settings set by `makeRouter(options)`. */
async function compareRoutes(cmp, info, cases, makeRouter, mode) {
  for (const [setting, settings] of Object.entries(info.settings)) {
    const router = makeRouter(routerOptions(settings));
    const subset = cases.filter((c) => c.settings === setting);
    assert.equal(subset.length, info.texts, `${setting}: expected one case per text`);
    for (const c of subset) cmp.route(c, await classify(router, c.text), mode);
  }
}

// ---------------------------------------------------------------------------------------------
// Tests

function defineTests() {
  const info = JSON.parse(readFileSync(FIXTURE_MANIFEST, "utf8"));
  const all = readJsonl(join(FIXTURES, "expected.jsonl"));
  const casesOf = (bundle) => all.filter((c) => c.bundle === bundle);
  const bundles = new Map(info.bundles.map((name) => [name, loadBundle(name)]));
  const hasTransformer = (b) => b.manifest.tiers.some((s) => s.kind === "transformer");

  /** runtime_py's logits of each tier by cleaned text (the default settings carry them). */
  function pythonLogits(bundle, tierName) {
    const map = new Map();
    for (const c of casesOf(bundle)) {
      if (c.settings === "default" && c.tier_logits) map.set(prepareText(c.text), c.tier_logits[tierName]);
    }
    return map;
  }

  test("fixtures: every bundle, settings set and text has one case", () => {
    assert.equal(all.length, info.cases);
    assert.equal(all.length, info.bundles.length * Object.keys(info.settings).length * info.texts);
    for (const name of info.bundles) {
      for (const setting of Object.keys(info.settings)) {
        assert.equal(all.filter((c) => c.bundle === name && c.settings === setting).length, info.texts, `${name}/${setting}`);
      }
    }
    for (const settings of Object.values(info.settings)) routerOptions(settings); // every setting maps
    assert.ok(all.some((c) => c.error), "the fixtures should include refused input");
    assert.ok(all.some((c) => c.result?.reason === "out_of_scope"), "the fixtures should include out_of_scope answers");
  });

  test("cascades: the hand-off fitted at build time is in the manifest, the router uses it, and the first tier both answers and hands on", () => {
    const cascades = [...bundles.values()].filter((b) => b.manifest.tiers.length > 1);
    assert.ok(cascades.length > 0, "the fixtures should include a bundle with two tiers");
    for (const b of cascades) {
      const [first] = b.manifest.tiers;
      const fitted = first.extra.calibration?.handoff;
      assert.equal(fitted?.fitted_on, "val", `${b.name}: ${first.name} has no fitted hand-off (calibration.handoff)`);
      assert.equal(typeof first.handoff_threshold, "number");
      const tiers = b.manifest.tiers.map((spec) => b.bow.get(spec.name) ?? { name: spec.name, kind: spec.kind, labels: [] });
      assert.equal(new Router(tiers, { manifest: b.manifest }).thresholds.get(first.name)[1], first.handoff_threshold);
      // Under the bundle's own settings, the first tier answers some texts and hands others on.
      const firstReasons = new Set(casesOf(b.name).filter((c) => c.settings === "default").map((c) => c.result?.tiers?.[0]?.reason));
      for (const reason of ["confident", "below_threshold"]) assert.ok(firstReasons.has(reason), `${b.name}: no default-settings case where ${first.name} is ${reason}`);
    }
  });

  for (const [name, b] of bundles) {
    test(`${name}: BoW logits equal runtime_py's (to ${EXACT_TOL})`, (t) => {
      const cmp = new Comparison(EXACT_TOL);
      let texts = 0;
      for (const c of casesOf(name)) {
        if (c.settings !== "default") continue;
        cmp.where = `[${name}] ${show(c.text)}:`;
        if (c.tier_logits === null) {
          // runtime_py refused the text before any tier ran: so must we.
          assert.throws(() => prepareText(c.text), InputError, `${show(c.text)} should be refused`);
          continue;
        }
        for (const [tierName, tier] of b.bow) {
          cmp.logits(`${tierName} logits`, c.tier_logits[tierName], tier.logits(prepareText(c.text)));
        }
        texts++;
      }
      cmp.check(`${name} BoW logits`);
      assert.ok(texts > 200);
      t.diagnostic(`${name}: ${texts} texts, ${cmp.numbers} logits (${cmp.exact} bit-identical), max |diff| ${cmp.maxDiff.toExponential(2)}`);
    });

    const label = hasTransformer(b) ? "BoW + transformer replaying runtime_py's logits" : "BoW";
    test(`${name}: routes like runtime_py for every settings set (${label})`, async (t) => {
      const tiers = b.manifest.tiers.map((spec) => {
        if (spec.kind === "bow") return b.bow.get(spec.name);
        if (spec.kind === "transformer") {
          const config = decodeJson(readVerified(b.dir, spec.files.config));
          const labels = labelsFromConfig(config, `${name}/config.json`);
          return new ReplayTier(spec, labels, pythonLogits(name, spec.name));
        }
        throw new Error(`no JS tier for kind ${spec.kind}`);
      });
      const cmp = new Comparison(EXACT_TOL);
      await compareRoutes(cmp, info, casesOf(name), (options) => new Router(tiers, { ...options, manifest: b.manifest }), { exactOrder: true });
      cmp.check(`${name} routing`);
      t.diagnostic(`${name}: ${cmp.summary()}`);
    });
  }

  test("byte input: UTF-8 bytes route like the string (runtime_py decodes bytes the same way)", async () => {
    const b = bundles.get("bundle_tfidf") ?? [...bundles.values()][0];
    const router = new Router([...b.bow.values()], { manifest: b.manifest });
    let n = 0;
    for (const c of casesOf(b.name)) {
      if (c.settings !== "default" || c.error || c.text !== c.text.toWellFormed()) continue;
      const fromBytes = await router.classify(new TextEncoder().encode(c.text));
      const fromText = await router.classify(c.text);
      for (const key of ["intent", "confidence", "tier", "reason", "ranking", "slots", "missing_slots"]) {
        assert.deepEqual(fromBytes[key], fromText[key], `${show(c.text)} ${key}`);
      }
      n++;
    }
    assert.ok(n > 200);
    await assert.rejects(router.classify(42), InputError);
    await assert.rejects(router.classify(null), InputError);
    await assert.rejects(router.classify({ text: "hi" }), InputError);
  });

  test("escalation hook: called where runtime_py answered no tier; its answer replaces the fallback as in runtime_py", async (t) => {
    // runtime_py's escalation (Router._escalate) applied to the fixture's answers: a callable cannot
    // be written to the fixtures, so the expected result is runtime_py's answer plus that rule.
    const b = bundles.get("bundle_tfidf") ?? [...bundles.values()].find((x) => !hasTransformer(x));
    const required = b.manifest.slots.required ?? {};
    const hooks = {
      pair: () => ["transfers", 0.5], // a [label, confidence] answer (a tuple in Python)
      label: () => "quotes", // a bare label: confidence null
      none: () => null, // declines: the fallback stands, the call is recorded
      fails: () => {
        throw new TypeError("boom");
      },
    };
    let escalated = 0;
    for (const [setting, settings] of Object.entries(info.settings)) {
      const options = routerOptions(settings);
      const known = options.knownIntents ? new Set(options.knownIntents) : null;
      for (const [kind, hook] of Object.entries(hooks)) {
        const calls = [];
        const router = new Router([...b.bow.values()], {
          ...options,
          manifest: b.manifest,
          escalate: (text, result) => {
            calls.push({ text, intent: result.intent, tier: result.tier, reason: result.reason });
            return hook();
          },
        });
        for (const c of casesOf(b.name).filter((x) => x.settings === setting)) {
          calls.length = 0;
          const got = await classify(router, c.text);
          const where = `[${b.name}/${setting}, ${kind}] ${show(c.text)}`;
          if (c.error) {
            assert.equal(got.error?.name, c.error.name, where);
            assert.equal(calls.length, 0, where);
            continue;
          }
          const want = c.result;
          const r = got.result;
          if (want.tier !== null || want.reason === "empty_input") {
            assert.equal(calls.length, 0, `${where}: escalate must not be called`);
            assert.equal(r.escalation, null, where);
            assert.deepEqual([r.intent, r.tier, r.reason], [want.intent, want.tier, want.reason], where);
            continue;
          }
          escalated++;
          assert.deepEqual(calls, [{ text: prepareText(c.text), intent: want.intent, tier: null, reason: want.reason }], where);
          assert.equal(r.escalation?.called, true, where);
          assert.equal(typeof r.escalation.latency_ms, "number", where);
          assert.deepEqual(r.slots, want.slots, where);
          const answer = kind === "fails" ? null : hook();
          const label = answer === null ? null : typeof answer === "string" ? answer : answer[0];
          if (kind === "fails") assert.equal(r.escalation.error, "TypeError: boom", where);
          if (label !== null && known !== null && !known.has(label)) {
            assert.match(String(r.escalation.error), /^escalation returned unknown intent /, where);
          }
          if (label === null || (known !== null && !known.has(label))) {
            assert.deepEqual([r.intent, r.confidence, r.tier, r.reason, r.missing_slots], [want.intent, null, null, want.reason, []], where);
          } else {
            const missing = (required[label] ?? []).filter((slot) => !want.slots[slot]?.length);
            assert.deepEqual(
              [r.intent, r.confidence, r.tier, r.reason, r.missing_slots, r.escalation.label, r.escalation.error],
              [label, typeof answer === "string" ? null : answer[1], "escalation", "escalated", missing, label, undefined],
              where,
            );
          }
        }
      }
    }
    assert.ok(escalated > 100, `only ${escalated} cases escalated`);
    t.diagnostic(`${escalated} escalations (${Object.keys(hooks).length} hooks x ${Object.keys(info.settings).length} settings sets)`);
  });

  // runtime_py tests emptiness with str.strip() (Python whitespace: \t-\r, \x1c-\x20, \x85, \xa0,
  // U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000; not U+FEFF) and decodes bytes
  // keeping a leading BOM. The fixtures hold none of these texts; expected answers are runtime_py's
  // (checked by hand: "\x1c" and "\x85" are empty_input there, "\ufeff" is routed).
  test("empty input is what runtime_py calls empty (str.strip, BOM kept)", async () => {
    const b = bundles.get("bundle_tfidf") ?? [...bundles.values()][0];
    const router = new Router([...b.bow.values()], { manifest: b.manifest });
    const empty = ["\x1c", "\x1d\x1e\x1f", "\x85", " \x85 ", "\u3000\u2028"];
    const routed = ["\ufeff", " \ufeff ", "\u180e", "\u200b"];
    const wrong = [];
    for (const text of empty) if ((await router.classify(text)).reason !== "empty_input") wrong.push(`${JSON.stringify(text)} should be empty_input`);
    for (const text of routed) if ((await router.classify(text)).reason === "empty_input") wrong.push(`${JSON.stringify(text)} should be routed`);
    const bom = await router.classify(new Uint8Array([0xef, 0xbb, 0xbf, 0x20])); // Python: "\ufeff ", routed
    if (bom.reason === "empty_input") wrong.push("UTF-8 bytes EF BB BF 20 should be routed (Python keeps the BOM)");
    assert.deepEqual(wrong, []);
  });

  // --- the real transformer tier on onnxruntime-web (WASM build, one thread) --------------------

  const transformerBundle = [...bundles.values()].find(hasTransformer);
  test("transformer on onnxruntime-web (wasm): int8 logits and routes match runtime_py", async (t) => {
    if (!transformerBundle || !info.transformer_variant) {
      t.skip("the fixtures hold no transformer tier (built with --no-transformer)");
      return;
    }
    const b = transformerBundle;
    const spec = b.manifest.tiers.find((s) => s.kind === "transformer");
    const role = info.transformer_variant;
    const model = readVerified(b.dir, spec.files[role]);
    let ort;
    try {
      ort = await import(ORT_WASM_BUILD.href);
      ort.env.logLevel = "error";
      ort.env.wasm.numThreads = 1;
      const probe = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
      await probe.release();
    } catch (error) {
      t.skip(`onnxruntime-web cannot run in this Node (${process.version}): ${error?.message ?? error}`);
      return;
    }
    const files = {
      tokenizerJson: decodeJson(readVerified(b.dir, spec.files.tokenizer)),
      config: decodeJson(readVerified(b.dir, spec.files.config)),
    };
    const tier = await createTransformerTier({ spec, bundleLabels: b.manifest.labels, role, model, ...files, ort, backend: "wasm" });
    t.after(() => tier.release());
    assert.equal(tier.info.variant, role);

    // Logits of every text runtime_py ran (the default settings carry them).
    const logits = new Comparison(ORT_TOL);
    for (const c of casesOf(b.name)) {
      if (c.settings !== "default" || !c.tier_logits) continue;
      logits.where = `[${b.name}] ${show(c.text)}:`;
      logits.logits(`${spec.name} ${role} logits`, c.tier_logits[spec.name], await tier.logits(prepareText(c.text)));
      logits.cases++;
    }
    logits.check(`${spec.name} ${role} logits`);
    t.diagnostic(`${role} logits: ${logits.cases} texts, ${logits.numbers} logits, max |diff| ${logits.maxDiff.toExponential(2)}`);

    // The whole cascade, every settings set.
    const tiers = b.manifest.tiers.map((s) => (s.kind === "bow" ? b.bow.get(s.name) : tier));
    const routes = new Comparison(ORT_TOL);
    await compareRoutes(routes, info, casesOf(b.name), (options) => new Router(tiers, { ...options, manifest: b.manifest }), { exactOrder: false });
    routes.check(`${b.name} routing with onnxruntime-web`);
    t.diagnostic(`${b.name} cascade: ${routes.summary()}`);
  });

  test("transformer on onnxruntime-web (wasm): fp32 'model_fp32' variant equals onnxruntime's", async (t) => {
    if (!transformerBundle || !all.some((c) => c.fp32_logits)) {
      t.skip("the fixtures hold no fp32 logits");
      return;
    }
    const b = transformerBundle;
    const spec = b.manifest.tiers.find((s) => s.kind === "transformer");
    let ort;
    try {
      ort = await import(ORT_WASM_BUILD.href);
      ort.env.logLevel = "error";
      ort.env.wasm.numThreads = 1;
    } catch (error) {
      t.skip(`onnxruntime-web cannot run in this Node: ${error?.message ?? error}`);
      return;
    }
    const tier = await createTransformerTier({
      spec,
      bundleLabels: b.manifest.labels,
      role: "model_fp32",
      model: readVerified(b.dir, spec.files.model_fp32),
      tokenizerJson: decodeJson(readVerified(b.dir, spec.files.tokenizer)),
      config: decodeJson(readVerified(b.dir, spec.files.config)),
      ort,
      backend: "wasm",
    });
    t.after(() => tier.release());
    const cmp = new Comparison(ORT_TOL);
    for (const c of casesOf(b.name)) {
      if (c.settings !== "default" || !c.fp32_logits) continue;
      cmp.where = `[${b.name}] ${show(c.text)}:`;
      cmp.logits("fp32 logits", c.fp32_logits, await tier.logits(prepareText(c.text)));
      cmp.cases++;
    }
    cmp.check("model_fp32 logits");
    t.diagnostic(`fp32 logits: ${cmp.cases} texts, max |diff| ${cmp.maxDiff.toExponential(2)}`);
    assert.ok(cmp.cases > 200);
  });

  // --- RemoteBundle over HTTP ---------------------------------------------------------------------

  test("RemoteBundle over HTTP: verified downloads route like runtime_py; bad files throw BundleError", async (t) => {
    const b = bundles.get("bundle_tfidf") ?? [...bundles.values()].find((x) => !hasTransformer(x));
    const entry = b.manifest.tiers.find((s) => s.kind === "bow").files.model;
    const good = readFileSync(join(b.dir, entry.path));
    const tampered = Buffer.from(good);
    tampered[tampered.length >> 1] ^= 0x20; // same size, other bytes
    // /<mode>/<file>: ok serves the bundle, short drops a byte, tampered changes one, badjson breaks the manifest.
    const server = createServer((req, res) => {
      const [, mode, ...rest] = decodeURIComponent(new URL(req.url, "http://x").pathname).split("/");
      const path = rest.join("/");
      let body = null;
      if (mode === "badjson" && path === "manifest.json") body = "{not json";
      else if (mode !== "missing" && (path === "manifest.json" || path === entry.path)) {
        body = readFileSync(join(b.dir, path));
        if (path === entry.path && mode === "short") body = good.subarray(0, good.length - 1);
        if (path === entry.path && mode === "tampered") body = tampered;
      }
      if (body === null) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end(body);
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const base = `http://127.0.0.1:${server.address().port}`;

    const remote = await RemoteBundle.open(`${base}/ok`); // no trailing slash: added
    assert.equal(remote.baseUrl, `${base}/ok/`);
    assert.equal(remote.cache, null, "Node has no Cache API");
    assert.equal(remote.canVerify, true);
    assert.deepEqual(remote.manifest.labels, b.manifest.labels);
    let progress = 0;
    const got = await remote.file(entry, (loaded, total) => {
      assert.equal(total, entry.bytes);
      progress = loaded;
    });
    assert.equal(got.fromCache, false);
    assert.equal(progress, entry.bytes);
    assert.ok(Buffer.from(got.bytes).equals(good));
    const json = await remote.json(entry);
    const router = new Router([new BowTier("bow", BowModel.fromJson(json.data, remote.url(entry.path)))], { manifest: remote.manifest });
    const cmp = new Comparison(EXACT_TOL);
    for (const c of casesOf(b.name)) if (c.settings === "default") cmp.route(c, await classify(router, c.text), { exactOrder: true });
    cmp.check(`${b.name} routing from the HTTP bundle`);

    const short = await RemoteBundle.open(`${base}/short/`);
    await assert.rejects(short.file(entry), (e) => e instanceof BundleError && /size/.test(e.message));
    await assert.rejects(short.json(entry), BundleError);
    const bad = await RemoteBundle.open(`${base}/tampered/`);
    await assert.rejects(bad.file(entry), (e) => e instanceof BundleError && /sha256/.test(e.message));
    await assert.rejects(bad.file(entry, () => {}), (e) => e instanceof BundleError && /sha256/.test(e.message));
    await assert.rejects(RemoteBundle.open(`${base}/missing/`), (e) => e instanceof BundleError && /404/.test(e.message));
    await assert.rejects(RemoteBundle.open(`${base}/badjson/`), (e) => e instanceof BundleError && /invalid JSON/.test(e.message));
    await assert.rejects(RemoteBundle.open("http://127.0.0.1:1/"), BundleError); // nothing listens on port 1

    // A page's prefetch hands a worker the manifest and the BoW files: no second download.
    const prefetch = await RemoteBundle.prefetch(`${base}/ok/`);
    assert.deepEqual(prefetch.files.map((f) => f.path), [entry.path]);
    assert.ok(Buffer.from(prefetch.files[0].bytes).equals(good));
    const offline = await RemoteBundle.open("http://127.0.0.1:1/", prefetch); // would fail if it fetched
    assert.deepEqual(offline.manifest.labels, b.manifest.labels);
    assert.ok(Buffer.from((await offline.file(entry)).bytes).equals(good));
    await assert.rejects(offline.file(entry), BundleError); // used once: a second read downloads (and fails here)
    const stale = await RemoteBundle.open("http://127.0.0.1:1/", { ...prefetch, files: [{ ...prefetch.files[0], sha256: "0".repeat(64) }] });
    await assert.rejects(stale.file(entry), BundleError); // another build's file is not used
    assert.deepEqual((await RemoteBundle.prefetch(`${base}/ok/`, ["transformer"]).catch((e) => e)).message?.includes("no tier"), true);
  });

  test("engine status lists what runtime_py's status lists as problems: failed tiers and blends not applied", () => {
    const { manifest, bow } = bundles.get("bundle_blend");
    const spec = manifest.tiers.find((s) => s.extra.blend);
    assert.ok(spec, "bundle_blend has a blended tier");
    const brokenSpec = { ...spec, extra: { ...spec.extra, blend: { ...spec.extra.blend, weight: 2 } } };
    const broken = { ...manifest, tiers: manifest.tiers.map((s) => (s === spec ? brokenSpec : s)) };
    const engine = new JsEngine({ bundleUrl: "http://127.0.0.1:1/", vendorUrl: "" });
    const fake = { name: spec.name, kind: spec.kind, labels: manifest.labels, temperature: 1, probabilities: () => [], describe: () => ({}) };
    engine.router = new Router([...bow.values(), fake], { manifest: broken });
    engine.tierState = [
      { name: "bow", kind: "bow", state: "ready" },
      { name: spec.name, kind: spec.kind, state: "ready" },
      { name: "other", kind: "transformer", state: "failed", error: "no model" },
    ];
    const problems = engine.status().problems;
    assert.deepEqual(problems[0], { where: "tier other", error: "no model" });
    assert.equal(problems.length, 2);
    assert.match(problems[1].where, /\(blend\)$/);
    assert.match(problems[1].error, /weight/);
  });

  test("bow.json: packed float32 arrays (written as version 3) and version 1's lists give the same model; bad packed arrays throw BundleError", () => {
    const dir = join(FIXTURES, "bundle_tfidf");
    const manifest = parseManifest(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
    const entry = manifest.tiers.find((t) => t.kind === "bow").files.model;
    const data = decodeJson(readVerified(dir, entry));
    assert.equal(data.format_version, 3);
    assert.equal(data.weights.dtype, "float32");
    const packed = BowModel.fromJson(data);
    const n = data.labels.length;
    const flat = unpackFloats(data.weights, [data.vocab.length, n], "weights");
    const lists = {
      ...data,
      format_version: 1,
      weights: Array.from({ length: data.vocab.length }, (_, i) => Array.from(flat.subarray(i * n, (i + 1) * n))),
      idf: Array.from(unpackFloats(data.idf, [data.vocab.length], "idf")),
    };
    const listed = BowModel.fromJson(JSON.parse(JSON.stringify(lists)));
    for (const text of ["how is AAPL doing", "move 200 dollars to my ira", "", "zzz qqq!!"]) {
      assert.deepEqual(listed.logits(text), packed.logits(text), text);
    }
    const bad = (weights, message) => assert.throws(() => BowModel.fromJson({ ...data, weights }), (e) => e instanceof BundleError && message.test(e.message));
    bad({ ...data.weights, dtype: "float16" }, /weights: dtype "float16" is not supported/);
    bad({ ...data.weights, shape: [1, n] }, /weights: shape \[1,\d+\] does not match/);
    bad({ ...data.weights, base64: "not base64!" }, /weights: invalid base64/);
    bad({ ...data.weights, base64: data.weights.base64.slice(0, 8) }, /weights: 6 bytes for shape/);
    const nan = new Float32Array(flat);
    nan[3] = NaN;
    bad({ ...data.weights, base64: Buffer.from(nan.buffer).toString("base64") }, /weights: every value must be a finite number/);
    bad([[0]], /weights has 1 rows for a vocabulary of/);
  });
}

// Last: the helpers above are initialised by now.
if (!existsSync(FIXTURE_MANIFEST)) {
  test("runtime parity fixtures exist", () => assert.fail(HINT));
} else {
  defineTests();
}

test("bow.json version 3: int8 rows and token_l2 give the same logits from warm token and n-gram caches, cold ones and the merged vector", () => {
  const dir = join(FIXTURES, "bundle_int8");
  const manifest = parseManifest(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
  const entry = manifest.tiers.find((t) => t.kind === "bow").files.model;
  const data = decodeJson(readVerified(dir, entry));
  assert.equal(data.weights.dtype, "int8");
  assert.equal(data.features.norm, "token_l2");
  const warm = BowModel.fromJson(data);
  const texts = ["how is AAPL doing", "move 200 dollars to my ira", "", "zzz qqq!!", "aapl aapl", "café déjà vu",
    "how many shares how many shares of AAPL", "buy buy buy", "the the the the the"]; // repeated n-grams: the uncached path
  for (const text of texts) warm.logits(text);
  // past TOKEN_CACHE_SIZE distinct tokens and bigrams: both caches clear and refill
  for (let i = 0; i <= TOKEN_CACHE_SIZE; i++) warm.logits(`w${i} x${i}`);
  assert.ok(warm.tokenCache.size <= TOKEN_CACHE_SIZE && warm.gramCache.size <= TOKEN_CACHE_SIZE);
  for (const text of texts) {
    const cold = BowModel.fromJson(data);
    assert.deepEqual(warm.logits(text), cold.logits(text), text);
    const [indices, values] = cold.vectorizer.transform(text);
    const merged = Array.from(cold.bias, (b, c) => b + indices.reduce((s, i, k) => s + cold.weight(i, c) * values[k], 0));
    warm.logits(text).forEach((x, c) => assert.ok(Math.abs(x - merged[c]) < 1e-12, `${text}: ${x} vs ${merged[c]}`));
  }
  assert.throws(() => BowModel.fromJson({ ...data, scales: undefined }), (e) => e instanceof BundleError && /scales is missing/.test(e.message));
});

// ---------------------------------------------------------------------------------------------
// bow.json version 4: word pieces (no generated fixture needed)

const PIECES_FILE = join(ROOT, "tests", "fixtures", "conformance", "bow", "pieces.json");

test("wordPieces: BERT's greedy longest match first, '##' continuations, none when a part is missing or the word is long", () => {
  const pieces = new Set(["un", "##aff", "##a", "##ff", "##able", "##ble", "aff", "able", "bank", "##s", "##ing", "##", "s"]);
  const maxLen = 4; // "able" and "##able" (4, "##" not counted)
  assert.deepEqual(wordPieces("unaffable", pieces, maxLen), ["un", "##aff", "##able"]); // "##aff" before "##a"
  assert.deepEqual(wordPieces("banks", pieces, maxLen), ["bank", "##s"]);
  assert.deepEqual(wordPieces("banking", pieces, maxLen), ["bank", "##ing"]);
  assert.deepEqual(wordPieces("bankss", pieces, maxLen), ["bank", "##s", "##s"]);
  assert.deepEqual(wordPieces("bank", pieces, maxLen), ["bank"]);
  assert.deepEqual(wordPieces("s", pieces, maxLen), ["s"]); // a word start, not "##s"
  assert.deepEqual(wordPieces("bankx", pieces, maxLen), [], "a continuation no piece covers: no pieces at all");
  assert.deepEqual(wordPieces("xbank", pieces, maxLen), [], "a start no piece covers");
  assert.deepEqual(wordPieces("ing", pieces, maxLen), [], "'##ing' continues a word; it does not start one");
  assert.deepEqual(wordPieces("", pieces, maxLen), []);
  for (const larger of [5, 10, 1000]) assert.deepEqual(wordPieces("unaffable", pieces, larger), ["un", "##aff", "##able"]);
  assert.deepEqual(wordPieces("unaffable", pieces, 3), ["un", "##aff", "##a", "##ble"], "maxLen bounds the match");
  assert.deepEqual(wordPieces("bank", new Set(), 0), []);
  // 100 characters still split; 101 give none (BERT's max_input_chars_per_word)
  const as = new Set(["a", "##a"]);
  assert.equal(wordPieces("a".repeat(100), as, 1).length, 100);
  assert.deepEqual(wordPieces("a".repeat(101), as, 1), []);
});

test("wordPieces: a token that is not ASCII is sliced by code points, as Python slices it", () => {
  const pieces = new Set(["caf", "##é", "😀", "##😀", "##x", "ü", "##ber"]);
  assert.deepEqual(wordPieces("café", pieces, 3), ["caf", "##é"]);
  assert.deepEqual(wordPieces("über", pieces, 3), ["ü", "##ber"]);
  assert.deepEqual(wordPieces("😀x", pieces, 1), ["😀", "##x"], "maxLen 1 is one code point, not one UTF-16 unit");
  assert.deepEqual(wordPieces("😀😀", pieces, 1), ["😀", "##😀"]);
  // the 100-character limit counts code points: 100 emoji are 200 UTF-16 units
  assert.equal(wordPieces("😀".repeat(100), pieces, 1).length, 100);
  assert.deepEqual(wordPieces("😀".repeat(101), pieces, 1), []);
  assert.deepEqual(wordPieces("cafè", pieces, 3), []);
});

test("bow.json version 4: FeatureConfig.word_pieces and the Vectorizer's piece set", () => {
  assert.equal(PIECES_FORMAT_VERSION, 4);
  assert.ok(READABLE_VERSIONS.includes(PIECES_FORMAT_VERSION));
  assert.equal(BOW_FORMAT_VERSION, 3, "a model without pieces is still written as version 3");
  const plain = new FeatureConfig({ norm: "token_l2" });
  assert.equal(plain.word_pieces, false);
  assert.ok(!("word_pieces" in plain.toJson()), "written only when true");
  const config = new FeatureConfig({ norm: "token_l2", word_pieces: true });
  assert.equal(config.toJson().word_pieces, true);
  assert.deepEqual(new FeatureConfig(config.toJson()).toJson(), config.toJson());
  assert.throws(() => new FeatureConfig({ norm: "token_l2", word_pieces: "yes" }), /^TypeError: word_pieces must be true or false, got "yes"$/);
  assert.throws(() => new FeatureConfig({ norm: "l2", word_pieces: true }), /^RangeError: word_pieces needs norm "token_l2", got norm "l2"$/);
  assert.throws(() => new FeatureConfig({ word_pieces: true }), /word_pieces needs norm "token_l2", got norm null/);
  assert.throws(() => FeatureConfig.fromJson({ norm: "token_l2", word_pieces: 1 }), (e) => e instanceof BundleError && e.message.startsWith("features.word_pieces must be true or false"));

  const data = JSON.parse(readFileSync(PIECES_FILE, "utf8"));
  assert.throws(() => BowModel.fromJson({ ...data, format_version: 3 }),
    (e) => e instanceof BundleError && e.message === "bow.json: features.word_pieces needs format_version 4 (this file says 3)");
  const model = BowModel.fromJson(data);
  const vec = model.vectorizer;
  assert.deepEqual([...vec.pieces].sort(), ["##ance", "##fer", "##s", "bal", "cash", "trans"]);
  assert.equal(vec.maxPiece, 5, "'trans'; '##ance' counts 4");
  assert.equal(vec.tokenGroups("bals").length, 3);
  assert.deepEqual(vec.tokenGroups("balss")[2], [[vec.index.get("~bal"), vec.index.get("~##s")], [1, 2], 5, 3], "repeats counted: m = 3");
  assert.deepEqual(vec.tokenGroups("move")[2], [[], [], 0, 0]);
  // without word_pieces "~" entries are ordinary features and a token has two groups
  const off = new Vectorizer(new FeatureConfig({ norm: "token_l2", char_ngrams: [2, 3] }), data.vocab);
  assert.equal(off.pieces, null);
  assert.equal(off.tokenGroups("bals").length, 2);
  // a non-ASCII piece: maxPiece counts code points
  const wide = new Vectorizer(new FeatureConfig({ norm: "token_l2", word_pieces: true }), ["~😀😀", "~##é", "x"]);
  assert.equal(wide.maxPiece, 2);
  assert.deepEqual(wide.tokenGroups("😀😀é")[2][3], 2);
});

test("bow.json version 4: transform() holds the piece block, each piece's tf x idf over the text's number of pieces", () => {
  const model = BowModel.fromJson(JSON.parse(readFileSync(PIECES_FILE, "utf8")));
  const vec = model.vectorizer;
  const valueOf = (text) => {
    const [indices, values] = vec.transform(text);
    return Object.fromEntries(indices.map((i, k) => [vec.vocab[i], values[k]]));
  };
  const t = valueOf("transfers");
  for (const piece of ["~trans", "~##fer", "~##s"]) assert.equal(t[piece], 1 / 3, piece);
  const b = valueOf("bals bals balss"); // pieces bal ##s | bal ##s | bal ##s ##s: m = 7
  assert.equal(b["~bal"], 1 / 7 + 1 / 7 + 1 / 7);
  assert.equal(b["~##s"], 1 / 7 + 1 / 7 + 2 * (1 / 7));
  const none = valueOf("move zzz");
  assert.ok(!Object.keys(none).some((f) => f.startsWith("~")), "no token has pieces: no piece block");
  assert.ok("move" in none);
});

/**
 * The spec's logits of a version-4 model, built independently: the same model without word pieces
 * (whose "~" entries no token matches) gives bias + words + chars; then + (sum over tokens of the
 * token's piece share, label by label in token order) * (1 / m).
 */
function piecesReference(model, plain, text) {
  const vec = model.vectorizer;
  const out = plain.logits(text);
  const shares = [];
  let m = 0;
  for (const tok of vec.extractor.tokens(text)) {
    const [indices, values, , count] = vec.pieceGroup(tok);
    if (!count) continue;
    shares.push(model.share(indices, values));
    m += count;
  }
  if (!shares.length) return out;
  const scale = 1.0 / m;
  for (let c = 0; c < out.length; c++) {
    let sum = 0;
    for (const share of shares) sum += share[c];
    out[c] += sum * scale;
  }
  return out;
}

test("bow.json version 4: logits equal the merged vector's dot product and the spec's sums, warm or cold cache", () => {
  const data = JSON.parse(readFileSync(PIECES_FILE, "utf8"));
  const texts = ["transfers", "balance", "cash", "move zzz", "", "transfer balance balance", "bals bals balss",
    "Cash cash CASH moves", "balancefers trans", "cashé café", "bal-ance ##s", "x".repeat(101) + " cash",
    "move cash to balance then transfer the cash"];
  const floatModel = () => {
    // float64 weights, idf != 1 on pieces and tf "log": the piece values are tf x idf too
    const n = 3;
    const weights = new Float64Array(data.vocab.length * n).map((_, i) => Math.sin(i * 1.7) * (1 + (i % 5)) / 7);
    const idf = data.vocab.map((_, i) => 1 + ((i * 37) % 11) / 10);
    const config = new FeatureConfig({ char_ngrams: [1, 3], tf: "log", norm: "token_l2", word_pieces: true, ngram_max: 3 });
    return [new BowModel(["a", "b", "c"], config, data.vocab, weights, [0.3, -0.2, 0.05], 1, idf),
      new BowModel(["a", "b", "c"], new FeatureConfig({ ...config.toJson(), word_pieces: false }), data.vocab, weights, [0.3, -0.2, 0.05], 1, idf)];
  };
  const int8Model = () => [BowModel.fromJson(data), BowModel.fromJson({ ...data, format_version: 3, features: { ...data.features, word_pieces: false } })];
  for (const make of [int8Model, floatModel]) {
    const [warm, plain] = make();
    for (const text of texts) {
      const first = warm.logits(text);
      assert.deepEqual(warm.logits(text), first, `${text}: a second (cached) call`);
      assert.deepEqual(first, piecesReference(warm, plain, text), `${text}: the spec's sums, bit for bit`);
    }
    // past TOKEN_CACHE_SIZE distinct tokens: the cache clears and refills
    for (let i = 0; i <= TOKEN_CACHE_SIZE; i++) warm.logits(`bal${i}s trans${i}`);
    assert.ok(warm.tokenCache.size <= TOKEN_CACHE_SIZE);
    for (const text of texts) {
      const [cold] = make();
      const got = warm.logits(text);
      assert.deepEqual(got, cold.logits(text), `${text}: warm and cold caches`);
      const [indices, values] = cold.vectorizer.transform(text);
      const merged = Array.from(cold.bias, (b, c) => b + indices.reduce((s, i, k) => s + cold.weight(i, c) * values[k], 0));
      got.forEach((x, c) => assert.ok(Math.abs(x - merged[c]) < 1e-12, `${text}: ${x} vs ${merged[c]}`));
    }
    // the piece block is really there: a piece-only text moves the logits off the plain model's
    assert.notDeepEqual(warm.logits("transfers"), plain.logits("transfers"));
    assert.deepEqual(warm.logits("move zzz"), plain.logits("move zzz"), "no pieces: the version-3 logits");
  }
});

test("bow.json version 4: a model without word_pieces caches null and 0 for the piece part", () => {
  const data = JSON.parse(readFileSync(join(ROOT, "tests", "fixtures", "conformance", "bow", "int8.json"), "utf8"));
  const model = BowModel.fromJson(data);
  model.logits("cash move");
  for (const entry of model.tokenCache.values()) assert.deepEqual(entry.slice(4), [null, 0]);
});
