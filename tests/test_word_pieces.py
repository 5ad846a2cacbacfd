"""The BoW tier's word-piece block (bow.json version 4): segmentation, the mean block, the cached
logits against the sparse vector, the format's rules, and a model trained with a tiny encoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from builder.data.datasets import read_splits
from builder.train.bow import BowOptions, train_bow
from builder.train.word_pieces import select_pieces
from runtime_py import BowModel, FeatureConfig, Vectorizer
from runtime_py.bow import pack_float32
from runtime_py.errors import BundleError
from runtime_py.features import word_pieces

PIECES = {"un", "##aff", "##able", "##a", "a", "b", "##b", "aff", "é", "##é"}


@pytest.mark.parametrize("word, want", [
    ("unaffable", ["un", "##aff", "##able"]),  # longest match first, "##" for what continues a word
    ("affable", ["aff", "##able"]),
    ("ab", ["a", "##b"]),
    ("abc", []),  # "c" is not a piece: the whole word has none (BERT's [UNK])
    ("éé", ["é", "##é"]),  # code points, not UTF-16 units or bytes
    ("a" * 100, ["a"] + ["##a"] * 99),
    ("a" * 101, []),  # longer than BERT's 100 characters
])
def test_word_pieces_is_berts_greedy_longest_match(word, want):
    assert word_pieces(word, PIECES, max(len(p.removeprefix("##")) for p in PIECES)) == want


def piece_model() -> BowModel:
    vocab = ["sell", "buy", "sell_now", "~sell", "~buy", "~now", "~##s", "~b", "~##uy", "~s", "~##ell"]
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(len(vocab), 3))
    data = {"format": "bow", "format_version": 4, "labels": ["a", "b", "c"],
            "features": {"norm": "token_l2", "word_pieces": True}, "vocab": vocab,
            "idf": pack_float32([1.0, 2.0, 3.0] + [1.0] * 8, (len(vocab),)),
            "weights": pack_float32(weights.ravel().tolist(), (len(vocab), 3)), "bias": [0.1, -0.2, 0.3]}
    return BowModel.from_json(json.loads(json.dumps(data)))


def test_the_piece_block_is_the_mean_of_the_texts_pieces():
    vec = piece_model().vectorizer
    idx, val = vec.transform("sells now")  # no word or bigram in the vocabulary; pieces: sell ##s | now
    index = {f: i for i, f in enumerate(vec.vocab)}
    assert dict(zip(idx, val)) == pytest.approx({index["~sell"]: 1 / 3, index["~##s"]: 1 / 3, index["~now"]: 1 / 3})
    idx, val = vec.transform("sell sell now zzz")  # words: sell twice, then sell_now; pieces: sell, sell, now (zzz has none)
    got = dict(zip(idx, val))
    assert got[index["~sell"]] == pytest.approx(2 / 3) and got[index["~now"]] == pytest.approx(1 / 3)
    qw = 1 + 1 + 9  # two "sell" groups (idf 1), one sell_now (idf 3)
    assert got[index["sell"]] == pytest.approx(2 / math.sqrt(qw)) and got[index["sell_now"]] == pytest.approx(3 / math.sqrt(qw))
    assert vec.transform("zzz") == ([], [])


def test_cached_logits_equal_the_sparse_vector_while_the_cache_fills_and_clears(monkeypatch):
    import runtime_py.bow as bow_module

    monkeypatch.setattr(bow_module, "TOKEN_CACHE_SIZE", 2)
    model = piece_model()
    texts = ["sell now", "buy buys buy", "sells sells sells now", "zzz", "sell sell now now", "b uy"]
    for text in texts * 2:
        idx, val = model.vectorizer.transform(text)
        dense = [b + sum(model.rows[i][c] * v for i, v in zip(idx, val)) for c, b in enumerate(model.bias)]
        assert model.logits(text) == pytest.approx(dense, abs=1e-12)
        assert len(model._tokens) <= 2


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format_version=3), "features.word_pieces needs format_version 4"),
    (lambda d: d["features"].update(norm="l2"), 'features.word_pieces needs norm "token_l2"'),
    (lambda d: d["features"].update(word_pieces="yes"), "features.word_pieces must be true or false"),
])
def test_the_format_refuses_word_pieces_where_they_do_not_apply(change, message):
    data = {"format": "bow", "format_version": 4, "labels": ["a", "b"], "features": {"norm": "token_l2", "word_pieces": True},
            "vocab": ["~a"], "weights": [[1.0, 0.0]], "bias": [0.0, 0.0]}
    BowModel.from_json(json.loads(json.dumps(data)))
    change(data)
    with pytest.raises(BundleError, match=message):
        BowModel.from_json(data)


def test_a_model_without_pieces_writes_the_features_it_always_wrote():
    assert "word_pieces" not in FeatureConfig(norm="token_l2").to_json()
    assert FeatureConfig(norm="token_l2", word_pieces=True).to_json()["word_pieces"] is True
    assert Vectorizer(FeatureConfig(norm="token_l2"), ["~a", "a"]).transform("a") == ([1], [1.0])  # "~" is no mark without pieces


def test_select_pieces_keeps_every_character_then_the_frequent_pieces():
    vocabulary = ["[PAD]", "[CLS]", "a", "b", "c", "##a", "##b", "##c", "ab", "##ab", "ca", "cab", "zz"]
    pieces = select_pieces(vocabulary, ["ab"] * 5 + ["cab"] * 2 + ["ca"], 8, english=["zz"])
    # the characters a, b, c and their ## forms (6), then by frequency: "ab" (5), "cab" (2); budget full
    assert pieces == ["a", "b", "c", "##a", "##b", "##c", "ab", "cab"]
    assert select_pieces(vocabulary, ["ab"], 100, english=["zz", "ca"]) == ["a", "b", "##a", "##b", "ab", "ca", "zz"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from tests.tiny_bert import make_tiny_base

    return make_tiny_base(tmp_path_factory.mktemp("tiny") / "base")


def test_a_model_trained_with_word_pieces_ships_version_4_and_answers_as_trained(tiny_base, small_data):
    """Version 4, the pieces last in the vocabulary, what the budget leaves for the n-grams; runtime_py's
    accuracy on the shipped file is the builder's, and piece rows carry weight (the block was used)."""
    options = BowOptions.robust(c_grid=(10.0,), max_iter=40, max_weights=12 * 1500, word_pieces=str(tiny_base), max_pieces=500)
    result = train_bow(read_splits(small_data), options, log=lambda _: None, progress=False)
    model_json = json.loads(json.dumps(result.model))
    assert model_json["format_version"] == 4 and model_json["features"]["word_pieces"] is True
    vocab = model_json["vocab"]
    pieces = [f for f in vocab if f.startswith("~")]
    # each piece weight counts twice against the budget: 12 x 1,500 - 2 x 500 x 12 leaves 500 n-gram rows
    assert len(pieces) == 500 and vocab[-500:] == pieces and len(vocab) - 500 == 500
    assert result.model["training"]["pieces"] == 500
    model = BowModel.from_json(model_json)
    test = read_splits(small_data)["test"]
    hits = [model.labels[int(np.argmax(model.logits(r.text)))] == r.intent for r in test]
    assert np.mean(hits) == pytest.approx(result.metrics["test"]["accuracy"])
    assert max(max(map(abs, model.rows[i])) for i in range(len(vocab) - 500, len(vocab))) > 0


def test_the_shipped_rows_answer_as_the_fitted_model_after_pruning(tiny_base, small_data):
    """The fold: float32 rows shipped as ``vector(piece) @ B`` give the fitted model's validation
    accuracy (on the features the runtimes compute), also after the n-grams were pruned and refitted."""
    logs: list[str] = []
    options = BowOptions.robust(c_grid=(10.0,), max_iter=40, max_weights=12 * 1200, word_pieces=str(tiny_base), max_pieces=400,
                                quantize=False)
    result = train_bow(read_splits(small_data), options, log=logs.append, progress=False)
    fitted = next(line for line in logs if line.startswith("kept the 400 features of largest weight"))
    assert fitted.endswith(f"val accuracy {result.metrics['val']['accuracy']:.4f}")


def test_the_command_line_turns_word_pieces_on_and_off():
    from builder.arguments import parse_args
    from builder.options import from_args
    from builder.pipeline.build import BuildOptions

    assert from_args(BuildOptions, parse_args(["build"])).word_pieces is True
    assert from_args(BuildOptions, parse_args(["build", "--no-word-pieces"])).word_pieces is False
    args = parse_args(["train-bow", "--data", "d", "--out", "o", "--robust", "--word-pieces", "minilm-l6", "--max-pieces", "300"])
    options = from_args(BowOptions, args)
    assert (options.word_pieces, options.max_pieces, options.pieces_weight) == ("minilm-l6", 300, 2.0)
    assert from_args(BowOptions, parse_args(["train-bow", "--data", "d", "--out", "o"])).word_pieces is None
