"""The cascade router: cheap tier first, the next tier when it is unsure, "clarify" when none is sure.

Settings come from arguments, else environment variables, else the bundle's manifest, else
the defaults below (BRIEF section 6):

=====================  ===========================  =======  =============================================
argument               environment variable         default  meaning
=====================  ===========================  =======  =============================================
threshold              INTENT_THRESHOLD             0.6      confidence the last tier needs to answer
handoff_threshold      INTENT_HANDOFF_THRESHOLD     0.75     confidence an earlier tier needs to answer
tier_thresholds[name]  INTENT_THRESHOLD_<NAME>      --       per-tier override of `threshold`
margin                 INTENT_MARGIN                0.1      top-1 minus top-2 below this is ambiguous
force                  INTENT_FORCE                 false    accept the last tier's answer whatever it is
max_chars              INTENT_MAX_CHARS             4096     longer input is refused with InputError
oos_labels             --                           --       labels meaning "out of scope" (manifest
                                                             ``routing.oos_labels``)
=====================  ===========================  =======  =============================================

A tier that confidently answers one of the ``oos_labels`` ends the cascade with the fallback
intent and reason ``out_of_scope`` (its tier and confidence kept, no missing slots).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from .blend import blend_tiers
from .bundle import FALLBACK_INTENT, Manifest, read_manifest
from .errors import BundleError, IntentKitError
from .slots import SlotExtractor
from .text import DEFAULT_MAX_CHARS, prepare_text
from .tiers import Tier, load_tier

DEFAULT_THRESHOLD = 0.6
DEFAULT_HANDOFF_THRESHOLD = 0.75
DEFAULT_MARGIN = 0.1

EscalationHook = Callable[[str, "RouteResult"], "str | tuple[str, float] | None"]


@dataclass
class TierReport:
    """What one tier said about the text, whether or not its answer was used."""

    tier: str
    kind: str
    label: str | None = None
    confidence: float | None = None
    margin: float | None = None
    threshold: float | None = None
    accepted: bool = False
    reason: str = "not_run"  # confident | below_threshold | ambiguous | unknown_label | error
    latency_ms: float = 0.0
    error: str | None = None


@dataclass
class RouteResult:
    """The routed answer. ``intent`` is the fallback ("clarify") when no tier was confident."""

    intent: str
    confidence: float | None
    tier: str | None
    reason: str  # confident | forced | escalated | out_of_scope | below_threshold | ambiguous | unknown_label | empty_input | no_tier
    ranking: list[tuple[str, float]] = field(default_factory=list)
    tiers: list[TierReport] = field(default_factory=list)
    slots: dict[str, list[str]] = field(default_factory=dict)
    missing_slots: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    escalation: dict[str, Any] | None = None

    @property
    def is_fallback(self) -> bool:
        return self.tier is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ranking"] = [{"intent": label, "confidence": p} for label, p in self.ranking]
        return data


def _env_number(environ: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise IntentKitError(f"{name}={raw!r}: expected a number between {low:g} and {high:g}") from None
    if not low <= value <= high:
        raise IntentKitError(f"{name}={raw!r}: expected a number between {low:g} and {high:g}")
    return value


def _env_flag(environ: Mapping[str, str], name: str) -> bool | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise IntentKitError(f"{name}={raw!r}: expected true/false (1/0, yes/no, on/off)")


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _check_probability(name: str, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise IntentKitError(f"{name}={value!r}: expected a number between 0 and 1")
    return value


class Router:
    """Routes text through an ordered list of tiers; see the module docstring for settings."""

    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        slots: SlotExtractor | None = None,
        fallback_intent: str = FALLBACK_INTENT,
        threshold: float | None = None,
        handoff_threshold: float | None = None,
        tier_thresholds: Mapping[str, float] | None = None,
        margin: float | None = None,
        force: bool | None = None,
        max_chars: int | None = None,
        known_intents: Collection[str] | None = None,
        oos_labels: Collection[str] | None = None,
        escalate: EscalationHook | None = None,
        environ: Mapping[str, str] | None = None,
        manifest: Manifest | None = None,
        bundle_dir: str | Path | None = None,
        problems: Sequence[dict[str, str]] = (),
    ) -> None:
        env = os.environ if environ is None else environ
        specs = {spec.name: spec for spec in manifest.tiers} if manifest else {}
        self.tiers, blend_problems = blend_tiers(tiers, specs)
        self.slots = slots or SlotExtractor()
        self.fallback_intent = fallback_intent
        self.manifest = manifest
        self.bundle_dir = Path(bundle_dir) if bundle_dir is not None else None
        self.problems = list(problems) + blend_problems
        self.known_intents = set(known_intents) if known_intents is not None else None
        self.oos_labels = set(oos_labels if oos_labels is not None else manifest.oos_labels if manifest else ())
        self.escalate = escalate
        self.margin = _first(
            _check_probability("margin", margin),
            _env_number(env, "INTENT_MARGIN", 0, 1),
            manifest.margin if manifest else None,
            DEFAULT_MARGIN,
        )
        self.force = bool(_first(force, _env_flag(env, "INTENT_FORCE"), False))
        env_chars = _env_number(env, "INTENT_MAX_CHARS", 1, 10**9)
        self.max_chars = int(_first(max_chars, env_chars, DEFAULT_MAX_CHARS))
        global_threshold = _first(_check_probability("threshold", threshold), _env_number(env, "INTENT_THRESHOLD", 0, 1))
        global_handoff = _first(
            _check_probability("handoff_threshold", handoff_threshold),
            _env_number(env, "INTENT_HANDOFF_THRESHOLD", 0, 1),
        )
        overrides = dict(tier_thresholds or {})
        self.thresholds: dict[str, tuple[float, float]] = {}
        for tier in self.tiers:
            spec = specs.get(tier.name)
            final = _first(
                _check_probability(f"tier_thresholds[{tier.name!r}]", overrides.get(tier.name)),
                _env_number(env, f"INTENT_THRESHOLD_{tier.name.upper()}", 0, 1),
                global_threshold,
                spec.threshold if spec else None,
                DEFAULT_THRESHOLD,
            )
            handoff = _first(global_handoff, spec.handoff_threshold if spec else None, DEFAULT_HANDOFF_THRESHOLD)
            self.thresholds[tier.name] = (final, handoff)

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        *,
        tiers: Sequence[str] | None = None,
        check_hash: bool = True,
        strict: bool = False,
        **options: Any,
    ) -> "Router":
        """Load a bundle's tiers. A missing or corrupt file disables its tier and is listed in
        ``status()["problems"]``; with ``strict=True`` it raises :class:`BundleError` instead."""
        bundle_dir = Path(bundle_dir)
        problems: list[dict[str, str]] = []
        try:
            manifest = read_manifest(bundle_dir)
        except BundleError as exc:
            if strict:
                raise
            return cls([], bundle_dir=bundle_dir, problems=[{"where": "manifest", "error": str(exc)}], **options)
        wanted = list(tiers) if tiers is not None else None
        if wanted is not None:
            unknown = set(wanted) - {spec.name for spec in manifest.tiers}
            if unknown:
                raise BundleError(f"{bundle_dir}: no tier named {sorted(unknown)} (has {[s.name for s in manifest.tiers]})")
        loaded: list[Tier] = []
        for spec in manifest.tiers:
            if wanted is not None and spec.name not in wanted:
                continue
            try:
                loaded.append(load_tier(bundle_dir, spec, check_hash, options.get("environ")))
            except (BundleError, OSError, ImportError, ValueError) as exc:
                if strict:
                    raise BundleError(f"tier {spec.name!r}: {exc}") from exc
                problems.append({"where": f"tier {spec.name}", "error": str(exc)})
        slots = SlotExtractor.from_manifest(manifest.slots)
        return cls(
            loaded,
            slots=slots,
            fallback_intent=manifest.fallback_intent,
            manifest=manifest,
            bundle_dir=bundle_dir,
            problems=problems,
            **options,
        )

    def _evaluate(self, tier: Tier, text: str, threshold: float) -> tuple[TierReport, list[tuple[str, float]]]:
        start = time.perf_counter()
        report = TierReport(tier=tier.name, kind=tier.kind, threshold=threshold)
        try:
            probs = tier.probabilities(text)
        except Exception as exc:  # a tier failing must not take the router down
            report.reason, report.error = "error", f"{type(exc).__name__}: {exc}"
            report.latency_ms = (time.perf_counter() - start) * 1000
            return report, []
        ranking = sorted(zip(tier.labels, probs), key=lambda pair: pair[1], reverse=True)
        report.latency_ms = (time.perf_counter() - start) * 1000
        label, confidence = ranking[0]
        runner_up = ranking[1][1] if len(ranking) > 1 else 0.0
        report.label, report.confidence, report.margin = label, confidence, confidence - runner_up
        if self.known_intents is not None and label not in self.known_intents and label not in self.oos_labels:
            report.reason = "unknown_label"
        elif confidence < threshold:
            report.reason = "below_threshold"
        elif report.margin < self.margin:
            report.reason = "ambiguous"
        else:
            report.reason, report.accepted = "confident", True
        return report, ranking

    def classify(self, text: object) -> RouteResult:
        """Route `text`. Raises :class:`InputError` for non-text or over-long input."""
        start = time.perf_counter()
        clean = prepare_text(text, self.max_chars)
        result = RouteResult(intent=self.fallback_intent, confidence=None, tier=None, reason="no_tier")
        if not clean.strip():
            result.reason = "empty_input"
            result.latency_ms = (time.perf_counter() - start) * 1000
            return result
        last: tuple[TierReport, list[tuple[str, float]]] | None = None
        for position, tier in enumerate(self.tiers):
            final, handoff = self.thresholds[tier.name]
            threshold = final if position == len(self.tiers) - 1 else handoff
            report, ranking = self._evaluate(tier, clean, threshold)
            result.tiers.append(report)
            if report.reason == "error":
                continue
            last = (report, ranking)
            if report.accepted:
                break
        if last is not None:
            report, ranking = last
            result.ranking = ranking
            if report.accepted and report.label in self.oos_labels:
                result.confidence, result.tier, result.reason = report.confidence, report.tier, "out_of_scope"
            elif report.accepted or (self.force and report.reason != "unknown_label"):
                result.intent, result.confidence, result.tier = report.label, report.confidence, report.tier
                result.reason = "confident" if report.accepted else "forced"
            else:
                result.reason = report.reason
        if result.tier is None and self.escalate is not None:
            self._escalate(clean, result)
        result.slots = self.slots.extract(clean)
        if result.tier is not None and result.reason != "out_of_scope":
            result.missing_slots = self.slots.missing(result.intent, result.slots)
        result.latency_ms = (time.perf_counter() - start) * 1000
        return result

    def _escalate(self, text: str, result: RouteResult) -> None:
        start = time.perf_counter()
        record: dict[str, Any] = {"called": True}
        try:
            answer = self.escalate(text, result)  # type: ignore[misc]
        except Exception as exc:  # the hook is user code: report, never crash
            record["error"] = f"{type(exc).__name__}: {exc}"
            answer = None
        record["latency_ms"] = (time.perf_counter() - start) * 1000
        if answer is not None:
            label, confidence = (answer, None) if isinstance(answer, str) else (answer[0], float(answer[1]))
            record["label"] = label
            if self.known_intents is not None and label not in self.known_intents:
                record["error"] = f"escalation returned unknown intent {label!r}"
            else:
                result.intent, result.confidence, result.tier, result.reason = label, confidence, "escalation", "escalated"
        result.escalation = record

    def status(self) -> dict[str, Any]:
        """What is available: runtime, bundle, tiers (loaded or why not), thresholds, slots."""
        tiers: list[dict[str, Any]] = []
        loaded = {tier.name: tier for tier in self.tiers}
        specs = self.manifest.tiers if self.manifest else []
        for spec in specs:
            entry: dict[str, Any] = {
                "name": spec.name,
                "kind": spec.kind,
                "files": {role: {"path": f.path, "bytes": f.bytes} for role, f in spec.files.items()},
                "available": spec.name in loaded,
            }
            if spec.name in loaded:
                final, handoff = self.thresholds[spec.name]
                entry.update(threshold=final, handoff_threshold=handoff, **loaded[spec.name].describe())
            else:
                errors = [p["error"] for p in self.problems if p["where"] == f"tier {spec.name}"]
                entry["error"] = errors[0] if errors else "not loaded (excluded by the tiers argument)"
            tiers.append(entry)
        for tier in self.tiers:
            if tier.name not in {spec.name for spec in specs}:
                final, handoff = self.thresholds[tier.name]
                tiers.append({"name": tier.name, "kind": tier.kind, "available": True, "threshold": final,
                              "handoff_threshold": handoff, **tier.describe()})
        return {
            "ready": bool(self.tiers),
            "bundle": str(self.bundle_dir) if self.bundle_dir else None,
            "name": self.manifest.name if self.manifest else None,
            "format_version": self.manifest.format_version if self.manifest else None,
            "labels": self.manifest.labels if self.manifest else sorted({l for t in self.tiers for l in t.labels}),
            "fallback_intent": self.fallback_intent,
            "tiers": tiers,
            "problems": self.problems,
            "routing": {"margin": self.margin, "force": self.force, "max_chars": self.max_chars, "oos_labels": sorted(self.oos_labels)},
            "slots": self.slots.slot_names,
            "runtime": _runtime_info(),
        }


def _runtime_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "onnxruntime": None,
    }
    if importlib.util.find_spec("onnxruntime") is not None:
        try:
            from importlib.metadata import version

            info["onnxruntime"] = version("onnxruntime")
        except Exception:
            info["onnxruntime"] = "present"
    return info
