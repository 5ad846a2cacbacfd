"""The BoW tier against a tuned scikit-learn baseline, on the same splits in one run (issue 17).

    .venv/bin/python -m benchmarks.bow_baseline [--dataset NAME ...] [--markdown OUT.md] [--json OUT.json]

Datasets: banking77 and hwu64 (``../shared/datasets``, train/val/test), the synthetic finance set
(``models/data/finance``, from ``python -m builder generate``) and the hand-written finance set
(``models/eval/finance_handwritten.jsonl``, scored by the models trained on the synthetic set).

Baseline: TF-IDF word 1-2-grams + ``char_wb`` 2-5-grams (scikit-learn's defaults otherwise),
LogisticRegression, C chosen on val from 1, 3, 10, 30, 100, fitted on train. Ours: the builder's
``train_bow`` with each recipe below; accuracy of the model as shipped (read back by runtime_py),
bow.json size raw and gzipped, and runtime_py's time per prediction (median over the test texts,
second pass; "16 words": 16-word texts from the browser benchmark's sentence pool).
scikit-learn is a dev dependency (pyproject.toml ``dev``), never the builder's or the runtime's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from builder.bench.texts import cut_texts
from builder.data.datasets import Example, read_jsonl, read_splits
from builder.paths import ROOT
from builder.train.bow import BowOptions, train_bow
from runtime_py.bow import BowModel

SHARED = ROOT.parent / "shared" / "datasets"
DATASETS = {
    "banking77": SHARED / "banking77",
    "hwu64": SHARED / "hwu64",
    "finance": ROOT / "models" / "data" / "finance",
}
HANDWRITTEN = ROOT / "models" / "eval" / "finance_handwritten.jsonl"
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
RECIPES: dict[str, Callable[[], BowOptions]] = {
    "ours: token_l2 TF-IDF, L-BFGS, int8 (default)": BowOptions.robust,
    "ours: before issue 17 (Adam, float32)": BowOptions.legacy_robust,
}


def sklearn_baseline(splits: dict[str, list[Example]], extra: list[Example] | None) -> dict[str, Any]:
    """Fit the baseline with each C on train, keep the best on val; accuracy on test (and `extra`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_union

    started = time.perf_counter()
    texts = {k: [r.text for r in v] for k, v in splits.items()}
    union = make_union(TfidfVectorizer(ngram_range=(1, 2)), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)))
    x_train = union.fit_transform(texts["train"])
    x_val = union.transform(texts["val"])
    y_train, y_val = [r.intent for r in splits["train"]], [r.intent for r in splits["val"]]
    best: tuple[float, float, Any] | None = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
        acc = model.score(x_val, y_val)
        print(f"  sklearn C={c:g}: val {acc:.4f}", file=sys.stderr, flush=True)
        if best is None or acc > best[0]:
            best = (acc, c, model)
    assert best is not None
    _, c, model = best
    out = {"c": c, "features": x_train.shape[1], "seconds": time.perf_counter() - started}
    for name, rows in (("test", splits.get("test", [])), ("extra", extra or [])):
        if rows:
            out[name] = float(model.score(union.transform([r.text for r in rows]), [r.intent for r in rows]))
    return out


def time_per_prediction(model: BowModel, texts: list[str]) -> float:
    """Median µs of ``model.logits`` over `texts`, on a second pass (the token cache warm)."""
    for text in texts:
        model.logits(text)
    samples = []
    clock = time.perf_counter_ns
    for text in texts:
        start = clock()
        model.logits(text)
        samples.append(clock() - start)
    return statistics.median(samples) / 1000


def accuracy(model: BowModel, rows: list[Example]) -> float:
    hits = 0
    for r in rows:
        logits = model.logits(r.text)
        hits += model.labels[max(range(len(logits)), key=logits.__getitem__)] == r.intent
    return hits / len(rows)


def ours(splits: dict[str, list[Example]], options: BowOptions, extra: list[Example] | None, short: list[str]) -> dict[str, Any]:
    result = train_bow(splits, options, log=lambda line: print(f"  {line}", file=sys.stderr, flush=True), progress=False)
    raw = json.dumps(result.model, separators=(",", ":")).encode("utf-8")
    model = BowModel.from_json(json.loads(raw))  # the model as shipped
    out = {
        "test": accuracy(model, splits["test"]) if splits.get("test") else None,
        "bytes": len(raw),
        "gzip_bytes": len(gzip.compress(raw, 9)),
        "features": len(result.model["vocab"]),
        "seconds": result.seconds,
        "us_test": time_per_prediction(model, [r.text for r in splits.get("test", [])][:1000]),
        "us_16": time_per_prediction(model, short),
    }
    if extra:
        out["extra"] = accuracy(model, extra)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", choices=list(DATASETS), help="default: all")
    parser.add_argument("--recipe", action="append", choices=list(RECIPES), help="default: all")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    short = cut_texts(lambda t: len(t.split()), 16, 8)
    rows: list[dict[str, Any]] = []
    for name in args.dataset or DATASETS:
        splits = read_splits(DATASETS[name])
        extra = read_jsonl(HANDWRITTEN) if name == "finance" else None
        print(f"{name}: " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()), file=sys.stderr, flush=True)
        base = sklearn_baseline(splits, extra)
        rows.append({"dataset": name, "model": f"scikit-learn TF-IDF + LogisticRegression (C={base['c']:g})", **base})
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)  # each row as soon as it is measured
        for recipe in args.recipe or RECIPES:
            rows.append({"dataset": name, "model": recipe, **ours(splits, RECIPES[recipe](), extra, short)})
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(value: Any, spec: str, unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    lines = [
        "| dataset | model | test accuracy | hand-written accuracy | features | bow.json | gzipped | CPython µs/prediction (test texts / 16 words) | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = f"{r['bytes'] / 2**20:.2f} MiB" if "bytes" in r else "-"
        gz = f"{r['gzip_bytes'] / 2**20:.2f} MiB" if "gzip_bytes" in r else "-"
        speed = f"{r['us_test']:.1f} / {r['us_16']:.1f}" if "us_test" in r else "-"
        lines.append(f"| {r['dataset']} | {r['model']} | {fmt(r.get('test'), '.4f')} | {fmt(r.get('extra'), '.4f')} | {r['features']:,} "
                     f"| {size} | {gz} | {speed} | {r['seconds']:.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
