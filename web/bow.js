// The bag-of-words tier (runtime_py/bow.py): a linear classifier whose weights ship as JSON.
// Sums run in the same order as the Python runtime's, so logits agree to the last bit or so.

import { softmax } from "./calibration.js";
import { BundleError } from "./errors.js";
import { FeatureConfig, Vectorizer } from "./features.js";

export const BOW_FORMAT = "bow";
export const BOW_FORMAT_VERSION = 1;

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Loaded bow.json: logits(text) and calibrated probabilities(text). */
export class BowModel {
  /**
   * @param {string[]} labels
   * @param {FeatureConfig} config
   * @param {string[]} vocab
   * @param {ArrayLike<number>[]} weights feature-major rows of labels.length numbers
   * @param {ArrayLike<number>} bias
   * @param {number} [temperature]
   * @param {number[] | null} [idf]
   */
  constructor(labels, config, vocab, weights, bias, temperature = 1.0, idf = null) {
    this.labels = labels.slice();
    this.vectorizer = new Vectorizer(config, vocab, idf);
    const n = this.labels.length;
    // One flat Float64Array: row i starts at i * n.
    this.weights = new Float64Array(weights.length * n);
    for (let i = 0; i < weights.length; i++) {
      const row = weights[i];
      for (let c = 0; c < n; c++) {
        const v = row[c];
        if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`weights[${i}][${c}] is not a finite number`);
        this.weights[i * n + c] = v;
      }
    }
    this.bias = Float64Array.from(bias);
    if (this.bias.some((v) => !Number.isFinite(v))) throw new TypeError("bias must hold finite numbers");
    this.temperature = temperature;
  }

  get config() {
    return this.vectorizer.config;
  }

  /** Raw scores, one per label. @param {string} text @returns {number[]} */
  logits(text) {
    const n = this.labels.length;
    const w = this.weights;
    const out = Array.from(this.bias);
    if (this.vectorizer.countsOnly) {
      // bias + every occurrence's row, left to right: the count-vector product.
      for (const i of this.vectorizer.occurrences(text)) {
        const base = i * n;
        for (let c = 0; c < n; c++) out[c] += w[base + c];
      }
      return out;
    }
    const [indices, values] = this.vectorizer.transform(text);
    if (!indices.length) return out;
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let k = 0; k < indices.length; k++) sum += w[indices[k] * n + c] * values[k];
      out[c] += sum;
    }
    return out;
  }

  /** Calibrated probabilities, one per label. @param {string} text */
  probabilities(text) {
    return softmax(this.logits(text), this.temperature);
  }

  /**
   * Validate a parsed bow.json and build the model; errors name `where` and the field.
   * @param {unknown} data
   * @param {string} [where]
   */
  static fromJson(data, where = "bow.json") {
    if (!isObject(data)) throw new BundleError(`${where}: expected a JSON object`);
    const d = /** @type {Record<string, any>} */ (data);
    if (d.format !== BOW_FORMAT) throw new BundleError(`${where}: not a bag-of-words model (format=${JSON.stringify(d.format)})`);
    if (d.format_version !== BOW_FORMAT_VERSION) {
      throw new BundleError(`${where}: format_version ${JSON.stringify(d.format_version)} is not supported (this runtime reads ${BOW_FORMAT_VERSION})`);
    }
    for (const field of ["labels", "vocab", "weights", "bias", "features"]) {
      if (!(field in d)) throw new BundleError(`${where}: missing field ${JSON.stringify(field)}`);
    }
    const config = FeatureConfig.fromJson(d.features, `${where}: features`);
    const { labels, vocab, weights, bias } = d;
    const temperature = d.temperature ?? 1.0;
    const idf = d.idf ?? null;
    if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string")) {
      throw new BundleError(`${where}: labels must be a list of names`);
    }
    if (!Array.isArray(vocab) || !Array.isArray(weights) || !Array.isArray(bias) || (idf !== null && !Array.isArray(idf))) {
      throw new BundleError(`${where}: vocab, weights, bias (and idf when present) must be lists`);
    }
    const n = labels.length;
    if (n < 2 || new Set(labels).size !== n) throw new BundleError(`${where}: labels must be at least two distinct names`);
    if (bias.length !== n) throw new BundleError(`${where}: bias has ${bias.length} values for ${n} labels`);
    if (weights.length !== vocab.length) {
      throw new BundleError(`${where}: weights has ${weights.length} rows for a vocabulary of ${vocab.length}`);
    }
    for (let i = 0; i < weights.length; i++) {
      const len = Array.isArray(weights[i]) ? weights[i].length : -1;
      if (len !== n) throw new BundleError(`${where}: weights[${i}] has ${len < 0 ? "no list of" : len} values for ${n} labels`);
    }
    if (!(typeof temperature === "number" && Number.isFinite(temperature) && temperature > 0)) {
      throw new BundleError(`${where}: temperature must be a positive number, got ${JSON.stringify(temperature)}`);
    }
    try {
      return new BowModel(labels, config, vocab, weights, bias, temperature, idf);
    } catch (error) {
      throw new BundleError(`${where}: ${/** @type {Error} */ (error).message}`);
    }
  }
}

/** A BowModel as a router tier. */
export class BowTier {
  /** @param {string} name @param {BowModel} model */
  constructor(name, model) {
    this.name = name;
    this.kind = "bow";
    this.model = model;
    this.labels = model.labels;
    this.temperature = model.temperature;
  }

  /** @param {string} text */
  logits(text) {
    return this.model.logits(text);
  }

  /** @param {string} text */
  probabilities(text) {
    return this.model.probabilities(text);
  }

  /** What status() reports about this tier beyond name and kind (as runtime_py's describe()). */
  describe() {
    return {
      labels: this.labels.length,
      temperature: this.temperature,
      vocab_size: this.model.vectorizer.vocab.length,
      features: this.model.config.toJson(),
      idf: this.model.vectorizer.idf !== null,
    };
  }
}
