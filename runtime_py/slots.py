"""Slot extraction: known slot values (from the templates' slot lists) found in the text.

Values match case-insensitively on word boundaries, longest first, so "Roth IRA" wins over
"IRA". A slot may also have a pattern for values the lists do not know (an unseen ticker
typed as ``$PLTR``), with an exclude list and the other slots' values never taken as a match.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from .errors import BundleError

_WORD_EDGE_BEFORE = r"(?<![A-Za-z0-9])"
_WORD_EDGE_AFTER = r"(?![A-Za-z0-9])"
_CASES = {None: lambda s: s, "upper": str.upper, "lower": str.lower}


class SlotExtractor:
    """Finds slot values in text and lists the required slots an intent is missing."""

    def __init__(
        self,
        values: Mapping[str, Sequence[str]] | None = None,
        patterns: Mapping[str, Mapping[str, Any]] | None = None,
        required: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        values = values or {}
        self.required = {intent: list(names) for intent, names in (required or {}).items()}
        self._lists: list[tuple[str, re.Pattern[str], dict[str, str]]] = []
        every_value: dict[str, set[str]] = {}
        for slot, options in values.items():
            canonical = {v.lower(): v for v in options if v.strip()}
            if not canonical:
                continue
            alternatives = "|".join(re.escape(v) for v in sorted(canonical, key=lambda v: (-len(v), v)))
            regex = re.compile(f"{_WORD_EDGE_BEFORE}(?:{alternatives}){_WORD_EDGE_AFTER}", re.IGNORECASE)
            self._lists.append((slot, regex, canonical))
            every_value[slot] = set(canonical)
        self._patterns: list[tuple[str, re.Pattern[str], Any, set[str]]] = []
        for slot, spec in (patterns or {}).items():
            try:
                regex = re.compile(spec["regex"])
                case = _CASES[spec.get("case")]
            except (KeyError, TypeError, re.error) as exc:
                raise BundleError(f"slots.patterns.{slot}: invalid pattern spec ({exc!r})") from None
            exclude = {str(x).lower() for x in spec.get("exclude") or []}
            for other, vals in every_value.items():
                if other != slot:
                    exclude |= vals
            self._patterns.append((slot, regex, case, exclude))

    @classmethod
    def from_manifest(cls, slots: Mapping[str, Any]) -> "SlotExtractor":
        return cls(slots.get("values"), slots.get("patterns"), slots.get("required"))

    @property
    def slot_names(self) -> list[str]:
        return sorted({s for s, _, _ in self._lists} | {s for s, _, _, _ in self._patterns})

    def extract(self, text: str) -> dict[str, list[str]]:
        """Slot name -> values found, in order of appearance, without repeats."""
        found: dict[str, list[tuple[int, str]]] = {}
        for slot, regex, canonical in self._lists:
            hits = [(m.start(), _canonical(canonical, m.group(0))) for m in regex.finditer(text)]
            if hits:
                found[slot] = hits
        for slot, regex, case, exclude in self._patterns:
            for m in regex.finditer(text):
                raw = m.group("value") if "value" in regex.groupindex else m.group(0)
                if raw and raw.lower() not in exclude:
                    found.setdefault(slot, []).append((m.start(), case(raw)))
        result: dict[str, list[str]] = {}
        for slot, hits in found.items():
            seen: list[str] = []
            for _, value in sorted(hits, key=lambda h: h[0]):
                if value not in seen:
                    seen.append(value)
            result[slot] = seen
        return result

    def missing(self, intent: str, found: Mapping[str, Sequence[str]]) -> list[str]:
        """Required slots of `intent` that `found` has no value for."""
        return [name for name in self.required.get(intent, []) if not found.get(name)]


def _canonical(canonical: Mapping[str, str], matched: str) -> str:
    """The listed spelling of a matched value. A case-insensitive match can differ from every
    listed value after .lower() ("ſpy" matches "spy", "İRA" matches "ira"): look it up by regex."""
    direct = canonical.get(matched.lower())
    if direct is not None:
        return direct
    for key, value in canonical.items():
        if re.fullmatch(re.escape(key), matched, re.IGNORECASE):
            return value
    return matched

