"""BoW accuracy experiments, one row per recipe, on a {text,intent} split folder.

    .venv/bin/python -m benchmarks.bow_accuracy --data ../shared/datasets/banking77 [--recipe NAME ...]

Trains each recipe with the same seed and prints test accuracy, macro-F1, ECE before/after
temperature, training time and the size of the bow.json it would ship, as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from builder.data.datasets import read_splits
from builder.train.bow import BowOptions, train_bow

TFIDF = dict(tf="log", idf=True, norm="l2")
RECIPES: dict[str, BowOptions] = {
    "reference (counts, word 1-2, 6k)": BowOptions(),
    "tfidf word 1-2, lr 0.05, 20 ep": BowOptions(**TFIDF, learning_rate=0.05, epochs=20),
    "tfidf + char 2-5, lr 0.05, 20 ep": BowOptions(**TFIDF, char_ngrams=(2, 5), learning_rate=0.05, epochs=20),
    "tfidf + char 2-5, 20k words, lr 0.05": BowOptions(**TFIDF, char_ngrams=(2, 5), max_vocab=20000, learning_rate=0.05, epochs=20),
    "tfidf + char 2-5, label smoothing 0.1": BowOptions(**TFIDF, char_ngrams=(2, 5), learning_rate=0.05, epochs=20, label_smoothing=0.1),
    "tfidf + char 2-5, weight decay 1e-5": BowOptions(**TFIDF, char_ngrams=(2, 5), learning_rate=0.05, epochs=20, weight_decay=1e-5),
    "tfidf + char 2-5, class weights": BowOptions(**TFIDF, char_ngrams=(2, 5), learning_rate=0.05, epochs=20, class_weights=True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipe", action="append", choices=list(RECIPES), help="default: all")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    splits = read_splits(args.data)
    print(f"{args.data}: " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()), file=sys.stderr)
    print("| recipe | test accuracy | macro-F1 | ECE before -> after T | T | best epoch | train time | bow.json |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.recipe or RECIPES:
        options = replace(RECIPES[name], seed=args.seed)
        result = train_bow(splits, options, log=lambda _: None, progress=False)
        test = result.metrics["test"]
        size = len(json.dumps(result.model, separators=(",", ":"))) / 2**20
        print(
            f"| {name} | {test['accuracy']:.4f} | {test['macro_f1']:.4f} | {test['ece_uncalibrated']:.4f} -> {test['ece']:.4f} "
            f"| {result.temperature:.2f} | {result.best_epoch} | {result.seconds:.0f} s | {size:.1f} MB |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
