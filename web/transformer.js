// The transformer tier on onnxruntime-web (runtime_py/transformer.py): our WordPiece tokenizer,
// an ONNX sequence classifier, softmax(logits / temperature).
//
// onnxruntime-web is passed in (the worker imports one build per backend: ort.wasm.min.mjs,
// ort.webgpu.min.mjs, ort.webgl.min.mjs), so this module runs anywhere, Node included.

import { softmax } from "./calibration.js";
import { BundleError } from "./errors.js";
import { WordPieceTokenizer } from "./wordpiece.js";

export const DEFAULT_MAX_LENGTH = 128;
export const MODEL_INPUTS = ["input_ids", "attention_mask", "token_type_ids"];
/** The ORT execution provider of each backend name. */
export const EXECUTION_PROVIDERS = { wasm: "wasm", webgpu: "webgpu", webgl: "webgl" };

/** The file roles holding a variant of the model (model, model_fp32, ...), manifest order. */
export function variantRoles(spec) {
  return Object.keys(spec.files).filter((role) => role.startsWith("model"));
}

/**
 * Which variant a backend runs: `wanted` if given, else a variant built for the backend
 * (`variants[role].backend`, e.g. a WebGL graph), else "model". Native-only variants are never chosen.
 * @param {import("./bundle.js").TierSpec} spec
 * @param {string} backend
 * @param {string | null} [wanted]
 */
export function chooseVariant(spec, backend, wanted = null) {
  const roles = variantRoles(spec).filter((r) => r !== "model_native");
  if (wanted) {
    if (!roles.includes(wanted)) throw new BundleError(`tier ${JSON.stringify(spec.name)}: no browser model variant ${JSON.stringify(wanted)} (available: ${roles.join(", ") || "none"})`);
    return wanted;
  }
  const variants = spec.extra.variants ?? {};
  const dedicated = roles.find((r) => variants[r]?.backend === backend);
  if (dedicated) return dedicated;
  if (!roles.includes("model")) throw new BundleError(`tier ${JSON.stringify(spec.name)}: no 'model' file in the manifest`);
  return "model";
}

/** config.json's labels in id order. */
export function labelsFromConfig(config, where) {
  const id2label = config?.id2label;
  if (id2label === null || typeof id2label !== "object" || !Object.keys(id2label).length) {
    throw new BundleError(`${where}: no id2label; the tier cannot name its outputs`);
  }
  const n = Object.keys(id2label).length;
  const labels = [];
  for (let i = 0; i < n; i++) {
    const label = id2label[String(i)];
    if (typeof label !== "string" || !label) throw new BundleError(`${where}: id2label keys must be 0..${n - 1} naming intents`);
    labels.push(label);
  }
  if (new Set(labels).size !== n) throw new BundleError(`${where}: id2label must map to distinct intent names`);
  return labels;
}

function positive(value, fallback, what) {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw new BundleError(`${what}: expected a positive number, got ${JSON.stringify(value)}`);
  return value;
}

/** A transformer classifier as a router tier. */
export class TransformerTier {
  /**
   * @param {object} o
   * @param {string} o.name
   * @param {any} o.ort the onnxruntime-web module
   * @param {any} o.session an ort.InferenceSession
   * @param {WordPieceTokenizer} o.tokenizer
   * @param {string[]} o.labels
   * @param {number} [o.temperature]
   * @param {number} [o.maxLength]
   * @param {number[] | null} [o.padLengths] fixed sequence lengths the graph needs (WebGL), else none
   * @param {Record<string, any>} [o.info] extra detail for describe()
   */
  constructor({ name, ort, session, tokenizer, labels, temperature = 1.0, maxLength = DEFAULT_MAX_LENGTH, padLengths = null, info = {} }) {
    this.name = name;
    this.kind = "transformer";
    this.ort = ort;
    this.session = session;
    this.tokenizer = tokenizer;
    this.labels = labels.slice();
    this.temperature = temperature;
    this.maxLength = maxLength;
    this.padLengths = padLengths ? padLengths.slice().sort((a, b) => a - b) : null;
    this.info = { ...info };
    const names = session.inputNames;
    const unknown = names.filter((n) => !MODEL_INPUTS.includes(n));
    if (unknown.length) throw new BundleError(`tier ${JSON.stringify(name)}: the ONNX graph wants inputs ${JSON.stringify(unknown)}; only ${MODEL_INPUTS.join(", ")} are supported`);
    if (!names.includes("input_ids")) throw new BundleError(`tier ${JSON.stringify(name)}: the ONNX graph has no 'input_ids' input`);
    const meta = Array.isArray(session.inputMetadata) ? session.inputMetadata : [];
    /** @type {Record<string, "int64" | "int32">} */
    this.inputTypes = {};
    for (const n of names) {
      const type = meta.find((m) => m.name === n)?.type;
      this.inputTypes[n] = type === "int32" ? "int32" : "int64";
    }
    const outputs = session.outputNames;
    this.outputName = outputs.includes("logits") ? "logits" : outputs[0];
  }

  /** Input ids, attention mask and token types of `text`, padded to a fixed length when the graph needs one. */
  encode(text) {
    const enc = this.tokenizer.encode(text, { maxLength: this.maxLength });
    let { ids, attentionMask, tokenTypeIds } = enc;
    if (this.padLengths) {
      const width = this.padLengths.find((n) => n >= ids.length) ?? this.padLengths[this.padLengths.length - 1];
      const padId = this.tokenizer.tokenToId(this.tokenizer.padToken) ?? 0;
      const extra = width - ids.length;
      ids = ids.concat(new Array(extra).fill(padId));
      attentionMask = attentionMask.concat(new Array(extra).fill(0));
      tokenTypeIds = tokenTypeIds.concat(new Array(extra).fill(0));
    }
    return { input_ids: ids, attention_mask: attentionMask, token_type_ids: tokenTypeIds };
  }

  feeds(text) {
    const columns = this.encode(text);
    const feeds = {};
    for (const [name, type] of Object.entries(this.inputTypes)) {
      const values = columns[name];
      const data = type === "int64" ? BigInt64Array.from(values, (v) => BigInt(v)) : Int32Array.from(values);
      feeds[name] = new this.ort.Tensor(type, data, [1, values.length]);
    }
    return feeds;
  }

  /** Raw scores, one per label. @param {string} text @returns {Promise<number[]>} */
  async logits(text) {
    const outputs = await this.session.run(this.feeds(text));
    const out = outputs[this.outputName];
    try {
      if (out.dims.length !== 2 || out.dims[0] !== 1 || out.dims[1] !== this.labels.length) {
        throw new BundleError(`tier ${JSON.stringify(this.name)}: the model returned shape [${out.dims}], expected [1, ${this.labels.length}]`);
      }
      return Array.from(/** @type {Float32Array} */ (out.data));
    } finally {
      for (const tensor of Object.values(outputs)) tensor.dispose?.();
    }
  }

  /** Calibrated probabilities, one per label. @param {string} text */
  async probabilities(text) {
    return softmax(await this.logits(text), this.temperature);
  }

  describe() {
    return {
      labels: this.labels.length,
      temperature: this.temperature,
      ...this.info,
      max_length: this.maxLength,
      vocab_size: this.tokenizer.vocabSize,
      inputs: Object.keys(this.inputTypes),
    };
  }

  async release() {
    await this.session.release?.();
  }
}

/**
 * Build the tier from its downloaded files; the session runs once on "" so a graph whose output
 * does not match config.json fails here, not on the first request.
 * @param {object} o
 * @param {import("./bundle.js").TierSpec} o.spec
 * @param {string[]} o.bundleLabels the manifest's labels
 * @param {string} o.role the variant's file role
 * @param {Uint8Array} o.model
 * @param {any} o.tokenizerJson parsed tokenizer.json
 * @param {any} o.config parsed config.json
 * @param {any} o.ort the onnxruntime-web module
 * @param {string} o.backend wasm | webgpu | webgl
 * @param {Record<string, any>} [o.info]
 */
export async function createTransformerTier({ spec, bundleLabels, role, model, tokenizerJson, config, ort, backend, info = {} }) {
  const where = `tier ${JSON.stringify(spec.name)}`;
  const maxLength = spec.extra.max_length ?? DEFAULT_MAX_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new BundleError(`${where}.max_length: expected a whole number >= 2, got ${JSON.stringify(maxLength)}`);
  const temperature = positive(spec.extra.temperature, 1.0, `${where}.temperature`);
  const labels = labelsFromConfig(config, `${where}: config.json`);
  const wanted = new Set(bundleLabels);
  if (labels.length !== wanted.size || !labels.every((l) => wanted.has(l))) {
    throw new BundleError(`${where}: config.json's id2label disagrees with the manifest's labels`);
  }
  let tokenizer;
  try {
    tokenizer = WordPieceTokenizer.fromTokenizerJson(tokenizerJson);
  } catch (error) {
    throw new BundleError(`${where}: not a usable tokenizer.json (${/** @type {Error} */ (error).message})`);
  }
  const provider = EXECUTION_PROVIDERS[backend];
  if (!provider) throw new BundleError(`unknown backend ${JSON.stringify(backend)} (known: ${Object.keys(EXECUTION_PROVIDERS).join(", ")})`);
  const details = spec.extra.variants?.[role] ?? {};
  const start = performance.now();
  let session;
  try {
    session = await ort.InferenceSession.create(model, {
      executionProviders: [provider],
      graphOptimizationLevel: "all",
      // Errors only: ORT's wasm core prints warnings (nodes placed on the CPU by WebGPU, int8
      // graph notes) through console.error, which a page should not show as errors.
      logSeverityLevel: 3,
    });
  } catch (error) {
    throw new BundleError(`${backend}: onnxruntime-web cannot create a session for ${spec.files[role].path} (${firstLine(error)})`);
  }
  const sessionMs = performance.now() - start;
  const tier = new TransformerTier({
    name: spec.name,
    ort,
    session,
    tokenizer,
    labels,
    temperature,
    maxLength,
    padLengths: Array.isArray(details.pad_lengths) ? details.pad_lengths : null,
    info: { ...info, variant: role, file: spec.files[role].path, bytes: spec.files[role].bytes, precision: details.precision ?? null, backend, session_ms: sessionMs },
  });
  const runStart = performance.now();
  try {
    await tier.logits("");
  } catch (error) {
    await tier.release().catch(() => undefined);
    if (error instanceof BundleError) throw error;
    throw new BundleError(`${backend}: the model does not run (${firstLine(error)})`);
  }
  tier.info.first_run_ms = performance.now() - runStart;
  return tier;
}

function firstLine(error) {
  const text = String(error?.message ?? error).trim();
  return text.split("\n")[0] || String(error?.name ?? "Error");
}
