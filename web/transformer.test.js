// Variant choice and fixed-length graphs (the WebGL variant) in the transformer tier, on a fake
// onnxruntime-web: which role each backend runs, one session per pad length opened on first use,
// padding with the pad id and mask 0, int32 feeds when the session cannot describe its inputs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { BundleError } from "./errors.js";
import { chooseVariant, createTransformerTier, variantBuckets } from "./transformer.js";

const VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"];
const TOKENIZER_JSON = {
  model: { type: "WordPiece", vocab: Object.fromEntries(VOCAB.map((t, i) => [t, i])), unk_token: "[UNK]" },
  normalizer: { type: "BertNormalizer", lowercase: true },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: { type: "BertProcessing", cls: ["[CLS]", 2], sep: ["[SEP]", 3] },
  added_tokens: [],
};
const LABELS = ["x", "y", "z"];
const CONFIG = { id2label: { 0: "x", 1: "y", 2: "z" } };

function file(path) {
  return { path, bytes: 1, sha256: "0".repeat(64) };
}

function spec(webgl = [16, 32, 64]) {
  const files = { model_fp32: file("onnx/model.onnx"), model: file("onnx/model_quantized.onnx"), tokenizer: file("tokenizer.json"), config: file("config.json") };
  const variants = { model_fp32: { precision: "fp32" }, model: { precision: "int8" } };
  for (const n of webgl.slice().reverse()) {
    files[`model_webgl_${n}`] = file(`onnx/model_webgl_${n}.onnx`);
    variants[`model_webgl_${n}`] = { precision: "fp32", backend: "webgl", pad_length: n, input_type: "int32" };
  }
  return { name: "transformer", kind: "transformer", files, threshold: null, handoff_threshold: null, extra: { max_length: 64, temperature: 1, variants } };
}

class FakeTensor {
  constructor(type, data, dims) {
    Object.assign(this, { type, data, dims });
  }
}

/** A fake ort whose "model bytes" are the role name; a webgl session, like the real one, throws on inputMetadata. */
function fakeOrt() {
  const created = [];
  const runs = [];
  const ort = {
    Tensor: FakeTensor,
    InferenceSession: {
      async create(bytes) {
        const role = new TextDecoder().decode(bytes);
        created.push(role);
        const fixed = Number(role.match(/webgl_(\d+)/)?.[1] ?? 0) || null;
        return {
          role,
          inputNames: ["input_ids", "attention_mask"],
          outputNames: ["logits"],
          get inputMetadata() {
            if (fixed) throw new Error("Getting model metadata is not supported in webgl backend.");
            return [{ name: "input_ids", type: "int64" }, { name: "attention_mask", type: "int64" }];
          },
          async run(feeds) {
            const ids = feeds.input_ids;
            runs.push({ role, type: ids.type, dims: ids.dims, ids: Array.from(ids.data, Number), mask: Array.from(feeds.attention_mask.data, Number) });
            if (fixed && (ids.dims[1] !== fixed || ids.type !== "int32")) throw new Error(`expected int32 [1,${fixed}]`);
            const real = Array.from(feeds.attention_mask.data, Number).reduce((a, b) => a + b, 0);
            return { logits: { dims: [1, 3], data: Float32Array.from([real, fixed ?? 0, 0]) } };
          },
          async release() {},
        };
      },
    },
  };
  return { ort, created, runs };
}

const bytesOf = (role) => new TextEncoder().encode(role);

async function tierOn(backend, s = spec(), variant = null) {
  const fake = fakeOrt();
  const role = chooseVariant(s, backend, variant);
  const tier = await createTransformerTier({
    spec: s,
    bundleLabels: LABELS,
    role,
    model: bytesOf(role),
    tokenizerJson: TOKENIZER_JSON,
    config: CONFIG,
    ort: fake.ort,
    backend,
    buckets: variantBuckets(s, role, !variant),
    loadModel: async (other) => bytesOf(other),
  });
  return { tier, ...fake };
}

test("chooseVariant: webgl gets its shortest fixed-length graph; wasm and webgpu keep 'model'", () => {
  const s = spec();
  assert.equal(chooseVariant(s, "webgl"), "model_webgl_16");
  assert.equal(chooseVariant(s, "wasm"), "model");
  assert.equal(chooseVariant(s, "webgpu"), "model");
  assert.equal(chooseVariant(s, "webgl", "model_fp32"), "model_fp32");
  assert.equal(chooseVariant(spec([]), "webgl"), "model");
  assert.deepEqual(variantBuckets(s, "model_webgl_16"), [
    { role: "model_webgl_16", padLength: 16 },
    { role: "model_webgl_32", padLength: 32 },
    { role: "model_webgl_64", padLength: 64 },
  ]);
  assert.deepEqual(variantBuckets(s, "model_webgl_32", false), [{ role: "model_webgl_32", padLength: 32 }]);
  assert.equal(variantBuckets(s, "model"), null);
  assert.throws(() => chooseVariant(s, "webgl", "model_webgl_8"), BundleError);
});

test("webgl: one int32 session per pad length, opened on first use, padded with [PAD] and mask 0", async () => {
  const { tier, created, runs } = await tierOn("webgl");
  assert.deepEqual(created, ["model_webgl_16"]); // the load-time run on "" used the shortest graph
  assert.deepEqual(tier.inputTypes, { input_ids: "int32", attention_mask: "int32" });
  assert.deepEqual(runs[0].dims, [1, 16]);
  assert.deepEqual(runs[0].ids, [2, 3, ...new Array(14).fill(0)]);
  assert.deepEqual(runs[0].mask, [1, 1, ...new Array(14).fill(0)]);

  const short = "a b c";
  assert.deepEqual(await tier.logits(short), [5, 16, 0]);
  const medium = new Array(20).fill("a").join(" "); // 22 tokens -> 32
  assert.deepEqual(await tier.logits(medium), [22, 32, 0]);
  assert.deepEqual(created, ["model_webgl_16", "model_webgl_32"]);
  const long = new Array(100).fill("b").join(" "); // cut at 64
  assert.deepEqual(await tier.logits(long), [64, 64, 0]);
  const last = runs[runs.length - 1];
  assert.equal(last.ids[63], 3, "[SEP] kept at the end of a cut text");
  await Promise.all([tier.logits(medium), tier.logits(medium)]);
  assert.deepEqual(created, ["model_webgl_16", "model_webgl_32", "model_webgl_64"], "each graph is opened once");
  const info = tier.describe();
  assert.equal(info.variant, "model_webgl_16");
  assert.equal(info.input_type, "int32");
  assert.deepEqual(info.buckets.map((b) => [b.pad_length, b.loaded]), [[16, true], [32, true], [64, true]]);
  await tier.release();
});

test("webgl with an explicit variant: that graph alone, texts cut at its length", async () => {
  const { tier, created } = await tierOn("webgl", spec(), "model_webgl_16");
  assert.deepEqual(await tier.logits(new Array(30).fill("c").join(" ")), [16, 16, 0]);
  assert.deepEqual(created, ["model_webgl_16"]);
});

test("wasm: the dynamic-shape 'model' graph, int64, no padding", async () => {
  const { tier, runs } = await tierOn("wasm");
  assert.equal(tier.buckets, null);
  assert.deepEqual(await tier.logits("a b"), [4, 0, 0]);
  const last = runs[runs.length - 1];
  assert.equal(last.type, "int64");
  assert.deepEqual(last.dims, [1, 4]);
  assert.equal(tier.describe().buckets, undefined);
});

test("a failing lazy graph rejects that text and is retried on the next one", async () => {
  const s = spec([16, 32]);
  const fake = fakeOrt();
  let fail = true;
  const tier = await createTransformerTier({
    spec: s, bundleLabels: LABELS, role: "model_webgl_16", model: bytesOf("model_webgl_16"), tokenizerJson: TOKENIZER_JSON,
    config: CONFIG, ort: fake.ort, backend: "webgl", buckets: variantBuckets(s, "model_webgl_16"),
    loadModel: async (role) => {
      if (fail) throw new BundleError(`${role}: 404`);
      return bytesOf(role);
    },
  });
  const medium = new Array(20).fill("a").join(" ");
  await assert.rejects(tier.logits(medium), /404/);
  fail = false;
  assert.deepEqual(await tier.logits(medium), [22, 32, 0]);
});
