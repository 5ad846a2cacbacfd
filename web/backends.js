// Browser backends for the transformer tier: which onnxruntime-web build each one loads, how it
// is set up, and whether this browser can run it (and on what adapter). Used by the worker.

export const BACKENDS = ["wasm", "webgpu", "webgl"];

/** The onnxruntime-web build of each backend (PLATFORM.md: ort.wasm loads the 14 MB CPU-only
 * WebAssembly; ort.webgpu the native WebGPU build, which gave correct int8 results; ort.webgl has no WebAssembly). */
const BUILDS = { wasm: "ort.wasm.min.mjs", webgpu: "ort.webgpu.min.mjs", webgl: "ort.webgl.min.mjs" };
const SOFTWARE = /swiftshader|llvmpipe|softpipe|software|basic render/i;

/** Threads for WASM: `requested` (a whole number >= 1), else `defaultThreads(cores)`; several only
 * when the page is cross-origin isolated (else ORT cannot share memory). @param {number | null} [requested] */
export function wasmThreads(requested = null) {
  const given = requested !== null && requested !== undefined;
  if (given && (!Number.isInteger(requested) || requested < 1)) throw new TypeError(`threads: expected a whole number >= 1, got ${JSON.stringify(requested)}`);
  if (!globalThis.crossOriginIsolated) return 1;
  if (given) return requested;
  return defaultThreads(globalThis.navigator?.hardwareConcurrency || 1);
}

/** One ORT thread per two cores, at most 4: the page's main thread and the worker need cores too.
 * On 2 cores a second thread made a 16-token MiniLM slower (15.2 vs 10.5 ms; docs/BENCHMARKS.md, "Small").
 * @param {number} cores */
export function defaultThreads(cores) {
  return Math.max(1, Math.min(4, Math.floor(cores / 2)));
}

/**
 * Import and configure the onnxruntime-web build of `backend` from `vendorUrl` (".../vendor/ort/").
 * @param {string} backend
 * @param {string} vendorUrl
 * @param {number | null} [threads] WASM threads (see wasmThreads)
 */
export async function importOrt(backend, vendorUrl, threads = null) {
  const ort = await import(new URL(BUILDS[backend], vendorUrl).href);
  ort.env.logLevel = "error";
  if (ort.env.wasm) {
    ort.env.wasm.wasmPaths = vendorUrl;
    ort.env.wasm.numThreads = wasmThreads(threads);
    ort.env.wasm.proxy = false; // we are the worker already
  }
  if (backend === "webgl" && ort.env.webgl) ort.env.webgl.pack = true;
  return ort;
}

/**
 * Whether `backend` can run here, and on what: {ok, reason?, adapter?: {name, software}}.
 * @param {string} backend
 * @param {number | null} [threads] WASM threads (see wasmThreads)
 */
export async function probeBackend(backend, threads = null) {
  if (backend === "wasm") {
    if (typeof WebAssembly !== "object") return { ok: false, reason: "WebAssembly is not available" };
    return { ok: true, adapter: { name: `WebAssembly SIMD, ${wasmThreads(threads)} thread(s)`, software: false } };
  }
  if (backend === "webgpu") {
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) return { ok: false, reason: "WebGPU is not available in this browser (navigator.gpu is missing)" };
    let adapter = null;
    try {
      adapter = await gpu.requestAdapter();
    } catch (error) {
      return { ok: false, reason: `WebGPU adapter request failed (${error?.message ?? error})` };
    }
    if (!adapter) return { ok: false, reason: "WebGPU found no adapter (no GPU, or the GPU is blocklisted)" };
    const info = adapter.info ?? {};
    const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "unknown adapter";
    return { ok: true, adapter: { name, software: Boolean(info.isFallbackAdapter) || SOFTWARE.test(name) } };
  }
  if (backend === "webgl") {
    let gl = null;
    try {
      gl = new OffscreenCanvas(1, 1).getContext("webgl2");
    } catch {
      gl = null;
    }
    if (!gl) return { ok: false, reason: "WebGL 2 is not available (no GPU process, or it is disabled)" };
    const ext = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) || "unknown renderer");
    gl.getExtension("WEBGL_lose_context")?.loseContext();
    return { ok: true, adapter: { name, software: SOFTWARE.test(name) } };
  }
  return { ok: false, reason: `unknown backend ${JSON.stringify(backend)} (known: ${BACKENDS.join(", ")})` };
}
