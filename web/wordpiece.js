// BERT WordPiece tokenizer, no dependencies, with the ids of Hugging Face `tokenizers`.
//
// Same pipeline and API shape as runtime_py/wordpiece.py: BertNormalizer + BertPreTokenizer +
// WordPiece + "[CLS] $A [SEP]", including the split on added (special) tokens typed in the text.
// Character classes come from ./unicode-tables.js (measured from the reference), never from the
// engine's own Unicode data, so every browser and Node version gives the same ids.
// Runs in browsers, Web Workers and Node (ES module). See docs/TOKENIZER.md.

import { splitWord } from "./pieces.js";
import * as T from "./unicode-tables.js";

const CHAR_CACHE_LIMIT = 65536;
const WORD_CACHE_LIMIT = 32768;
const HANGUL_FIRST = 0xac00;
const HANGUL_LAST = 0xd7a3;
const WORD = 0;
const SPACE = 1;
const PUNCT = 2;

/** Whether `cp` lies in one of the flat [start, endExclusive, ...] ranges. */
function inRanges(flat, cp) {
  let lo = 0;
  let hi = flat.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (flat[mid] <= cp) lo = mid + 1;
    else hi = mid;
  }
  return (lo & 1) === 1;
}

let TABLES = null;

/** Decode the generated tables once (lazily, on first tokenizer construction). */
function tables() {
  if (TABLES) return TABLES;
  const lower = new Map();
  const runs = T.LOWER_RUNS;
  for (let i = 0; i < runs.length; i += 4) {
    const [start, end, step, delta] = [runs[i], runs[i + 1], runs[i + 2], runs[i + 3]];
    for (let cp = start; cp < end; cp += step) lower.set(cp, String.fromCodePoint(cp + delta));
  }
  for (const [cp, s] of T.LOWER_MULTI) lower.set(cp, s);
  const nfd = new Map();
  for (let i = 0; i < T.NFD.length; ) {
    const n = T.NFD[i + 1];
    nfd.set(T.NFD[i], T.NFD.slice(i + 2, i + 2 + n));
    i += 2 + n;
  }
  const ccc = new Map();
  for (let i = 0; i < T.CCC.length; i += 3) {
    for (let cp = T.CCC[i]; cp < T.CCC[i + 1]; cp++) ccc.set(cp, T.CCC[i + 2]);
  }
  // Marks that survive accent stripping, and characters decomposing to one: only text containing
  // them can show NFD's canonical reordering once the other marks are stripped.
  const kept = new Set([...ccc.keys()].filter((cp) => !inRanges(T.MARKS, cp)));
  const sensitive = new Set(kept);
  for (const [cp, d] of nfd) if (d.some((c) => kept.has(c))) sensitive.add(cp);
  const asciiClass = new Uint8Array(128);
  for (let cp = 0; cp < 128; cp++) {
    asciiClass[cp] = inRanges(T.PRE_SPACE, cp) ? SPACE : inRanges(T.PRE_PUNCT, cp) ? PUNCT : WORD;
  }
  TABLES = { lower, nfd, ccc, sensitive, asciiClass, classCache: new Map() };
  return TABLES;
}

function decompose(t, cp) {
  if (cp >= HANGUL_FIRST && cp <= HANGUL_LAST) {
    const s = cp - HANGUL_FIRST;
    const trail = s % 28;
    const out = [0x1100 + Math.floor(s / 588), 0x1161 + Math.floor((s % 588) / 28)];
    if (trail) out.push(0x11a7 + trail);
    return out;
  }
  return t.nfd.get(cp) || [cp];
}

/** BertNormalizer on one code point (see normalizeChar in the Python module for why this is exact). */
function normalizeChar(t, cp, clean, cjk, strip, lower) {
  if (clean) {
    if (inRanges(T.CLEAN_DROP, cp)) return "";
    if (inRanges(T.CLEAN_SPACE, cp)) return " ";
  }
  let cps = strip ? decompose(t, cp).filter((c) => !inRanges(T.MARKS, c)) : [cp];
  let s = "";
  for (const c of cps) s += (lower && t.lower.get(c)) || String.fromCodePoint(c);
  if (cjk && inRanges(T.CJK, cp)) s = ` ${s} `;
  return s;
}

/** BertNormalizer on a whole text with NFD's canonical reordering (the exact, slow path). */
function normalizeText(t, text, clean, cjk, strip, lower) {
  const cps = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (clean) {
      if (inRanges(T.CLEAN_DROP, cp)) continue;
      if (inRanges(T.CLEAN_SPACE, cp)) {
        cps.push(0x20);
        continue;
      }
    }
    const d = strip ? decompose(t, cp) : [cp];
    if (cjk && inRanges(T.CJK, cp)) cps.push(0x20, ...d, 0x20);
    else cps.push(...d);
  }
  const ordered = [];
  let run = [];
  const flush = () => {
    // Array.prototype.sort is stable: this is the canonical ordering of one run of marks.
    if (run.length) ordered.push(...run.sort((a, b) => t.ccc.get(a) - t.ccc.get(b)));
    run = [];
  };
  for (const cp of cps) {
    if (strip && t.ccc.has(cp)) run.push(cp);
    else {
      flush();
      ordered.push(cp);
    }
  }
  flush();
  let s = "";
  for (const cp of ordered) {
    if (strip && inRanges(T.MARKS, cp)) continue;
    s += (lower && t.lower.get(cp)) || String.fromCodePoint(cp);
  }
  return s;
}

function classOf(t, cp) {
  if (cp < 128) return t.asciiClass[cp];
  let c = t.classCache.get(cp);
  if (c === undefined) {
    c = inRanges(T.PRE_SPACE, cp) ? SPACE : inRanges(T.PRE_PUNCT, cp) ? PUNCT : WORD;
    if (t.classCache.size < CHAR_CACHE_LIMIT) t.classCache.set(cp, c);
  }
  return c;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Lone surrogates -> U+FFFD (what Python's side does too; tokenizers drops U+FFFD). */
function wellFormed(text) {
  if (typeof text.isWellFormed === "function") return text.isWellFormed() ? text : text.toWellFormed();
  return text.replace(LONE_SURROGATE, "\ufffd");
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&");
}

function addedPattern(contents) {
  const unique = [...new Set(contents)].filter((c) => c.length > 0);
  if (!unique.length) return null;
  // Longest first: at the leftmost match the longest token wins (tokenizers' leftmost-longest).
  unique.sort((a, b) => b.length - a.length);
  return new RegExp(unique.map(escapeRegExp).join("|"), "g");
}

function codePointLength(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 === s.length) n++;
    else {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
      n++;
    }
  }
  return n;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function checkBool(name, value) {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
}

export class WordPieceTokenizer {
  /**
   * @param {string[] | Object<string, number> | Map<string, number>} vocab tokens in id order, or token -> id
   * @param {object} [opts] BERT options (camelCase of the Python ones); `stripAccents: null` follows
   *   `lowercase`; `clsToken: null, sepToken: null` disable special tokens; `addedTokens` is a list of
   *   {content, id, special, normalized} (default: the special tokens present in the vocabulary).
   */
  constructor(vocab, opts = {}) {
    const {
      lowercase = true,
      stripAccents = null,
      handleChineseChars = true,
      cleanText = true,
      unkToken = "[UNK]",
      clsToken = "[CLS]",
      sepToken = "[SEP]",
      padToken = "[PAD]",
      maskToken = "[MASK]",
      continuingSubwordPrefix = "##",
      maxInputCharsPerWord = 100,
      addedTokens = null,
    } = opts;
    const known = new Set([
      "lowercase", "stripAccents", "handleChineseChars", "cleanText", "unkToken", "clsToken", "sepToken",
      "padToken", "maskToken", "continuingSubwordPrefix", "maxInputCharsPerWord", "addedTokens",
    ]);
    for (const key of Object.keys(opts)) {
      if (!known.has(key)) throw new TypeError(`unknown WordPieceTokenizer option: ${key}`);
    }
    let tokenToId;
    if (Array.isArray(vocab)) {
      // Like tokenizers' vocab.txt reader: a repeated token keeps its last line's id.
      tokenToId = new Map(vocab.map((t, i) => [t, i]));
    } else if (vocab instanceof Map) {
      tokenToId = new Map(vocab);
    } else if (vocab && typeof vocab === "object") {
      tokenToId = new Map(Object.entries(vocab));
    } else {
      throw new TypeError("vocab must be an array of tokens, or an object or Map token -> id");
    }
    if (tokenToId.size === 0) throw new Error("vocab is empty");
    checkBool("lowercase", lowercase);
    checkBool("handleChineseChars", handleChineseChars);
    checkBool("cleanText", cleanText);
    if (stripAccents !== null) checkBool("stripAccents", stripAccents);
    if (!Number.isInteger(maxInputCharsPerWord) || maxInputCharsPerWord < 1) {
      throw new RangeError(`maxInputCharsPerWord must be a positive integer, got ${maxInputCharsPerWord}`);
    }
    if ((clsToken === null) !== (sepToken === null)) {
      throw new Error("clsToken and sepToken must both be set or both be null");
    }
    Object.assign(this, {
      lowercase, stripAccents, handleChineseChars, cleanText, unkToken, clsToken, sepToken, padToken,
      maskToken, continuingSubwordPrefix, maxInputCharsPerWord,
    });

    let added;
    if (addedTokens === null) {
      const defaults = [...new Set([padToken, unkToken, clsToken, sepToken, maskToken])];
      added = defaults
        .filter((t) => t && tokenToId.has(t))
        .map((t) => ({ content: t, id: tokenToId.get(t), special: true, normalized: false }));
    } else {
      added = addedTokens.map((t) => ({ special: true, normalized: false, ...t }));
    }
    this.addedTokens = added;
    this._vocab = new Map(tokenToId); // the WordPiece model's vocabulary only
    for (const t of added) if (!tokenToId.has(t.content)) tokenToId.set(t.content, t.id);
    this._tokenToId = tokenToId;
    this._idToToken = new Map();
    for (const [t, i] of tokenToId) this._idToToken.set(i, t);

    if (!this._vocab.has(unkToken)) throw new Error(`unkToken ${JSON.stringify(unkToken)} is not in the vocabulary`);
    this._unkId = this._vocab.get(unkToken);
    this._unk = [[this._unkId], [unkToken]];
    this._clsId = null;
    this._sepId = null;
    if (clsToken !== null) {
      for (const [name, tok] of [["clsToken", clsToken], ["sepToken", sepToken]]) {
        if (!tokenToId.has(tok)) throw new Error(`${name} ${JSON.stringify(tok)} is not in the vocabulary`);
      }
      this._clsId = tokenToId.get(clsToken);
      this._sepId = tokenToId.get(sepToken);
    }
    this._padId = padToken !== null && tokenToId.has(padToken) ? tokenToId.get(padToken) : null;

    this._t = tables();
    const strip = stripAccents === null ? lowercase : stripAccents;
    this._options = [cleanText, handleChineseChars, strip, lowercase];
    this._ascii = [];
    for (let cp = 0; cp < 128; cp++) this._ascii.push(normalizeChar(this._t, cp, ...this._options));
    this._charCache = new Map();
    this._maxPiece = 0;
    for (const t of this._vocab.keys()) this._maxPiece = Math.max(this._maxPiece, codePointLength(t));
    this._wordCache = new Map();
    this._rawRe = addedPattern(added.filter((t) => !t.normalized).map((t) => t.content));
    this._addedIds = new Map(added.filter((t) => !t.normalized).map((t) => [t.content, t.id]));
    const normalizedAdded = added.filter((t) => t.normalized).map((t) => [this._normalize(t.content), t.id]);
    this._normRe = addedPattern(normalizedAdded.map(([c]) => c));
    for (const [c, id] of normalizedAdded) this._addedIds.set(c, id);
  }

  /** Build from the text of a vocab.txt (one token per line, id = line number). */
  static fromVocabText(text, opts = {}) {
    if (typeof text !== "string") throw new TypeError("fromVocabText expects the vocab.txt contents as a string");
    const lines = text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    return new WordPieceTokenizer(lines.map((l) => trimEndWhiteSpace(l)), opts);
  }

  /**
   * Build from a tokenizers tokenizer.json (object or JSON text). Padding and truncation settings in
   * the file are ignored; unsupported settings throw an Error that names them.
   */
  static fromTokenizerJson(objOrString) {
    const config = typeof objOrString === "string" ? JSON.parse(objOrString) : objOrString;
    const fail = (what) => new Error(`unsupported tokenizer.json setting: ${what}`);
    const model = (config && config.model) || {};
    if (model.type !== "WordPiece") throw fail(`model type ${JSON.stringify(model.type)} (only WordPiece is supported)`);
    if (!model.vocab || typeof model.vocab !== "object" || Array.isArray(model.vocab)) {
      throw fail("model.vocab is not a token -> id object");
    }
    const opts = {
      unkToken: model.unk_token ?? "[UNK]",
      continuingSubwordPrefix: model.continuing_subword_prefix ?? "##",
      maxInputCharsPerWord: model.max_input_chars_per_word ?? 100,
    };
    const norm = config.normalizer;
    if (norm === null || norm === undefined) {
      Object.assign(opts, { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false });
    } else if (norm.type === "BertNormalizer") {
      Object.assign(opts, {
        cleanText: norm.clean_text ?? true,
        handleChineseChars: norm.handle_chinese_chars ?? true,
        stripAccents: norm.strip_accents ?? null,
        lowercase: norm.lowercase ?? true,
      });
    } else {
      throw fail(`normalizer ${JSON.stringify(norm.type)} (only BertNormalizer or none)`);
    }
    const pre = config.pre_tokenizer;
    if (!pre || pre.type !== "BertPreTokenizer") {
      throw fail(`pre_tokenizer ${JSON.stringify(pre && pre.type)} (only BertPreTokenizer)`);
    }
    const post = config.post_processor;
    let cls = null;
    let sep = null;
    if (post === null || post === undefined) {
      // no special tokens
    } else if (post.type === "BertProcessing") {
      cls = post.cls[0];
      sep = post.sep[0];
    } else if (post.type === "TemplateProcessing") {
      const single = post.single || [];
      const typeId = (p) => Object.values(p)[0].type_id ?? 0;
      const ok =
        single.length === 3 &&
        "SpecialToken" in single[0] &&
        single[1].Sequence?.id === "A" &&
        "SpecialToken" in single[2] &&
        single.every((p) => typeId(p) === 0);
      if (!ok) throw fail("post_processor template other than [CLS] $A [SEP] with type id 0");
      cls = single[0].SpecialToken.id;
      sep = single[2].SpecialToken.id;
      for (const tok of [cls, sep]) {
        const ids = post.special_tokens?.[tok]?.ids;
        if (ids && (ids.length !== 1 || (tok in model.vocab && model.vocab[tok] !== ids[0]))) {
          throw fail(`special token ${JSON.stringify(tok)} with ids ${JSON.stringify(ids)} differing from the vocabulary`);
        }
      }
    } else {
      throw fail(`post_processor ${JSON.stringify(post.type)}`);
    }
    const added = [];
    for (const e of config.added_tokens || []) {
      for (const flag of ["single_word", "lstrip", "rstrip"]) {
        if (e[flag]) throw fail(`added token ${JSON.stringify(e.content)} with ${flag}=true`);
      }
      added.push({ content: e.content, id: e.id, special: !!e.special, normalized: !!e.normalized });
    }
    return new WordPieceTokenizer(model.vocab, {
      ...opts,
      clsToken: cls,
      sepToken: sep,
      padToken: config.padding?.pad_token ?? "[PAD]",
      maskToken: added.some((t) => t.content === "[MASK]") ? "[MASK]" : null,
      addedTokens: added,
    });
  }

  /** Number of distinct tokens, added tokens included. */
  get vocabSize() {
    return this._tokenToId.size;
  }

  /** Id of `token`, or undefined when unknown. */
  tokenToId(token) {
    return this._tokenToId.get(token);
  }

  /** Token of `id`, or undefined when unknown. */
  idToToken(id) {
    return this._idToToken.get(id);
  }

  _normalize(text) {
    const [clean, cjk, strip, lower] = this._options;
    if (PRINTABLE_ASCII.test(text)) return lower ? text.toLowerCase() : text;
    const t = this._t;
    let out = "";
    for (let i = 0; i < text.length; i++) {
      let cp = text.charCodeAt(i);
      if (cp < 128) {
        out += this._ascii[cp];
        continue;
      }
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < text.length) {
        const lo = text.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          i++;
        }
      }
      if (strip && t.sensitive.has(cp)) return normalizeText(t, text, clean, cjk, strip, lower);
      let s = this._charCache.get(cp);
      if (s === undefined) {
        s = normalizeChar(t, cp, clean, cjk, strip, lower);
        if (this._charCache.size < CHAR_CACHE_LIMIT) this._charCache.set(cp, s);
      }
      out += s;
    }
    return out;
  }

  _wordpiece(word) {
    const vocab = this._vocab;
    const tokens = splitWord(word, vocab, this._maxPiece, this.continuingSubwordPrefix, this.maxInputCharsPerWord);
    if (tokens === null) return this._unk;
    return [tokens.map((t) => vocab.get(t)), tokens];
  }

  _word(word, ids, tokens) {
    let hit = this._wordCache.get(word);
    if (hit === undefined) {
      hit = this._wordpiece(word);
      if (this._wordCache.size >= WORD_CACHE_LIMIT) this._wordCache.clear();
      this._wordCache.set(word, hit);
    }
    for (const id of hit[0]) ids.push(id);
    for (const tok of hit[1]) tokens.push(tok);
  }

  _pretokenized(s, ids, tokens) {
    const t = this._t;
    let start = -1;
    for (let i = 0; i < s.length; i++) {
      let cp = s.charCodeAt(i);
      let width = 1;
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
        const lo = s.charCodeAt(i + 1);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          width = 2;
        }
      }
      const cls = cp < 128 ? t.asciiClass[cp] : classOf(t, cp);
      if (cls === WORD) {
        if (start < 0) start = i;
      } else {
        if (start >= 0) {
          this._word(s.slice(start, i), ids, tokens);
          start = -1;
        }
        if (cls === PUNCT) this._word(s.slice(i, i + width), ids, tokens);
      }
      i += width - 1;
    }
    if (start >= 0) this._word(s.slice(start), ids, tokens);
  }

  _segment(raw, ids, tokens) {
    const normalized = this._normalize(raw);
    const re = this._normRe;
    if (re === null) return this._pretokenized(normalized, ids, tokens);
    let pos = 0;
    for (const m of normalized.matchAll(re)) {
      this._pretokenized(normalized.slice(pos, m.index), ids, tokens);
      ids.push(this._addedIds.get(m[0]));
      tokens.push(m[0]);
      pos = m.index + m[0].length;
    }
    this._pretokenized(normalized.slice(pos), ids, tokens);
  }

  _pieces(text) {
    if (typeof text !== "string") {
      throw new TypeError(`text must be a string, got ${text === null ? "null" : typeof text}`);
    }
    text = wellFormed(text);
    const ids = [];
    const tokens = [];
    const re = this._rawRe;
    if (re === null) {
      this._segment(text, ids, tokens);
      return [ids, tokens];
    }
    let pos = 0;
    for (const m of text.matchAll(re)) {
      this._segment(text.slice(pos, m.index), ids, tokens);
      ids.push(this._addedIds.get(m[0]));
      tokens.push(m[0]);
      pos = m.index + m[0].length;
    }
    this._segment(text.slice(pos), ids, tokens);
    return [ids, tokens];
  }

  /** Word pieces of `text` (added tokens typed in the text included; no [CLS]/[SEP]). */
  tokenize(text) {
    return this._pieces(text)[1];
  }

  /**
   * Encode one text as [CLS] pieces [SEP], keeping the first `maxLength - 2` pieces if given.
   * @returns {{ids: number[], tokens: string[], attentionMask: number[], tokenTypeIds: number[]}}
   */
  encode(text, { maxLength = null, addSpecialTokens = true } = {}) {
    let [ids, tokens] = this._pieces(text);
    const special = addSpecialTokens && this._clsId !== null;
    if (maxLength !== null && maxLength !== undefined) {
      if (!Number.isInteger(maxLength)) throw new TypeError(`maxLength must be an integer or null, got ${maxLength}`);
      const keep = maxLength - (special ? 2 : 0);
      if (keep < 0) throw new RangeError(`maxLength=${maxLength} leaves no room for [CLS] and [SEP] (minimum 2)`);
      ids.length = Math.min(ids.length, keep);
      tokens.length = Math.min(tokens.length, keep);
    }
    if (special) {
      ids = [this._clsId, ...ids, this._sepId];
      tokens = [this.clsToken, ...tokens, this.sepToken];
    }
    return { ids, tokens, attentionMask: ids.map(() => 1), tokenTypeIds: ids.map(() => 0) };
  }

  /**
   * Encode texts, padded with the pad id to the longest in the batch (attention mask 0 on padding).
   * @returns {{inputIds: number[][], attentionMask: number[][], tokenTypeIds: number[][]}}
   */
  encodeBatch(texts, { maxLength = null, addSpecialTokens = true } = {}) {
    if (!Array.isArray(texts)) throw new TypeError("texts must be an array of strings (use encode() for one text)");
    if (this._padId === null) {
      throw new Error(`padToken ${JSON.stringify(this.padToken)} is not in the vocabulary: cannot pad a batch`);
    }
    const encodings = texts.map((t) => this.encode(t, { maxLength, addSpecialTokens }));
    const width = encodings.reduce((m, e) => Math.max(m, e.ids.length), 0);
    const inputIds = [];
    const attentionMask = [];
    const tokenTypeIds = [];
    for (const e of encodings) {
      const extra = width - e.ids.length;
      inputIds.push(e.ids.concat(new Array(extra).fill(this._padId)));
      attentionMask.push(e.attentionMask.concat(new Array(extra).fill(0)));
      tokenTypeIds.push(e.tokenTypeIds.concat(new Array(extra).fill(0)));
    }
    return { inputIds, attentionMask, tokenTypeIds };
  }
}

/** String.prototype.trimEnd with the reference's (Rust's) White_Space set, as its vocab reader does. */
function trimEndWhiteSpace(line) {
  let end = line.length;
  while (end > 0) {
    const cp = line.charCodeAt(end - 1);
    if (!inRanges(T.PRE_SPACE, cp)) break;
    end--;
  }
  return end === line.length ? line : line.slice(0, end);
}
