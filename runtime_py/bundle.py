"""Reading a bundle: ``manifest.json`` plus the tier files it lists, each checked by size and sha256.

The format is the contract between the builder and every runtime; docs/BUNDLE.md describes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from .errors import BundleError

BUNDLE_FORMAT = "edge-intent-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
FALLBACK_INTENT = "clarify"


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
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (0.0 <= value <= 1.0):
        raise BundleError(f"{where}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def _file_entry(data: Any, where: str) -> FileEntry:
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: expected an object with path, bytes and sha256")
    path, size, digest = data.get("path"), data.get("bytes"), data.get("sha256")
    if not isinstance(path, str) or not path:
        raise BundleError(f"{where}.path: expected a relative file path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise BundleError(f"{where}.path: {path!r} points outside the bundle")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BundleError(f"{where}.bytes: expected a file size, got {size!r}")
    if not isinstance(digest, str) or len(digest) != 64:
        raise BundleError(f"{where}.sha256: expected 64 hex digits, got {digest!r}")
    return FileEntry(path, size, digest.lower())


def parse_manifest(data: Any, where: str = MANIFEST_NAME) -> Manifest:
    """Validate a parsed manifest; errors name `where` and the offending field."""
    if not isinstance(data, Mapping):
        raise BundleError(f"{where}: expected a JSON object")
    if data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: not an intent bundle (format={data.get('format')!r}, expected {BUNDLE_FORMAT!r})")
    version = data.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{where}: format_version {version!r} is not supported (this runtime reads {BUNDLE_FORMAT_VERSION}); rebuild the bundle"
        )
    labels = data.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise BundleError(f"{where}.labels: expected a non-empty list of intent names")
    tiers_data = data.get("tiers")
    if not isinstance(tiers_data, list):
        raise BundleError(f"{where}.tiers: expected a list")
    tiers: list[TierSpec] = []
    seen: set[str] = set()
    for i, tier in enumerate(tiers_data):
        at = f"{where}.tiers[{i}]"
        if not isinstance(tier, Mapping):
            raise BundleError(f"{at}: expected an object")
        name, kind, files = tier.get("name"), tier.get("kind"), tier.get("files")
        if not isinstance(name, str) or not name:
            raise BundleError(f"{at}.name: expected a tier name")
        if name in seen:
            raise BundleError(f"{at}.name: tier {name!r} appears twice")
        seen.add(name)
        if not isinstance(kind, str) or not kind:
            raise BundleError(f"{at}.kind: expected a tier kind such as 'bow'")
        if not isinstance(files, Mapping) or not files:
            raise BundleError(f"{at}.files: expected an object of role -> file entry")
        entries = {role: _file_entry(entry, f"{at}.files.{role}") for role, entry in files.items()}
        known = {"name", "kind", "files", "threshold", "handoff_threshold"}
        tiers.append(
            TierSpec(
                name=name,
                kind=kind,
                files=entries,
                threshold=_probability(tier.get("threshold"), f"{at}.threshold"),
                handoff_threshold=_probability(tier.get("handoff_threshold"), f"{at}.handoff_threshold"),
                extra={k: v for k, v in tier.items() if k not in known},
            )
        )
    routing = data.get("routing") or {}
    if not isinstance(routing, Mapping):
        raise BundleError(f"{where}.routing: expected an object")
    margin = routing.get("margin")
    if margin is not None and not (isinstance(margin, (int, float)) and math.isfinite(margin) and 0 <= margin <= 1):
        raise BundleError(f"{where}.routing.margin: expected a number between 0 and 1, got {margin!r}")
    oos_labels = routing.get("oos_labels") or []
    if not isinstance(oos_labels, list) or not all(isinstance(x, str) and x for x in oos_labels):
        raise BundleError(f"{where}.routing.oos_labels: expected a list of label names, got {oos_labels!r}")
    slots = data.get("slots") or {}
    if not isinstance(slots, Mapping):
        raise BundleError(f"{where}.slots: expected an object")
    return Manifest(
        name=str(data.get("name", "")),
        labels=list(labels),
        tiers=tiers,
        fallback_intent=str(data.get("fallback_intent", FALLBACK_INTENT)),
        margin=None if margin is None else float(margin),
        oos_labels=list(oos_labels),
        slots=dict(slots),
        raw=dict(data),
    )


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
