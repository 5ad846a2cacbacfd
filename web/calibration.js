// Temperature-scaled softmax: how every tier turns logits into calibrated confidences
// (runtime_py/calibration.py, same operations in the same order).

/**
 * Probabilities of softmax(logits / temperature); stable for any finite logits.
 * @param {ArrayLike<number>} logits
 * @param {number} [temperature]
 * @returns {number[]}
 */
export function softmax(logits, temperature = 1.0) {
  const n = logits.length;
  if (n === 0) return [];
  let top = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > top) top = logits[i];
  const exps = new Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    exps[i] = Math.exp((logits[i] - top) / temperature);
    total += exps[i];
  }
  for (let i = 0; i < n; i++) exps[i] /= total;
  return exps;
}
