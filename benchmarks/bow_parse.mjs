// How long a fresh Node process takes to turn a bow.json into a BowModel (the BoW tier's parse
// on the first answer's path; docs/BENCHMARKS.md, "First answer"). Cold code, one call per process.
//
//   node benchmarks/bow_parse.mjs models/bundles/finance/bow.json
//
// Node 20 has no Uint8Array.fromBase64 (Chromium >= 140 does), so Buffer stands in for it, as native
// in both cases.
import { readFileSync } from "node:fs";

Uint8Array.fromBase64 ??= (text) => new Uint8Array(Buffer.from(text, "base64"));
const { BowModel } = await import("../web/bow.js");
const bytes = readFileSync(process.argv[2]);
const t0 = performance.now();
const data = JSON.parse(new TextDecoder().decode(bytes));
const t1 = performance.now();
BowModel.fromJson(data, process.argv[2]);
const t2 = performance.now();
console.log(`${(bytes.length / 1e6).toFixed(2)} MB: JSON.parse ${(t1 - t0).toFixed(1)} ms, BowModel.fromJson ${(t2 - t1).toFixed(1)} ms`);
