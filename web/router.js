// The cascade router (runtime_py/router.py): cheap tier first, the next tier when it is unsure,
// "clarify" when none is sure. Same settings, same decisions, same result shape as
// RouteResult.to_dict(); tiers may answer asynchronously (the transformer tier does).
//
// Settings: options, else the bundle's manifest, else these defaults (no environment here).

import { blendTiers } from "./blend.js";
import { FALLBACK_INTENT } from "./bundle.js";
import { IntentKitError } from "./errors.js";
import { SlotExtractor } from "./slots.js";
import { DEFAULT_MAX_CHARS, prepareText } from "./text.js";

export const DEFAULT_THRESHOLD = 0.6;
export const DEFAULT_HANDOFF_THRESHOLD = 0.75;
export const DEFAULT_MARGIN = 0.1;

/**
 * @typedef {{name: string, kind: string, labels: string[], temperature: number,
 *   probabilities(text: string): number[] | Promise<number[]>, describe(): Record<string, any>}} Tier
 * @typedef {{tier: string, kind: string, label: string | null, confidence: number | null, margin: number | null,
 *   threshold: number | null, accepted: boolean, reason: string, latency_ms: number, error: string | null}} TierReport
 * @typedef {{intent: string, confidence: number | null, tier: string | null, reason: string,
 *   ranking: {intent: string, confidence: number}[], tiers: TierReport[], slots: Record<string, string[]>,
 *   missing_slots: string[], latency_ms: number, escalation: Record<string, any> | null}} RouteResult
 * @typedef {{threshold?: number, handoffThreshold?: number, tierThresholds?: Record<string, number>,
 *   margin?: number, force?: boolean, maxChars?: number, knownIntents?: string[], oosLabels?: string[],
 *   escalate?: (text: string, result: RouteResult) => any}} RouterOptions
 */

// Python's str.isspace() set: JavaScript's trim() differs (it strips U+FEFF, keeps \x1c-\x1f and \x85).
const NOT_SPACE = /[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const first = (...values) => values.find((v) => v !== undefined && v !== null);

function checkProbability(name, value) {
  if (value !== undefined && value !== null && !(typeof value === "number" && value >= 0 && value <= 1)) {
    throw new IntentKitError(`${name}=${JSON.stringify(value)}: expected a number between 0 and 1`);
  }
  return value;
}

/** Routes text through an ordered list of tiers. */
export class Router {
  /**
   * @param {Tier[]} tiers cheapest first
   * @param {RouterOptions & {slots?: SlotExtractor, manifest?: import("./bundle.js").Manifest | null}} [options]
   */
  constructor(tiers, options = {}) {
    const manifest = options.manifest ?? null;
    const specs = new Map((manifest?.tiers ?? []).map((s) => [s.name, s]));
    [this.tiers, this.problems] = blendTiers(tiers, specs);
    this.manifest = manifest;
    this.slots = options.slots ?? (manifest ? SlotExtractor.fromManifest(manifest.slots) : new SlotExtractor());
    this.fallbackIntent = manifest ? manifest.fallback_intent : FALLBACK_INTENT;
    this.knownIntents = options.knownIntents ? new Set(options.knownIntents) : null;
    this.oosLabels = new Set(options.oosLabels ?? manifest?.oos_labels ?? []);
    this.escalate = options.escalate ?? null;
    this.margin = first(checkProbability("margin", options.margin), manifest?.margin, DEFAULT_MARGIN);
    this.force = Boolean(options.force);
    const maxChars = first(options.maxChars, DEFAULT_MAX_CHARS);
    if (!Number.isInteger(maxChars) || maxChars < 1) throw new IntentKitError(`maxChars=${JSON.stringify(maxChars)}: expected a whole number >= 1`);
    this.maxChars = maxChars;
    const overrides = options.tierThresholds ?? {};
    checkProbability("threshold", options.threshold);
    checkProbability("handoffThreshold", options.handoffThreshold);
    /** @type {Map<string, [number, number]>} */
    this.thresholds = new Map();
    for (const tier of this.tiers) {
      const spec = specs.get(tier.name);
      const final = first(
        checkProbability(`tierThresholds[${JSON.stringify(tier.name)}]`, overrides[tier.name]),
        options.threshold,
        spec?.threshold,
        DEFAULT_THRESHOLD,
      );
      const handoff = first(options.handoffThreshold, spec?.handoff_threshold, DEFAULT_HANDOFF_THRESHOLD);
      this.thresholds.set(tier.name, [final, handoff]);
    }
  }

  /** @returns {Promise<[TierReport, [string, number][]]>} */
  async _evaluate(tier, text, threshold) {
    const start = performance.now();
    /** @type {TierReport} */
    const report = {
      tier: tier.name, kind: tier.kind, label: null, confidence: null, margin: null,
      threshold, accepted: false, reason: "not_run", latency_ms: 0, error: null,
    };
    let probs;
    try {
      probs = await tier.probabilities(text);
    } catch (error) {
      // a tier failing must not take the router down
      report.reason = "error";
      report.error = `${error?.name ?? "Error"}: ${error?.message ?? error}`;
      report.latency_ms = performance.now() - start;
      return [report, []];
    }
    // A stable sort by probability, highest first: ties keep label order, as Python's sorted().
    const ranking = tier.labels.map((label, i) => /** @type {[string, number]} */ ([label, probs[i]]));
    ranking.sort((a, b) => b[1] - a[1]);
    report.latency_ms = performance.now() - start;
    const [label, confidence] = ranking[0];
    const runnerUp = ranking.length > 1 ? ranking[1][1] : 0.0;
    report.label = label;
    report.confidence = confidence;
    report.margin = confidence - runnerUp;
    if (this.knownIntents !== null && !this.knownIntents.has(label) && !this.oosLabels.has(label)) report.reason = "unknown_label";
    else if (confidence < threshold) report.reason = "below_threshold";
    else if (report.margin < this.margin) report.reason = "ambiguous";
    else {
      report.reason = "confident";
      report.accepted = true;
    }
    return [report, ranking];
  }

  /**
   * Route `text`. Throws InputError for non-text or over-long input.
   * @param {unknown} text
   * @returns {Promise<RouteResult>}
   */
  async classify(text) {
    const start = performance.now();
    const clean = prepareText(text, this.maxChars);
    /** @type {RouteResult} */
    const result = {
      intent: this.fallbackIntent, confidence: null, tier: null, reason: "no_tier", ranking: [], tiers: [],
      slots: {}, missing_slots: [], latency_ms: 0, escalation: null,
    };
    if (!NOT_SPACE.test(clean)) {
      result.reason = "empty_input";
      result.latency_ms = performance.now() - start;
      return result;
    }
    let last = null;
    for (let position = 0; position < this.tiers.length; position++) {
      const tier = this.tiers[position];
      const [final, handoff] = this.thresholds.get(tier.name);
      const threshold = position === this.tiers.length - 1 ? final : handoff;
      const [report, ranking] = await this._evaluate(tier, clean, threshold);
      result.tiers.push(report);
      if (report.reason === "error") continue;
      last = [report, ranking];
      if (report.accepted) break;
    }
    if (last !== null) {
      const [report, ranking] = last;
      result.ranking = ranking.map(([intent, confidence]) => ({ intent, confidence }));
      if (report.accepted && this.oosLabels.has(report.label)) {
        result.confidence = report.confidence;
        result.tier = report.tier;
        result.reason = "out_of_scope";
      } else if (report.accepted || (this.force && report.reason !== "unknown_label")) {
        result.intent = report.label;
        result.confidence = report.confidence;
        result.tier = report.tier;
        result.reason = report.accepted ? "confident" : "forced";
      } else {
        result.reason = report.reason;
      }
    }
    if (result.tier === null && this.escalate !== null) await this._escalate(clean, result);
    result.slots = this.slots.extract(clean);
    if (result.tier !== null && result.reason !== "out_of_scope") result.missing_slots = this.slots.missing(result.intent, result.slots);
    result.latency_ms = performance.now() - start;
    return result;
  }

  async _escalate(text, result) {
    const start = performance.now();
    /** @type {Record<string, any>} */
    const record = { called: true };
    let answer = null;
    try {
      answer = await this.escalate(text, result);
    } catch (error) {
      record.error = `${error?.name ?? "Error"}: ${error?.message ?? error}`;
    }
    record.latency_ms = performance.now() - start;
    if (answer !== null && answer !== undefined) {
      const [label, confidence] = typeof answer === "string" ? [answer, null] : [answer[0], Number(answer[1])];
      record.label = label;
      if (this.knownIntents !== null && !this.knownIntents.has(label)) {
        record.error = `escalation returned unknown intent '${label}'`;
      } else {
        Object.assign(result, { intent: label, confidence, tier: "escalation", reason: "escalated" });
      }
    }
    result.escalation = record;
  }

  /** Thresholds and routing settings, as runtime_py's status() reports them. */
  settings() {
    return {
      routing: { margin: this.margin, force: this.force, max_chars: this.maxChars, oos_labels: [...this.oosLabels].sort() },
      thresholds: Object.fromEntries([...this.thresholds].map(([name, [threshold, handoff]]) => [name, { threshold, handoff_threshold: handoff }])),
      slots: this.slots.slotNames,
      fallback_intent: this.fallbackIntent,
    };
  }
}
