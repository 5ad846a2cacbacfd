"""Training the bag-of-words tier (BRIEF section 4) and exporting it as ``bow.json``.

Features come from ``runtime_py.features`` (the code every runtime runs), so what was trained is
exactly what ships. The model is one linear layer, implemented as an ``EmbeddingBag`` in sum
mode with per-feature values: the sparse equivalent of ``nn.Linear`` on a count vector.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from runtime_py.bow import BOW_FORMAT, BOW_FORMAT_VERSION, PIECES_FORMAT_VERSION, pack_float32, pack_int8, quantize_rows
from runtime_py.features import PIECE_MARK, FeatureConfig, FeatureExtractor, Vectorizer

from ..data.datasets import Example, intent_labels
from ..data.oos_labels import DEFAULT_OOS_LABELS
from ..errors import BuildError
from .calibration import fit_temperature
from .metrics import evaluate_logits


@dataclass
class BowOptions:
    """Defaults reproduce the reference recipe: word 1-2-grams, top 6,000 by count, counts,
    Adam lr 1e-2, batch 32, 12 epochs, seed 7."""

    max_vocab: int = 6000
    ngram_max: int = 2
    char_ngrams: tuple[int, int] | None = None
    max_char_vocab: int = 20000
    min_count: int = 1
    tf: str = "count"
    idf: bool = False
    norm: str | None = None
    token_pattern: str = r"[A-Za-z0-9']+"
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    class_weights: bool = False
    label_smoothing: float = 0.0
    seed: int = 7
    # "adam": minibatches, the epoch with the best validation accuracy (the reference recipe).
    # "lbfgs": full-batch L-BFGS on cross-entropy + ||W||^2 / (2C) (scikit-learn's LogisticRegression
    # objective), C chosen on validation from c_grid, then the max_features rows of largest |w| kept
    # and the model refitted on them.
    solver: str = "adam"
    c_grid: tuple[float, ...] = (3.0, 10.0, 30.0)
    max_iter: int = 150
    max_features: int | None = None
    max_weights: int | None = None  # caps max_features at max_weights // labels (bow.json's size)
    quantize: bool = False  # int8 weights, one float32 scale per feature row (bow.json version 3)
    # lbfgs only: a block of this base model's word-piece vectors (bow.json version 4; builder/train/word_pieces.py),
    # at most max_pieces of them (default: an eighth of max_weights, at most 8,000), the block scaled by pieces_weight.
    # A piece's weights count twice against max_weights: its dense rows gzip to about twice an n-gram row's bytes.
    word_pieces: str | None = None
    max_pieces: int | None = None
    pieces_weight: float = 2.0
    oos_labels: tuple[str, ...] = DEFAULT_OOS_LABELS  # labels that mean "out of scope" (routing.oos_labels)

    @classmethod
    def robust(cls, **changes: Any) -> "BowOptions":
        """The default build's recipe (issue 17): TF-IDF (counts, idf, ``token_l2``) over every word
        1-2-gram and character 2-5-gram of the training data, L-BFGS with C tuned on validation, the
        features of largest weight that fit 1.5 million int8 weights (19,480 for 77 intents: banking77's
        bow.json is then about 0.9 MB gzipped) (docs/BENCHMARKS.md, "the first tier")."""
        return replace(cls.legacy_robust(max_vocab=10**6, max_char_vocab=10**6, norm="token_l2", tf="count", solver="lbfgs",
                                         max_weights=1_500_000, quantize=True), **changes)

    @classmethod
    def legacy_robust(cls, **changes: Any) -> "BowOptions":
        """The default build's recipe before issue 17: TF-IDF (log tf, idf, l2) over word 1-2-grams
        and character 2-5-grams, Adam lr 0.05, 20 epochs (float32 weights)."""
        return replace(cls(char_ngrams=(2, 5), tf="log", idf=True, norm="l2", learning_rate=0.05, epochs=20), **changes)

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(
            token_pattern=self.token_pattern,
            ngram_max=self.ngram_max,
            char_ngrams=self.char_ngrams,
            tf=self.tf,
            norm=self.norm,
            word_pieces=self.word_pieces is not None,
        )


@dataclass
class BowResult:
    model: dict[str, Any]
    labels: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    temperature: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _float32_list(values: np.ndarray) -> list[float]:
    """`values` rounded to float32, as Python floats: exactly what bow.json ships (packed float32)."""
    return values.astype(np.float32).astype(np.float64).tolist()


def build_vocabulary(texts: Sequence[str], options: BowOptions) -> tuple[list[str], list[float] | None]:
    """Top features by count (ties by name), words and character n-grams budgeted separately;
    smoothed idf ``ln((1 + n) / (1 + df)) + 1`` when asked for."""
    extractor = FeatureExtractor(options.feature_config())
    counts: Counter[str] = Counter()
    doc_freq: Counter[str] = Counter()
    for text in texts:
        feats = extractor.features(text)
        counts.update(feats)
        doc_freq.update(set(feats))
    ranked = sorted((f for f, c in counts.items() if c >= options.min_count), key=lambda f: (-counts[f], f))
    words = [f for f in ranked if not f.startswith("#")][: options.max_vocab]
    chars = [f for f in ranked if f.startswith("#")][: options.max_char_vocab] if options.char_ngrams else []
    vocab = words + chars
    if not vocab:
        raise BuildError("the training texts produce no features (is the data empty or the token pattern wrong?)")
    idf = None
    if options.idf:
        n = len(texts)
        idf = _float32_list(np.array([math.log((1 + n) / (1 + doc_freq[f])) + 1.0 for f in vocab]))
    return vocab, idf


class _Sparse:
    """Rows of sparse vectors in CSR form, for cheap batching."""

    def __init__(self, vectorizer: Vectorizer, texts: Sequence[str]) -> None:
        indices: list[int] = []
        values: list[float] = []
        ptr = [0]
        for text in texts:
            idx, val = vectorizer.transform(text)
            indices += idx
            values += val
            ptr.append(len(indices))
        self.indices = np.asarray(indices, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float32)
        self.ptr = np.asarray(ptr, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        starts, ends = self.ptr[rows], self.ptr[rows + 1]
        spans = [np.arange(s, e) for s, e in zip(starts, ends)]
        take = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(ends - starts)[:-1]])
        return (
            torch.from_numpy(self.indices[take]),
            torch.from_numpy(offsets.astype(np.int64)),
            torch.from_numpy(self.values[take]),
        )


class SparseLinear(nn.Module):
    """``nn.Linear(vocab, classes)`` over sparse inputs, initialised the way nn.Linear is."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.weight = nn.EmbeddingBag(n_features, n_classes, mode="sum")
        self.bias = nn.Parameter(torch.empty(n_classes))
        bound = 1.0 / math.sqrt(n_features)
        nn.init.uniform_(self.weight.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return self.weight(indices, offsets, per_sample_weights=values) + self.bias


def _targets(rows: Sequence[Example], index: dict[str, int]) -> np.ndarray:
    return np.asarray([index.get(r.intent, -1) for r in rows], dtype=np.int64)


def _logits(model: SparseLinear, data: _Sparse) -> np.ndarray:
    if len(data) == 0:
        return np.zeros((0, model.bias.numel()), dtype=np.float32)
    with torch.no_grad():
        return model(*data.batch(np.arange(len(data)))).numpy()


def train_bow(
    splits: dict[str, list[Example]],
    options: BowOptions,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> BowResult:
    """Train on ``splits["train"]``, keep the epoch with the best validation accuracy, fit T on val."""
    started = time.perf_counter()
    train, val, test = splits["train"], splits.get("val", []), splits.get("test", [])
    labels = intent_labels(train)
    index = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)

    if options.word_pieces is not None and (options.solver != "lbfgs" or options.norm != "token_l2"):
        raise BuildError("word pieces need the lbfgs solver and norm token_l2 (the --robust recipe)")
    vocab, idf = build_vocabulary([r.text for r in train], options)
    if options.solver == "lbfgs":
        return _train_lbfgs(splits, labels, vocab, idf, options, log, started)
    if options.solver != "adam":
        raise BuildError(f"unknown solver {options.solver!r} (adam or lbfgs)")
    vectorizer = Vectorizer(options.feature_config(), vocab, idf)
    log(f"vocabulary: {len(vocab):,} features ({sum(not f.startswith('#') for f in vocab):,} word n-grams), {len(labels)} intents")
    data = {name: _Sparse(vectorizer, [r.text for r in rows]) for name, rows in (("train", train), ("val", val), ("test", test))}
    y = {name: _targets(rows, index) for name, rows in (("train", train), ("val", val), ("test", test))}

    model = SparseLinear(len(vocab), len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    class_weight = None
    if options.class_weights:
        counts = np.bincount(y["train"], minlength=len(labels)).astype(np.float64)
        class_weight = torch.tensor(len(train) / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
    y_train = torch.from_numpy(y["train"])
    result = BowResult(model={}, labels=labels)
    best_state: dict[str, torch.Tensor] | None = None
    best_acc = -1.0
    for epoch in range(1, options.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator).numpy()
        batches = range(0, len(order), options.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch}/{options.epochs}", unit="batch", leave=False, disable=None if progress else True)
        total = 0.0
        for start in bar:
            rows = order[start : start + options.batch_size]
            logits = model(*data["train"].batch(rows))
            loss = F.cross_entropy(logits, y_train[rows], weight=class_weight, label_smoothing=options.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        model.eval()
        val_logits = _logits(model, data["val"])
        val_acc = float((val_logits.argmax(axis=1) == y["val"]).mean()) if len(val) else float("nan")
        result.history.append({"epoch": epoch, "loss": total / len(train), "val_accuracy": val_acc})
        log(f"epoch {epoch:>2}/{options.epochs}  loss {total / len(train):.4f}  val accuracy {val_acc:.4f}")
        if not len(val) or val_acc > best_acc:
            best_acc, result.best_epoch = val_acc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)

    # bow.json ships the model's own float32 values exactly, so T is fitted on the shipped model.
    weights = model.weight.weight.detach().numpy()
    bias32 = model.bias.detach().numpy().tolist()
    val_logits = _logits(model, data["val"])
    known = y["val"] >= 0
    result.temperature = round(fit_temperature(val_logits[known], y["val"][known]), 6) if known.any() else 1.0
    if known.any() and (val_logits[known].argmax(axis=1) == y["val"][known]).all():
        log("warning: the validation split has no errors, so no temperature can be fitted (T = 1.0); "
            "calibrate on data with realistic, harder phrasings")
    for name in ("val", "test"):
        if len(y[name]):
            result.metrics[name] = evaluate_logits(_logits(model, data[name]), y[name], labels, result.temperature)
    training = _training_record(options, best_epoch=result.best_epoch, train_size=len(train), val_size=len(val))
    weights_field = pack_float32(weights.ravel().tolist(), (len(vocab), len(labels)))
    result.model = _bow_json(labels, vectorizer, vocab, idf, weights_field, None, bias32, result.temperature, training)
    result.seconds = time.perf_counter() - started
    return result


def _training_record(options: BowOptions, **extra: Any) -> dict[str, Any]:
    """The options bow.json records (the feature settings are in its ``features``), plus `extra`."""
    record = {k: v for k, v in asdict(options).items() if k not in ("token_pattern", "ngram_max", "char_ngrams", "tf", "norm")}
    return {**record, **extra}


def _bow_json(labels: list[str], vectorizer: Vectorizer, vocab: list[str], idf: list[float] | None, weights: dict[str, Any],
              scales: list[float] | None, bias: list[float], temperature: float, training: dict[str, Any]) -> dict[str, Any]:
    """bow.json's content (docs/BUNDLE.md); `scales` only with int8 `weights`."""
    return {
        "format": BOW_FORMAT,
        "format_version": PIECES_FORMAT_VERSION if vectorizer.config.word_pieces else BOW_FORMAT_VERSION,
        "labels": labels,
        "features": vectorizer.config.to_json(),
        "vocab": vocab,
        "idf": pack_float32(idf, (len(vocab),)) if idf is not None else None,
        "weights": weights,
        **({"scales": pack_float32(scales, (len(vocab),))} if scales is not None else {}),
        "bias": bias,
        "temperature": temperature,
        "training": training,
    }


def _csr(data: _Sparse, n_features: int, columns: tuple[int, int] | None = None) -> torch.Tensor:
    """`data` as a torch CSR matrix; with `columns` (lo, hi), only those features, renumbered from 0."""
    ptr, indices, values = data.ptr, data.indices, data.values
    if columns is not None:
        lo, hi = columns
        inside = (indices >= lo) & (indices < hi)
        ptr = np.concatenate([[0], np.cumsum(inside)])[ptr]
        indices, values, n_features = indices[inside] - lo, values[inside], hi - lo
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul and its gradient are all this uses
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(ptr), torch.from_numpy(indices), torch.from_numpy(values),
                                       (len(data), n_features), dtype=torch.float32)


class _Inputs(NamedTuple):
    """One split's features for L-BFGS: the sparse n-gram features and the dense word-piece block
    (the text's mean piece vector; None without word pieces)."""

    sparse: torch.Tensor
    dense: torch.Tensor | None


Params = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # n-gram rows, bias, the piece block's map


def _scores(x: _Inputs, params: Params) -> torch.Tensor:
    weight, bias, block = params
    out = x.sparse @ weight + bias
    return out if x.dense is None or block is None else out + x.dense @ block


def fit_lbfgs(x: _Inputs, y: np.ndarray, n_classes: int, c: float, max_iter: int, init: Params | None = None) -> Params:
    """Minimise ``sum(cross-entropy) + (||W||^2 + ||B||^2) / (2c)`` (bias not penalised) with full-batch
    L-BFGS: scikit-learn's multinomial LogisticRegression objective over the sparse CSR features [n,
    features] and, when `x` has one, the dense block [n, dims] (B its map to the classes)."""
    dims = x.dense.shape[1] if x.dense is not None else 0
    if init is None:
        init = (torch.zeros(x.sparse.shape[1], n_classes), torch.zeros(n_classes), torch.zeros(dims, n_classes) if dims else None)
    params = [p.clone().requires_grad_(True) if p is not None else None for p in init]
    trained = [p for p in params if p is not None]
    known = torch.from_numpy(np.flatnonzero(y >= 0))
    targets = torch.from_numpy(y)[known]
    optimizer = torch.optim.LBFGS(trained, lr=1, max_iter=max_iter, history_size=20, tolerance_grad=1e-5,
                                  tolerance_change=1e-9, line_search_fn="strong_wolfe")
    weight, bias, block = params

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = _scores(x, (weight, bias, block))[known]
        penalty = (weight * weight).sum() + ((block * block).sum() if block is not None else 0.0)
        loss = F.cross_entropy(logits, targets, reduction="sum") + penalty / (2 * c)
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach(), block.detach() if block is not None else None


def _accuracy(x: _Inputs, y: np.ndarray, params: Params) -> float:
    if not len(y):
        return float("nan")
    with torch.no_grad():
        return float((_scores(x, params).argmax(1).numpy() == y).mean())


PIECE_COST = 2  # n-gram weights a piece's weight takes from max_weights (bytes gzipped, docs/BENCHMARKS.md)


def _piece_basis(train: Sequence[Example], options: BowOptions, n_labels: int, log: Callable[[str], None]) -> tuple[list[str], np.ndarray]:
    """The word pieces a model ships and their vectors (builder/train/word_pieces.py)."""
    from .word_pieces import piece_block

    assert options.word_pieces is not None
    budget = options.max_pieces or (8000 if options.max_weights is None else min(8000, max(1, options.max_weights // (8 * n_labels))))
    extractor = FeatureExtractor(options.feature_config())
    pieces, table = piece_block(options.word_pieces, (t for r in train for t in extractor.tokens(r.text)), budget)
    log(f"word pieces: {len(pieces):,} of {options.word_pieces}'s, {table.shape[1]} dimensions")
    return pieces, table


def _train_lbfgs(
    splits: dict[str, list[Example]], labels: list[str], vocab: list[str], idf: list[float] | None,
    options: BowOptions, log: Callable[[str], None], started: float,
) -> BowResult:
    """The ``lbfgs`` solver (see :class:`BowOptions`). With word pieces, their features come last
    in the vocabulary; the model learns a map B from a text's mean piece vector to the intents, and
    piece p's shipped row is ``vector(p) @ B`` (the mean of rows is the row of the mean)."""
    torch.manual_seed(options.seed)
    index = {label: i for i, label in enumerate(labels)}
    parts = [(name, splits.get(name, [])) for name in ("train", "val", "test")]
    y = {name: _targets(rows, index) for name, rows in parts}
    pieces: list[str] = []
    basis: torch.Tensor | None = None
    if options.word_pieces is not None:
        pieces, table = _piece_basis(splits["train"], options, len(labels), log)
        basis = torch.from_numpy(table.astype(np.float32))

    def matrices(vocab: list[str], idf: list[float] | None) -> tuple[Vectorizer, dict[str, _Sparse]]:
        full = vocab + [PIECE_MARK + p for p in pieces]
        vectorizer = Vectorizer(options.feature_config(), full, idf + [1.0] * len(pieces) if idf is not None and pieces else idf)
        return vectorizer, {name: _Sparse(vectorizer, [r.text for r in rows]) for name, rows in parts}

    def inputs(data: dict[str, _Sparse], n: int) -> dict[str, _Inputs]:
        if basis is None:
            return {name: _Inputs(_csr(d, n), None) for name, d in data.items()}
        return {name: _Inputs(_csr(d, n, (0, n)), _csr(d, n + len(pieces), (n, n + len(pieces))) @ basis) for name, d in data.items()}

    vectorizer, data = matrices(vocab, idf)
    if basis is not None:
        # Scaled once, so that a typical text's block is pieces_weight times as long as the unit-norm
        # word and character blocks.
        n = len(vocab)
        typical = float(torch.linalg.vector_norm(_csr(data["train"], n + len(pieces), (n, n + len(pieces))) @ basis, dim=1).median())
        basis = basis * (options.pieces_weight / (typical or 1.0))
    x = inputs(data, len(vocab))
    log(f"vocabulary: {len(vocab):,} features ({sum(not f.startswith('#') for f in vocab):,} word n-grams), {len(labels)} intents")
    result = BowResult(model={}, labels=labels)
    fit: Params | None = None
    best: tuple[float, float, Params] | None = None
    for c in sorted(options.c_grid):
        fit = fit_lbfgs(x["train"], y["train"], len(labels), c, options.max_iter, init=fit)  # warm start from the smaller C
        acc = _accuracy(x["val"], y["val"], fit)
        result.history.append({"c": c, "val_accuracy": acc})
        log(f"C {c:g}: val accuracy {acc:.4f}")
        if best is None or acc > best[0] or math.isnan(best[0]):
            best = (acc, c, fit)
    assert best is not None
    _, c, (weight, bias, block) = best
    budget = (options.max_weights or 10**12) - PIECE_COST * len(pieces) * len(labels)
    limit = min(options.max_features or len(vocab), max(1, budget // len(labels)))
    if len(vocab) > limit:
        strength = weight.abs().max(dim=1).values.numpy()
        keep = np.sort(np.argsort(-strength, kind="stable")[:limit])
        vocab = [vocab[i] for i in keep]
        idf = [idf[i] for i in keep] if idf is not None else None
        vectorizer, data = matrices(vocab, idf)
        x = inputs(data, len(vocab))
        weight, bias, block = fit_lbfgs(x["train"], y["train"], len(labels), c, options.max_iter,
                                        init=(weight[torch.from_numpy(keep)], bias, block))
        log(f"kept the {len(vocab):,} features of largest weight: val accuracy {_accuracy(x['val'], y['val'], (weight, bias, block)):.4f}")
    rows = weight.numpy().astype(np.float32)
    if basis is not None and block is not None:
        rows = np.concatenate([rows, (basis @ block).numpy().astype(np.float32)])
    n_rows = len(vectorizer.vocab)
    bias32 = bias.numpy().astype(np.float32).astype(np.float64).tolist()
    if options.quantize:
        ints, scales = quantize_rows(rows.astype(np.float64).tolist())
        shipped = np.asarray(ints, dtype=np.float64).reshape(rows.shape) * np.asarray(scales)[:, None]
        weights_field: dict[str, Any] = pack_int8(ints, (n_rows, len(labels)))
    else:
        scales = None
        shipped = rows.astype(np.float64)
        weights_field = pack_float32(rows.ravel().tolist(), (n_rows, len(labels)))
    # Metrics and T from the weights as shipped, on the features the runtimes compute (float64 sums).
    logits = {name: (_csr(d, n_rows).to(torch.float64) @ torch.from_numpy(shipped)).numpy() + np.asarray(bias32) for name, d in data.items()}
    known = y["val"] >= 0
    result.temperature = round(fit_temperature(logits["val"][known], y["val"][known]), 6) if known.any() else 1.0
    for name in ("val", "test"):
        if len(y[name]):
            result.metrics[name] = evaluate_logits(logits[name], y[name], labels, result.temperature)
    training = _training_record(options, c=c, train_size=len(splits["train"]), val_size=len(splits.get("val", [])),
                                **({"pieces": len(pieces)} if pieces else {}))
    result.model = _bow_json(labels, vectorizer, vectorizer.vocab, vectorizer.idf, weights_field, scales, bias32,
                             result.temperature, training)
    result.seconds = time.perf_counter() - started
    return result
