"""Pure-Python BoW latency: runtime_py's sparse path vs a dense reference, side by side.

    .venv/bin/python -m benchmarks.bench_bow [--bundle DIR ...] [--data FILE.jsonl] [--json OUT]

Per bundle it times, on the same short utterances (<= 10 words) after a warm-up: the logits
alone, calibrated probabilities, the full ``Router.classify`` (tiers, slots, diagnostics), and
a dense implementation (a vocabulary-sized vector times the full weight matrix, which is how
a straightforward port of the reference computes it). Reports median and p95 in microseconds
over several rounds (median of the per-round medians) and the dense/sparse ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from builder.paths import ROOT
from runtime_py import Router
from runtime_py.tiers import BowTier


def dense_logits(tier: BowTier) -> Callable[[str], list[float]]:
    model = tier.model
    vec = model.vectorizer
    columns = list(zip(*[model.rows[i] for i in range(len(vec.vocab))]))  # class-major: one full weight column per class
    size = len(vec.vocab)

    def run(text: str) -> list[float]:
        x = [0.0] * size
        for i, v in zip(*vec.transform(text)):
            x[i] = v
        return [b + sum(w * xi for w, xi in zip(col, x)) for b, col in zip(model.bias, columns)]

    return run


def time_calls(fn: Callable[[str], object], texts: list[str], rounds: int) -> tuple[float, float]:
    medians, p95s = [], []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        samples = []
        for text in texts:
            start = clock()
            fn(text)
            samples.append(clock() - start)
        samples.sort()
        medians.append(statistics.median(samples) / 1000)
        p95s.append(samples[int(0.95 * (len(samples) - 1))] / 1000)
    return statistics.median(medians), statistics.median(p95s)


def short_utterances(path: Path, limit: int) -> list[str]:
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["text"]
        if len(text.split()) <= 10:
            texts.append(text)
        if len(texts) == limit:
            break
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", help="bundle folder (repeatable; default: models/bundles/finance)")
    parser.add_argument("--data", default=str(ROOT / "models/data/finance/test.jsonl"), help="JSONL with the utterances")
    parser.add_argument("--n", type=int, default=500, help="utterances per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dense-n", type=int, default=100, help="utterances per round for the (slow) dense baseline")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    bundles = args.bundle or [str(ROOT / "models/bundles/finance")]
    texts = short_utterances(Path(args.data), args.n)
    words = statistics.mean(len(t.split()) for t in texts)
    load = os.getloadavg()[0]
    print(f"{len(texts)} utterances from {args.data} (mean {words:.1f} words), {args.rounds} rounds, "
          f"Python {platform.python_version()}, load average {load:.2f}\n")
    rows = []
    for bundle in bundles:
        router = Router.from_bundle(bundle, strict=True)
        tier = next(t for t in router.tiers if isinstance(t, BowTier))
        features = tier.model.config
        name = f"{Path(bundle).name} ({len(tier.model.vectorizer.vocab):,} features"
        name += f", char {features.char_ngrams[0]}-{features.char_ngrams[1]}" if features.char_ngrams else ""
        name += f", tf={features.tf}{', idf' if tier.model.vectorizer.idf else ''}{', l2' if features.norm else ''})"
        for text in texts[:200]:  # warm-up
            router.classify(text)
        cases = {
            "logits (sparse)": (tier.logits, texts),
            "probabilities": (tier.probabilities, texts),
            "Router.classify": (router.classify, texts),
            "dense reference": (dense_logits(tier), texts[: args.dense_n]),
        }
        results = {label: time_calls(fn, data, args.rounds) for label, (fn, data) in cases.items()}
        ratio = results["dense reference"][0] / results["logits (sparse)"][0]
        rows.append({"bundle": name, "results": {k: {"median_us": m, "p95_us": p} for k, (m, p) in results.items()}, "dense_over_sparse": ratio})
    header = "| bundle | " + " | ".join(f"{k} median / p95 (us)" for k in rows[0]["results"]) + " | dense / sparse |"
    print(header)
    print("|" + "---|" * (len(rows[0]["results"]) + 2))
    for row in rows:
        cells = " | ".join(f"{r['median_us']:.1f} / {r['p95_us']:.1f}" for r in row["results"].values())
        print(f"| {row['bundle']} | {cells} | {row['dense_over_sparse']:.0f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "utterances": len(texts), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
