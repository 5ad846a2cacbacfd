// BERT's WordPiece split of one word: greedy longest match first over a set of pieces
// (runtime_py/pieces.py). The tokenizer (wordpiece.js) and the BoW tier's word pieces (features.js)
// both split words with it; it imports nothing, so the BoW tier does not load the Unicode tables.

const NON_BMP = /[\ud800-\udfff]/;

/**
 * `word` as pieces of `pieces`: from the start, each the longest that is in `pieces` (with `prefix`
 * before a piece that does not start the word); null when some part is not covered or the word has
 * more than `maxChars` code points. Lengths count code points, as Python's slices do.
 * @param {string} word
 * @param {{has(key: string): boolean}} pieces
 * @param {number} maxLen bounds a piece's length without `prefix` (any larger value gives the same split)
 * @param {string} [prefix]
 * @param {number} [maxChars]
 * @returns {string[] | null}
 */
export function splitWord(word, pieces, maxLen, prefix = "##", maxChars = Infinity) {
  const chars = NON_BMP.test(word) ? Array.from(word) : null;
  const n = chars ? chars.length : word.length;
  if (n > maxChars) return null;
  /** @type {string[]} */
  const out = [];
  let start = 0;
  while (start < n) {
    let end = Math.min(n, start + maxLen);
    let found = null;
    while (end > start) {
      const part = chars ? chars.slice(start, end).join("") : word.slice(start, end);
      const sub = start > 0 ? prefix + part : part;
      if (pieces.has(sub)) {
        found = sub;
        break;
      }
      end--;
    }
    if (found === null) return null;
    out.push(found);
    start = end;
  }
  return out;
}
