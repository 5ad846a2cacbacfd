"""Loading and validating a templates file (BRIEF section 3); errors name the file and the place."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from runtime_py.bundle import FALLBACK_INTENT

from .. import paths
from ..errors import BuildError

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
SLOT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Templates:
    """A validated templates file."""

    path: Path
    name: str
    intents: dict[str, list[str]]
    slots: dict[str, list[str]]
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    typos: dict[str, list[str]] = field(default_factory=dict)
    required_slots: dict[str, list[str]] = field(default_factory=dict)
    slot_patterns: dict[str, dict[str, Any]] = field(default_factory=dict)
    # slot -> kinds of made-up values generation may use for it (builder.data.noise.OPEN_KINDS)
    open_slots: dict[str, list[str]] = field(default_factory=dict)

    def slot_spec(self) -> dict[str, Any]:
        """The manifest's ``slots`` section: values, patterns and required slots per intent."""
        return {"values": self.slots, "patterns": self.slot_patterns, "required": self.required_slots}


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def fill_all(text: str, slots: dict[str, list[str]]) -> Iterator[str]:
    """`text` with every combination of its slots' values."""
    names = placeholders(text)
    for values in itertools.product(*(slots[name] for name in names)):
        it = iter(values)
        yield PLACEHOLDER.sub(lambda _: next(it), text)


def template_texts(templates: Templates) -> Iterator[str]:
    """Every template with every slot combination, bare, after each prefix and before each suffix:
    the wording a held-out evaluation set must not share (see models/eval/README.md)."""
    suffixes = [s for suffix in templates.suffixes for s in fill_all(suffix, templates.slots)]
    for items in templates.intents.values():
        for template in items:
            for text in fill_all(template, templates.slots):
                yield text
                yield from (f"{prefix} {text}" for prefix in templates.prefixes)
                yield from (f"{text} {suffix}" for suffix in suffixes)


_WORD = re.compile(r"[a-z0-9]+")


def word_ngrams(texts: Iterable[str], n: int = 4) -> set[tuple[str, ...]]:
    """Word n-grams of lower-cased text with apostrophes dropped ("What's" -> "whats")."""
    out: set[tuple[str, ...]] = set()
    for text in texts:
        words = _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))
        out.update(zip(*(words[i:] for i in range(n))))
    return out


def _strings(value: Any, where: str, allow_empty_list: bool = True) -> list[str]:
    if not isinstance(value, list):
        raise BuildError(f"{where}: expected a list of strings, got {type(value).__name__}")
    if not value and not allow_empty_list:
        raise BuildError(f"{where}: is empty")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise BuildError(f"{where}[{i}]: expected a non-empty string, got {item!r}")
    return [item.strip() for item in value]


def _check_placeholders(text: str, where: str, slots: dict[str, list[str]]) -> None:
    stripped = PLACEHOLDER.sub("", text)
    if "{" in stripped or "}" in stripped:
        raise BuildError(f"{where}: unbalanced brace in {text!r}")
    for name in placeholders(text):
        if not SLOT_NAME.match(name):
            raise BuildError(f"{where}: placeholder {{{name}}} in {text!r} is not a slot name")
        if name not in slots:
            raise BuildError(f"{where}: placeholder {{{name}}} in {text!r} has no slot (known slots: {', '.join(sorted(slots)) or 'none'})")


def parse_templates(data: Any, path: Path) -> Templates:
    where = str(path)
    if not isinstance(data, dict):
        raise BuildError(f"{where}: expected a JSON object with 'intents' and 'slots'")
    known = {"name", "description", "intents", "slots", "prefixes", "suffixes", "typos", "required_slots", "slot_patterns", "open_slots"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BuildError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    slots_data = data.get("slots", {})
    if not isinstance(slots_data, dict):
        raise BuildError(f"{where}: slots: expected an object of slot name -> values")
    slots: dict[str, list[str]] = {}
    for name, values in slots_data.items():
        if not SLOT_NAME.match(name):
            raise BuildError(f"{where}: slots.{name}: not a valid slot name (letters, digits, underscore)")
        slots[name] = _strings(values, f"{where}: slots.{name}", allow_empty_list=False)
    intents_data = data.get("intents")
    if not isinstance(intents_data, dict) or not intents_data:
        raise BuildError(f"{where}: intents: expected a non-empty object of intent -> templates")
    intents: dict[str, list[str]] = {}
    for intent, templates in intents_data.items():
        if not intent.strip():
            raise BuildError(f"{where}: intents: an intent has an empty name")
        if intent == FALLBACK_INTENT:
            raise BuildError(f"{where}: intents.{intent}: {FALLBACK_INTENT!r} is the fallback answer, not a class")
        items = _strings(templates, f"{where}: intents.{intent}", allow_empty_list=False)
        for i, text in enumerate(items):
            _check_placeholders(text, f"{where}: intents.{intent}[{i}]", slots)
        intents[intent] = items
    if len(intents) < 2:
        raise BuildError(f"{where}: intents: a classifier needs at least two intents, found {len(intents)}")
    prefixes = _strings(data.get("prefixes", []), f"{where}: prefixes")
    suffixes = _strings(data.get("suffixes", []), f"{where}: suffixes")
    for key, items in (("prefixes", prefixes), ("suffixes", suffixes)):
        for i, text in enumerate(items):
            _check_placeholders(text, f"{where}: {key}[{i}]", slots)
    typos_data = data.get("typos", {})
    if not isinstance(typos_data, dict):
        raise BuildError(f"{where}: typos: expected an object of word -> misspellings")
    typos = {word: _strings(v, f"{where}: typos.{word}", allow_empty_list=False) for word, v in typos_data.items()}
    required = data.get("required_slots")
    if required is None:
        required = {intent: [s for s in slots if all(f"{{{s}}}" in t for t in items)] for intent, items in intents.items()}
        required = {k: v for k, v in required.items() if v}
    if not isinstance(required, dict):
        raise BuildError(f"{where}: required_slots: expected an object of intent -> slot names")
    for intent, names in required.items():
        if intent not in intents:
            raise BuildError(f"{where}: required_slots.{intent}: no such intent")
        for name in _strings(names, f"{where}: required_slots.{intent}"):
            if name not in slots:
                raise BuildError(f"{where}: required_slots.{intent}: {name!r} is not a slot")
    patterns = data.get("slot_patterns", {})
    if not isinstance(patterns, dict):
        raise BuildError(f"{where}: slot_patterns: expected an object of slot -> {{regex, case, exclude}}")
    for name, spec in patterns.items():
        at = f"{where}: slot_patterns.{name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("regex"), str):
            raise BuildError(f"{at}: expected an object with a 'regex' string")
        try:
            re.compile(spec["regex"])
        except re.error as exc:
            raise BuildError(f"{at}.regex: invalid regular expression ({exc})") from None
        if spec.get("case") not in (None, "upper", "lower"):
            raise BuildError(f"{at}.case: expected 'upper', 'lower' or null")
        _strings(spec.get("exclude", []), f"{at}.exclude")
    open_slots = _open_slots(data.get("open_slots", {}), f"{where}: open_slots", slots)
    return Templates(
        path=path,
        name=str(data.get("name") or path.stem),
        intents=intents,
        slots=slots,
        prefixes=prefixes,
        suffixes=suffixes,
        typos=typos,
        required_slots={k: list(v) for k, v in required.items()},
        slot_patterns=patterns,
        open_slots=open_slots,
    )


def _open_slots(data: Any, where: str, slots: dict[str, list[str]]) -> dict[str, list[str]]:
    from .noise import OPEN_KINDS

    if not isinstance(data, dict):
        raise BuildError(f"{where}: expected an object of slot -> kinds of made-up values ({', '.join(OPEN_KINDS)})")
    out = {}
    for name, kinds in data.items():
        if name not in slots:
            raise BuildError(f"{where}.{name}: no such slot (known slots: {', '.join(sorted(slots)) or 'none'})")
        kinds = _strings(kinds, f"{where}.{name}", allow_empty_list=False)
        for kind in kinds:
            if kind not in OPEN_KINDS:
                raise BuildError(f"{where}.{name}: unknown kind {kind!r} (known: {', '.join(OPEN_KINDS)})")
        out[name] = kinds
    return out


def load_templates(path: str | Path | None = None) -> Templates:
    """Read and validate a templates file (the default finance templates when `path` is None)."""
    path = Path(path) if path is not None else paths.DEFAULT_TEMPLATES
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BuildError(f"{path}: templates file not found") from None
    except UnicodeDecodeError as exc:
        raise BuildError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    return parse_templates(data, path)
