"""The probe that led to the BoW tier's word pieces (docs/BENCHMARKS.md, session 13; the shipped
form is builder/train/word_pieces.py, session 14): does a block of static word-piece embeddings,
read off the MiniLM the builder fine-tunes, add accuracy to the TF-IDF features, above all on
phrasings the training data never used?

    .venv/bin/python -m benchmarks.static_embeddings_probe --dataset banking77 [--dims 256] [--weight 0 --weight 2]

Model2Vec's recipe, not a product: every word piece of MiniLM-L6's vocabulary goes through the
encoder alone (``[CLS] piece [SEP]``); its output vector, centred and reduced by PCA to ``--dims``,
is the piece's embedding. A text's block is the mean of its pieces' embeddings, L2-normalised and
multiplied by ``--weight``, beside the scikit-learn baseline's TF-IDF features
(``benchmarks.bow_baseline``); LogisticRegression with C from 3, 10, 30 chosen on val. Weight 0 is
the baseline itself. The embeddings are cached in ``--cache``. scikit-learn, transformers and the
MiniLM package are dev and build dependencies; nothing here ships.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.bow_baseline import DATASETS, HANDWRITTEN, baseline_features
from builder.data.datasets import read_jsonl, read_splits
from builder.train.transformer_model import resolve_base
from builder.train.word_pieces import base_vocabulary, piece_vectors


def piece_embeddings(source: Path, cache: Path) -> np.ndarray:
    """[vocabulary, hidden] outputs of the encoder for each piece alone (the builder's
    ``piece_vectors`` over the whole vocabulary), cached."""
    if cache.is_file():
        return np.load(cache)
    _, vocabulary = base_vocabulary(str(source))
    table = piece_vectors(source, vocabulary, vocabulary)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, table)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(DATASETS), required=True)
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--weight", type=float, action="append", help="the block's weight (default: 0 and 2)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/edge-intent-piece-embeddings.npy"))
    args = parser.parse_args()
    from scipy import sparse
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer

    source, _ = resolve_base("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(source)
    table = piece_embeddings(source, args.cache)
    table = PCA(args.dims, random_state=0).fit_transform(table - table.mean(0)) if args.dims < table.shape[1] else table - table.mean(0)
    splits = read_splits(DATASETS[args.dataset])
    if args.dataset == "finance":
        splits["hand-written"] = read_jsonl(HANDWRITTEN)
    texts = {name: [r.text for r in rows] for name, rows in splits.items()}
    labels = {name: [r.intent for r in rows] for name, rows in splits.items()}

    def dense(batch: list[str]) -> np.ndarray:
        out = np.zeros((len(batch), table.shape[1]))
        for i, text in enumerate(batch):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if ids:
                mean = table[ids].mean(0)
                out[i] = mean / (np.linalg.norm(mean) or 1.0)
        return out

    union = baseline_features()
    tfidf = {"train": union.fit_transform(texts["train"])}
    tfidf.update({name: union.transform(batch) for name, batch in texts.items() if name != "train"})
    blocks = {name: dense(batch) for name, batch in texts.items()}
    scored = [n for n in texts if n != "train"]
    print(f"| dataset | block weight | C | {' | '.join(scored)} |\n|---|---|---|{'---|' * len(scored)}")
    for weight in args.weight or [0.0, 2.0]:
        def features(name: str):
            return sparse.hstack([tfidf[name], sparse.csr_matrix(blocks[name] * weight)]).tocsr() if weight else tfidf[name]

        best = None
        for c in (3.0, 10.0, 30.0):
            model = LogisticRegression(C=c, max_iter=3000).fit(features("train"), labels["train"])
            score = model.score(features("val"), labels["val"])
            if best is None or score > best[0]:
                best = (score, c, {name: model.score(features(name), labels[name]) for name in texts if name != "train"})
        _, c, scores = best
        print(f"| {args.dataset} | {weight:g} | {c:g} | {' | '.join(f'{v:.4f}' for v in scores.values())} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
