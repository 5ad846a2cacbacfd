"""Bundles: manifest checks, hashes, corrupt or missing files, and atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from builder.bundle.writer import open_bundle
from builder.errors import BuildError
from runtime_py import BundleError, Router, read_manifest
from runtime_py.bundle import BUNDLE_FORMAT_VERSION


@pytest.fixture
def bundle(tmp_path, small_bundle) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(small_bundle, copy)
    return copy


def _edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_manifest_lists_every_file_with_size_and_hash(bundle):
    manifest = read_manifest(bundle)
    assert manifest.format_version == BUNDLE_FORMAT_VERSION
    entry = manifest.tiers[0].files["model"]
    assert entry.path == "bow.json" and entry.bytes == (bundle / "bow.json").stat().st_size
    assert manifest.labels == sorted(manifest.labels) and len(manifest.labels) == 12  # 11 intents and "oos"
    assert manifest.slots["required"]["positions"] == ["SYMBOL"]


def test_a_clean_bundle_reports_ready(bundle):
    status = Router.from_bundle(bundle).status()
    assert status["ready"] and status["problems"] == []
    tier = status["tiers"][0]
    assert tier["available"] and tier["kind"] == "bow" and tier["threshold"] == 0.6
    assert tier["features"]["token_pattern"] == "[A-Za-z0-9']+"
    assert status["runtime"]["python"]


def test_tampered_model_is_skipped_and_reported(bundle):
    with open(bundle / "bow.json", "ab") as fh:
        fh.write(b" ")  # still valid JSON, no longer the file the manifest describes
    router = Router.from_bundle(bundle)
    assert router.tiers == []
    status = router.status()
    assert not status["ready"] and not status["tiers"][0]["available"]
    assert "does not match the manifest" in status["tiers"][0]["error"]
    assert router.classify("cash balance").intent == "clarify"
    with pytest.raises(BundleError, match="tier 'bow'"):
        Router.from_bundle(bundle, strict=True)


def test_same_size_corruption_is_caught_by_the_hash(bundle):
    data = bytearray((bundle / "bow.json").read_bytes())
    at = data.index(b"0.", 200)
    data[at + 2] = ord("9") if data[at + 2] != ord("9") else ord("8")
    (bundle / "bow.json").write_bytes(bytes(data))
    assert "sha256" in Router.from_bundle(bundle).status()["tiers"][0]["error"]
    assert Router.from_bundle(bundle, check_hash=False).tiers  # opt-out exists for trusted, hot paths


def test_missing_model_file_is_reported(bundle):
    (bundle / "bow.json").unlink()
    assert "missing" in Router.from_bundle(bundle).status()["tiers"][0]["error"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no manifest"),
        ("{not json", "invalid JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({"format": "other"}), "not an intent bundle"),
    ],
)
def test_missing_or_corrupt_manifest_never_crashes(bundle, content, message):
    path = bundle / "manifest.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    router = Router.from_bundle(bundle)
    assert router.classify("cash").intent == "clarify"
    assert message in router.status()["problems"][0]["error"]
    with pytest.raises(BundleError, match=message):
        Router.from_bundle(bundle, strict=True)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
        (lambda d: d["tiers"][0]["files"]["model"].update(path="../../etc/passwd"), "points outside the bundle"),
        (lambda d: d["tiers"][0]["files"]["model"].update(path="/etc/passwd"), "points outside the bundle"),
        (lambda d: d["tiers"][0].update(threshold=2), "between 0 and 1"),
        (lambda d: d["tiers"].append(dict(d["tiers"][0])), "appears twice"),
        (lambda d: d.update(labels=[]), "labels"),
    ],
)
def test_invalid_manifest_fields_name_the_field(bundle, change, message):
    _edit_manifest(bundle, change)
    with pytest.raises(BundleError, match=message):
        read_manifest(bundle)


def test_unknown_tier_kind_is_skipped_with_a_reason(bundle):
    _edit_manifest(bundle, lambda d: d["tiers"].append({**d["tiers"][0], "name": "future", "kind": "hologram"}))
    router = Router.from_bundle(bundle)
    assert [t.name for t in router.tiers] == ["bow"]
    assert "kind 'hologram' is not supported" in router.status()["tiers"][1]["error"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("weights", [[0.0]], "weights has 1 rows"),
        ("bias", [0.0], "bias has 1 values"),
        ("temperature", -1, "temperature must be a positive number"),
        ("format_version", 7, "format_version 7 is not supported"),
        ("features", {"ngram_max": 0}, "ngram_max must be >= 1"),
        ("features", {"colour": "blue"}, "unknown feature settings"),
    ],
)
def test_bow_json_validation_names_the_problem(tmp_path, small_bundle, field, value, message):
    from runtime_py import BowModel

    data = json.loads((small_bundle / "bow.json").read_text())
    data[field] = value
    with pytest.raises(BundleError, match=message):
        BowModel.from_json(data)


def test_failed_write_leaves_the_old_bundle_untouched(bundle):
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    with pytest.raises(RuntimeError):
        with open_bundle(bundle) as draft:
            draft.write_json("bow.json", {"half": "written"})
            raise RuntimeError("killed mid-build")
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert not [p for p in bundle.parent.iterdir() if ".tmp-" in p.name]


def test_updating_a_tier_keeps_hard_linked_originals_intact(bundle, tmp_path):
    original = (bundle / "bow.json").read_bytes()
    with open_bundle(bundle) as draft:
        draft.write_json("notes.json", {"n": 1})
        draft.set_tier("bow", "bow", {"model": "bow.json", "notes": "notes.json"}, read_manifest(bundle).labels)
    assert (bundle / "bow.json").read_bytes() == original
    assert set(read_manifest(bundle).tiers[0].files) == {"model", "notes"}
    assert Router.from_bundle(bundle, strict=True).tiers


def test_a_tier_with_other_intents_is_refused(bundle):
    with open_bundle(bundle) as draft:
        draft.write_json("other.json", {})
        with pytest.raises(BuildError, match="different intents"):
            draft.set_tier("big", "transformer", {"model": "other.json"}, ["a", "b"])


def test_writer_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(BuildError, match="refusing to replace"):
        with open_bundle(precious):
            pass
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_bundle_files_are_world_readable(small_bundle):
    for path in [small_bundle, *small_bundle.iterdir()]:
        assert path.stat().st_mode & 0o004, f"{path} is not readable by others (a web server could not serve it)"
