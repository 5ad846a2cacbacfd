"""Labelled data on disk: ``{"text", "intent"}`` JSONL splits, and importing CSV / JSONL / logs."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..atomic import refuse_foreign_dir, staged_dir
from ..errors import BuildError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


def read_jsonl(path: str | Path) -> list[Example]:
    """Rows of a ``{"text", "intent"}`` JSONL file; a bad line is reported as ``path:line``."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"{path}: file not found")
    try:
        return [_example(row, where) for where, row in _read_json_lines(path)]
    except UnicodeDecodeError as exc:
        raise BuildError(f"{path}: not UTF-8 text ({exc.reason})") from None


def intent_labels(train: Sequence[Example]) -> list[str]:
    """The sorted intents of a training split; a classifier needs at least two."""
    labels = sorted({r.intent for r in train})
    if len(labels) < 2:
        raise BuildError(f"training data has {len(labels)} intent(s); a classifier needs at least two")
    return labels


def _example(row: Any, where: str) -> Example:
    if not isinstance(row, Mapping):
        raise BuildError(f"{where}: expected an object with 'text' and 'intent'")
    text, intent = row.get("text"), row.get("intent")
    if not isinstance(text, str):
        raise BuildError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    if not isinstance(intent, str) or not intent.strip():
        raise BuildError(f"{where}: 'intent' must be a non-empty string, got {intent!r}")
    return Example(text, intent.strip())


def jsonl_bytes(rows: Iterable[Example]) -> bytes:
    return "".join(json.dumps({"text": r.text, "intent": r.intent}, ensure_ascii=False) + "\n" for r in rows).encode()


def write_splits(out_dir: str | Path, splits: Mapping[str, list[Example]], extra: Mapping[str, Any] | None = None) -> None:
    """Write ``train/val/test.jsonl`` (and JSON side files) to `out_dir` atomically."""
    out_dir = Path(out_dir)
    refuse_foreign_dir(out_dir, lambda d: (d / "train.jsonl").exists(), "a data split (no train.jsonl)")
    with staged_dir(out_dir) as stage:
        for name, rows in splits.items():
            (stage / f"{name}.jsonl").write_bytes(jsonl_bytes(rows))
        for name, obj in (extra or {}).items():
            (stage / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_splits(data_dir: str | Path, seed: int = 7) -> dict[str, list[Example]]:
    """Read a split folder. ``train.jsonl`` is required; a missing ``val.jsonl`` is carved from
    train (10%, per intent); a missing ``test.jsonl`` gives an empty test split."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BuildError(f"{data_dir}: not a folder (expected train.jsonl, val.jsonl, test.jsonl)")
    train_path = data_dir / "train.jsonl"
    if not train_path.exists():
        raise BuildError(f"{data_dir}: no train.jsonl (create one with `python -m builder generate` or `import`)")
    splits = {"train": read_jsonl(train_path)}
    if not splits["train"]:
        raise BuildError(f"{train_path}: has no rows")
    if (data_dir / "val.jsonl").exists():
        splits["val"] = read_jsonl(data_dir / "val.jsonl")
    else:
        parts = stratified_split(splits["train"], seed, (0.9, 0.1, 0.0))
        splits["train"], splits["val"] = parts["train"], parts["val"]
    splits["test"] = read_jsonl(data_dir / "test.jsonl") if (data_dir / "test.jsonl").exists() else []
    return splits


def stratified_split(rows: list[Example], seed: int, ratios: tuple[float, float, float]) -> dict[str, list[Example]]:
    """Split per intent so each split keeps the intent mix; intents with < 3 rows stay in train."""
    rng = random.Random(seed)
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for row in rows:
        by_intent[row.intent].append(row)
    out: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for intent in sorted(by_intent):
        items = by_intent[intent]
        rng.shuffle(items)
        if len(items) < 3:
            out["train"] += items
            continue
        n_val = max(1, round(len(items) * ratios[1])) if ratios[1] else 0
        n_test = max(1, round(len(items) * ratios[2])) if ratios[2] else 0
        n_train = len(items) - n_val - n_test
        out["train"] += items[:n_train]
        out["val"] += items[n_train : n_train + n_val]
        out["test"] += items[n_train + n_val :]
    for split in out.values():
        rng.shuffle(split)
    return out


@dataclass
class ImportReport:
    read: int = 0
    kept: int = 0
    failed_executions: int = 0
    duplicates: int = 0
    conflicts: int = 0
    empty: int = 0
    per_intent: Counter = field(default_factory=Counter)


_TRUE = {"true", "1", "yes", "y", "ok", "success", "succeeded"}


def _success(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return str(value).strip().lower() in _TRUE


def _read_csv(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {name.strip().lower(): name for name in reader.fieldnames or []}
        if "text" not in fields or "intent" not in fields:
            raise BuildError(f"{path}:1: CSV header must have 'text' and 'intent' columns, found {reader.fieldnames}")
        for row in reader:
            yield f"{path}:{reader.line_num}", {"text": row[fields["text"]], "intent": row[fields["intent"]]}


def _read_json_lines(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BuildError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise BuildError(f"{path}:{number}: expected a JSON object")
            yield f"{path}:{number}", row


def import_files(paths: Iterable[str | Path]) -> tuple[list[Example], ImportReport]:
    """Read CSV (``text,intent``), JSONL (``{text, intent}``) and production logs
    (``{raw_input, intent, execution_success}``: only successful rows are kept); drop duplicates
    and, for a text labelled two ways, keep its most frequent label."""
    report = ImportReport()
    labels: dict[str, Counter] = defaultdict(Counter)
    first_text: dict[str, str] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise BuildError(f"{path}: file not found")
        reader = _read_csv(path) if path.suffix.lower() == ".csv" else _read_json_lines(path)
        try:
            for where, row in reader:
                report.read += 1
                if "raw_input" in row:
                    if not _success(row.get("execution_success", False)):
                        report.failed_executions += 1
                        continue
                    row = {"text": row["raw_input"], "intent": row.get("intent")}
                elif "text" not in row:
                    raise BuildError(f"{where}: expected 'text' and 'intent' (or a log row with 'raw_input', 'intent', 'execution_success')")
                example = _example(row, where)
                text = " ".join(example.text.split())
                if not text:
                    report.empty += 1
                    continue
                key = text.lower()
                first_text.setdefault(key, text)
                labels[key][example.intent] += 1
        except UnicodeDecodeError as exc:
            raise BuildError(f"{path}: not UTF-8 text ({exc.reason})") from None
    examples = []
    for key, counts in labels.items():
        (intent, _), *others = counts.most_common()
        report.duplicates += sum(counts.values()) - 1 - sum(c for _, c in others)
        report.conflicts += 1 if others else 0
        examples.append(Example(first_text[key], intent))
        report.per_intent[intent] += 1
    report.kept = len(examples)
    return examples, report
