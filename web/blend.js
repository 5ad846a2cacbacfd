// Blended tiers (runtime_py/blend.py): a tier whose answer averages its calibrated probabilities
// with another tier's, as the manifest's {"blend": {"tier", "weight", "temperature"}} asks:
// weight * own + (1 - weight) * partner, label by label, then softmax(log(blend) / temperature).
// When the partner is not loaded the tier answers alone and says why in describe().

import { softmax } from "./calibration.js";
import { BundleError } from "./errors.js";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

/**
 * The validated blend field of a tier spec: {partner, weight, temperature}, or null.
 * @param {import("./bundle.js").TierSpec} spec
 */
export function blendSetting(spec) {
  const raw = spec.extra?.blend;
  if (raw === undefined || raw === null) return null;
  const where = `tier ${JSON.stringify(spec.name)}: blend`;
  if (!isObject(raw)) throw new BundleError(`${where}: expected an object with 'tier' and 'weight'`);
  const { tier: partner, weight } = raw;
  const temperature = raw.temperature ?? 1.0;
  if (typeof partner !== "string" || !partner || partner === spec.name) {
    throw new BundleError(`${where}.tier: expected the name of another tier, got ${JSON.stringify(partner)}`);
  }
  if (!isNumber(weight) || weight < 0 || weight > 1) throw new BundleError(`${where}.weight: expected a number between 0 and 1, got ${JSON.stringify(weight)}`);
  if (!isNumber(temperature) || temperature <= 0) throw new BundleError(`${where}.temperature: expected a positive number, got ${JSON.stringify(temperature)}`);
  return { partner, weight, temperature };
}

/** `own` with its probabilities averaged with `partner`'s (or alone when partner is null). */
export class BlendedTier {
  /**
   * @param {import("./router.js").Tier} own @param {import("./router.js").Tier | null} partner
   * @param {{partner: string, weight: number, temperature: number}} setting @param {string | null} why
   */
  constructor(own, partner, setting, why = null) {
    this.own = own;
    this.partner = partner;
    this.setting = setting;
    this.why = why;
    this.name = own.name;
    this.kind = own.kind;
    this.labels = own.labels;
    this.temperature = own.temperature;
    this.order = [];
    if (partner) {
      const index = new Map(partner.labels.map((label, i) => [label, i]));
      if (index.size !== own.labels.length || !own.labels.every((label) => index.has(label))) {
        throw new BundleError(`tier ${JSON.stringify(own.name)} cannot blend with ${JSON.stringify(partner.name)}: their intents differ`);
      }
      this.order = own.labels.map((label) => /** @type {number} */ (index.get(label)));
    }
  }

  /** @param {string} text */
  async probabilities(text) {
    const own = await this.own.probabilities(text);
    if (!this.partner) return own;
    return this.mix(own, await this.partner.probabilities(text));
  }

  /** The blend of the tier's probabilities and its partner's (in the partner's label order). */
  mix(own, partner) {
    const { weight: w, temperature } = this.setting;
    const mixed = own.map((p, i) => w * p + (1.0 - w) * partner[this.order[i]]);
    if (temperature === 1.0) return mixed;
    return softmax(mixed.map((p) => (p > 0 ? Math.log(p) : -Infinity)), temperature);
  }

  describe() {
    const blend = { tier: this.setting.partner, weight: this.setting.weight, temperature: this.setting.temperature, active: this.partner !== null };
    if (this.why) blend.why = this.why;
    return { ...this.own.describe(), blend };
  }
}

/**
 * `tiers` with each tier whose spec asks for a blend wrapped, and the problems found (a malformed
 * blend field leaves its tier unblended), as runtime_py's blend_tiers.
 * @param {import("./router.js").Tier[]} tiers
 * @param {Map<string, import("./bundle.js").TierSpec>} specs
 * @returns {[import("./router.js").Tier[], {where: string, error: string}[]]}
 */
export function blendTiers(tiers, specs) {
  const byName = new Map(tiers.map((t) => [t.name, t]));
  const problems = [];
  const out = tiers.map((tier) => {
    const spec = specs.get(tier.name);
    try {
      const setting = spec ? blendSetting(spec) : null;
      if (!setting) return tier;
      const found = byName.get(setting.partner) ?? null;
      return new BlendedTier(tier, found, setting, found ? null : `tier ${JSON.stringify(setting.partner)} is not loaded`);
    } catch (error) {
      problems.push({ where: `tier ${tier.name} (blend)`, error: /** @type {Error} */ (error).message });
      return tier;
    }
  });
  return [out, problems];
}
