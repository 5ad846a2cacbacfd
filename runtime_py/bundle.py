"""Reading a bundle: ``manifest.json`` plus the tier files it lists, each checked by size and sha256.

The format is the contract between the builder and every runtime; docs/BUNDLE.md describes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import BundleError
from .jsontypes import is_integer, is_number, is_string_list

BUNDLE_FORMAT = "edge-intent-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
FALLBACK_INTENT = "clarify"
# File roles a tier of each kind needs (docs/BUNDLE.md); other roles are optional.
TIER_FILE_ROLES = {"bow": ("model",), "transformer": ("model", "tokenizer", "config")}
DEFAULT_MAX_LENGTH = 128
SLOT_CASES = (None, "upper", "lower")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_UNSAFE_PATH_CHARS = frozenset("\\:%?#")


@dataclass(frozen=True)
class FileEntry:
    """One file of a tier, relative to the bundle root."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class TierSpec:
    """A tier as the manifest describes it; `extra` keeps kind-specific settings."""

    name: str
    kind: str
    files: dict[str, FileEntry]
    threshold: float | None = None
    handoff_threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Parsed ``manifest.json``."""

    name: str
    labels: list[str]
    tiers: list[TierSpec]
    fallback_intent: str = FALLBACK_INTENT
    margin: float | None = None
    oos_labels: list[str] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def format_version(self) -> int:
        return int(self.raw.get("format_version", BUNDLE_FORMAT_VERSION))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _probability(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise BundleError(f"{where}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def _unsafe_path(path: str) -> bool:
    """True when `path` may name something outside the bundle: absolute, a ``..`` segment, or a
    character that a file system (``\\``, ``:`` of a drive letter) or a URL (``:`` of a scheme,
    ``%`` as in ``%2e%2e``, ``?``, ``#``) reads differently from a plain relative path."""
    return (
        path.startswith("/")
        or ".." in path.split("/")
        or any(c in _UNSAFE_PATH_CHARS or ord(c) < 0x20 or ord(c) == 0x7F for c in path)
    )


def _file_entry(data: Any, where: str) -> FileEntry:
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: expected an object with path, bytes and sha256")
    path, size, digest = data.get("path"), data.get("bytes"), data.get("sha256")
    if not isinstance(path, str) or not path:
        raise BundleError(f"{where}.path: expected a relative file path")
    if _unsafe_path(path):
        raise BundleError(
            f"{where}.path: {path!r} points outside the bundle (bundle paths are relative, '/'-separated, "
            "without '..' segments or any of \\ : % ? # and control characters)"
        )
    if not is_integer(size) or size < 0:
        raise BundleError(f"{where}.bytes: expected a file size, got {size!r}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise BundleError(f"{where}.sha256: expected 64 hex digits, got {digest!r}")
    return FileEntry(path, int(size), digest.lower())


def _string_lists(data: Any, where: str, what: str) -> None:
    """`data` is null or an object of name -> list of strings."""
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: expected an object of {what}")
    for key, value in data.items():
        if not is_string_list(value):
            raise BundleError(f"{where}.{key}: expected a list of strings, got {value!r}")


def _check_slots(slots: Mapping[str, Any], where: str) -> None:
    """The shape of ``slots`` (the patterns' regular expressions are compiled by the slot extractor)."""
    _string_lists(slots.get("values"), f"{where}.values", "slot name -> known values")
    _string_lists(slots.get("required"), f"{where}.required", "intent -> required slot names")
    patterns = slots.get("patterns")
    if patterns is None:
        return
    if not isinstance(patterns, Mapping):
        raise BundleError(f"{where}.patterns: expected an object of slot name -> pattern")
    for slot, spec in patterns.items():
        at = f"{where}.patterns.{slot}"
        if not isinstance(spec, Mapping):
            raise BundleError(f"{at}: expected an object with regex, case and exclude")
        if not isinstance(spec.get("regex"), str):
            raise BundleError(f"{at}.regex: expected a regular expression, got {spec.get('regex')!r}")
        if spec.get("case") not in SLOT_CASES:
            raise BundleError(f"{at}.case: expected 'upper', 'lower' or null, got {spec.get('case')!r}")
        exclude = spec.get("exclude")
        if exclude is not None and not is_string_list(exclude):
            raise BundleError(f"{at}.exclude: expected a list of strings, got {exclude!r}")


def parse_manifest(data: Any, where: str = MANIFEST_NAME) -> Manifest:
    """Validate a parsed manifest; errors name `where` and the offending field.

    Checks the manifest's content only (no file is read); docs/schema/manifest.schema.json states
    the same rules, and tests/fixtures/conformance holds the cases both runtimes must agree on.
    An optional field that is null counts as absent.
    """
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: expected a JSON object")
    fmt = data.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(f"{where}: format {fmt!r}: not an intent bundle (expected {BUNDLE_FORMAT!r})")
    version = data.get("format_version")
    if isinstance(version, bool) or version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{where}: format_version {version!r} is not supported (this runtime reads {BUNDLE_FORMAT_VERSION}); rebuild the bundle"
        )
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise BundleError(f"{where}.name: expected a string, got {name!r}")
    labels = data.get("labels")
    if not isinstance(labels, list) or not labels or not is_string_list(labels, non_empty_items=True):
        raise BundleError(f"{where}.labels: expected a non-empty list of intent names")
    if len(set(labels)) != len(labels):
        twice = next(label for i, label in enumerate(labels) if label in labels[:i])
        raise BundleError(f"{where}.labels: {twice!r} appears twice")
    fallback = data.get("fallback_intent")
    if fallback is not None and not (isinstance(fallback, str) and fallback):
        raise BundleError(f"{where}.fallback_intent: expected an intent name, got {fallback!r}")
    tiers_data = data.get("tiers")
    if not isinstance(tiers_data, list):
        raise BundleError(f"{where}.tiers: expected a list")
    tiers: list[TierSpec] = []
    seen: set[str] = set()
    for i, tier in enumerate(tiers_data):
        at = f"{where}.tiers[{i}]"
        if not isinstance(tier, Mapping):
            raise BundleError(f"{at}: expected an object")
        tier_name, kind, files = tier.get("name"), tier.get("kind"), tier.get("files")
        if not isinstance(tier_name, str) or not tier_name:
            raise BundleError(f"{at}.name: expected a tier name")
        if tier_name in seen:
            raise BundleError(f"{at}.name: tier {tier_name!r} appears twice")
        seen.add(tier_name)
        if not isinstance(kind, str) or not kind:
            raise BundleError(f"{at}.kind: expected a tier kind such as 'bow'")
        if not isinstance(files, Mapping) or not files:
            raise BundleError(f"{at}.files: expected an object of role -> file entry")
        entries = {role: _file_entry(entry, f"{at}.files.{role}") for role, entry in files.items()}
        known = {"name", "kind", "files", "threshold", "handoff_threshold"}
        tiers.append(
            TierSpec(
                name=tier_name,
                kind=kind,
                files=entries,
                threshold=_probability(tier.get("threshold"), f"{at}.threshold"),
                handoff_threshold=_probability(tier.get("handoff_threshold"), f"{at}.handoff_threshold"),
                extra={k: v for k, v in tier.items() if k not in known},
            )
        )
    routing = data.get("routing")
    routing = {} if routing is None else routing
    if not isinstance(routing, Mapping):
        raise BundleError(f"{where}.routing: expected an object")
    margin = _probability(routing.get("margin"), f"{where}.routing.margin")
    oos_labels = routing.get("oos_labels")
    oos_labels = [] if oos_labels is None else oos_labels
    if not is_string_list(oos_labels, non_empty_items=True):
        raise BundleError(f"{where}.routing.oos_labels: expected a list of label names, got {oos_labels!r}")
    slots = data.get("slots")
    slots = {} if slots is None else slots
    if not isinstance(slots, Mapping):
        raise BundleError(f"{where}.slots: expected an object")
    _check_slots(slots, f"{where}.slots")
    return Manifest(
        name="" if name is None else name,
        labels=list(labels),
        tiers=tiers,
        fallback_intent=FALLBACK_INTENT if fallback is None else fallback,
        margin=margin,
        oos_labels=list(oos_labels),
        slots=dict(slots),
        raw=dict(data),
    )


def tier_settings(spec: TierSpec) -> dict[str, Any]:
    """What a tier's loader checks in the manifest before it reads a file: the file roles its kind
    needs and, for a transformer, ``max_length`` and ``temperature`` (returned, defaults applied).
    Kinds this runtime does not know pass (their loader is what refuses them); ``blend`` is
    checked by :func:`runtime_py.blend.blend_setting`."""
    where = f"tier {spec.name!r}"
    roles = TIER_FILE_ROLES.get(spec.kind, ())
    for role in roles:
        if role not in spec.files:
            raise BundleError(f"{where}: files.{role}: no {role!r} file in the manifest (a {spec.kind} tier needs {', '.join(roles)})")
    if spec.kind != "transformer":
        return {}
    max_length = spec.extra.get("max_length")
    max_length = DEFAULT_MAX_LENGTH if max_length is None else max_length
    if not is_integer(max_length) or max_length < 2:
        raise BundleError(f"{where}.max_length: expected a whole number >= 2, got {max_length!r}")
    temperature = spec.extra.get("temperature")
    temperature = 1.0 if temperature is None else temperature
    if not is_number(temperature) or temperature <= 0:
        raise BundleError(f"{where}.temperature: expected a positive number, got {temperature!r}")
    return {"max_length": int(max_length), "temperature": float(temperature)}


def read_manifest(bundle_dir: str | Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{path}: no manifest; is {bundle_dir} a bundle? (build one with `python -m builder build`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    return parse_manifest(data, str(path))


def verified_path(bundle_dir: str | Path, entry: FileEntry, check_hash: bool = True) -> Path:
    """Absolute path of `entry` after checking that it exists with the recorded size and hash."""
    path = Path(bundle_dir) / entry.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BundleError(f"{path}: file listed in the manifest is missing") from None
    if size != entry.bytes:
        raise BundleError(f"{path}: size {size:,} bytes does not match the manifest's {entry.bytes:,}")
    if check_hash:
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise BundleError(f"{path}: sha256 {actual[:12]}... does not match the manifest's {entry.sha256[:12]}...")
    return path
