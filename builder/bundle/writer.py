"""Writing bundles: stage a copy, add or replace tiers, record sizes and hashes, swap it in.

A bundle on disk is always either the old one or the new one, never half of each.
"""

from __future__ import annotations

import datetime as _dt
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from runtime_py import __version__ as RUNTIME_VERSION
from runtime_py.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    FALLBACK_INTENT,
    MANIFEST_NAME,
    parse_manifest,
    sha256_file,
)
from runtime_py.errors import BundleError

from ..atomic import refuse_foreign_dir, replace_file, staged_dir
from ..errors import BuildError

# Cheaper tiers run first; a kind not listed here goes last.
TIER_ORDER = {"bow": 0, "transformer": 1}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def json_bytes(obj: Any, indent: int | None = None) -> bytes:
    separators = (",", ":") if indent is None else (",", ": ")
    return (json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators) + "\n").encode("utf-8")


def check_same_intents(manifest: Mapping[str, Any], tier: str, labels: Sequence[str]) -> None:
    """BuildError unless tier `tier` with `labels` may join the bundle of `manifest`: every tier of
    a bundle answers with the same intents."""
    existing = manifest.get("labels")
    others = [t for t in manifest.get("tiers", []) if t.get("name") != tier]
    if existing and others and sorted(existing) != sorted(labels):
        added, missing = sorted(set(labels) - set(existing)), sorted(set(existing) - set(labels))
        raise BuildError(
            f"tier {tier!r} has different intents from the bundle's other tiers "
            f"(new: {added or '-'}, missing: {missing or '-'}); train on the same intents or use --replace"
        )


def existing_manifest(out: str | Path) -> dict[str, Any] | None:
    """The manifest of the bundle at `out`, or None when there is none (or it does not parse:
    open_bundle reports that)."""
    try:
        return json.loads((Path(out) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class BundleDraft:
    """A staged bundle being edited; ``finish()`` writes the manifest last."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest

    def write_json(self, relpath: str, obj: Any, indent: int | None = None) -> Path:
        path = self.root / relpath
        replace_file(path, json_bytes(obj, indent))
        return path

    def write_bytes(self, relpath: str, data: bytes) -> Path:
        path = self.root / relpath
        replace_file(path, data)
        return path

    @property
    def labels(self) -> list[str] | None:
        return self.manifest.get("labels")

    def set_tier(self, name: str, kind: str, files: Mapping[str, str], labels: Sequence[str], **fields: Any) -> None:
        """Add or replace tier `name`; `files` maps roles to paths already written in the draft."""
        check_same_intents(self.manifest, name, labels)
        others = [t for t in self.manifest["tiers"] if t["name"] != name]
        entries = {}
        for role, relpath in files.items():
            path = self.root / relpath
            if not path.is_file():
                raise BuildError(f"tier {name!r}: file {relpath!r} was not written")
            entries[role] = {"path": relpath, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        old = next((t for t in self.manifest["tiers"] if t["name"] == name), None)
        if old:
            kept = {e["path"] for e in entries.values()}
            for entry in old.get("files", {}).values():
                if entry["path"] not in kept:
                    (self.root / entry["path"]).unlink(missing_ok=True)
        tier = {"name": name, "kind": kind, "files": entries, **{k: v for k, v in fields.items() if v is not None}}
        others.append(tier)
        others.sort(key=lambda t: TIER_ORDER.get(t["kind"], len(TIER_ORDER)))
        self.manifest["tiers"] = others
        self.manifest["labels"] = sorted(labels)

    def set_slots(self, slots: Mapping[str, Any]) -> None:
        self.manifest["slots"] = dict(slots)

    def finish(self) -> None:
        if not self.manifest["tiers"]:
            raise BuildError("refusing to write a bundle with no tiers")
        self.manifest["updated_at"] = _now()
        # Round-trip through the runtime's own parser: never write a manifest the runtime rejects.
        try:
            parse_manifest(json.loads(json_bytes(self.manifest)), "manifest (about to be written)")
        except BundleError as exc:
            raise BuildError(str(exc)) from None
        self.write_json(MANIFEST_NAME, self.manifest, indent=2)


def _new_manifest(name: str) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "generator": f"edge-intent-kit {RUNTIME_VERSION}",
        "created_at": _now(),
        "labels": [],
        "fallback_intent": FALLBACK_INTENT,
        "routing": {"margin": 0.1},
        "slots": {},
        "tiers": [],
    }


@contextmanager
def open_bundle(out: str | Path, name: str | None = None, replace: bool = False) -> Iterator[BundleDraft]:
    """Edit the bundle at `out` (a new one if missing or `replace`) in a staging folder, swapped in
    whole when the block ends; `out`'s lock is held meanwhile (builder.atomic.staged_dir)."""
    out = Path(out)
    refuse_foreign_dir(out, lambda d: (d / MANIFEST_NAME).exists(), "an intent bundle (no manifest.json)")
    with staged_dir(out, keep_existing=not replace) as stage:
        manifest_path = stage / MANIFEST_NAME
        if manifest_path.exists():
            try:
                data = json.loads(manifest_path.read_text(encoding="utf-8"))
                parse_manifest(data, str(out / MANIFEST_NAME))
            except (json.JSONDecodeError, UnicodeDecodeError, BundleError) as exc:
                raise BuildError(f"{out}: the existing manifest is unreadable ({exc}); use --replace to start a new bundle") from None
            if name:
                data["name"] = name
        else:
            data = _new_manifest(name or out.name)
        draft = BundleDraft(stage, data)
        yield draft
        draft.finish()


@contextmanager
def edit_bundle(out: str | Path, draft: BundleDraft | None = None, replace: bool = False) -> Iterator[BundleDraft]:
    """`draft` itself when given (a step of a larger build: whoever opened it finishes and swaps it
    in, once, at the end), else :func:`open_bundle` on `out`."""
    if draft is not None:
        yield draft
        return
    with open_bundle(out, replace=replace) as opened:
        yield opened
