// Reading a bundle over HTTP (runtime_py/bundle.py): manifest.json, then the files it lists, each
// checked against the manifest's size and sha256 and kept in the Cache API, so a second visit
// starts without downloading. Works in a page, a worker and Node (no Cache API there).

import { BundleError } from "./errors.js";

export const BUNDLE_FORMAT = "edge-intent-bundle";
export const BUNDLE_FORMAT_VERSION = 1;
export const MANIFEST_NAME = "manifest.json";
export const FALLBACK_INTENT = "clarify";
/** File roles a tier of each kind needs (docs/BUNDLE.md); other roles are optional. */
export const TIER_FILE_ROLES = Object.freeze({ bow: ["model"], transformer: ["model", "tokenizer", "config"] });
export const DEFAULT_MAX_LENGTH = 128;
const SLOT_CASES = [null, "upper", "lower"];
// Absolute paths, ".." segments, and characters a file system (\, the ":" of a drive letter) or a
// URL (the ":" of a scheme, "%" as in %2e%2e, "?", "#") reads differently from a relative path.
const UNSAFE_PATH_CHARS = /[\\:%?#\u0000-\u001f\u007f]/;
export const CACHE_NAME = "edge-intent-kit-bundle-v1";
/** RemoteBundle.facts() before a bundle is open. */
export const NO_BUNDLE_FACTS = Object.freeze({ verified: null, cache: null, name: null, labels: [] });

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isProbability = (v) => typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 1;
const isStringList = (v, nonEmpty = false) => Array.isArray(v) && v.every((x) => typeof x === "string" && (x.length > 0 || !nonEmpty));

/**
 * @typedef {{path: string, bytes: number, sha256: string}} FileEntry
 * @typedef {{name: string, kind: string, files: Record<string, FileEntry>, threshold: number | null,
 *   handoff_threshold: number | null, extra: Record<string, any>}} TierSpec
 * @typedef {{path: string, sha256: string, bytes: Uint8Array, fromCache: boolean}} Prefetched
 * @typedef {{manifest: Record<string, any>, files: Prefetched[]}} Prefetch
 * @typedef {{name: string, labels: string[], tiers: TierSpec[], fallback_intent: string,
 *   margin: number | null, oos_labels: string[], slots: Record<string, any>, raw: Record<string, any>}} Manifest
 */

function probability(value, where) {
  if (value === undefined || value === null) return null;
  if (!isProbability(value)) throw new BundleError(`${where}: expected a number between 0 and 1, got ${JSON.stringify(value)}`);
  return value;
}

/** @returns {FileEntry} */
function fileEntry(data, where) {
  if (!isObject(data)) throw new BundleError(`${where}: expected an object with path, bytes and sha256`);
  const { path, bytes, sha256 } = data;
  if (typeof path !== "string" || !path) throw new BundleError(`${where}.path: expected a relative file path`);
  if (path.startsWith("/") || path.split("/").includes("..") || UNSAFE_PATH_CHARS.test(path)) {
    throw new BundleError(
      `${where}.path: ${JSON.stringify(path)} points outside the bundle (bundle paths are relative, '/'-separated, ` +
        "without '..' segments or any of \\ : % ? # and control characters)",
    );
  }
  if (!Number.isInteger(bytes) || bytes < 0) throw new BundleError(`${where}.bytes: expected a file size, got ${JSON.stringify(bytes)}`);
  if (typeof sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
    throw new BundleError(`${where}.sha256: expected 64 hex digits, got ${JSON.stringify(sha256)}`);
  }
  return { path, bytes, sha256: sha256.toLowerCase() };
}

/** `data` is null/undefined or an object of name -> list of strings. */
function stringLists(data, where, what) {
  if (data === undefined || data === null) return;
  if (!isObject(data)) throw new BundleError(`${where}: expected an object of ${what}`);
  for (const [key, value] of Object.entries(data)) {
    if (!isStringList(value)) throw new BundleError(`${where}.${key}: expected a list of strings, got ${JSON.stringify(value)}`);
  }
}

/** The shape of manifest.slots (the patterns' regular expressions are compiled by the SlotExtractor). */
function checkSlots(slots, where) {
  stringLists(slots.values, `${where}.values`, "slot name -> known values");
  stringLists(slots.required, `${where}.required`, "intent -> required slot names");
  const patterns = slots.patterns;
  if (patterns === undefined || patterns === null) return;
  if (!isObject(patterns)) throw new BundleError(`${where}.patterns: expected an object of slot name -> pattern`);
  for (const [slot, spec] of Object.entries(patterns)) {
    const at = `${where}.patterns.${slot}`;
    if (!isObject(spec)) throw new BundleError(`${at}: expected an object with regex, case and exclude`);
    if (typeof spec.regex !== "string") throw new BundleError(`${at}.regex: expected a regular expression, got ${JSON.stringify(spec.regex)}`);
    if (!SLOT_CASES.includes(spec.case ?? null)) throw new BundleError(`${at}.case: expected "upper", "lower" or null, got ${JSON.stringify(spec.case)}`);
    if (spec.exclude !== undefined && spec.exclude !== null && !isStringList(spec.exclude)) {
      throw new BundleError(`${at}.exclude: expected a list of strings, got ${JSON.stringify(spec.exclude)}`);
    }
  }
}

/**
 * Validate a parsed manifest.json, as runtime_py's parse_manifest does; errors name `where` and the field.
 * Checks the content only (no file is read); docs/schema/manifest.schema.json states the same rules and
 * tests/fixtures/conformance holds the cases both runtimes must agree on. A null optional field counts as absent.
 * @param {unknown} data
 * @param {string} [where]
 * @returns {Manifest}
 */
export function parseManifest(data, where = MANIFEST_NAME) {
  if (!isObject(data)) throw new BundleError(`${where}: expected a JSON object`);
  const d = /** @type {Record<string, any>} */ (data);
  if (d.format !== BUNDLE_FORMAT) {
    throw new BundleError(`${where}: format ${JSON.stringify(d.format)}: not an intent bundle (expected ${JSON.stringify(BUNDLE_FORMAT)})`);
  }
  if (d.format_version !== BUNDLE_FORMAT_VERSION) {
    throw new BundleError(
      `${where}: format_version ${JSON.stringify(d.format_version)} is not supported (this runtime reads ${BUNDLE_FORMAT_VERSION}); rebuild the bundle`,
    );
  }
  const name = d.name ?? null;
  if (name !== null && typeof name !== "string") throw new BundleError(`${where}.name: expected a string, got ${JSON.stringify(name)}`);
  const labels = d.labels;
  if (!Array.isArray(labels) || !labels.length || !isStringList(labels, true)) {
    throw new BundleError(`${where}.labels: expected a non-empty list of intent names`);
  }
  const twice = labels.find((label, i) => labels.indexOf(label) !== i);
  if (twice !== undefined) throw new BundleError(`${where}.labels: ${JSON.stringify(twice)} appears twice`);
  const fallback = d.fallback_intent ?? null;
  if (fallback !== null && !(typeof fallback === "string" && fallback)) {
    throw new BundleError(`${where}.fallback_intent: expected an intent name, got ${JSON.stringify(fallback)}`);
  }
  if (!Array.isArray(d.tiers)) throw new BundleError(`${where}.tiers: expected a list`);
  const seen = new Set();
  const tiers = d.tiers.map((tier, i) => {
    const at = `${where}.tiers[${i}]`;
    if (!isObject(tier)) throw new BundleError(`${at}: expected an object`);
    const { name: tierName, kind, files } = tier;
    if (typeof tierName !== "string" || !tierName) throw new BundleError(`${at}.name: expected a tier name`);
    if (seen.has(tierName)) throw new BundleError(`${at}.name: tier ${JSON.stringify(tierName)} appears twice`);
    seen.add(tierName);
    if (typeof kind !== "string" || !kind) throw new BundleError(`${at}.kind: expected a tier kind such as 'bow'`);
    if (!isObject(files) || !Object.keys(files).length) throw new BundleError(`${at}.files: expected an object of role -> file entry`);
    /** @type {Record<string, FileEntry>} */
    const entries = {};
    for (const [role, entry] of Object.entries(files)) entries[role] = fileEntry(entry, `${at}.files.${role}`);
    const extra = {};
    for (const [k, v] of Object.entries(tier)) if (!["name", "kind", "files", "threshold", "handoff_threshold"].includes(k)) extra[k] = v;
    return {
      name: tierName,
      kind,
      files: entries,
      threshold: probability(tier.threshold, `${at}.threshold`),
      handoff_threshold: probability(tier.handoff_threshold, `${at}.handoff_threshold`),
      extra,
    };
  });
  const routing = d.routing ?? {};
  if (!isObject(routing)) throw new BundleError(`${where}.routing: expected an object`);
  const margin = probability(routing.margin, `${where}.routing.margin`);
  const oos = routing.oos_labels ?? [];
  if (!isStringList(oos, true)) {
    throw new BundleError(`${where}.routing.oos_labels: expected a list of label names, got ${JSON.stringify(oos)}`);
  }
  const slots = d.slots ?? {};
  if (!isObject(slots)) throw new BundleError(`${where}.slots: expected an object`);
  checkSlots(slots, `${where}.slots`);
  return {
    name: name ?? "",
    labels: labels.slice(),
    tiers,
    fallback_intent: fallback ?? FALLBACK_INTENT,
    margin,
    oos_labels: oos.slice(),
    slots,
    raw: d,
  };
}

/**
 * What a tier's loader checks in the manifest before it reads a file, as runtime_py's tier_settings:
 * the file roles its kind needs and, for a transformer, max_length and temperature (returned with
 * their defaults). Kinds this runtime does not know pass; blend is checked by blend.js's blendSetting.
 * @param {TierSpec} spec
 * @returns {{maxLength?: number, temperature?: number}}
 */
export function tierSettings(spec) {
  const where = `tier ${JSON.stringify(spec.name)}`;
  const roles = TIER_FILE_ROLES[/** @type {keyof typeof TIER_FILE_ROLES} */ (spec.kind)] ?? [];
  for (const role of roles) {
    if (!Object.hasOwn(spec.files, role)) {
      throw new BundleError(`${where}: files.${role}: no '${role}' file in the manifest (a ${spec.kind} tier needs ${roles.join(", ")})`);
    }
  }
  if (spec.kind !== "transformer") return {};
  const maxLength = spec.extra.max_length ?? DEFAULT_MAX_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new BundleError(`${where}.max_length: expected a whole number >= 2, got ${JSON.stringify(maxLength)}`);
  const temperature = spec.extra.temperature ?? 1.0;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature <= 0) {
    throw new BundleError(`${where}.temperature: expected a positive number, got ${JSON.stringify(temperature)}`);
  }
  return { maxLength, temperature };
}

/** Lower-case hex sha256 of `bytes`, or null where WebCrypto is unavailable (insecure origins). */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return null;
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function openCache() {
  try {
    return globalThis.caches ? await globalThis.caches.open(CACHE_NAME) : null;
  } catch {
    return null; // opaque origins, private modes and file:// refuse the Cache API
  }
}

async function fetchOk(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new BundleError(`${url}: cannot download (${/** @type {Error} */ (error).message})`);
  }
  if (!response.ok) throw new BundleError(`${url}: HTTP ${response.status} ${response.statusText}`.trim());
  return response;
}

/**
 * A bundle at a URL: its manifest and verified, cached file downloads.
 */
/**
 * The tiers of `manifest` to load: all of them, or those named (by name or kind) in `wanted`.
 * @param {{tiers: TierSpec[]}} manifest
 * @param {string[] | null | undefined} wanted
 * @returns {TierSpec[]}
 */
export function selectTiers(manifest, wanted) {
  if (wanted === null || wanted === undefined) return manifest.tiers;
  if (!Array.isArray(wanted) || !wanted.length || !wanted.every((w) => typeof w === "string")) {
    throw new BundleError(`tiers: expected a non-empty list of tier names or kinds, got ${JSON.stringify(wanted)}`);
  }
  const chosen = manifest.tiers.filter((s) => wanted.includes(s.name) || wanted.includes(s.kind));
  const known = manifest.tiers.flatMap((s) => [s.name, s.kind]);
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length) throw new BundleError(`tiers: this bundle has no tier ${unknown.map((w) => JSON.stringify(w)).join(", ")} (it has: ${manifest.tiers.map((s) => `${s.name} (${s.kind})`).join(", ")})`);
  return chosen;
}

export class RemoteBundle {
  /**
   * @param {string} baseUrl the folder holding manifest.json (ends with "/")
   * @param {Manifest} manifest
   * @param {Cache | null} cache
   */
  constructor(baseUrl, manifest, cache) {
    this.baseUrl = baseUrl;
    this.manifest = manifest;
    this.cache = cache;
    /** @type {Map<string, Prefetched>} files another context already verified, by path (used once) */
    this.prefetched = new Map();
    /** sha256 verification available (false on insecure origins, where only sizes are checked) */
    this.canVerify = Boolean(globalThis.crypto?.subtle);
    /** @type {Promise<unknown>[]} cache writes still in flight */
    this.writes = [];
  }

  /** Resolves when every downloaded file is in the cache (or failed to be stored). */
  async stored() {
    while (this.writes.length) await Promise.all(this.writes.splice(0));
  }

  /**
   * Fetch and validate manifest.json; it is always revalidated with the server (no-cache), so a
   * rebuilt bundle is seen at once and its new files fetched, while unchanged files come from the cache.
   * With `prefetch` (RemoteBundle.prefetch's result, from the page) its manifest and files are used
   * instead of downloading them again; a prefetched file whose sha256 is not the manifest's is ignored.
   * @param {string | URL} baseUrl
   * @param {Prefetch | null} [prefetch]
   */
  static async open(baseUrl, prefetch = null) {
    let base = new URL(baseUrl, globalThis.location?.href).href;
    if (!base.endsWith("/")) base += "/";
    const url = base + MANIFEST_NAME;
    const cache = openCache(); // opening it takes 5-15 ms in a fresh context: overlap it with the manifest
    let data = prefetch?.manifest;
    if (!data) {
      const response = await fetchOk(url, { cache: "no-cache" });
      try {
        data = await response.json();
      } catch (error) {
        throw new BundleError(`${url}: invalid JSON (${/** @type {Error} */ (error).message})`);
      }
    }
    const bundle = new RemoteBundle(base, parseManifest(data, url), await cache);
    for (const file of prefetch?.files ?? []) bundle.prefetched.set(file.path, file);
    return bundle;
  }

  /**
   * The manifest and the files of the cheap tiers (BoW), verified and cached here, for a worker
   * to start from (`RemoteBundle.open(url, prefetch)` there): the page downloads them while the
   * worker starts, instead of the worker downloading them after. Transfer the files' buffers.
   * @param {string | URL} baseUrl
   * @param {string[] | null} [tiers] as IntentClient's `tiers` option
   * @returns {Promise<Prefetch>}
   */
  static async prefetch(baseUrl, tiers = null) {
    const bundle = await RemoteBundle.open(baseUrl);
    const cheap = selectTiers(bundle.manifest, tiers).filter((s) => s.kind === "bow" && s.files.model);
    const files = await Promise.all(
      cheap.map(async (s) => {
        const entry = s.files.model;
        const got = await bundle.file(entry);
        return { path: entry.path, sha256: entry.sha256, bytes: got.bytes, fromCache: got.fromCache };
      }),
    );
    return { manifest: bundle.manifest.raw, files };
  }

  /** What status() reports about the bundle, for every engine. */
  facts() {
    return {
      verified: this.canVerify ? "sha256" : "size only (no WebCrypto on this origin)",
      cache: Boolean(this.cache),
      name: this.manifest.name,
      labels: this.manifest.labels,
    };
  }

  /** Absolute URL of a bundle-relative path. @param {string} path */
  url(path) {
    return this.baseUrl + path;
  }

  /**
   * The bytes of one file, checked against its manifest entry; from the cache when it holds this
   * exact file (the key includes the sha256), else downloaded, verified and stored.
   * @param {FileEntry} entry
   * @param {(loaded: number, total: number) => void} [onProgress]
   * @returns {Promise<{bytes: Uint8Array, fromCache: boolean, ms: number}>}
   */
  async file(entry, onProgress) {
    const start = performance.now();
    const url = this.url(entry.path);
    const key = `${url}?sha256=${entry.sha256}`;
    const given = this.prefetched.get(entry.path);
    if (given && given.sha256 === entry.sha256 && given.bytes.byteLength === entry.bytes) {
      this.prefetched.delete(entry.path); // verified (and cached) where it was fetched
      return { bytes: given.bytes, fromCache: given.fromCache, ms: performance.now() - start };
    }
    if (this.cache) {
      const hit = await this.cache.match(key).catch(() => undefined);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        if (bytes.byteLength === entry.bytes) return { bytes, fromCache: true, ms: performance.now() - start };
        await this.cache.delete(key).catch(() => false);
      }
    }
    const response = await fetchOk(url, { cache: "no-cache" });
    const bytes = await readBody(response, entry.bytes, onProgress);
    if (bytes.byteLength !== entry.bytes) {
      throw new BundleError(`${url}: size ${bytes.byteLength.toLocaleString("en-US")} bytes does not match the manifest's ${entry.bytes.toLocaleString("en-US")}`);
    }
    const actual = await sha256Hex(bytes);
    if (actual !== null && actual !== entry.sha256) {
      throw new BundleError(`${url}: sha256 ${actual.slice(0, 12)}... does not match the manifest's ${entry.sha256.slice(0, 12)}...`);
    }
    if (this.cache && actual !== null) {
      const cache = this.cache;
      // The Response copies the bytes now (1-2 ms for 2 MB), so the caller may transfer them. put()
      // blocks the thread for 7-20 ms even unawaited, so it starts in a later task, after the caller
      // has parsed the file (see stored()).
      const copy = new Response(bytes, { headers: { "Content-Type": response.headers.get("Content-Type") || "application/octet-stream" } });
      const later = new Promise((resolve) => setTimeout(resolve, 0));
      this.writes.push(later.then(() => cache.put(key, copy)).catch(() => undefined)); // quota: serve uncached
    }
    return { bytes, fromCache: false, ms: performance.now() - start };
  }

  /** A file parsed as JSON. @param {FileEntry} entry */
  async json(entry) {
    const got = await this.file(entry);
    try {
      return { ...got, data: JSON.parse(new TextDecoder("utf-8").decode(got.bytes)) };
    } catch (error) {
      throw new BundleError(`${this.url(entry.path)}: invalid JSON (${/** @type {Error} */ (error).message})`);
    }
  }

  /** Drop cached files that this manifest no longer lists (an older build's model). */
  async prune() {
    if (!this.cache) return 0;
    await this.stored();
    const keep = new Set(this.manifest.tiers.flatMap((t) => Object.values(t.files).map((e) => `${this.url(e.path)}?sha256=${e.sha256}`)));
    let removed = 0;
    for (const request of await this.cache.keys()) {
      if (request.url.startsWith(this.baseUrl) && !keep.has(request.url)) removed += (await this.cache.delete(request)) ? 1 : 0;
    }
    return removed;
  }
}

/** The body of `response` as bytes, reporting progress; refuses more than twice the expected size. */
async function readBody(response, expected, onProgress) {
  if (!response.body || !onProgress) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    if (loaded > 2 * expected + 1024) {
      await reader.cancel();
      throw new BundleError(`${response.url}: more than twice the ${expected.toLocaleString("en-US")} bytes the manifest lists`);
    }
    onProgress(loaded, expected);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
