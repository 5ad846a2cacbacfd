// Slot extraction (runtime_py/slots.py): known slot values found in the text, plus patterns for
// values the lists lack (an unseen ticker typed as "$PLTR").
//
// Values match case-insensitively on ASCII word edges, longest first. Patterns are Python regular
// expressions (manifest slots.patterns), converted by ./pyregex.js; a group named "value" gives
// the value, else the whole match.

import { BundleError } from "./errors.js";
import { escapeRegExp, pythonRegExp } from "./pyregex.js";

// Python's re.IGNORECASE lets [A-Za-z] and the letters i, k, s also match U+0130, U+0131, U+017F
// and U+212A; JavaScript's "iu" folding covers U+017F and U+212A only, so i is spelled out.
const WORD_EDGE_CHARS = "A-Za-z0-9\\u0130\\u0131\\u017f\\u212a";
const WORD_EDGE_BEFORE = `(?<![${WORD_EDGE_CHARS}])`;
const WORD_EDGE_AFTER = `(?![${WORD_EDGE_CHARS}])`;
/** @type {Map<string | null, (s: string) => string>} */
const CASES = new Map([
  [null, (s) => s],
  ["upper", (s) => s.toUpperCase()],
  ["lower", (s) => s.toLowerCase()],
]);

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** A slot value as a "giu" alternative that matches what Python's IGNORECASE matches. */
function valueAlternative(value) {
  return escapeRegExp(value).replace(/[iI]/g, "[iI\\u0130\\u0131]");
}

/** Python's sorted() order for strings: by code point (JavaScript compares UTF-16 units). */
function compareCodePoints(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** Finds slot values in text and lists the required slots an intent is missing. */
export class SlotExtractor {
  /**
   * @param {Record<string, string[]>} [values] slot -> known values
   * @param {Record<string, {regex: string, case?: string | null, exclude?: string[]}>} [patterns]
   * @param {Record<string, string[]>} [required] intent -> slot names it needs
   */
  constructor(values = {}, patterns = {}, required = {}) {
    values = values || {};
    patterns = patterns || {};
    /** @type {Record<string, string[]>} */
    this.required = {};
    for (const [intent, names] of Object.entries(required || {})) this.required[intent] = Array.from(names);
    /** @type {{slot: string, regex: RegExp, canonical: Map<string, string>}[]} */
    this._lists = [];
    /** @type {Map<string, Set<string>>} */
    const everyValue = new Map();
    for (const [slot, options] of Object.entries(values)) {
      /** @type {Map<string, string>} */
      const canonical = new Map();
      for (const v of options) if (typeof v === "string" && v.trim()) canonical.set(v.toLowerCase(), v);
      if (!canonical.size) continue;
      const keys = [...canonical.keys()].sort((a, b) => Array.from(b).length - Array.from(a).length || compareCodePoints(a, b));
      const regex = new RegExp(`${WORD_EDGE_BEFORE}(?:${keys.map(valueAlternative).join("|")})${WORD_EDGE_AFTER}`, "giu");
      this._lists.push({ slot, regex, canonical });
      everyValue.set(slot, new Set(canonical.keys()));
    }
    /** @type {{slot: string, regex: RegExp, hasValue: boolean, toCase: (s: string) => string, exclude: Set<string>}[]} */
    this._patterns = [];
    for (const [slot, spec] of Object.entries(patterns)) {
      let regex;
      let hasValue;
      let toCase;
      try {
        if (!isObject(spec) || typeof spec.regex !== "string") throw new Error("expected {regex, case, exclude}");
        const converted = pythonRegExp(spec.regex, "g");
        regex = converted;
        const groups = new RegExp(converted.source + "|", converted.flags.replace("g", "")).exec("")?.groups;
        hasValue = groups !== undefined && Object.hasOwn(groups, "value");
        toCase = CASES.get(spec.case ?? null);
        if (!toCase) throw new Error(`case must be "upper", "lower" or null, got ${JSON.stringify(spec.case)}`);
      } catch (error) {
        throw new BundleError(`slots.patterns.${slot}: invalid pattern spec (${/** @type {Error} */ (error).message})`);
      }
      const exclude = new Set(Array.from(spec.exclude || [], (x) => String(x).toLowerCase()));
      for (const [other, vals] of everyValue) if (other !== slot) for (const v of vals) exclude.add(v);
      this._patterns.push({ slot, regex, hasValue, toCase, exclude });
    }
  }

  /**
   * From the manifest's "slots" object ({values, patterns, required}).
   * @param {Record<string, any>} [slots]
   */
  static fromManifest(slots = {}) {
    return new SlotExtractor(slots.values, slots.patterns, slots.required);
  }

  /** Every slot name, sorted. */
  get slotNames() {
    const names = new Set([...this._lists.map((l) => l.slot), ...this._patterns.map((p) => p.slot)]);
    return [...names].sort(compareCodePoints);
  }

  /**
   * Slot name -> values found, in order of appearance, without repeats.
   * @param {string} text
   * @returns {Record<string, string[]>}
   */
  extract(text) {
    /** @type {Map<string, [number, string][]>} */
    const found = new Map();
    for (const { slot, regex, canonical } of this._lists) {
      const hits = [];
      for (const m of text.matchAll(regex)) hits.push([m.index, canonicalValue(canonical, m[0])]);
      if (hits.length) found.set(slot, hits);
    }
    for (const { slot, regex, hasValue, toCase, exclude } of this._patterns) {
      for (const m of text.matchAll(regex)) {
        const raw = hasValue ? m.groups?.value : m[0];
        if (raw && !exclude.has(raw.toLowerCase())) {
          if (!found.has(slot)) found.set(slot, []);
          found.get(slot).push([m.index, toCase(raw)]);
        }
      }
    }
    /** @type {Record<string, string[]>} */
    const result = {};
    for (const [slot, hits] of found) {
      const seen = [];
      for (const [, value] of hits.sort((a, b) => a[0] - b[0])) if (!seen.includes(value)) seen.push(value);
      result[slot] = seen;
    }
    return result;
  }

  /**
   * Required slots of `intent` that `found` has no value for.
   * @param {string} intent
   * @param {Record<string, string[]>} found
   */
  missing(intent, found) {
    return (this.required[intent] || []).filter((name) => !(found[name] && found[name].length));
  }
}

/** The listed spelling of a matched value; a case-folded match ("ſpy" for "spy") is looked up by regex. */
function canonicalValue(canonical, matched) {
  const direct = canonical.get(matched.toLowerCase());
  if (direct !== undefined) return direct;
  for (const [key, value] of canonical) {
    if (new RegExp(`^(?:${valueAlternative(key)})$`, "iu").test(matched)) return value;
  }
  return matched;
}
