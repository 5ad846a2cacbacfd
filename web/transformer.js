// The transformer tier on onnxruntime-web (runtime_py/transformer.py): our WordPiece tokenizer,
// an ONNX sequence classifier, softmax(logits / temperature).
//
// onnxruntime-web is passed in (the worker imports one build per backend: ort.wasm.min.mjs,
// ort.webgpu.min.mjs, ort.webgl.min.mjs), so this module runs anywhere, Node included.

import { softmax } from "./calibration.js";
import { DEFAULT_MAX_LENGTH, tierSettings } from "./bundle.js";
import { BundleError } from "./errors.js";
import { WordPieceTokenizer } from "./wordpiece.js";

export { DEFAULT_MAX_LENGTH };
export const MODEL_INPUTS = ["input_ids", "attention_mask", "token_type_ids"];
/** The ORT execution provider of each backend name. */
export const EXECUTION_PROVIDERS = { wasm: "wasm", webgpu: "webgpu", webgl: "webgl" };

/** The file roles holding a variant of the model (model, model_fp32, ...), manifest order. */
export function variantRoles(spec) {
  return Object.keys(spec.files).filter((role) => role.startsWith("model"));
}

/** A variant's fixed sequence length (`variants[role].pad_length`), or null for a dynamic-shape graph. */
function padLengthOf(spec, role) {
  const n = spec.extra.variants?.[role]?.pad_length;
  return Number.isInteger(n) && n >= 2 ? n : null;
}

/**
 * Which variant a backend runs: `wanted` if given, else a variant built for the backend
 * (`variants[role].backend`, e.g. a WebGL graph; of fixed-length ones the shortest), else "model".
 * Native-only variants are never chosen.
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
  const dedicated = roles.filter((r) => variants[r]?.backend === backend);
  if (dedicated.length) return dedicated.sort((a, b) => (padLengthOf(spec, a) ?? Infinity) - (padLengthOf(spec, b) ?? Infinity))[0];
  if (!roles.includes("model")) throw new BundleError(`tier ${JSON.stringify(spec.name)}: no 'model' file in the manifest`);
  return "model";
}

/**
 * The fixed-length graphs that serve `role` together, shortest first: [{role, padLength}], or null
 * when `role` has a dynamic shape. With `siblings`, every variant of the same backend that has a
 * `pad_length` (model_webgl_16, _32, _64); else `role` alone (a text longer is cut at its length).
 * @param {import("./bundle.js").TierSpec} spec
 * @param {string} role
 * @param {boolean} [siblings]
 * @returns {{role: string, padLength: number}[] | null}
 */
export function variantBuckets(spec, role, siblings = true) {
  const own = padLengthOf(spec, role);
  if (own === null) return null;
  const backend = spec.extra.variants?.[role]?.backend;
  const roles = siblings ? variantRoles(spec).filter((r) => padLengthOf(spec, r) !== null && spec.extra.variants?.[r]?.backend === backend) : [role];
  const byLength = new Map();
  for (const r of roles) if (!byLength.has(padLengthOf(spec, r)) || r === role) byLength.set(padLengthOf(spec, r), r);
  return [...byLength.entries()].sort((a, b) => a[0] - b[0]).map(([padLength, r]) => ({ role: r, padLength }));
}

/** `session.inputMetadata`, or [] where the backend cannot tell (WebGL throws). */
function inputMetadata(session) {
  try {
    const meta = session.inputMetadata;
    return Array.isArray(meta) ? meta : [];
  } catch {
    return [];
  }
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
   * @param {{padLength: number, role?: string, session?: any, open?: () => Promise<any>}[] | null} [o.buckets]
   *   fixed-length graphs (WebGL): one session per length, `session` or `open()` to create it on
   *   first use; a text goes to the shortest that holds it, else is cut at the longest. Null: one
   *   dynamic-shape `session`.
   * @param {"int32" | "int64" | null} [o.inputType] the inputs' type when the session cannot say (WebGL)
   * @param {Record<string, any>} [o.info] extra detail for describe()
   */
  constructor({ name, ort, session, tokenizer, labels, temperature = 1.0, maxLength = DEFAULT_MAX_LENGTH, buckets = null, inputType = null, info = {} }) {
    this.name = name;
    this.kind = "transformer";
    this.ort = ort;
    this.session = session;
    this.tokenizer = tokenizer;
    this.labels = labels.slice();
    this.temperature = temperature;
    this.maxLength = maxLength;
    this.buckets = buckets?.length
      ? buckets
          .map((b) => ({ padLength: b.padLength, role: b.role ?? null, session: b.session ?? null, open: b.open ?? null, pending: null, session_ms: null }))
          .sort((a, b) => a.padLength - b.padLength)
      : null;
    if (this.buckets && !this.buckets.some((b) => b.session)) this.buckets[0].session = session;
    this.padId = 0;
    if (this.buckets) {
      const padId = tokenizer.tokenToId(tokenizer.padToken);
      if (padId === undefined || padId === null) throw new BundleError(`tier ${JSON.stringify(name)}: fixed-length graphs need a pad token, and the tokenizer has none`);
      this.padId = padId;
    }
    this.info = { ...info };
    const names = session.inputNames;
    const unknown = names.filter((n) => !MODEL_INPUTS.includes(n));
    if (unknown.length) throw new BundleError(`tier ${JSON.stringify(name)}: the ONNX graph wants inputs ${JSON.stringify(unknown)}; only ${MODEL_INPUTS.join(", ")} are supported`);
    if (!names.includes("input_ids")) throw new BundleError(`tier ${JSON.stringify(name)}: the ONNX graph has no 'input_ids' input`);
    const meta = inputMetadata(session);
    /** @type {Record<string, "int64" | "int32">} */
    this.inputTypes = {};
    for (const n of names) {
      const type = meta.find((m) => m.name === n)?.type ?? inputType;
      this.inputTypes[n] = type === "int32" ? "int32" : "int64";
    }
    const outputs = session.outputNames;
    this.outputName = outputs.includes("logits") ? "logits" : outputs[0];
  }

  /** The fixed-length graph `n` tokens go to: the shortest that holds them, else the longest. */
  bucketFor(n) {
    if (!this.buckets) return null;
    return this.buckets.find((b) => b.padLength >= n) ?? this.buckets[this.buckets.length - 1];
  }

  /** Input ids, attention mask and token types of `text`; with fixed-length graphs cut at the
   * longest and padded (pad id, mask 0) to the shortest that holds them, named in `pad_length`. */
  encode(text) {
    const longest = this.buckets ? this.buckets[this.buckets.length - 1].padLength : Infinity;
    const enc = this.tokenizer.encode(text, { maxLength: Math.min(this.maxLength, longest) });
    let { ids, attentionMask, tokenTypeIds } = enc;
    const bucket = this.bucketFor(ids.length);
    if (bucket) {
      const extra = bucket.padLength - ids.length;
      ids = ids.concat(new Array(extra).fill(this.padId));
      attentionMask = attentionMask.concat(new Array(extra).fill(0));
      tokenTypeIds = tokenTypeIds.concat(new Array(extra).fill(0));
    }
    return { input_ids: ids, attention_mask: attentionMask, token_type_ids: tokenTypeIds, pad_length: bucket?.padLength ?? null };
  }

  /** The session of a fixed-length graph, created on first use (a WebGL session keeps the shape of its first run). */
  async sessionFor(bucket) {
    if (bucket.session) return bucket.session;
    if (!bucket.open) throw new BundleError(`tier ${JSON.stringify(this.name)}: no session for pad length ${bucket.padLength}`);
    if (!bucket.pending) {
      const start = performance.now();
      bucket.pending = bucket.open().then(
        (session) => {
          bucket.session = session;
          bucket.session_ms = performance.now() - start;
          return session;
        },
        (error) => {
          bucket.pending = null; // a later text may try again
          throw error;
        },
      );
    }
    return bucket.pending;
  }

  feeds(text) {
    return this.feedsOf(this.encode(text));
  }

  feedsOf(columns) {
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
    const columns = this.encode(text);
    const session = columns.pad_length === null ? this.session : await this.sessionFor(this.bucketFor(columns.pad_length));
    const outputs = await session.run(this.feedsOf(columns));
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
      input_type: Object.values(this.inputTypes)[0] ?? null,
      ...(this.buckets
        ? { buckets: this.buckets.map((b) => ({ pad_length: b.padLength, variant: b.role, loaded: Boolean(b.session), session_ms: b.session_ms })) }
        : {}),
    };
  }

  async release() {
    const sessions = new Set([this.session, ...(this.buckets ?? []).map((b) => b.session)].filter(Boolean));
    for (const b of this.buckets ?? []) b.pending?.catch(() => undefined);
    await Promise.all([...sessions].map((s) => s.release?.()));
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
 * @param {{role: string, padLength: number}[] | null} [o.buckets] fixed-length graphs served
 *   together (variantBuckets); `role` is one of them, the others are opened on first use
 * @param {(role: string) => Promise<Uint8Array>} [o.loadModel] the bytes of another bucket's graph
 * @param {Record<string, any>} [o.info]
 */
export async function createTransformerTier({ spec, bundleLabels, role, model, tokenizerJson, config, ort, backend, buckets = null, loadModel = null, info = {} }) {
  const where = `tier ${JSON.stringify(spec.name)}`;
  const { maxLength, temperature } = /** @type {{maxLength: number, temperature: number}} */ (tierSettings(spec));
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
  const open = async (bytes, r) => {
    try {
      return await ort.InferenceSession.create(bytes, {
        executionProviders: [provider],
        graphOptimizationLevel: "all",
        // Errors only: ORT's wasm core prints warnings (nodes placed on the CPU by WebGPU, int8
        // graph notes) through console.error, which a page should not show as errors.
        logSeverityLevel: 3,
      });
    } catch (error) {
      throw new BundleError(`${backend}: onnxruntime-web cannot create a session for ${spec.files[r].path} (${firstLine(error)})`);
    }
  };
  const start = performance.now();
  const session = await open(model, role);
  const sessionMs = performance.now() - start;
  const tierBuckets = buckets?.length
    ? buckets.map((b) => ({
        padLength: b.padLength,
        role: b.role,
        session: b.role === role ? session : null,
        open: b.role === role || !loadModel ? null : async () => open(await loadModel(b.role), b.role),
      }))
    : null;
  const tier = new TransformerTier({
    name: spec.name,
    ort,
    session,
    tokenizer,
    labels,
    temperature,
    maxLength,
    buckets: tierBuckets,
    inputType: details.input_type === "int32" || details.input_type === "int64" ? details.input_type : null,
    info: { ...info, variant: role, file: spec.files[role].path, bytes: spec.files[role].bytes, precision: details.precision ?? null, backend, session_ms: sessionMs },
  });
  const first = tier.buckets?.find((b) => b.session === session);
  if (first) first.session_ms = sessionMs;
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
