"""Blended tiers: a tier whose answer averages its calibrated probabilities with another tier's.

A transformer and a bag-of-words model make different mistakes, so the average of their
calibrated probabilities is more accurate than either (banking77: 0.935 transformer, 0.899 BoW,
0.940 averaged; docs/BENCHMARKS.md, "Blending the tiers"). The BoW tier runs first in the
cascade anyway, so the blend costs nothing but a second look at its answer.

The manifest asks for it in the blending tier's entry (``builder blend`` writes it, with the
weight chosen on validation data)::

    {"name": "transformer", ..., "blend": {"tier": "bow", "weight": 0.6}}

and the tier's probabilities become ``weight * own + (1 - weight) * partner`` label by label.
Averaging two calibrated distributions leaves the result under-confident, so an optional
``"temperature"`` T recalibrates it: ``softmax(log(blend) / T)`` (fitted on validation data too).
When the partner tier is not loaded (failed, or not selected) the tier answers alone and says so.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from .bundle import TierSpec
from .calibration import softmax
from .errors import BundleError
from .jsontypes import is_number
from .tiers import Tier


def blend_setting(spec: TierSpec) -> tuple[str, float, float] | None:
    """The validated ``blend`` field of a tier spec: (partner tier name, own weight, temperature), or None."""
    raw = spec.extra.get("blend")
    if raw is None:
        return None
    where = f"tier {spec.name!r}: blend"
    if not isinstance(raw, Mapping):
        raise BundleError(f"{where}: expected an object with 'tier' and 'weight'")
    partner, weight = raw.get("tier"), raw.get("weight")
    if not isinstance(partner, str) or not partner or partner == spec.name:
        raise BundleError(f"{where}.tier: expected the name of another tier, got {partner!r}")
    if not is_number(weight) or not 0 <= weight <= 1:
        raise BundleError(f"{where}.weight: expected a number between 0 and 1, got {weight!r}")
    temperature = raw.get("temperature")
    temperature = 1.0 if temperature is None else temperature  # null counts as absent
    if not is_number(temperature) or temperature <= 0:
        raise BundleError(f"{where}.temperature: expected a positive number, got {temperature!r}")
    return partner, float(weight), float(temperature)


class BlendedTier(Tier):
    """`own` with its probabilities averaged with `partner`'s (or alone, saying why, when the
    partner is None); everything else is `own`'s."""

    def __init__(self, own: Tier, partner: Tier | None, weight: float, partner_name: str, why: str | None = None,
                 blend_temperature: float = 1.0) -> None:
        self.own, self.partner, self.weight, self.partner_name, self.why = own, partner, weight, partner_name, why
        self.blend_temperature = blend_temperature
        self.name, self.kind, self.labels, self.temperature = own.name, own.kind, own.labels, own.temperature
        self.order: list[int] = []
        if partner is not None:
            index = {label: i for i, label in enumerate(partner.labels)}
            if set(index) != set(own.labels):
                raise BundleError(f"tier {own.name!r} cannot blend with {partner.name!r}: their intents differ")
            self.order = [index[label] for label in own.labels]

    def __getattr__(self, name: str) -> Any:  # the wrapped tier's own attributes (session, variant, ...)
        if name == "own":
            raise AttributeError(name)
        return getattr(self.own, name)

    def logits(self, text: str) -> list[float]:
        return self.own.logits(text)

    def probabilities(self, text: str) -> list[float]:
        own = self.own.probabilities(text)
        if self.partner is None:
            return own
        return self.mix(own, self.partner.probabilities(text))

    def mix(self, own: Sequence[float], partner: Sequence[float]) -> list[float]:
        """The blend of the tier's probabilities and its partner's (in the partner's label order)."""
        w = self.weight
        mixed = [w * p + (1.0 - w) * partner[j] for p, j in zip(own, self.order)]
        if self.blend_temperature == 1.0:
            return mixed
        return softmax([math.log(p) if p > 0 else -math.inf for p in mixed], self.blend_temperature)

    def describe(self) -> dict[str, Any]:
        blend: dict[str, Any] = {"tier": self.partner_name, "weight": self.weight, "temperature": self.blend_temperature,
                                 "active": self.partner is not None}
        if self.why:
            blend["why"] = self.why
        return {**self.own.describe(), "blend": blend}


def blend_tiers(tiers: Sequence[Tier], specs: Mapping[str, TierSpec]) -> tuple[list[Tier], list[dict[str, str]]]:
    """`tiers` with each tier whose spec asks for a blend wrapped in a BlendedTier (answering alone
    when its partner is not among `tiers`), and the problems found (a malformed ``blend`` field
    leaves its tier unblended)."""
    by_name = {tier.name: tier for tier in tiers}
    out: list[Tier] = []
    problems: list[dict[str, str]] = []
    for tier in tiers:
        spec = specs.get(tier.name)
        try:
            setting = blend_setting(spec) if spec is not None else None
            if setting is not None:
                partner, weight, temperature = setting
                found = by_name.get(partner)
                tier = BlendedTier(tier, found, weight, partner, None if found else f"tier {partner!r} is not loaded", temperature)
        except BundleError as exc:
            problems.append({"where": f"tier {tier.name} (blend)", "error": str(exc)})
        out.append(tier)
    return out, problems
