"""The bundle contract as shared cases: runtime_py and the JSON Schemas decide each one as it says.

tests/fixtures/conformance/cases.json lists good and bad manifest.json and bow.json documents
(its "about" says how to read a case); web/conformance.test.js runs the same cases through the
browser runtime, so the two runtimes agree on what to refuse and on the field they name.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from runtime_py import BowModel
from runtime_py.blend import blend_setting
from runtime_py.bow import BOW_FORMAT, BOW_FORMAT_VERSION, READABLE_VERSIONS
from runtime_py.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, TIER_FILE_ROLES, parse_manifest, tier_settings
from runtime_py.errors import BundleError
from runtime_py.features import NORMS, TF_MODES

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "fixtures" / "conformance"
SCHEMAS = ROOT / "docs" / "schema"
WHERE = {"manifest": "manifest.json", "bow": "bow.json"}
CASES: list[dict[str, Any]] = json.loads((CONFORMANCE / "cases.json").read_text(encoding="utf-8"))["cases"]
VALIDATORS = {
    kind: Draft202012Validator(json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8")))
    for kind in ("manifest", "bow")
}


# ---------------------------------------------------------------------------------------------
# Reading cases (web/conformance.test.js has the same helpers)


def _pointer(path: str) -> list[str]:
    """RFC 6901: "/tiers/0/name" -> ["tiers", "0", "name"]."""
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def apply_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """`doc` with RFC 6902 operations add, replace and remove applied (a copy)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if op["op"] not in ("add", "replace", "remove"):
            raise ValueError(f"unsupported patch operation {op['op']!r}")
        if isinstance(target, list):
            index = len(target) if last == "-" else int(last)
            if op["op"] == "add":
                target.insert(index, copy.deepcopy(op["value"]))
            elif op["op"] == "replace":
                target[index] = copy.deepcopy(op["value"])
            else:
                del target[index]
        else:
            if op["op"] in ("replace", "remove") and last not in target:
                raise KeyError(f"{op['op']} {op['path']}: no such member")
            if op["op"] == "remove":
                del target[last]
            else:
                target[last] = copy.deepcopy(op["value"])
    return doc


def document(case: dict[str, Any]) -> Any:
    """The JSON document a case describes."""
    if "data" in case:
        return copy.deepcopy(case["data"])
    source = case.get("file") or case["base"]
    data = json.loads((CONFORMANCE / source).read_text(encoding="utf-8"))
    return apply_patch(data, case.get("patch", []))


def names_field(message: str, where: str, field: str) -> bool:
    """True when `message` starts with `where` followed by '.' or ': ' and the path `field`
    ('' for the document itself: `where` then ':')."""
    if not message.startswith(where):
        return False
    rest = message[len(where) :]
    if field == "":
        return rest.startswith(":")
    return re.match(r"(?:\.|: )" + re.escape(field) + r"(?![\w.\[])", rest) is not None


def field_parts(field: str) -> list[str | int]:
    """'tiers[0].files.model' -> ['tiers', 0, 'files', 'model'] (a schema error's path)."""
    return [int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field)]


# ---------------------------------------------------------------------------------------------
# Deciding a case with runtime_py


@dataclass
class Outcome:
    """What runtime_py decided: accepted (`message` None), or refused at `stage` by `where`."""

    message: str | None = None
    stage: str = "document"
    where: str = ""
    tier_index: int | None = None


def decide(case: dict[str, Any]) -> Outcome:
    """Run the case's document through runtime_py; only BundleError counts as a refusal."""
    data = document(case)
    where = WHERE[case["kind"]]
    try:
        if case["kind"] == "bow":
            BowModel.from_json(data, where)
            return Outcome()
        manifest = parse_manifest(data, where)
    except BundleError as exc:
        return Outcome(str(exc), "document", where)
    for i, spec in enumerate(manifest.tiers):
        try:
            tier_settings(spec)
            blend_setting(spec)
        except BundleError as exc:
            return Outcome(str(exc), "tier", f"tier {spec.name!r}", i)
    return Outcome()


def schema_errors(case: dict[str, Any]) -> list[ValidationError]:
    return list(VALIDATORS[case["kind"]].iter_errors(document(case)))


# ---------------------------------------------------------------------------------------------
# Tests


def test_cases_are_well_formed():
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    for case in CASES:
        at = case["id"]
        assert case["kind"] in WHERE, at
        assert sum(key in case for key in ("file", "data", "base")) == 1, f"{at}: one of file, data, base"
        assert ("patch" in case) == ("base" in case), f"{at}: a base needs a patch and a patch a base"
        assert isinstance(case["accept"], bool), at
        if case["accept"]:
            assert not {"field", "stage", "runtime_only"} & set(case), f"{at}: an accepted case names no field"
        else:
            assert isinstance(case.get("field"), str), f"{at}: a refused case names its field"
            assert case.get("stage", "document") in ("document", "tier"), at
            assert case.get("stage") != "tier" or case["kind"] == "manifest", at
    for kind in WHERE:
        assert any(c["kind"] == kind and c["accept"] for c in CASES), f"no good {kind} case"
        assert any(c["kind"] == kind and not c["accept"] and c.get("runtime_only") for c in CASES), f"no runtime-only {kind} case"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_runtime_py_decides_the_case(case):
    outcome = decide(case)
    if case["accept"]:
        assert outcome.message is None, f"refused: {outcome.message}"
        return
    assert outcome.message is not None, f"accepted; expected a refusal naming {case['field']!r}"
    stage = case.get("stage", "document")
    assert outcome.stage == stage, f"refused at stage {outcome.stage!r}, expected {stage!r}: {outcome.message}"
    field = case["field"]
    if stage == "tier":
        prefix = f"tiers[{outcome.tier_index}]."
        assert field.startswith(prefix), f"tier {outcome.tier_index} refused, expected {field!r}: {outcome.message}"
        field = field[len(prefix) :]
    assert names_field(outcome.message, outcome.where, field), f"the message does not name {case['field']!r}: {outcome.message}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_the_schema_decides_the_case(case):
    errors = schema_errors(case)
    shown = "; ".join(f"{list(e.absolute_path)}: {e.message[:120]}" for e in errors)
    if case["accept"] or case.get("runtime_only"):
        # A runtime-only rule is one the schema cannot state: it must pass, or the mark is wrong.
        assert not errors, f"the schema refuses: {shown}"
        return
    assert errors, f"the schema accepts it; expected a refusal at {case['field']!r}"
    want = field_parts(case["field"])

    def at_field(error: ValidationError) -> bool:
        path = list(error.absolute_path)
        if path[: len(want)] == want:  # at the field or inside it
            return True
        missing = re.findall(r"'([^']+)' is a required property", error.message) if error.validator == "required" else []
        return [*path, *missing] == want

    assert any(map(at_field, errors)), f"no schema error at {case['field']!r}: {shown}"


def test_schemas_are_valid_and_state_the_runtime_constants():
    manifest = json.loads((SCHEMAS / "manifest.schema.json").read_text(encoding="utf-8"))
    bow = json.loads((SCHEMAS / "bow.schema.json").read_text(encoding="utf-8"))
    for schema in (manifest, bow):
        Draft202012Validator.check_schema(schema)
    assert manifest["properties"]["format"]["const"] == BUNDLE_FORMAT
    assert manifest["properties"]["format_version"]["const"] == BUNDLE_FORMAT_VERSION
    for kind, roles in TIER_FILE_ROLES.items():
        assert manifest["$defs"][f"{kind}Tier"]["properties"]["files"]["required"] == list(roles)
    assert bow["properties"]["format"]["const"] == BOW_FORMAT
    assert bow["properties"]["format_version"]["enum"] == list(READABLE_VERSIONS)
    assert BOW_FORMAT_VERSION in READABLE_VERSIONS
    features = bow["$defs"]["features"]["properties"]
    assert features["tf"]["enum"] == list(TF_MODES) and features["norm"]["enum"] == list(NORMS)


def test_a_built_bundle_conforms(small_bundle):
    """What the builder writes passes the schemas (and runtime_py)."""
    manifest = json.loads((small_bundle / "manifest.json").read_text(encoding="utf-8"))
    bow = json.loads((small_bundle / "bow.json").read_text(encoding="utf-8"))
    assert not [e.message for e in VALIDATORS["manifest"].iter_errors(manifest)]
    assert not [e.message[:200] for e in VALIDATORS["bow"].iter_errors(bow)]
    for spec in parse_manifest(manifest).tiers:
        tier_settings(spec)
    BowModel.from_json(bow)


@pytest.mark.parametrize(
    "message, field, names",
    [
        ("manifest.json.tiers[0].threshold: expected", "tiers[0].threshold", True),
        ("manifest.json.tiers[0].threshold: expected", "tiers[0]", False),
        ("bow.json: weights[1] has 1 values", "weights", False),
        ("bow.json: bias has 1 values for 2 labels", "labels", False),
        ("bow.json: format_version 4 is not supported", "format", False),
        ("bow.json: expected a JSON object", "", True),
    ],
)
def test_names_field_is_strict(message, field, names):
    assert names_field(message, message[: message.index(".json") + 5], field) is names
