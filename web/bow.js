// The bag-of-words tier (runtime_py/bow.py): a linear classifier whose weights ship as JSON.
// Sums run in the same order as the Python runtime's, so logits agree to the last bit or so.
// Format version 2 packs weights and idf as little-endian float32 in base64 (unpackFloats);
// version 1's plain lists still load. Version 3 adds int8 weights with one float32 scale per row
// (row i's weights are q * scales[i], exact in float64) and the token_l2 normalisation, whose
// per-token shares the model caches (runtime_py/bow.py BowModel._grouped_logits). Version 4 adds
// features.word_pieces: a block of word-piece rows ("~bank", "~##ing") averaged over the text's
// pieces (web/features.js wordPieces); a model without pieces is still written as version 3.

import { softmax } from "./calibration.js";
import { BundleError } from "./errors.js";
import { allFinite, FeatureConfig, Vectorizer } from "./features.js";

export const BOW_FORMAT = "bow";
export const BOW_FORMAT_VERSION = 3;
export const PIECES_FORMAT_VERSION = 4; // what a model with word pieces is written as
export const READABLE_VERSIONS = [1, 2, 3, 4];
export const TOKEN_CACHE_SIZE = 4096; // tokens (and word n-grams) whose shares a token_l2 model keeps; cleared whole when full
/** @type {[null, number]} */
const NOT_IN_VOCAB = [null, 0];
const REQUIRED_FIELDS = ["labels", "vocab", "weights", "bias", "features"];
const PACKED_DTYPE = "float32";
const INT8_DTYPE = "int8";
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const count = (v) => (Array.isArray(v) ? v.length : "no list of");

function base64Bytes(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * A field of shape[0] * (shape[1] ?? 1) numbers, row-major: a packed array {dtype: "float32", shape,
 * base64} (version 2) as a Float32Array over the decoded bytes (each value reads as a float64
 * exactly, as runtime_py reads it), or (nested) lists as a Float64Array (a non-number as NaN); like
 * runtime_py's unpack_floats, except that finiteness is left to BowModel and Vectorizer, which check
 * it for every caller (checking here too would walk the weights twice on the first answer's path).
 * @param {unknown} value @param {[number] | [number, number]} shape @param {string} where
 * @returns {Float32Array | Float64Array}
 */
export function unpackFloats(value, shape, where) {
  const total = shape.reduce((a, b) => a * b, 1);
  let out;
  if (isObject(value)) {
    const v = /** @type {Record<string, any>} */ (value);
    if (v.dtype !== PACKED_DTYPE) {
      throw new BundleError(`${where}: dtype ${JSON.stringify(v.dtype)} is not supported (expected "${PACKED_DTYPE}"${shape.length === 2 ? ` or "${INT8_DTYPE}"` : ""})`);
    }
    const bytes = packedBytes(v, shape, 4, where);
    if (LITTLE_ENDIAN) {
      const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice(); // a Float32Array view needs 4-byte alignment
      out = new Float32Array(aligned.buffer, aligned.byteOffset, total);
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      out = new Float32Array(total);
      for (let i = 0; i < total; i++) out[i] = view.getFloat32(4 * i, true);
    }
  } else if (shape.length === 1) {
    if (!Array.isArray(value) || value.length !== shape[0]) throw new BundleError(`${where} has ${count(value)} entries for a vocabulary of ${shape[0]}`);
    out = Float64Array.from(value, (x) => (typeof x === "number" ? x : NaN));
  } else {
    if (!Array.isArray(value) || value.length !== shape[0]) throw new BundleError(`${where} has ${count(value)} rows for a vocabulary of ${shape[0]}`);
    const [rows, cols] = shape;
    out = new Float64Array(total);
    for (let i = 0; i < rows; i++) {
      const row = value[i];
      if (!Array.isArray(row) || row.length !== cols) throw new BundleError(`${where}[${i}] has ${count(row)} values for ${cols} labels`);
      for (let c = 0; c < cols; c++) out[i * cols + c] = typeof row[c] === "number" ? row[c] : NaN;
    }
  }
  return out;
}

/**
 * The bytes of a packed array {shape, base64} holding `width` bytes per value, checked against `shape`.
 * @param {Record<string, any>} v @param {number[]} shape @param {number} width @param {string} where @returns {Uint8Array}
 */
function packedBytes(v, shape, width, where) {
  if (!Array.isArray(v.shape) || v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
    throw new BundleError(`${where}: shape ${JSON.stringify(v.shape)} does not match the expected ${JSON.stringify(shape)}`);
  }
  let bytes;
  try {
    if (typeof v.base64 !== "string") throw new Error("not a string");
    bytes = base64Bytes(v.base64);
  } catch (error) {
    throw new BundleError(`${where}: invalid base64 (${/** @type {Error} */ (error).message})`);
  }
  const expected = width * shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== expected) throw new BundleError(`${where}: ${bytes.byteLength} bytes for shape ${JSON.stringify(shape)} (expected ${expected})`);
  // atob skips whitespace and accepts missing padding; RFC 4648 (and runtime_py) do not. With the
  // byte count right, any such text is longer or shorter than the padded encoding: no scan needed.
  if (v.base64.length !== 4 * Math.ceil(bytes.byteLength / 3)) {
    throw new BundleError(`${where}: invalid base64 (${v.base64.length} characters for ${bytes.byteLength} bytes: expected padded RFC 4648 without whitespace)`);
  }
  return bytes;
}

/**
 * A packed int8 array {dtype: "int8", shape, base64} of shape[0] * shape[1] values in [-127, 127].
 * @param {Record<string, any>} v @param {[number, number]} shape @param {string} where @returns {Int8Array}
 */
export function unpackInt8(v, shape, where) {
  const total = shape[0] * shape[1];
  const bytes = packedBytes(v, shape, 1, where);
  const ints = new Int8Array(bytes.buffer, bytes.byteOffset, total);
  if (ints.includes(-128)) throw new BundleError(`${where}: int8 values must lie in [-127, 127]`);
  return ints;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Loaded bow.json: logits(text) and calibrated probabilities(text). */
export class BowModel {
  /**
   * @param {string[]} labels
   * @param {FeatureConfig} config
   * @param {string[]} vocab
   * @param {ArrayLike<number>[] | Float32Array | Float64Array} weights feature-major rows of
   *   labels.length numbers, or all of them in one flat typed array (row i starts at i * labels.length)
   * @param {ArrayLike<number>} bias
   * @param {number} [temperature]
   * @param {ArrayLike<number> | null} [idf]
   * @param {Float32Array | Float64Array | null} [scales] with Int8Array weights: row i's weights are q * scales[i]
   */
  constructor(labels, config, vocab, weights, bias, temperature = 1.0, idf = null, scales = null) {
    this.labels = labels.slice();
    this.vectorizer = new Vectorizer(config, vocab, idf);
    const n = this.labels.length;
    this.scales = null;
    /**
     * token_l2: each token's word share and squared norm, character share and squared norm, piece
     * share and number of pieces (null and 0 without word_pieces).
     * @type {Map<string, [Float64Array | null, number, Float64Array | null, number, Float64Array | null, number]>}
     */
    this.tokenCache = new Map();
    /** @type {Map<string, [Float64Array | null, number]>} word n-grams (token_l2), as tokenCache */
    this.gramCache = new Map();
    // One flat typed array: row i starts at i * n.
    if (weights instanceof Int8Array) {
      if (!scales || scales.length !== vocab.length || weights.length !== vocab.length * n) {
        throw new RangeError(`${weights.length} int8 weights and ${scales ? scales.length : 0} scales for ${vocab.length} features x ${n} labels`);
      }
      if (!allFinite(scales)) throw new TypeError("scales: every value must be a finite number");
      for (let i = 0; i < scales.length; i++) if (scales[i] < 0) throw new RangeError("scales: every value must be >= 0");
      this.weights = weights;
      this.scales = scales;
    } else if (weights instanceof Float64Array || weights instanceof Float32Array) {
      if (weights.length !== vocab.length * n) throw new RangeError(`weights has ${weights.length} values for ${vocab.length} features x ${n} labels`);
      if (!allFinite(weights)) throw new TypeError("weights: every value must be a finite number");
      this.weights = weights;
    } else {
      this.weights = new Float64Array(weights.length * n);
      for (let i = 0; i < weights.length; i++) {
        const row = weights[i];
        for (let c = 0; c < n; c++) {
          const v = row[c];
          if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`weights[${i}][${c}] is not a finite number`);
          this.weights[i * n + c] = v;
        }
      }
    }
    this.bias = Float64Array.from(bias);
    if (this.bias.some((v) => !Number.isFinite(v))) throw new TypeError("bias must hold finite numbers");
    this.temperature = temperature;
  }

  get config() {
    return this.vectorizer.config;
  }

  /** Weight of feature row i for label c (int8 rows: q * scale, exact). @param {number} i @param {number} c */
  weight(i, c) {
    const n = this.labels.length;
    return this.scales ? this.weights[i * n + c] * this.scales[i] : this.weights[i * n + c];
  }

  /**
   * sum_k values[k] * row(indices[k]), label by label, in index order (null if empty).
   * @param {number[]} indices @param {number[]} values @returns {Float64Array | null}
   */
  share(indices, values) {
    if (!indices.length) return null;
    const n = this.labels.length;
    const w = this.weights;
    const scales = this.scales;
    const out = new Float64Array(n);
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let k = 0; k < indices.length; k++) {
        const i = indices[k];
        sum += (scales ? w[i * n + c] * scales[i] : w[i * n + c]) * values[k];
      }
      out[c] = sum;
    }
    return out;
  }

  /**
   * Feature i with `value`, alone in a word n-gram's place: its share and squared value.
   * @param {number} i @param {number} value @returns {[Float64Array, number]}
   */
  scaled(i, value) {
    return [/** @type {Float64Array} */ (this.share([i], [value])), value * value];
  }

  /**
   * The n-gram group of a text that repeats an n-gram: pushes each distinct n-gram's share onto
   * `words` in first-seen order and returns `q` plus their squared values, added in that order.
   * @param {string[]} grams @param {Float64Array[]} words @param {number} q
   */
  repeatedGrams(grams, words, q) {
    const [indices, values] = this.vectorizer.groupValues(grams);
    for (let k = 0; k < indices.length; k++) {
      const [share, squared] = this.scaled(indices[k], values[k]);
      words.push(share);
      q += squared;
    }
    return q;
  }

  /**
   * token_l2: bias + words / sqrt(qw) + chars / sqrt(qc) (+ pieces / m with word_pieces), with each
   * token's shares cached. @param {string} text
   */
  groupedLogits(text) {
    const vec = this.vectorizer;
    const toks = vec.extractor.tokens(text);
    const cache = this.tokenCache;
    const words = [];
    const chars = [];
    const pieces = [];
    let qw = 0;
    let qc = 0;
    let m = 0;
    for (const tok of toks) {
      let hit = cache.get(tok);
      if (hit === undefined) {
        if (cache.size >= TOKEN_CACHE_SIZE) cache.clear();
        const [[wi, wv, wq], [ci, cv, cq], piece] = vec.tokenGroups(tok); // piece: word_pieces only
        hit = [this.share(wi, wv), wq, this.share(ci, cv), cq, piece ? this.share(piece[0], piece[1]) : null, piece ? piece[3] : 0];
        cache.set(tok, hit);
      }
      if (hit[0] !== null) {
        words.push(hit[0]);
        qw += hit[1];
      }
      if (hit[2] !== null) {
        chars.push(hit[2]);
        qc += hit[3];
      }
      if (hit[4] !== null) {
        pieces.push(hit[4]);
        m += hit[5];
      }
    }
    if (toks.length > 1 && vec.config.ngram_max > 1) {
      // The longer n-grams' group, one share per distinct n-gram in first-seen order. An n-gram
      // seen once (nearly always) costs one lookup in a cache keyed by its string.
      const grams = vec.extractor.longGrams(toks);
      if (new Set(grams).size < grams.length) {
        qw = this.repeatedGrams(grams, words, qw);
      } else {
        const units = this.gramCache;
        for (const gram of grams) {
          let unit = units.get(gram);
          if (unit === undefined) {
            if (units.size >= TOKEN_CACHE_SIZE) units.clear();
            const [indices, values] = vec.groupValues([gram]);
            unit = indices.length ? this.scaled(indices[0], values[0]) : NOT_IN_VOCAB;
            units.set(gram, unit);
          }
          if (unit[0] !== null) {
            words.push(unit[0]);
            qw += unit[1];
          }
        }
      }
    }
    const n = this.labels.length;
    const out = Array.from(this.bias);
    // Each block, label by label in order, times its scale: 1 / sqrt(q) for words and characters,
    // 1 / m (the number of pieces) for word pieces.
    const blocks = /** @type {[Float64Array[], number][]} */ ([[words, 1.0 / Math.sqrt(qw)], [chars, 1.0 / Math.sqrt(qc)], [pieces, 1.0 / m]]);
    for (const [parts, scale] of blocks) {
      if (!parts.length) continue;
      for (let c = 0; c < n; c++) {
        let sum = 0;
        for (let k = 0; k < parts.length; k++) sum += parts[k][c];
        out[c] += sum * scale;
      }
    }
    return out;
  }

  /** Raw scores, one per label. @param {string} text @returns {number[]} */
  logits(text) {
    if (this.vectorizer.config.norm === "token_l2") return this.groupedLogits(text);
    const n = this.labels.length;
    const w = this.weights;
    const scales = this.scales;
    const out = Array.from(this.bias);
    if (this.vectorizer.countsOnly) {
      // bias + every occurrence's row, left to right: the count-vector product.
      for (const i of this.vectorizer.occurrences(text)) {
        const base = i * n;
        for (let c = 0; c < n; c++) out[c] += scales ? w[base + c] * scales[i] : w[base + c];
      }
      return out;
    }
    const [indices, values] = this.vectorizer.transform(text);
    if (!indices.length) return out;
    for (let c = 0; c < n; c++) {
      let sum = 0;
      for (let k = 0; k < indices.length; k++) {
        const i = indices[k];
        sum += (scales ? w[i * n + c] * scales[i] : w[i * n + c]) * values[k];
      }
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
   * docs/schema/bow.schema.json states the same rules; tests/fixtures/conformance holds the cases
   * both runtimes must agree on.
   * @param {unknown} data
   * @param {string} [where]
   */
  static fromJson(data, where = "bow.json") {
    if (!isObject(data)) throw new BundleError(`${where}: expected a JSON object`);
    const d = /** @type {Record<string, any>} */ (data);
    if (d.format !== BOW_FORMAT) throw new BundleError(`${where}: format ${JSON.stringify(d.format)}: not a bag-of-words model (expected "${BOW_FORMAT}")`);
    if (!READABLE_VERSIONS.includes(d.format_version)) {
      throw new BundleError(`${where}: format_version ${JSON.stringify(d.format_version)} is not supported (this runtime reads ${READABLE_VERSIONS.join(", ")})`);
    }
    for (const field of REQUIRED_FIELDS) {
      if (!(field in d)) throw new BundleError(`${where}: ${field} is missing (a bow.json has ${REQUIRED_FIELDS.join(", ")})`);
    }
    const config = FeatureConfig.fromJson(d.features, `${where}: features`);
    if (config.word_pieces && d.format_version < PIECES_FORMAT_VERSION) {
      throw new BundleError(`${where}: features.word_pieces needs format_version ${PIECES_FORMAT_VERSION} (this file says ${d.format_version})`);
    }
    const { labels, vocab, bias } = d;
    const n = Array.isArray(labels) ? labels.length : 0;
    if (n < 2 || !labels.every((l) => typeof l === "string" && l) || new Set(labels).size !== n) {
      throw new BundleError(`${where}: labels must be a list of at least two distinct names`);
    }
    if (!Array.isArray(vocab)) throw new BundleError(`${where}: vocab must be a list of features`);
    if (!Array.isArray(bias) || bias.length !== n) throw new BundleError(`${where}: bias has ${count(bias)} values for ${n} labels`);
    if (!bias.every((v) => typeof v === "number" && Number.isFinite(v))) throw new BundleError(`${where}: bias: every value must be a finite number`);
    let weights;
    let scales = null;
    if (isObject(d.weights) && d.weights.dtype === INT8_DTYPE) {
      weights = unpackInt8(d.weights, [vocab.length, n], `${where}: weights`);
      if (d.scales === null || d.scales === undefined) throw new BundleError(`${where}: scales is missing (int8 weights need one float32 scale per feature)`);
      scales = unpackFloats(d.scales, [vocab.length], `${where}: scales`);
      if (!allFinite(scales)) throw new BundleError(`${where}: scales: every value must be a finite number`);
      for (let i = 0; i < scales.length; i++) if (scales[i] < 0) throw new BundleError(`${where}: scales: every value must be >= 0`);
    } else {
      if (d.scales !== null && d.scales !== undefined) throw new BundleError(`${where}: scales is only for int8 weights`);
      weights = unpackFloats(d.weights, [vocab.length, n], `${where}: weights`);
    }
    const idf = d.idf === null || d.idf === undefined ? null : unpackFloats(d.idf, [vocab.length], `${where}: idf`);
    const temperature = d.temperature ?? 1.0; // null counts as absent
    if (!(typeof temperature === "number" && Number.isFinite(temperature) && temperature > 0)) {
      throw new BundleError(`${where}: temperature must be a positive number, got ${JSON.stringify(temperature)}`);
    }
    try {
      return new BowModel(labels, config, vocab, weights, bias, temperature, idf, scales);
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
