"""Averages of several bundles' calibrated probabilities: accuracy and, on `builder eval
--holdout-intents` bundles, OOS detection, with a per-held-out-intent breakdown of the first model
(docs/BENCHMARKS.md, "Seed ensembles" and "banking77 with 10 intents held out").

    .venv/bin/python -m benchmarks.ensemble_scores DATA BUNDLE [BUNDLE ...]

Every transformer and BoW tier of the bundles is loaded unblended by runtime_py (`load_tier`: the
int8 graph on onnxruntime, labels in the model's own order) and scored on DATA's val and test
splits, one text per run as deployed (dynamic int8 depends on what else is in a batch, so batching
would move the figures). An `oos` column (a `--pseudo-oos` tier) is dropped and the rest renormalised. Intents of the test
split that the first bundle lacks are the held-out ones: OOS recall is at the threshold losing <= 1
point of in-scope val accuracy, as `builder eval` chooses it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from builder.evaluate.oos import RoutedScores, auroc, held_out_breakdown, oos_metrics, threshold_for_loss
from builder.train.metrics import softmax
from runtime_py.bundle import read_manifest
from runtime_py.tiers import load_tier


def rows(data: Path, split: str) -> tuple[list[str], list[str]]:
    items = [json.loads(line) for line in (data / f"{split}.jsonl").open()]
    return [x["text"] for x in items], [x["intent"] for x in items]


def tier_probabilities(bundle: Path, texts: dict[str, list[str]]) -> dict[str, tuple[list[str], dict[str, np.ndarray]]]:
    """{"BUNDLE:KIND": (labels, {split: calibrated probabilities})} for each transformer and BoW tier."""
    out = {}
    for spec in read_manifest(bundle).tiers:
        if spec.kind in ("transformer", "bow"):
            tier = load_tier(bundle, spec)
            probs = {split: softmax(np.array([tier.logits(x) for x in t], dtype=np.float64), tier.temperature) for split, t in texts.items()}
            out[f"{bundle.name}:{spec.kind}"] = (list(tier.labels), probs)
    return out


def main() -> int:
    data, bundles = Path(sys.argv[1]), [Path(b) for b in sys.argv[2:]]
    (va_x, va_y), (te_x, te_y) = rows(data, "val"), rows(data, "test")
    tiers: dict[str, dict[str, np.ndarray]] = {}
    labels: list[str] | None = None
    for bundle in bundles:
        for key, (tier_labels, probs) in tier_probabilities(bundle, {"val": va_x, "test": te_x}).items():
            labels = labels or [label for label in tier_labels if label != "oos"]
            order = [tier_labels.index(label) for label in labels]
            tiers[key] = {split: p[:, order] / p[:, order].sum(1, keepdims=True) for split, p in probs.items()}
    assert labels is not None, "no transformer or BoW tier in the bundles"
    index = {label: i for i, label in enumerate(labels)}
    va_t, te_t = np.array([index.get(y, -1) for y in va_y]), np.array([index.get(y, -1) for y in te_y])
    held = sorted(set(te_y) - set(labels))
    va_in, te_oos = va_t >= 0, te_t < 0

    def threshold(pv: np.ndarray) -> float:
        """The highest threshold losing <= 1 point of in-scope val accuracy, as `builder eval` chooses it."""
        return threshold_for_loss(pv.max(1)[va_in], (pv.argmax(1) == va_t)[va_in], 0.01)

    def report(name: str, pv: np.ndarray, pt: np.ndarray) -> None:
        correct = pt.argmax(1) == te_t
        line = f"{name:44s} in-scope test accuracy {correct[~te_oos].mean():.4f}"
        if held:
            m = oos_metrics(pt.max(1), correct, te_oos, threshold(pv))
            line += (f"  AUROC {auroc(pt.max(1), ~te_oos):.4f}  OOS recall {m['oos_recall']:.3f}  precision {m['oos_precision']:.3f}"
                     f"  loss {100 * m['in_scope_accuracy_loss']:.2f} pt")
        print(line)

    for key, p in tiers.items():
        report(key, p["val"], p["test"])
    transformers = [p for key, p in tiers.items() if key.endswith(":transformer")]
    bows = [p for key, p in tiers.items() if key.endswith(":bow")]
    if len(transformers) > 1:
        mean = {split: sum(p[split] for p in transformers) / len(transformers) for split in ("val", "test")}
        report(f"mean of {len(transformers)} transformers", mean["val"], mean["test"])
        if bows:
            bow = {split: sum(p[split] for p in bows) / len(bows) for split in ("val", "test")}
            for w in (0.5, 0.6, 0.7, 0.8):
                report(f"  {w} x that + {1 - w:.1f} x BoW", *(w * mean[s] + (1 - w) * bow[s] for s in ("val", "test")))
    if held:
        first = next(iter(tiers.values()))
        pt, cut = first["test"], threshold(first["val"])
        scored = RoutedScores(pt.max(1), pt.argmax(1) == te_t, [labels[i] for i in pt.argmax(1)])
        print(f"\n{next(iter(tiers))}: per held-out intent at threshold {cut:.3f} (recall; median confidence; answered as)")
        for p in sorted(held_out_breakdown(te_y, held, scored, cut), key=lambda p: p["recall"]):
            taken = ", ".join(f"{a['intent']} {a['count']}" for a in p["answered_as"])
            print(f"  {p['intent']:<48s} {p['recall']:.2f} of {p['n']};  {p['median_confidence']:.2f};  {taken}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
