"""The held-out experiment of ``builder eval --holdout-intents``, run: retrain a tier without N intents
with the recipe the bundle recorded, then score it (the protocol is :mod:`builder.evaluate.holdout`)."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from runtime_py import Router
from runtime_py.bundle import read_manifest

from ..data.datasets import intent_labels, read_splits, write_splits
from ..errors import BuildError
from ..evaluate.holdout import HoldoutResult, holdout_report, pick_holdout
from ..options import known_fields
from ..train.bow import BowOptions
from ..train.fine_tune import TransformerOptions
from .bow_tier import train_bow_into_bundle
from .transformer_tier import TransformerBuildOptions, train_transformer_into_bundle


def _tier_spec(bundle: Path, tier: str) -> Any:
    try:
        manifest = read_manifest(bundle)
    except Exception:
        return None
    return next((s for s in manifest.tiers if s.name == tier or s.kind == tier), None)


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
    return replace(options, **known_fields(type(options), overrides))


def bow_recipe(bundle: Path) -> tuple[BowOptions, str]:
    """BowOptions that reproduce the bundle's BoW tier (defaults when it has none)."""
    spec = _tier_spec(bundle, "bow")
    if spec is None or "model" not in spec.files:
        return BowOptions(), "defaults (the bundle has no bow tier)"
    model = json.loads((bundle / spec.files["model"].path).read_text(encoding="utf-8"))
    values = {**model.get("training", {}), **model.get("features", {})}
    return BowOptions(**known_fields(BowOptions, values)), f"{bundle}/{spec.files['model'].path}"


def transformer_recipe(bundle: Path) -> tuple[TransformerBuildOptions, str]:
    """TransformerBuildOptions that reproduce the bundle's transformer tier (defaults when none)."""
    spec = _tier_spec(bundle, "transformer")
    if spec is None:
        return TransformerBuildOptions(training=TransformerOptions()), "defaults (the bundle has no transformer tier)"
    training = TransformerOptions(**known_fields(TransformerOptions, spec.extra.get("training", {})))
    target = (spec.extra.get("calibration") or {}).get("target_precision", 0.97)
    return TransformerBuildOptions(training=training, target_precision=target), f"{bundle}/manifest.json"


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
    recipe: Any
    recipe, source = bow_recipe(bundle) if tier == "bow" else transformer_recipe(bundle)
    if overrides:
        if tier == "bow":
            recipe = _override(recipe, overrides)
        else:
            recipe = replace(recipe, training=_override(recipe.training, overrides))
        source += " with " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    log(f"held out {n} intents (seed {seed}): {', '.join(held)}")
    log(f"recipe from {source}")
    about = {
        "tier": tier,
        "mode": "holdout",
        "data": str(data),
        "held_out": held,
        "holdout_seed": seed,
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items() if not isinstance(v, Path)},
        "recipe_from": source,
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="holdout-") as scratch:
        work = Path(scratch)
        write_splits(work / "data", inside)
        out = keep if keep is not None else work / "bundle"
        if tier == "bow":
            train_bow_into_bundle(work / "data", out, recipe, replace=True, progress=progress)
        else:
            train_transformer_into_bundle(work / "data", out, recipe, log=log, progress=progress)
        router = Router.from_bundle(out, tiers=[tier], strict=True)
        result = holdout_report(router, tier, held, inside, splits["test"], max_inscope_loss, about)
    result.report["seconds"] = round(time.perf_counter() - started, 1)
    result.report["bundle"] = str(keep) if keep is not None else None
    return result
