// Input checks shared by every tier (runtime_py/text.py): what the router accepts as text, and
// how it is cleaned. Lengths count code points, as Python's len() does.

import { InputError } from "./errors.js";

export const DEFAULT_MAX_CHARS = 4096;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const PAIR = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;
const GROUPING = new Intl.NumberFormat("en-US");

/**
 * Number of code points of `text` (a lone surrogate counts as one, as in Python).
 * @param {string} text
 */
export function codePointLength(text) {
  let pairs = 0;
  PAIR.lastIndex = 0;
  while (PAIR.exec(text) !== null) pairs++;
  return text.length - pairs;
}

/**
 * Replace lone surrogates, which cannot be encoded anywhere, by U+FFFD.
 * @param {string} text
 */
export function replaceLoneSurrogates(text) {
  if (typeof text.toWellFormed === "function") return text.toWellFormed();
  return text.replace(LONE_SURROGATE, "\uFFFD");
}

/**
 * Return `text` as a clean string or throw InputError.
 *
 * Bytes (Uint8Array, ArrayBuffer, other views) are decoded as UTF-8 with U+FFFD for undecodable
 * bytes. Texts longer than `maxChars` code points are refused before any work is done.
 * @param {unknown} text
 * @param {number} [maxChars]
 * @returns {string}
 */
export function prepareText(text, maxChars = DEFAULT_MAX_CHARS) {
  if (text instanceof ArrayBuffer || ArrayBuffer.isView(text)) {
    const view = text instanceof ArrayBuffer ? new Uint8Array(text) : new Uint8Array(text.buffer, text.byteOffset, text.byteLength);
    text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(view);
  }
  if (typeof text !== "string") {
    const kind = text === null ? "null" : Array.isArray(text) ? "array" : typeof text;
    throw new InputError(`expected text as a string, got ${kind}`);
  }
  // Code points <= UTF-16 units: count only when it can matter.
  if (text.length > maxChars) {
    const length = codePointLength(text);
    if (length > maxChars) {
      throw new InputError(
        `input is ${GROUPING.format(length)} characters; the limit is ${GROUPING.format(maxChars)} (set maxChars to change it)`,
      );
    }
  }
  return replaceLoneSurrogates(text);
}
