// Bag-of-words features, the same steps as runtime_py/features.py (docs/BUNDLE.md "Features"):
// tokens, word n-grams, optional character n-grams, optional word pieces (bow.json version 4), then
// values over a fixed vocabulary.

import { BundleError } from "./errors.js";
import { splitWord } from "./pieces.js";
import { pythonRegExp } from "./pyregex.js";

export const TF_MODES = ["count", "log", "binary"];
export const NORMS = [null, "l2", "token_l2"];
const KNOWN = new Set(["token_pattern", "lowercase", "ngram_max", "char_ngrams", "tf", "norm", "word_pieces"]);
const ASCII_ONLY = /^[\x00-\x7f]*$/;
export const PIECE_MARK = "~"; // vocabulary entries "~bank", "~##ing": word pieces (word_pieces only)
const CONTINUATION = "##";
const MAX_WORD_CHARS = 100; // BERT's: a longer token has no pieces
/** A token without pieces: its piece group (shared, never changed). */
const NO_PIECES = /** @type {[number[], number[], number, number]} */ (Object.freeze([[], [], 0, 0]));

const isInt = (v) => typeof v === "number" && Number.isInteger(v);

/** How text turns into features; bow.json's "features" object. */
export class FeatureConfig {
  /**
   * @param {{token_pattern?: string, lowercase?: boolean, ngram_max?: number,
   *          char_ngrams?: [number, number] | null, tf?: string, norm?: string | null,
   *          word_pieces?: boolean}} [options]
   */
  constructor({ token_pattern = "[A-Za-z0-9']+", lowercase = true, ngram_max = 2, char_ngrams = null, tf = "count", norm = null, word_pieces = false } = {}) {
    if (!isInt(ngram_max) || ngram_max < 1) throw new RangeError(`ngram_max must be >= 1, got ${JSON.stringify(ngram_max)}`);
    if (char_ngrams !== null) {
      const ok = Array.isArray(char_ngrams) && char_ngrams.length === 2 && char_ngrams.every(isInt);
      if (!ok || !(1 <= char_ngrams[0] && char_ngrams[0] <= char_ngrams[1])) {
        throw new RangeError(`char_ngrams must be (lo, hi) with 1 <= lo <= hi, got ${JSON.stringify(char_ngrams)}`);
      }
    }
    if (!TF_MODES.includes(tf)) throw new RangeError(`tf must be one of ${TF_MODES.join(", ")}, got ${JSON.stringify(tf)}`);
    if (!NORMS.includes(norm)) throw new RangeError(`norm must be null, "l2" or "token_l2", got ${JSON.stringify(norm)}`);
    if (typeof word_pieces !== "boolean") throw new TypeError(`word_pieces must be true or false, got ${JSON.stringify(word_pieces)}`);
    if (word_pieces && norm !== "token_l2") throw new RangeError(`word_pieces needs norm "token_l2", got norm ${JSON.stringify(norm)}`);
    if (typeof lowercase !== "boolean") throw new TypeError(`lowercase must be true or false, got ${JSON.stringify(lowercase)}`);
    if (typeof token_pattern !== "string") throw new TypeError(`token_pattern must be a string, got ${JSON.stringify(token_pattern)}`);
    this.token_pattern = token_pattern;
    this.lowercase = lowercase;
    this.ngram_max = ngram_max;
    this.char_ngrams = char_ngrams ? [char_ngrams[0], char_ngrams[1]] : null;
    this.tf = tf;
    this.norm = norm;
    this.word_pieces = word_pieces;
    try {
      this.tokenRegExp = pythonRegExp(token_pattern, "g");
    } catch (error) {
      // A pattern that Python or this converter refuses.
      throw new SyntaxError(`token_pattern ${JSON.stringify(token_pattern)} is not a valid regular expression (${/** @type {Error} */ (error).message})`);
    }
    const groups = new RegExp(this.tokenRegExp.source + "|", "u").exec("").length - 1;
    if (groups > 1) throw new SyntaxError(`token_pattern ${JSON.stringify(token_pattern)} has ${groups} groups; at most one is supported`);
    this.tokenGroup = groups;
    Object.freeze(this);
  }

  /**
   * Validate bow.json's "features" object; errors name `where`.
   * @param {unknown} data
   * @param {string} [where]
   */
  static fromJson(data, where = "features") {
    if (data === null || typeof data !== "object" || Array.isArray(data)) throw new BundleError(`${where}: expected an object`);
    const unknown = Object.keys(data).filter((k) => !KNOWN.has(k)).sort();
    if (unknown.length) throw new BundleError(`${where}: unknown feature settings ${JSON.stringify(unknown)}`);
    try {
      return new FeatureConfig(/** @type {any} */ (data));
    } catch (error) {
      // The constructor's messages start with the setting's name: "features.ngram_max must be ...".
      throw new BundleError(`${where}.${/** @type {Error} */ (error).message}`);
    }
  }

  /** bow.json's "features" object; word_pieces only when true (a file without pieces stays version 3). */
  toJson() {
    const { token_pattern, lowercase, ngram_max, char_ngrams, tf, norm } = this;
    /** @type {{token_pattern: string, lowercase: boolean, ngram_max: number, char_ngrams: number[] | null,
     *          tf: string, norm: string | null, word_pieces?: boolean}} */
    const out = { token_pattern, lowercase, ngram_max, char_ngrams, tf, norm };
    if (this.word_pieces) out.word_pieces = true;
    return out;
  }
}

/** Turns text into feature strings (with repeats) according to a FeatureConfig. */
export class FeatureExtractor {
  /** @param {FeatureConfig} config */
  constructor(config) {
    this.config = config;
  }

  /** @param {string} text @returns {string[]} */
  tokens(text) {
    const source = this.config.lowercase ? text.toLowerCase() : text;
    const re = this.config.tokenRegExp;
    const group = this.config.tokenGroup;
    const out = [];
    re.lastIndex = 0;
    if (!group) return source.match(re) ?? out; // a global RegExp without groups: every whole match
    for (const m of source.matchAll(re)) out.push(m[1] ?? "");
    return out;
  }

  /** `#`-prefixed character n-grams of one token padded with spaces ([] if not configured). @param {string} tok */
  charGrams(tok) {
    const out = [];
    if (!this.config.char_ngrams) return out;
    const [lo, hi] = this.config.char_ngrams;
    const padded = ` ${tok} `;
    const chars = ASCII_ONLY.test(padded) ? null : Array.from(padded);
    const size = chars ? chars.length : padded.length;
    for (let n = lo; n <= Math.min(hi, size); n++) {
      for (let i = 0; i + n <= size; i++) out.push("#" + (chars ? chars.slice(i, i + n).join("") : padded.slice(i, i + n)));
    }
    return out;
  }

  /** Word n-grams for n = 2..ngram_max, joined with "_". @param {string[]} toks */
  longGrams(toks) {
    const out = [];
    if (this.config.ngram_max === 2) {
      for (let i = 0; i + 1 < toks.length; i++) out.push(toks[i] + "_" + toks[i + 1]);
      return out;
    }
    for (let n = 2; n <= this.config.ngram_max; n++) {
      for (let i = 0; i + n <= toks.length; i++) out.push(toks.slice(i, i + n).join("_"));
    }
    return out;
  }

  /** @param {string} text @returns {string[]} */
  features(text) {
    const toks = this.tokens(text);
    const feats = toks.slice();
    for (let n = 2; n <= this.config.ngram_max; n++) {
      for (let i = 0; i + n <= toks.length; i++) feats.push(toks.slice(i, i + n).join("_"));
    }
    if (this.config.char_ngrams) {
      const [lo, hi] = this.config.char_ngrams;
      for (const tok of toks) {
        const padded = ` ${tok} `;
        // Python slices code points: split only when the token is not ASCII.
        const chars = ASCII_ONLY.test(padded) ? null : Array.from(padded);
        const size = chars ? chars.length : padded.length;
        for (let n = lo; n <= Math.min(hi, size); n++) {
          for (let i = 0; i + n <= size; i++) feats.push("#" + (chars ? chars.slice(i, i + n).join("") : padded.slice(i, i + n)));
        }
      }
    }
    return feats;
  }
}

/**
 * BERT's greedy longest-match-first WordPiece of `word` over `pieces` ("##" marks a piece that
 * continues a word), as runtime_py's word_pieces: [] when some part of the word is not covered
 * (BERT's [UNK]) or the word is longer than 100 characters. Python slices code points: a token
 * that is not ASCII is split with Array.from.
 * @param {string} word
 * @param {{has(key: string): boolean}} pieces a Set (or Map) of pieces: "bank", "##ing"
 * @param {number} maxLen the longest piece in code points, "##" not counted (any larger value gives the same pieces)
 * @returns {string[]}
 */
export function wordPieces(word, pieces, maxLen) {
  return splitWord(word, pieces, maxLen, CONTINUATION, MAX_WORD_CHARS) ?? [];
}

/**
 * True when every value is a finite number. A plain loop: `every(Number.isFinite)` is several times
 * slower on the cold code that loads a model, which is on the first answer's path.
 * @param {ArrayLike<number>} values
 */
export function allFinite(values) {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== "number" || v - v !== 0) return false; // NaN and +-Infinity give NaN
  }
  return true;
}

/** Maps text to (indices, values) over a fixed vocabulary. */
export class Vectorizer {
  /**
   * @param {FeatureConfig} config
   * @param {string[]} vocab
   * @param {ArrayLike<number> | null} [idf]
   */
  constructor(config, vocab, idf = null) {
    if (idf !== null && idf.length !== vocab.length) {
      throw new RangeError(`idf has ${idf.length} entries for a vocabulary of ${vocab.length}`);
    }
    this.config = config;
    this.extractor = new FeatureExtractor(config);
    this.vocab = vocab.slice();
    /** @type {Map<string, number>} */
    this.index = new Map();
    for (let i = 0; i < this.vocab.length; i++) {
      if (typeof this.vocab[i] !== "string") throw new TypeError(`vocab[${i}] is not a string`);
      this.index.set(this.vocab[i], i);
    }
    if (this.index.size !== this.vocab.length) throw new RangeError("vocab has duplicate features");
    // float32 values (bow.json version 2) read as float64 exactly, so a Float32Array is kept as it is
    this.idf = idf === null ? null : idf instanceof Float32Array || idf instanceof Float64Array ? idf : Float64Array.from(idf);
    if (this.idf && !allFinite(this.idf)) throw new TypeError("idf: every value must be a finite number");
    /** @type {Set<string> | null} the word pieces ("~" stripped) when config.word_pieces, else null */
    this.pieces = null;
    /** the longest piece in code points, "##" not counted (0 without pieces) */
    this.maxPiece = 0;
    if (config.word_pieces) {
      this.pieces = new Set();
      for (const feat of this.vocab) {
        if (!feat.startsWith(PIECE_MARK)) continue;
        const piece = feat.slice(PIECE_MARK.length);
        this.pieces.add(piece);
        const body = piece.startsWith(CONTINUATION) ? piece.slice(CONTINUATION.length) : piece;
        const length = ASCII_ONLY.test(body) ? body.length : Array.from(body).length;
        if (length > this.maxPiece) this.maxPiece = length;
      }
    }
  }

  /** True when every value is a plain count (the reference recipe). */
  get countsOnly() {
    return this.config.tf === "count" && this.idf === null && this.config.norm === null;
  }

  /** Vocabulary index of every feature occurrence, repeats included. @param {string} text */
  occurrences(text) {
    const out = [];
    for (const feat of this.extractor.features(text)) {
      const i = this.index.get(feat);
      if (i !== undefined) out.push(i);
    }
    return out;
  }

  /**
   * One group's vocabulary indices (first-seen order), values (tf times idf) and squared norm.
   * @param {string[]} feats @returns {[number[], number[], number]}
   */
  groupValues(feats) {
    /** @type {Map<number, number>} */
    const counts = new Map();
    for (const feat of feats) {
      const i = this.index.get(feat);
      if (i !== undefined) counts.set(i, (counts.get(i) ?? 0) + 1);
    }
    const indices = [...counts.keys()];
    const values = [];
    const tf = this.config.tf;
    for (const [i, c] of counts) {
      let v = tf === "count" ? c : tf === "log" ? 1.0 + Math.log(c) : 1.0;
      if (this.idf !== null) v *= this.idf[i];
      values.push(v);
    }
    let q = 0;
    for (const v of values) q += v * v;
    return [indices, values, q];
  }

  /**
   * token_l2: one token's word group (its unigram), character group and, with word_pieces, its piece
   * group: [indices, values, q, m] as groupValues over its "~" pieces plus m, its number of pieces
   * (repeats counted). Without word_pieces only the first two groups.
   * @param {string} tok
   * @returns {[[number[], number[], number], [number[], number[], number]] |
   *           [[number[], number[], number], [number[], number[], number], [number[], number[], number, number]]}
   */
  tokenGroups(tok) {
    const word = this.groupValues([tok]);
    const char = this.groupValues(this.extractor.charGrams(tok));
    if (this.pieces === null) return [word, char];
    return [word, char, this.pieceGroup(tok)];
  }

  /**
   * word_pieces: one token's piece group (as groupValues) and its number of pieces (runtime_py piece_group).
   * @param {string} tok @returns {[number[], number[], number, number]}
   */
  pieceGroup(tok) {
    if (this.pieces === null) return NO_PIECES;
    const pieces = wordPieces(tok, this.pieces, this.maxPiece);
    if (!pieces.length) return NO_PIECES;
    const feats = pieces.map((p) => PIECE_MARK + p);
    return [...this.groupValues(feats), pieces.length];
  }

  /**
   * Sparse vector of `text`: vocabulary indices in first-seen order, and their values.
   * @param {string} text
   * @returns {[number[], number[]]}
   */
  transform(text) {
    if (this.config.norm === "token_l2") return this.transformGrouped(text);
    /** @type {Map<number, number>} */
    const counts = new Map();
    for (const feat of this.extractor.features(text)) {
      const i = this.index.get(feat);
      if (i !== undefined) counts.set(i, (counts.get(i) ?? 0) + 1);
    }
    const indices = [...counts.keys()];
    let values;
    if (this.config.tf === "count") values = [...counts.values()];
    else if (this.config.tf === "log") values = [...counts.values()].map((c) => 1.0 + Math.log(c));
    else values = indices.map(() => 1.0);
    if (this.idf !== null) {
      const idf = this.idf;
      values = values.map((v, k) => v * idf[indices[k]]);
    }
    if (this.config.norm === "l2" && values.length) {
      let sum = 0;
      for (const v of values) sum += v * v;
      const scale = Math.sqrt(sum);
      values = values.map((v) => v / scale);
    }
    return [indices, values];
  }

  /**
   * token_l2 (runtime_py Vectorizer._transform_grouped): the word block and the character block each
   * times 1 / sqrt(their squared norm), then (word_pieces) the piece block times 1 / (number of pieces).
   * @param {string} text @returns {[number[], number[]]}
   */
  transformGrouped(text) {
    const toks = this.extractor.tokens(text);
    const words = [];
    const chars = [];
    const pieces = [];
    let m = 0;
    for (const tok of toks) {
      const groups = this.tokenGroups(tok);
      words.push(groups[0]);
      chars.push(groups[1]);
      if (groups.length === 3) {
        pieces.push(groups[2]);
        m += groups[2][3];
      }
    }
    words.push(this.groupValues(this.extractor.longGrams(toks)));
    /** @type {[[number[], number[], number][], number][]} each block with its scale */
    const blocks = [];
    for (const groups of [words, chars]) {
      let q = 0;
      for (const g of groups) q += g[2];
      if (q) blocks.push([groups, 1.0 / Math.sqrt(q)]);
    }
    if (m > 0) blocks.push([pieces, 1.0 / m]);
    /** @type {Map<number, number>} */
    const merged = new Map();
    for (const [groups, scale] of blocks) {
      for (const [indices, values] of groups) {
        for (let k = 0; k < indices.length; k++) merged.set(indices[k], (merged.get(indices[k]) ?? 0) + values[k] * scale);
      }
    }
    return [[...merged.keys()], [...merged.values()]];
  }
}
