"""Synthetic training data from templates (BRIEF section 3), deterministic for a given seed.

Every template is expanded with slot combinations (capped per template) plus, for the slots the
templates file lists under ``open_slots``, made-up values (``open_rate`` of the expansions);
each expansion gets variants (lower-case, punctuation stripped, a typo), some get a random prefix
and/or suffix; then each intent draws its share of the target size round-robin across its
templates, so a slot-rich template cannot drown out the plain phrasings; ``noise_rate`` of the
drawn rows are damaged the way people type (``builder.data.noise``); the rows are split 80/10/10 per intent.

The validation split is drawn from templates held out of training (``heldout_templates`` of each
intent's templates): phrasings no tier trains on, as real users' are. Everything fitted on
validation data (the BoW's regularisation, the transformer's best epoch, temperatures, thresholds,
the cascade's hand-off) then sees the models meet wording they never saw, where template-made
validation data from the training templates makes every tier look 99.8% right. The test split
comes from the training templates.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import BuildError
from .datasets import Example
from .noise import Noise, OpenValues
from .templates import PLACEHOLDER, Templates, placeholders

DEFAULT_SIZE = 25_000
DEFAULT_MAX_COMBOS = 200
DEFAULT_SEED = 7
_STRIP = re.compile(r"[?!.,;:'\"]")
_SPACES = re.compile(r"\s+")


@dataclass
class GenerateOptions:
    size: int = DEFAULT_SIZE
    seed: int = DEFAULT_SEED
    max_combos: int = DEFAULT_MAX_COMBOS
    affix_rate: float = 0.3
    open_rate: float = 0.3  # share of a template's expansions with made-up values in its open slots
    noise_rate: float = 0.5  # share of the drawn utterances given typos, fillers, text-speak, ...
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    heldout_templates: float = 0.15  # share of each intent's templates whose utterances are validation data only

    def __post_init__(self) -> None:
        for name in ("affix_rate", "noise_rate", "heldout_templates"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise BuildError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not 0.0 <= self.open_rate < 1.0:
            raise BuildError(f"open_rate must be at least 0 and below 1, got {self.open_rate}")

    @classmethod
    def from_env(cls, size: int | None = None, seed: int | None = None, max_combos: int | None = None) -> "GenerateOptions":
        """Arguments win over INTENT_DATASET_SIZE / INTENT_MAX_COMBOS, which win over the defaults."""
        return cls(
            size=size if size is not None else _env_int("INTENT_DATASET_SIZE", DEFAULT_SIZE),
            seed=seed if seed is not None else DEFAULT_SEED,
            max_combos=max_combos if max_combos is not None else _env_int("INTENT_MAX_COMBOS", DEFAULT_MAX_COMBOS),
        )


@dataclass
class GenerationReport:
    per_intent: dict[str, int] = field(default_factory=dict)
    pool_sizes: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    short: dict[str, int] = field(default_factory=dict)
    noisy: int = 0
    val_templates: dict[str, list[str]] = field(default_factory=dict)  # held out of train and test


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BuildError(f"{name}={raw!r}: expected a positive whole number") from None
    if value < 1:
        raise BuildError(f"{name}={raw!r}: expected a positive whole number")
    return value


def _fill(template: str, values: list[str]) -> str:
    it = iter(values)
    return PLACEHOLDER.sub(lambda _: next(it), template)


def expand(template: str, slots: dict[str, list[str]], rng: random.Random, cap: int) -> list[str]:
    """All slot combinations of `template`, or `cap` of them drawn without repeats."""
    names = placeholders(template)
    if not names:
        return [template]
    radices = [len(slots[name]) for name in names]
    total = math.prod(radices)
    picks = range(total) if total <= cap else sorted(rng.sample(range(total), cap))
    out = []
    for index in picks:
        chosen = []
        for name, radix in zip(names, radices):
            index, digit = divmod(index, radix)
            chosen.append(slots[name][digit])
        out.append(_fill(template, chosen))
    return out


def _fill_random(text: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    return PLACEHOLDER.sub(lambda m: rng.choice(slots[m.group(1)]), text)


class _Variation:
    """Variants and affixes of one expanded utterance."""

    def __init__(self, templates: Templates, rng: random.Random, affix_rate: float) -> None:
        self.t = templates
        self.rng = rng
        self.affix_rate = affix_rate
        self.typo_patterns = [
            (re.compile(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", re.IGNORECASE), misspellings)
            for word, misspellings in templates.typos.items()
        ]

    def variants(self, text: str) -> list[str]:
        out = [text, text.lower(), _SPACES.sub(" ", _STRIP.sub("", text)).strip()]
        for pattern, misspellings in self.typo_patterns:
            if pattern.search(text):
                out.append(pattern.sub(lambda _: self.rng.choice(misspellings), text))
        return out

    def affixed(self, text: str, force: bool = False) -> str | None:
        """`text` with a random prefix and/or suffix (each with probability `affix_rate`, or at
        least one of them when `force`), or None when neither was drawn."""
        rng, t = self.rng, self.t
        prefix = bool(t.prefixes) and rng.random() < self.affix_rate
        suffix = bool(t.suffixes) and rng.random() < self.affix_rate
        if force and not (prefix or suffix):
            prefix = bool(t.prefixes) and (not t.suffixes or rng.random() < 0.5)
            suffix = not prefix
        if not (prefix or suffix):
            return None
        lower = text.lower()
        prefixes = [p for p in t.prefixes if not lower.startswith(p.lower().split(" ")[0])]
        suffixes = [s for s in t.suffixes if s.split(" {")[0].lower() not in lower]
        prefix, suffix = prefix and bool(prefixes), suffix and bool(suffixes)
        if not (prefix or suffix):
            return None
        if prefix and not text.split(" ", 1)[0].isupper():
            text = text[0].lower() + text[1:]
        if prefix:
            text = f"{rng.choice(prefixes)} {text}"
        if suffix:
            end = text.rstrip("?!.")
            text = f"{end} {_fill_random(rng.choice(suffixes), t.slots, rng)}{text[len(end):]}"
        return _SPACES.sub(" ", text).strip()


def _fill_open(template: str, templates: Templates, values: OpenValues, rng: random.Random) -> str:
    """`template` with made-up values in (most of) its open slots and known values elsewhere."""
    names = placeholders(template)
    open_names = [n for n in names if n in templates.open_slots]
    forced = rng.choice(open_names)

    def pick(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in templates.open_slots and (name == forced or rng.random() < 0.5):
            return values.value(rng.choice(templates.open_slots[name]))
        return rng.choice(templates.slots[name])

    return PLACEHOLDER.sub(pick, template)


def _template_pool(
    template: str, templates: Templates, var: _Variation, cap: int, open_values: OpenValues | None = None, open_rate: float = 0.0
) -> list[str]:
    """Distinct utterances of one template: its expansions and their variants first, some with
    affixes, then (for templates with few slot combinations) more affixed forms up to `cap`."""
    rng = var.rng
    bases = expand(template, templates.slots, rng, cap)
    if open_values is not None and open_rate > 0 and any(n in templates.open_slots for n in placeholders(template)):
        # Added so that made-up values make up `open_rate` of the expansions.
        extra = max(1, round(len(bases) * open_rate / (1 - open_rate)))
        bases += [_fill_open(template, templates, open_values, rng) for _ in range(extra)]
    # Keyed case-insensitively so that two spellings of one utterance never straddle a split;
    # shuffling the variants first lets a random casing survive.
    plain: dict[str, str] = {}
    for base in bases:
        variants = var.variants(base)
        rng.shuffle(variants)
        for variant in variants:
            text = _SPACES.sub(" ", variant).strip()
            if text:
                plain.setdefault(text.lower(), text)
    affixed: dict[str, str] = {}
    bases = list(plain.values())
    for text in bases:
        extra = var.affixed(text)
        if extra:
            affixed.setdefault(extra.lower(), extra)
    if templates.prefixes or templates.suffixes:
        attempts = 0
        while len(plain) + len(affixed) < cap and attempts < 4 * cap:
            attempts += 1
            extra = var.affixed(rng.choice(bases), force=True)
            if extra and extra.lower() not in plain:
                affixed.setdefault(extra.lower(), extra)
    first, then = list(plain.values()), [t for k, t in affixed.items() if k not in plain]
    rng.shuffle(first)
    rng.shuffle(then)
    return first + then


def _round_robin(pools: list[list[str]], quota: int, banned: set[str], taken: set[str]) -> list[str]:
    iterators: list[Iterator[str]] = [iter(p) for p in pools]
    chosen: dict[str, str] = {}
    while iterators and len(chosen) < quota:
        alive = []
        for it in iterators:
            for text in it:
                key = text.lower()
                if key not in banned and key not in taken and key not in chosen:
                    chosen[key] = text
                    alive.append(it)
                    break
            if len(chosen) >= quota:
                break
        iterators = alive
    return list(chosen.values())


def _template_words(templates: Templates) -> set[str]:
    texts = [t for items in templates.intents.values() for t in items] + templates.prefixes + templates.suffixes
    texts += [v for values in templates.slots.values() for v in values]
    return {w for text in texts for w in re.findall(r"[a-z]+", PLACEHOLDER.sub(" ", text).lower())}


def _noisy(text: str, noise: Noise, rate: float, rng: random.Random, banned: set[str], taken: set[str], report: GenerationReport) -> str:
    """`text` damaged by `noise` with probability `rate`, unless that spelling is already in use."""
    if rng.random() >= rate:
        return text
    damaged = _SPACES.sub(" ", noise(text)).strip()
    key = damaged.lower()
    if not damaged or key in banned or key in taken:
        return text
    taken.add(key)
    report.noisy += 1
    return damaged


def _held_out(templates: int, rate: float, rng: random.Random) -> set[int]:
    """Which of an intent's templates give validation data only: `rate` of them, at least one,
    when the intent has three or more (fewer, and training needs them all)."""
    if rate <= 0 or templates < 3:
        return set()
    return set(rng.sample(range(templates), min(templates - 2, max(1, round(templates * rate)))))


def generate(
    templates: Templates,
    options: GenerateOptions,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[Example]], GenerationReport]:
    """Build the train/val/test splits; the same templates and options give the same rows."""
    rng = random.Random(options.seed)
    var = _Variation(templates, rng, options.affix_rate)
    open_values = OpenValues(rng, exclude=_template_words(templates)) if templates.open_slots and options.open_rate > 0 else None
    noise = Noise(rng, protect=[w for values in templates.slots.values() for v in values for w in v.split()]) if options.noise_rate > 0 else None
    report = GenerationReport()
    pools: dict[str, list[list[str]]] = {}
    owners: dict[str, set[str]] = {}
    for intent, items in templates.intents.items():
        pools[intent] = [_template_pool(t, templates, var, options.max_combos, open_values, options.open_rate) for t in items]
        for pool in pools[intent]:
            for text in pool:
                owners.setdefault(text.lower(), set()).add(intent)
        report.pool_sizes[intent] = sum(len(p) for p in pools[intent])
        if progress:
            progress(f"{intent}: {len(items)} templates -> {report.pool_sizes[intent]:,} candidate utterances")
    # An utterance two intents both produce cannot teach either: drop it everywhere.
    banned_lower = {text for text, who in owners.items() if len(who) > 1}
    report.conflicts = len(banned_lower)
    intents = list(templates.intents)
    base, extra = divmod(options.size, len(intents))
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    taken: set[str] = set()  # every row drawn so far, case-insensitively, noisy forms included
    for k, intent in enumerate(intents):
        quota = base + (1 if k < extra else 0)
        held = _held_out(len(pools[intent]), options.heldout_templates, rng)
        report.val_templates[intent] = [templates.intents[intent][i] for i in held]
        n_val = round(quota * options.split[1]) if held else 0
        # Validation rows first, from the held-out templates; then the others fill train and test.
        groups = [[p for i, p in enumerate(pools[intent]) if i in held], [p for i, p in enumerate(pools[intent]) if i not in held]]
        drawn: list[list[str]] = []
        for pool_group, want in zip(groups, (n_val, quota - n_val)):
            chosen = _round_robin(pool_group, want, banned_lower, taken)
            taken.update(t.lower() for t in chosen)
            if noise is not None:
                chosen = [_noisy(text, noise, options.noise_rate, rng, banned_lower, taken, report) for text in chosen]
            rng.shuffle(chosen)
            drawn.append(chosen)
        val, rest = drawn
        if len(val) + len(rest) < quota:
            report.short[intent] = quota - len(val) - len(rest)
        report.per_intent[intent] = len(val) + len(rest)
        if held:
            n_train = round(len(rest) * options.split[0] / (options.split[0] + options.split[2]))
            train, test = rest[:n_train], rest[n_train:]
        else:
            n_train, n_val = round(len(rest) * options.split[0]), round(len(rest) * options.split[1])
            train, val, test = rest[:n_train], rest[n_train : n_train + n_val], rest[n_train + n_val :]
        splits["train"] += [Example(t, intent) for t in train]
        splits["val"] += [Example(t, intent) for t in val]
        splits["test"] += [Example(t, intent) for t in test]
    for rows in splits.values():
        rng.shuffle(rows)
    return splits, report
