// node --test web/ : the browser runtime decides every bundle conformance case as the case says.
//
// tests/fixtures/conformance/cases.json lists good and bad manifest.json and bow.json documents (its
// "about" says how to read a case); tests/test_conformance.py runs the same cases through runtime_py
// and the JSON Schemas of docs/schema/, so both runtimes refuse the same documents, naming the same
// field. No file of a bundle is read: parseManifest, tierSettings and blendSetting check the
// manifest, BowModel.fromJson the bow.json content.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { blendSetting } from "./blend.js";
import { BOW_FORMAT, BowModel, READABLE_VERSIONS } from "./bow.js";
import { BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, parseManifest, TIER_FILE_ROLES, tierSettings } from "./bundle.js";
import { BundleError } from "./errors.js";
import { NORMS, TF_MODES } from "./features.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CONFORMANCE = join(ROOT, "tests", "fixtures", "conformance");
const WHERE = { manifest: "manifest.json", bow: "bow.json" };
const CASES = JSON.parse(readFileSync(join(CONFORMANCE, "cases.json"), "utf8")).cases;

const readJson = (path) => JSON.parse(readFileSync(join(CONFORMANCE, path), "utf8"));
const clone = (value) => structuredClone(value);

/** RFC 6901: "/tiers/0/name" -> ["tiers", "0", "name"]. */
function pointer(path) {
  if (!path.startsWith("/")) throw new Error(`JSON pointer ${JSON.stringify(path)} must start with '/'`);
  return path.slice(1).split("/").map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** `doc` with RFC 6902 operations add, replace and remove applied (a copy). */
function applyPatch(doc, ops) {
  doc = clone(doc);
  for (const op of ops) {
    const parts = pointer(op.path);
    const last = parts.pop();
    let target = doc;
    for (const part of parts) target = Array.isArray(target) ? target[Number(part)] : target[part];
    if (!["add", "replace", "remove"].includes(op.op)) throw new Error(`unsupported patch operation ${JSON.stringify(op.op)}`);
    if (Array.isArray(target)) {
      const index = last === "-" ? target.length : Number(last);
      if (op.op === "add") target.splice(index, 0, clone(op.value));
      else if (op.op === "replace") target[index] = clone(op.value);
      else target.splice(index, 1);
    } else {
      if (op.op !== "add" && !Object.hasOwn(target, last)) throw new Error(`${op.op} ${op.path}: no such member`);
      if (op.op === "remove") delete target[last];
      else target[last] = clone(op.value);
    }
  }
  return doc;
}

/** The JSON document a case describes. */
function documentOf(c) {
  if ("data" in c) return clone(c.data);
  return applyPatch(readJson(c.file ?? c.base), c.patch ?? []);
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** True when `message` starts with `where` followed by "." or ": " and the path `field` ("" for the document itself). */
function namesField(message, where, field) {
  if (!message.startsWith(where)) return false;
  const rest = message.slice(where.length);
  if (field === "") return rest.startsWith(":");
  return new RegExp(`^(?:\\.|: )${escapeRegExp(field)}(?![\\w.\\[])`).test(rest);
}

/**
 * What the browser runtime decides: {message: null} when accepted, else the refusal's message, stage
 * ("document" or "tier"), location and tier index. Only a BundleError counts as a refusal.
 */
function decide(c) {
  const data = documentOf(c);
  const where = WHERE[c.kind];
  let manifest;
  try {
    if (c.kind === "bow") {
      BowModel.fromJson(data, where);
      return { message: null };
    }
    manifest = parseManifest(data, where);
  } catch (error) {
    if (!(error instanceof BundleError)) throw error;
    return { message: error.message, stage: "document", where };
  }
  for (const [i, spec] of manifest.tiers.entries()) {
    try {
      tierSettings(spec);
      blendSetting(spec);
    } catch (error) {
      if (!(error instanceof BundleError)) throw error;
      return { message: error.message, stage: "tier", where: `tier ${JSON.stringify(spec.name)}`, tierIndex: i };
    }
  }
  return { message: null };
}

test("conformance: the case list is well formed and covers both files", () => {
  const ids = CASES.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length, "case ids must be unique");
  for (const kind of Object.keys(WHERE)) {
    assert.ok(CASES.some((c) => c.kind === kind && c.accept), `no good ${kind} case`);
    assert.ok(CASES.some((c) => c.kind === kind && !c.accept), `no bad ${kind} case`);
  }
  for (const c of CASES) {
    assert.ok(c.kind in WHERE, c.id);
    assert.equal(typeof c.accept, "boolean", c.id);
    if (!c.accept) assert.equal(typeof c.field, "string", `${c.id}: a refused case names its field`);
  }
});

for (const c of CASES) {
  test(`conformance: ${c.id} (${c.kind}, ${c.accept ? "accepted" : `refused at ${JSON.stringify(c.field)}`})`, () => {
    const got = decide(c);
    if (c.accept) {
      assert.equal(got.message, null, `refused: ${got.message}`);
      return;
    }
    assert.notEqual(got.message, null, `accepted; expected a refusal naming ${JSON.stringify(c.field)}`);
    const stage = c.stage ?? "document";
    assert.equal(got.stage, stage, `refused at stage ${got.stage}, expected ${stage}: ${got.message}`);
    let field = c.field;
    if (stage === "tier") {
      const prefix = `tiers[${got.tierIndex}].`;
      assert.ok(field.startsWith(prefix), `tier ${got.tierIndex} refused, expected ${field}: ${got.message}`);
      field = field.slice(prefix.length);
    }
    assert.ok(namesField(got.message, got.where, field), `the message does not name ${JSON.stringify(c.field)}: ${got.message}`);
  });
}

test("conformance: the JSON Schemas state this runtime's constants", () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, "docs", "schema", "manifest.schema.json"), "utf8"));
  const bow = JSON.parse(readFileSync(join(ROOT, "docs", "schema", "bow.schema.json"), "utf8"));
  assert.equal(manifest.properties.format.const, BUNDLE_FORMAT);
  assert.equal(manifest.properties.format_version.const, BUNDLE_FORMAT_VERSION);
  for (const [kind, roles] of Object.entries(TIER_FILE_ROLES)) assert.deepEqual(manifest.$defs[`${kind}Tier`].properties.files.required, roles);
  assert.equal(bow.properties.format.const, BOW_FORMAT);
  assert.deepEqual(bow.properties.format_version.enum, READABLE_VERSIONS);
  assert.deepEqual(bow.$defs.features.properties.tf.enum, TF_MODES);
  assert.deepEqual(bow.$defs.features.properties.norm.enum, NORMS);
});

test("conformance: namesField is strict about the path", () => {
  assert.ok(namesField("manifest.json.tiers[0].threshold: expected", "manifest.json", "tiers[0].threshold"));
  assert.ok(!namesField("manifest.json.tiers[0].threshold: expected", "manifest.json", "tiers[0]"));
  assert.ok(!namesField("bow.json: weights[1] has 1 values", "bow.json", "weights"));
  assert.ok(!namesField("bow.json: bias has 1 values for 2 labels", "bow.json", "labels"));
  assert.ok(!namesField("bow.json: format_version 3 is not supported", "bow.json", "format"));
  assert.ok(namesField("bow.json: expected a JSON object", "bow.json", ""));
});
