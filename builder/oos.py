"""Out-of-scope (OOS) detection: labels that mean "out of scope", its metrics, and the held-out
intents protocol of ``builder eval --holdout-intents``.

Two cases (issue 7):

* The data has an OOS class (a label named ``oos``, or any name given with ``--oos-label``): it is
  trained like any intent and listed in the manifest's ``routing.oos_labels``; the router answers
  "clarify" (reason ``out_of_scope``) when a tier confidently predicts it.
* It has none: the clarify threshold on the top calibrated probability is the only defence. To
  measure it, N intents are removed from training and validation and treated as OOS in test.

Protocol of the held-out experiment (no OOS label is ever used to choose anything):

1. N intents are drawn with ``random.Random(seed).sample`` from the sorted training intents.
2. The tier is retrained, with the recipe recorded in the given bundle, on train minus those
   intents; the best epoch and the temperature come from validation minus those intents.
3. The threshold is the highest confidence at which the in-scope validation answers lose at most
   ``max_inscope_loss`` of accuracy to rejection (correct answers below the threshold / rows).
4. Test (all of it) is scored with the shipped model: held-out rows are OOS.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from runtime_py import Router
from runtime_py.bundle import read_manifest

from .datasets import Example, intent_labels, read_splits, write_splits
from .errors import BuildError
from .metrics import softmax

DEFAULT_OOS_LABELS: tuple[str, ...] = ("oos",)


def oos_labels_in(labels: Iterable[str], names: Iterable[str] = DEFAULT_OOS_LABELS) -> list[str]:
    """The labels of a trained tier that mean "out of scope"."""
    return sorted(set(labels) & set(names))


def record_oos_labels(manifest: dict[str, Any], labels: Iterable[str], names: Iterable[str] = DEFAULT_OOS_LABELS) -> list[str]:
    """Set (or clear) ``routing.oos_labels`` in a manifest being written."""
    found = oos_labels_in(labels, names)
    routing = manifest.setdefault("routing", {})
    if found:
        routing["oos_labels"] = found
    else:
        routing.pop("oos_labels", None)
    return found


# ---------------------------------------------------------------- metrics


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting
    half (the Mann-Whitney U statistic over average ranks)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        raise BuildError("AUROC needs both positive and negative rows")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = (ends - counts + 1 + ends) / 2.0  # 1-based ranks start..end of each tie group
    ranks = average_rank[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def threshold_for_loss(confidence: np.ndarray, correct: np.ndarray, max_loss: float) -> float:
    """The highest threshold t such that rejecting ``confidence < t`` turns at most
    ``max_loss`` of all rows from right to rejected."""
    confidence = np.asarray(confidence, dtype=np.float64)
    right = np.sort(confidence[np.asarray(correct, dtype=bool)])
    allowed = int(np.floor(max_loss * len(confidence) + 1e-9))
    if allowed >= len(right):
        return 1.0
    return float(right[allowed])


def oos_metrics(confidence: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, threshold: float) -> dict[str, float]:
    """In-scope accuracy with and without rejection, and OOS recall/precision/F1, at `threshold`.
    A rejected in-scope row counts as wrong; `correct` is ignored for OOS rows."""
    confidence, correct, is_oos = np.asarray(confidence), np.asarray(correct, dtype=bool), np.asarray(is_oos, dtype=bool)
    inside = ~is_oos
    rejected = confidence < threshold
    accuracy = float(correct[inside].mean()) if inside.any() else 0.0
    with_rejection = float((correct & ~rejected)[inside].mean()) if inside.any() else 0.0
    recall = float(rejected[is_oos].mean()) if is_oos.any() else 0.0
    precision = float(is_oos[rejected].mean()) if rejected.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    overall = float(np.where(is_oos, rejected, correct & ~rejected).mean()) if len(is_oos) else 0.0
    return {
        "threshold": float(threshold),
        "in_scope_accuracy": accuracy,
        "in_scope_accuracy_with_rejection": with_rejection,
        "in_scope_accuracy_loss": accuracy - with_rejection,
        "in_scope_rejected": float(rejected[inside].mean()) if inside.any() else 0.0,
        "oos_recall": recall,
        "oos_precision": precision,
        "oos_f1": float(f1),
        "accuracy_with_oos_class": overall,
    }


# ---------------------------------------------------------------- held-out intents


def pick_holdout(labels: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` intents drawn reproducibly from `labels` (OOS-class labels are never drawn)."""
    candidates = sorted(set(labels) - set(DEFAULT_OOS_LABELS))
    if not 1 <= n <= len(candidates) - 2:
        raise BuildError(f"--holdout-intents {n}: choose 1..{len(candidates) - 2} (the data has {len(candidates)} intents; 2 must stay)")
    return sorted(random.Random(seed).sample(candidates, n))


def _tier_spec(bundle: Path, tier: str) -> Any:
    try:
        manifest = read_manifest(bundle)
    except Exception:
        return None
    return next((s for s in manifest.tiers if s.name == tier or s.kind == tier), None)


def _known(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass fields among `values`; JSON lists back to tuples."""
    names = {f.name for f in fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (VALUE as JSON when it parses, else text), e.g. ``epochs=6``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BuildError(f"--recipe {item!r}: expected KEY=VALUE, e.g. epochs=6")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _override(options: Any, overrides: Mapping[str, Any]) -> Any:
    unknown = sorted(set(overrides) - {f.name for f in fields(options)})
    if unknown:
        raise BuildError(f"--recipe: unknown setting(s) {unknown} (known: {', '.join(f.name for f in fields(options))})")
    return replace(options, **_known(type(options), overrides))


def bow_recipe(bundle: Path) -> tuple[Any, str]:
    """BowOptions that reproduce the bundle's BoW tier (defaults when it has none)."""
    from .train_bow import BowOptions

    spec = _tier_spec(bundle, "bow")
    if spec is None or "model" not in spec.files:
        return BowOptions(), "defaults (the bundle has no bow tier)"
    model = json.loads((bundle / spec.files["model"].path).read_text(encoding="utf-8"))
    values = {**model.get("training", {}), **model.get("features", {})}
    return BowOptions(**_known(BowOptions, values)), f"{bundle}/{spec.files['model'].path}"


def transformer_recipe(bundle: Path) -> tuple[Any, str]:
    """TransformerBuildOptions that reproduce the bundle's transformer tier (defaults when none)."""
    from .train_transformer import TransformerOptions
    from .transformer_build import TransformerBuildOptions

    spec = _tier_spec(bundle, "transformer")
    if spec is None:
        return TransformerBuildOptions(training=TransformerOptions()), "defaults (the bundle has no transformer tier)"
    training = TransformerOptions(**_known(TransformerOptions, spec.extra.get("training", {})))
    target = (spec.extra.get("calibration") or {}).get("target_precision", 0.97)
    return TransformerBuildOptions(training=training, target_precision=target), f"{bundle}/manifest.json"


@dataclass
class HoldoutResult:
    report: dict[str, Any]
    test_confidence: np.ndarray
    test_correct: np.ndarray
    test_is_oos: np.ndarray


def routed_confidence(probs: np.ndarray, oos: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence, correctness and answer (a label index) of each row as the router uses a tier: the
    answer is the best in-scope intent (`oos` marks the out-of-scope labels), and a row whose top
    label is out of scope gets confidence -1 (rejected at any threshold)."""
    answers = np.where(oos, -np.inf, probs).argmax(axis=1)
    confidence = np.where(oos[probs.argmax(axis=1)], -1.0, probs[np.arange(len(probs)), answers])
    return confidence, answers == targets, answers


@dataclass
class RoutedScores:
    """One tier's routed confidence, correctness and in-scope answer (a label) for each row."""

    confidence: np.ndarray
    correct: np.ndarray
    answers: list[str]


def _scores(router: Router, tier_name: str, rows: Sequence[Example]) -> RoutedScores:
    """Calibrated confidence and correctness of one tier (`routed_confidence`), one text per run as deployed."""
    tier = next(t for t in router.tiers if t.name == tier_name)
    index = {label: i for i, label in enumerate(tier.labels)}
    logits = np.asarray([tier.logits(r.text) for r in rows], dtype=np.float64).reshape(len(rows), len(tier.labels))
    targets = np.asarray([index.get(r.intent, -1) for r in rows])
    oos = np.asarray([label in router.oos_labels for label in tier.labels])
    confidence, correct, answers = routed_confidence(softmax(logits, tier.temperature), oos, targets)
    return RoutedScores(confidence, correct, [tier.labels[i] for i in answers])


def held_out_breakdown(intents: Sequence[str], held: Sequence[str], scored: RoutedScores, threshold: float, top: int = 2) -> list[dict[str, Any]]:
    """Per held-out intent: its test rows, the share rejected at `threshold` (its recall), the median
    confidence, and the in-scope intents its rows were most often answered as (which known intent
    absorbs it: the usual reason a held-out intent is hard to reject)."""
    out = []
    for name in held:
        rows = np.asarray([i == name for i in intents], dtype=bool)
        if not rows.any():
            continue
        conf = scored.confidence[rows]
        taken = Counter(a for a, r in zip(scored.answers, rows) if r).most_common(top)
        out.append({
            "intent": name,
            "n": int(rows.sum()),
            "recall": float((conf < threshold).mean()),
            "median_confidence": float(np.median(conf)),
            "answered_as": [{"intent": a, "count": c} for a, c in taken],
        })
    return out


def run_holdout(
    bundle: Path,
    data: Path,
    tier: str,
    n: int,
    seed: int = 7,
    max_inscope_loss: float = 0.01,
    keep: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> HoldoutResult:
    """Retrain `tier` without `n` intents and measure OOS detection on the test split.
    `overrides` change settings of the recipe (for the transformer, of its training options)."""
    if tier not in ("bow", "transformer"):
        raise BuildError(f"--holdout-intents works with --tier bow or --tier transformer, not {tier!r}")
    splits = read_splits(data)
    if not splits["test"]:
        raise BuildError(f"{data}: --holdout-intents needs a test.jsonl")
    held = pick_holdout(intent_labels(splits["train"]), n, seed)
    inside = {name: [r for r in rows if r.intent not in held] for name, rows in splits.items()}
    recipe, source = bow_recipe(bundle) if tier == "bow" else transformer_recipe(bundle)
    if overrides:
        if tier == "bow":
            recipe = _override(recipe, overrides)
        else:
            recipe = replace(recipe, training=_override(recipe.training, overrides))
        source += " with " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    log(f"held out {n} intents (seed {seed}): {', '.join(held)}")
    log(f"recipe from {source}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="holdout-") as scratch:
        work = Path(scratch)
        write_splits(work / "data", inside)
        out = keep if keep is not None else work / "bundle"
        if tier == "bow":
            from .cli import train_bow_into_bundle

            train_bow_into_bundle(work / "data", out, recipe, replace=True, progress=progress)
        else:
            from .transformer_build import train_transformer_into_bundle

            train_transformer_into_bundle(work / "data", out, recipe, log=log, progress=progress)
        router = Router.from_bundle(out, tiers=[tier], strict=True)
        val = _scores(router, tier, inside["val"])
        test = _scores(router, tier, splits["test"])
        router_threshold = router.thresholds[tier][0]
    is_oos = np.asarray([r.intent in held for r in splits["test"]])
    threshold = max(0.0, threshold_for_loss(val.confidence, val.correct, max_inscope_loss))  # out-of-scope answers are always rejected
    report: dict[str, Any] = {
        "tier": tier,
        "mode": "holdout",
        "data": str(data),
        "held_out": held,
        "holdout_seed": seed,
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items() if not isinstance(v, Path)},
        "recipe_from": source,
        "sizes": {"train": len(inside["train"]), "val": len(inside["val"]), "test_in_scope": int((~is_oos).sum()), "test_oos": int(is_oos.sum())},
        "threshold_rule": f"highest threshold losing <= {max_inscope_loss:g} in-scope val accuracy (val without held-out intents)",
        "val_in_scope_accuracy": float(val.correct.mean()) if len(val.correct) else 0.0,
        "auroc": auroc(1.0 - test.confidence, is_oos),
        **oos_metrics(test.confidence, test.correct, is_oos, threshold),
        "at_router_threshold": oos_metrics(test.confidence, test.correct, is_oos, router_threshold),
        "per_held_out_intent": held_out_breakdown([r.intent for r in splits["test"]], held, test, threshold),
        "seconds": round(time.perf_counter() - started, 1),
        "bundle": str(keep) if keep is not None else None,
    }
    return HoldoutResult(report, test.confidence, test.correct, is_oos)


def format_holdout(report: dict[str, Any]) -> str:
    def block(m: Mapping[str, float]) -> list[str]:
        return [
            f"  threshold            {m['threshold']:.4f}",
            f"  in-scope accuracy    {m['in_scope_accuracy']:.4f} without rejection, {m['in_scope_accuracy_with_rejection']:.4f} with "
            f"(loss {100 * m['in_scope_accuracy_loss']:.2f} points; {m['in_scope_rejected']:.3f} of in-scope rows rejected)",
            f"  OOS recall           {m['oos_recall']:.4f}",
            f"  OOS precision        {m['oos_precision']:.4f}  (F1 {m['oos_f1']:.4f})",
            f"  accuracy, OOS as a class {m['accuracy_with_oos_class']:.4f}",
        ]

    s = report["sizes"]
    lines = [
        f"{report['tier']} tier retrained without {len(report['held_out'])} intents on {report['data']}",
        f"  held out             {', '.join(report['held_out'])}",
        f"  rows                 train {s['train']:,}, val {s['val']:,}; test {s['test_in_scope']:,} in scope + {s['test_oos']:,} OOS",
        f"  AUROC (max softmax)  {report['auroc']:.4f}",
        "",
        f"at the threshold chosen on val ({report['threshold_rule']}):",
        *block(report),
        "",
        "at the router's threshold for this tier:",
        *block(report["at_router_threshold"]),
    ]
    per = report.get("per_held_out_intent") or []
    if per:
        width = max(len(p["intent"]) for p in per)
        lines += ["", "per held-out intent, at the threshold chosen on val (recall; median confidence; answered as):"]
        for p in sorted(per, key=lambda p: p["recall"]):
            taken = ", ".join(f"{a['intent']} {a['count']}" for a in p["answered_as"])
            lines.append(f"  {p['intent']:<{width}}  {p['recall']:.2f} of {p['n']};  {p['median_confidence']:.2f};  {taken}")
    return "\n".join(lines)
