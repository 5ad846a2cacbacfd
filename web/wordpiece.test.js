// node --test web/ : WordPiece tokenizer unit tests and id parity with Hugging Face `tokenizers`.
//
// Expected ids come from the Python side (tests/make_wordpiece_fixtures.py): the committed
// tests/fixtures/wordpiece_edge_cases.json always, and the full generated set (every dataset text,
// 100,000 seeded random strings, extra files) from tests/fixtures/generated/wordpiece/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { WordPieceTokenizer } from "./wordpiece.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const COMMITTED = join(ROOT, "tests", "fixtures", "wordpiece_edge_cases.json");
const GENERATED = join(ROOT, "tests", "fixtures", "generated", "wordpiece");
const GENERATE_HINT =
  "generated WordPiece fixtures are missing: run `.venv/bin/python tests/make_wordpiece_fixtures.py " +
  "--out tests/fixtures/generated/wordpiece` first";

const committed = JSON.parse(readFileSync(COMMITTED, "utf8"));
const small = new WordPieceTokenizer(committed.vocab);

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Check every case; fail listing the first few mismatches readably. */
function assertParity(tok, cases, what) {
  const bad = [];
  for (const c of cases) {
    const got = tok.encode(c.text, { maxLength: c.max_length ?? null });
    if (!same(got.ids, c.ids)) bad.push({ c, got });
  }
  if (bad.length) {
    const lines = bad.slice(0, 5).map(
      ({ c, got }) =>
        `  ${JSON.stringify(c.text)}\n    expected ${JSON.stringify(c.ids)}\n    got      ${JSON.stringify(got.ids)} ${JSON.stringify(got.tokens)}`,
    );
    assert.fail(`${bad.length} of ${cases.length} ${what} differ from tokenizers; first ones:\n${lines.join("\n")}`);
  }
}

function readJsonl(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
}

// A tiny vocabulary for unit tests whose expectations are written out by hand.
const TINY = [
  "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##world", "world", "cafe", "naive", ",", "!", "[",
  "]", "cl", "##s", "ing", "a", "b", "中", "文", "σ", "##α", "##σ", "un", "##aff", "##able", "x", "##y", "##z",
  "i", "e", "##e", "😀", "ε", "##ε",
];
const tiny = new WordPieceTokenizer(TINY);

test("committed fixture: edge cases and random strings match tokenizers (reduced vocabulary)", () => {
  assert.ok(committed.cases.length >= 400);
  assertParity(small, committed.cases, "committed cases");
});

test("every code point normalizes like the reference (block digests)", () => {
  const { block, sha256 } = committed.normalization;
  const bad = [];
  for (let start = 0, b = 0; start < 0x110000; start += block, b++) {
    const outs = [];
    for (let cp = start; cp < start + block; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const out = small._normalize(String.fromCodePoint(cp));
      outs.push(Array.from(out, (c) => c.codePointAt(0).toString(16)).join(","));
    }
    const digest = createHash("sha256").update(outs.join(";"), "ascii").digest("hex");
    if (digest !== sha256[b]) bad.push(`U+${start.toString(16).toUpperCase()}..U+${(start + block - 1).toString(16).toUpperCase()}`);
  }
  assert.deepEqual(bad, [], `normalization differs from the reference in blocks ${bad.slice(0, 10).join(", ")}`);
});

test("behaviour: cleaning, accents, punctuation, CJK, special tokens, long words", () => {
  const cases = [
    ["hello\u0000world", ["hello", "##world"]],
    ["hello\ufffdworld", ["hello", "##world"]],
    ["a\u000bb", ["[UNK]"]], // VT is dropped as a control (not a space): "ab" has no pieces here
    ["hello\tworld\nhello\u00a0world\u3000world\u2028hello", ["hello", "world", "hello", "world", "world", "hello"]],
    ["Café, NAÏVE!", ["cafe", ",", "naive", "!"]],
    ["中文", ["中", "文"]],
    ["ΣΑΣ", ["σ", "##α", "##σ"]],
    ["", []],
    ["[MASK]ing", ["[MASK]", "ing"]],
    ["a[SEP]b", ["a", "[SEP]", "b"]],
    ["[cls]", ["[", "cl", "##s", "]"]],
    ["Unaffable", ["un", "##aff", "##able"]],
    ["a".repeat(101), ["[UNK]"]],
    ["e" + "e".repeat(99), ["e", ...Array(99).fill("##e")]],
    ["hi😀x", ["[UNK]"]],
    ["😀", ["😀"]],
    ["İ", ["i"]],
    ["É\u0301", ["e"]],
  ];
  for (const [text, tokens] of cases) assert.deepEqual(tiny.tokenize(text), tokens, JSON.stringify(text));
});

test("normalization uses the reference's tables, not the engine's Unicode data", () => {
  assert.equal(tiny._normalize("\u0890"), "\u0890"); // Cf since Unicode 14, unknown to the reference: kept
  assert.equal(tiny._normalize("\u{11938}"), "\u{11938}"); // decomposes since Unicode 13, not in the reference
  assert.equal(tiny._normalize("\u1c89"), "\u1c8a"); // Unicode 16 capital, lower-cased by the reference
  assert.equal(tiny._normalize("\u0488"), "\u0488"); // Me, not stripped
  assert.equal(tiny._normalize("한"), "\u1112\u1161\u11ab"); // Hangul -> jamo
  assert.equal(tiny._normalize("a\u08d4\u{1e94a}"), "a\u{1e94a}\u08d4"); // canonical reordering of kept marks
  // U+166D was punctuation in the reference's Unicode version (So today): it still splits the word.
  assert.deepEqual(tiny.tokenize("x\u166dx"), ["x", "[UNK]", "x"]);
});

test("lone surrogates become U+FFFD (dropped), pairs are their character", () => {
  assert.deepEqual(tiny.tokenize("a\ud800 b"), ["a", "b"]);
  assert.deepEqual(tiny.encode("a\ud800b").ids, tiny.encode("a\ufffdb").ids);
  assert.deepEqual(tiny.tokenize("x\udfff"), ["x"]);
  assert.deepEqual(tiny.tokenize("\ud83d\ude00"), ["😀"]);
  assert.deepEqual(tiny.tokenize("\ude00\ud83d x"), ["x"]);
  const loose = new WordPieceTokenizer(TINY, { cleanText: false });
  assert.deepEqual(loose.tokenize("x\udfff"), ["[UNK]"]);
});

test("encode: fields, special tokens, truncation", () => {
  const enc = tiny.encode("hello world");
  assert.deepEqual(enc, { ids: [2, 5, 7, 3], tokens: ["[CLS]", "hello", "world", "[SEP]"], attentionMask: [1, 1, 1, 1], tokenTypeIds: [0, 0, 0, 0] });
  assert.deepEqual(tiny.encode("").ids, [2, 3]);
  assert.deepEqual(tiny.encode("hello world", { addSpecialTokens: false }).ids, [5, 7]);
  assert.deepEqual(tiny.encode("a b a b", { maxLength: 4 }).tokens, ["[CLS]", "a", "b", "[SEP]"]);
  assert.deepEqual(tiny.encode("a b a b", { maxLength: 2 }).tokens, ["[CLS]", "[SEP]"]);
  assert.deepEqual(tiny.encode("a b a b", { maxLength: 0, addSpecialTokens: false }).ids, []);
  assert.throws(() => tiny.encode("a", { maxLength: 1 }), /minimum 2/);
  assert.throws(() => tiny.encode("a", { maxLength: 2.5 }), TypeError);
});

test("encodeBatch pads to the longest text only", () => {
  const batch = tiny.encodeBatch(["a", "hello world a b", ""]);
  assert.deepEqual(batch.inputIds, [[2, 17, 3, 0, 0, 0], [2, 5, 7, 17, 18, 3], [2, 3, 0, 0, 0, 0]]);
  assert.deepEqual(batch.attentionMask, [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]]);
  assert.deepEqual(batch.tokenTypeIds, [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]);
  assert.deepEqual(tiny.encodeBatch([]).inputIds, []);
  assert.deepEqual(tiny.encodeBatch(["a b a", "b"], { maxLength: 3 }).inputIds, [[2, 17, 3], [2, 18, 3]]);
});

test("invalid input and options raise clear errors", () => {
  for (const bad of [null, undefined, 5, ["x"], { text: "x" }]) {
    assert.throws(() => tiny.encode(bad), /text must be a string/);
  }
  assert.throws(() => tiny.encodeBatch("abc"), /array of strings/);
  assert.throws(() => new WordPieceTokenizer(["a", "b"]), /unkToken/);
  assert.throws(() => new WordPieceTokenizer(["[UNK]", "a"]), /clsToken/);
  assert.throws(() => new WordPieceTokenizer(["[UNK]"], { clsToken: null }), /both/);
  assert.throws(() => new WordPieceTokenizer(TINY, { lowercase: "yes" }), /lowercase must be a boolean/);
  assert.throws(() => new WordPieceTokenizer(TINY, { lowerCase: true }), /unknown WordPieceTokenizer option: lowerCase/);
  assert.throws(() => new WordPieceTokenizer(TINY, { maxInputCharsPerWord: 0 }), RangeError);
  assert.throws(() => new WordPieceTokenizer("vocab"), TypeError);
  const noPad = new WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "a"]);
  assert.deepEqual(noPad.encode("a").ids, [1, 3, 2]);
  assert.throws(() => noPad.encodeBatch(["a"]), /padToken/);
});

test("options: cased, no accent stripping, no CJK splitting, no special tokens", () => {
  const cased = new WordPieceTokenizer(TINY, { lowercase: false });
  assert.deepEqual(cased.tokenize("Hello café cafe"), ["[UNK]", "[UNK]", "cafe"]); // no accent stripping either
  assert.equal(cased._normalize("Café"), "Café");
  const accents = new WordPieceTokenizer(TINY, { stripAccents: false });
  assert.equal(accents._normalize("Café"), "café");
  const noCjk = new WordPieceTokenizer(TINY, { handleChineseChars: false });
  assert.deepEqual(noCjk.tokenize("中文"), ["[UNK]"]);
  const bare = new WordPieceTokenizer({ "[UNK]": 0, un: 1, "##aff": 2, "##able": 3 }, { clsToken: null, sepToken: null });
  assert.deepEqual(bare.encode("unaffable unknown").ids, [1, 2, 3, 0]);
});

test("vocabulary accessors and vocab.txt parsing", () => {
  assert.equal(tiny.vocabSize, TINY.length);
  assert.equal(tiny.tokenToId("hello"), 5);
  assert.equal(tiny.tokenToId("nope"), undefined);
  assert.equal(tiny.idToToken(5), "hello");
  assert.equal(tiny.idToToken(-1), undefined);
  const fromText = WordPieceTokenizer.fromVocabText("[UNK]\r\n[CLS]\n[SEP]\nab\nab \n##c\n");
  assert.equal(fromText.tokenToId("ab"), 4); // trailing whitespace trimmed; the later line wins
  assert.deepEqual(fromText.encode("abc").ids, [1, 4, 5, 2]);
  assert.throws(() => WordPieceTokenizer.fromVocabText(42), TypeError);
});

test("fromTokenizerJson: supported settings and clear errors for the others", () => {
  const base = {
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((content, id) => ({
      id, content, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false,
    })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      special_tokens: { "[CLS]": { id: "[CLS]", ids: [2], tokens: ["[CLS]"] }, "[SEP]": { id: "[SEP]", ids: [3], tokens: ["[SEP]"] } },
    },
    padding: { strategy: { Fixed: 128 }, pad_id: 0, pad_token: "[PAD]" },
    truncation: { max_length: 4 },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: Object.fromEntries(TINY.map((t, i) => [t, i])) },
  };
  const tok = WordPieceTokenizer.fromTokenizerJson(JSON.stringify(base));
  assert.deepEqual(tok.encode("hello world hello world").ids, [2, 5, 7, 5, 7, 3]); // built-in truncation ignored
  assert.deepEqual(tok.encodeBatch(["a"]).inputIds, [[2, 17, 3]]); // built-in padding ignored
  const withAdded = WordPieceTokenizer.fromTokenizerJson({
    ...base,
    added_tokens: [...base.added_tokens, { id: 99, content: "Cafe", special: false, normalized: true }],
  });
  assert.deepEqual(withAdded.encode("xCAFÉx").ids, [2, 27, 99, 27, 3]); // matched after normalization
  assert.deepEqual(withAdded.tokenize("a café b"), ["a", "cafe", "b"]);
  assert.equal(withAdded.vocabSize, TINY.length + 1);
  const bad = {
    "model type": { ...base, model: { type: "BPE", vocab: {}, merges: [] } },
    'normalizer "NFKC"': { ...base, normalizer: { type: "NFKC" } },
    'pre_tokenizer "Whitespace"': { ...base, pre_tokenizer: { type: "Whitespace" } },
    'post_processor "RobertaProcessing"': { ...base, post_processor: { type: "RobertaProcessing" } },
    "lstrip=true": { ...base, added_tokens: [{ ...base.added_tokens[4], lstrip: true }] },
  };
  for (const [what, conf] of Object.entries(bad)) {
    assert.throws(() => WordPieceTokenizer.fromTokenizerJson(conf), (e) => e.message.includes(what), what);
  }
});

test("full parity with tokenizers over the generated fixtures (datasets, 100,000 random strings, extras)", (t) => {
  const manifestPath = join(GENERATED, "manifest.json");
  assert.ok(existsSync(manifestPath), GENERATE_HINT);
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  const fromJson = WordPieceTokenizer.fromTokenizerJson(readFileSync(join(GENERATED, manifest.tokenizer_json), "utf8"));
  const fromVocab = WordPieceTokenizer.fromVocabText(readFileSync(join(GENERATED, manifest.vocab), "utf8"));
  assert.equal(fromJson.vocabSize, 30522);
  assert.equal(fromVocab.vocabSize, 30522);
  let total = 0;
  for (const entry of manifest.files) {
    const cases = readJsonl(join(GENERATED, entry.file));
    assert.equal(cases.length, entry.count, `${entry.file}: truncated file`);
    assertParity(fromJson, cases, `${entry.file} cases (tokenizer.json)`);
    assertParity(fromVocab, cases, `${entry.file} cases (vocab.txt)`);
    total += cases.length;
    t.diagnostic(`${entry.file}: ${cases.length} texts, 0 mismatches`);
  }
  assert.ok(manifest.files.some((e) => e.file === "random.jsonl" && e.count >= 100000), "fewer than 100,000 random strings");
  t.diagnostic(`total: ${total} texts, 0 mismatches (${manifest.reference})`);
});
