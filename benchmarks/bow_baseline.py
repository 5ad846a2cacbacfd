"""The BoW tier against a tuned scikit-learn baseline, on the same splits in one run (issue 17).

    .venv/bin/python -m benchmarks.bow_baseline [--dataset NAME ...] [--recipe NAME ...] [--markdown OUT.md] [--json OUT.json]

Datasets: banking77 and hwu64 (``../shared/datasets``, train/val/test), the synthetic finance set
(``models/data/finance``, from ``python -m builder generate``) and the hand-written finance set
(``models/eval/finance_handwritten.jsonl``, scored by the models trained on the synthetic set).

Baseline: TF-IDF word 1-2-grams + ``char_wb`` 2-5-grams (scikit-learn's defaults otherwise),
LogisticRegression, C chosen on val from 1, 3, 10, 30, 100, fitted on train. Ours: the builder's
``train_bow`` with each recipe below; accuracy of the model as shipped (read back by runtime_py),
bow.json size raw and gzipped, and runtime_py's time per prediction (median over the test texts,
second pass; "16 words": 16-word texts from the browser benchmark's sentence pool).
Each of our rows is also compared with the baseline text by text (:func:`mcnemar`): how many texts
only ours got right, how many only scikit-learn did, and whether that difference is more than
the luck of the split. scikit-learn is a dev dependency (pyproject.toml ``dev``), never the
builder's or the runtime's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
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
SPLIT_NAMES = {"test": "test", "extra": "hand-written"}  # "extra": the hand-written set, for the finance models
# --recipe NAME: (the table's label, the options)
RECIPES: dict[str, tuple[str, Callable[[], BowOptions]]] = {
    "default": ("ours: token_l2 TF-IDF, L-BFGS, int8 (default)", BowOptions.robust),
    "every-feature": ("ours: the same, every feature kept (no size budget)", lambda: BowOptions.robust(max_weights=None)),
    "legacy": ("ours: before issue 17 (Adam, float32)", BowOptions.legacy_robust),
    "pieces": ("ours: the default + MiniLM-L6's word pieces (bow.json v4)", lambda: BowOptions.robust(word_pieces="minilm-l6")),
}


def baseline_features() -> Any:
    """The baseline's (unfitted) features: TF-IDF word 1-2-grams beside TF-IDF ``char_wb`` 2-5-grams."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(TfidfVectorizer(ngram_range=(1, 2)), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)))


def sklearn_baseline(splits: dict[str, list[Example]], extra: list[Example] | None) -> dict[str, Any]:
    """Fit the baseline with each C on train, keep the best on val; accuracy on test (and `extra`)."""
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    texts = {k: [r.text for r in v] for k, v in splits.items()}
    union = baseline_features()
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
    out: dict[str, Any] = {"c": c, "features": x_train.shape[1], "seconds": time.perf_counter() - started, "hits": {}}
    for name, rows in (("test", splits.get("test", [])), ("extra", extra or [])):
        if rows:
            right = model.predict(union.transform([r.text for r in rows])) == [r.intent for r in rows]
            out[name], out["hits"][name] = float(right.mean()), right.tolist()
    return out


def mcnemar(ours: list[bool], theirs: list[bool]) -> dict[str, Any]:
    """Paired comparison on the same texts: how many only ours got right, how many only theirs,
    and the exact two-sided McNemar p-value (binomial on the discordant pairs): below 0.05, the
    difference is unlikely to be the luck of this test split."""
    only_ours = sum(a and not b for a, b in zip(ours, theirs))
    only_theirs = sum(b and not a for a, b in zip(ours, theirs))
    n, k = only_ours + only_theirs, min(only_ours, only_theirs)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"only_ours": only_ours, "only_theirs": only_theirs, "p": p}


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


def hits(model: BowModel, rows: list[Example]) -> list[bool]:
    """Whether the model's top intent is each row's intent."""
    out = []
    for r in rows:
        logits = model.logits(r.text)
        out.append(model.labels[max(range(len(logits)), key=logits.__getitem__)] == r.intent)
    return out


def ours(splits: dict[str, list[Example]], options: BowOptions, extra: list[Example] | None, short: list[str]) -> dict[str, Any]:
    result = train_bow(splits, options, log=lambda line: print(f"  {line}", file=sys.stderr, flush=True), progress=False)
    raw = json.dumps(result.model, separators=(",", ":")).encode("utf-8")
    model = BowModel.from_json(json.loads(raw))  # the model as shipped
    right = {name: hits(model, rows) for name, rows in (("test", splits.get("test")), ("extra", extra)) if rows}
    out = {
        "test": statistics.fmean(right["test"]) if "test" in right else None,
        "hits": right,
        "bytes": len(raw),
        "gzip_bytes": len(gzip.compress(raw, 9)),
        "features": len(result.model["vocab"]),
        "seconds": result.seconds,
        "us_test": time_per_prediction(model, [r.text for r in splits.get("test", [])][:1000]),
        "us_16": time_per_prediction(model, short),
    }
    if "extra" in right:
        out["extra"] = statistics.fmean(right["extra"])
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
            label, options = RECIPES[recipe]
            row = {"dataset": name, "model": label, **ours(splits, options(), extra, short)}
            row["vs_baseline"] = {split: mcnemar(row["hits"][split], base["hits"][split]) for split in row["hits"]}
            rows.append(row)
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "hits"} for r in rows], indent=2) + "\n", encoding="utf-8")
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(value: Any, spec: str, unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    def paired(r: dict[str, Any]) -> str:
        parts = [f"{SPLIT_NAMES[split]}: +{v['only_ours']} / -{v['only_theirs']}, p = {v['p']:.2f}" for split, v in r.get("vs_baseline", {}).items()]
        return "; ".join(parts) or "-"

    lines = [
        "| dataset | model | test accuracy | hand-written accuracy | vs scikit-learn: texts only ours / only it got right, McNemar p | features | bow.json | gzipped | CPython µs/prediction (test texts / 16 words) | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = f"{r['bytes'] / 2**20:.2f} MiB" if "bytes" in r else "-"
        gz = f"{r['gzip_bytes'] / 2**20:.2f} MiB" if "gzip_bytes" in r else "-"
        speed = f"{r['us_test']:.1f} / {r['us_16']:.1f}" if "us_test" in r else "-"
        lines.append(f"| {r['dataset']} | {r['model']} | {fmt(r.get('test'), '.4f')} | {fmt(r.get('extra'), '.4f')} | {paired(r)} | {r['features']:,} "
                     f"| {size} | {gz} | {speed} | {r['seconds']:.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
