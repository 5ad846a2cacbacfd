"""Out-of-scope scores of a transformer tier that has an `oos` label (trained with `--pseudo-oos`
or on data with an oos class), on a model retrained without some intents (docs/BENCHMARKS.md,
"Training an out-of-scope class on synthetic outliers"). Thresholds follow builder/evaluate/holdout.py: the
highest losing <= 1 point of in-scope val accuracy; the answer is the best in-scope intent.

    .venv/bin/python -m benchmarks.oos_class_scores TRANSFORMER_BUNDLE SPLITS

The bundle is a `builder eval --holdout-intents N --holdout-out DIR` result; the held-out intents
are the test intents it lacks. Runs the tier through runtime_py, one text per run, as deployed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from builder.data.datasets import Example, read_splits
from builder.evaluate.oos import auroc, oos_metrics, routed_confidence, threshold_for_loss
from builder.train.metrics import softmax
from runtime_py import Router


def main() -> int:
    bundle, data = Path(sys.argv[1]), Path(sys.argv[2])
    router = Router.from_bundle(bundle, tiers=["transformer"], strict=True)
    tier = router.tiers[0]
    oos = [i for i, label in enumerate(tier.labels) if label in router.oos_labels]
    if len(oos) != 1:
        raise SystemExit(f"{bundle}: expected one out-of-scope label in the transformer tier, found {len(oos)}")
    splits = read_splits(data)
    held = {r.intent for r in splits["test"]} - set(tier.labels)
    index = {label: i for i, label in enumerate(tier.labels)}

    oos_mask = np.arange(len(tier.labels)) == oos[0]

    def probabilities(rows: list[Example]) -> tuple[np.ndarray, np.ndarray]:
        p = softmax(np.array([tier.logits(r.text) for r in rows], dtype=np.float64), tier.temperature)
        return p, routed_confidence(p, oos_mask, np.array([index.get(r.intent, -1) for r in rows]))[1]

    def scores(p: np.ndarray) -> dict[str, np.ndarray]:
        inside, p_oos = np.delete(p, oos[0], axis=1), p[:, oos[0]]
        return {
            "as the router answers (top label oos: rejected)": routed_confidence(p, oos_mask, np.zeros(len(p)))[0],
            "max in-scope probability": inside.max(axis=1),
            "max in-scope probability, renormalised without oos": inside.max(axis=1) / inside.sum(axis=1),
            "1 - p(oos)": 1 - p_oos,
            "max in-scope probability - p(oos)": inside.max(axis=1) - p_oos,
        }

    val = [r for r in splits["val"] if r.intent not in held]
    p_val, right_val = probabilities(val)
    p_test, right_test = probabilities(splits["test"])
    is_oos = np.array([r.intent in held for r in splits["test"]])
    print(f"held out: {', '.join(sorted(held))}")
    for (name, s_val), s_test in zip(scores(p_val).items(), scores(p_test).values()):
        threshold = threshold_for_loss(s_val, right_val, 0.01)
        if name.startswith("as the router"):
            threshold = max(0.0, threshold)  # as builder/evaluate/holdout.py: an oos answer is always rejected
        m = oos_metrics(s_test, right_test, is_oos, threshold)
        print(f"{name:52s} AUROC {auroc(-s_test, is_oos):.3f}  threshold {threshold:.3f}  OOS recall {m['oos_recall']:.3f}  "
              f"precision {m['oos_precision']:.3f}  in-scope loss {100 * m['in_scope_accuracy_loss']:.2f} points  "
              f"(in-scope accuracy {m['in_scope_accuracy']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
