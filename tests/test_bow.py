"""The BoW tier: torch and runtime_py agree, features, calibration and metrics."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
import torch

from builder.data.datasets import Example, read_splits
from builder.train.bow import BowOptions, SparseLinear, train_bow
from builder.train.calibration import fit_temperature
from builder.train.metrics import classification_report, expected_calibration_error, softmax
from runtime_py import BowModel, FeatureConfig, FeatureExtractor, Vectorizer


def test_reference_features_are_tokens_and_bigrams():
    extractor = FeatureExtractor(FeatureConfig())
    assert extractor.features("What's my AAPL perf, YTD?") == [
        "what's", "my", "aapl", "perf", "ytd", "what's_my", "my_aapl", "aapl_perf", "perf_ytd",
    ]
    assert extractor.features("") == [] and extractor.features("!!! ...") == []


def test_char_ngrams_are_padded_per_token_and_prefixed():
    extractor = FeatureExtractor(FeatureConfig(ngram_max=1, char_ngrams=(2, 3)))
    assert extractor.features("Hi") == ["hi", "# h", "#hi", "#i ", "# hi", "#hi "]


def test_vectorizer_values_count_log_idf_and_l2():
    vocab = ["a", "b", "a_b"]
    assert Vectorizer(FeatureConfig(), vocab).transform("a b a") == ([0, 1, 2], [2.0, 1.0, 1.0])
    idx, val = Vectorizer(FeatureConfig(tf="log", norm="l2"), vocab, idf=[1.0, 2.0, 1.0]).transform("a b a")
    raw = [1 + math.log(2), 2.0, 1.0]
    assert idx == [0, 1, 2] and val == pytest.approx([v / math.sqrt(sum(x * x for x in raw)) for v in raw])
    assert Vectorizer(FeatureConfig(), vocab).transform("zzz") == ([], [])


@pytest.mark.parametrize(
    "options",
    [
        BowOptions(epochs=2),
        BowOptions(epochs=2, char_ngrams=(2, 4), tf="log", idf=True, norm="l2", max_char_vocab=3000, class_weights=True),
    ],
    ids=["reference", "tfidf-char"],
)
def test_runtime_logits_equal_torch_logits(small_data, options):
    splits = read_splits(small_data)
    result = train_bow(splits, options, log=lambda _: None, progress=False)
    model = BowModel.from_json(json.loads(json.dumps(result.model)))
    vectorizer = model.vectorizer
    torch_model = SparseLinear(len(vectorizer.vocab), len(model.labels))
    with torch.no_grad():
        torch_model.weight.weight.copy_(torch.tensor(model.rows))
        torch_model.bias.copy_(torch.tensor(result.model["bias"]))
    texts = [r.text for r in splits["test"][:300]] + ["", "zzz qqq", "AAPL", "perfomance of my portoflio!!"]
    worst = 0.0
    for text in texts:
        idx, val = vectorizer.transform(text)
        expected = torch_model(torch.tensor(idx, dtype=torch.long), torch.tensor([0]), torch.tensor(val, dtype=torch.float32))[0]
        worst = max(worst, float(np.abs(np.array(model.logits(text)) - expected.detach().numpy()).max()))
    assert worst < 1e-5
    assert result.model["training"]["learning_rate"] == options.learning_rate


def test_training_is_deterministic_for_a_seed(small_data):
    splits = read_splits(small_data)
    a = train_bow(splits, BowOptions(epochs=1), log=lambda _: None, progress=False)
    b = train_bow(splits, BowOptions(epochs=1), log=lambda _: None, progress=False)
    assert a.model["weights"] == b.model["weights"]


def test_class_weights_and_unknown_eval_intents():
    rows = [Example(f"alpha {i}", "a") for i in range(40)] + [Example(f"beta {i}", "b") for i in range(4)]
    splits = {"train": rows, "val": rows[:5] + rows[-2:], "test": [Example("alpha beta", "c")]}
    result = train_bow(splits, BowOptions(epochs=3, class_weights=True), log=lambda _: None, progress=False)
    assert result.metrics["test"]["unknown_intents"] == 1 and result.metrics["test"]["accuracy"] == 0.0


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 5)) * 3
    targets = np.array([rng.choice(5, p=p) for p in softmax(true_logits)])
    # A model twice as sharp as the truth needs T = 2 to be calibrated again.
    assert fit_temperature(true_logits * 2, targets) == pytest.approx(2.0, rel=0.08)
    assert fit_temperature(true_logits * 0.5, targets) == pytest.approx(0.5, rel=0.08)


def test_temperature_is_not_fitted_on_error_free_data():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(logits, np.array([0, 1])) == 1.0


def test_ece_of_a_known_case():
    # Two bins: confidence 0.9 and right half the time (gap 0.4), confidence 0.6 and always right (gap 0.4).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    targets = np.array([0, 1, 0, 0])
    assert expected_calibration_error(probs, targets) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_classification_report_per_intent_and_confusions():
    report = classification_report(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert report["accuracy"] == 0.75
    assert report["per_intent"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert report["confusions"] == [{"true": "c", "predicted": "b", "count": 1}]
    assert report["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_packed_float32_round_trips_exactly():
    from runtime_py.bow import pack_float32, unpack_floats

    values = [0.1, -2.5, 1e-8, 3.4e38, 0.0, 7.0]
    packed = pack_float32(values, (2, 3))
    assert packed["dtype"] == "float32" and packed["shape"] == [2, 3]
    assert unpack_floats(packed, (2, 3), "w") == np.array(values, dtype=np.float32).astype(np.float64).tolist()
    with pytest.raises(ValueError, match="5 values for shape"):
        pack_float32(values[:5], (2, 3))


def test_version_1_lists_load_as_the_same_model(small_bundle):
    """Bundles written before packed arrays (format_version 1) still load, with the same logits."""
    from runtime_py.bow import unpack_floats

    data = json.loads((small_bundle / "bow.json").read_text())
    assert data["format_version"] == 3 and data["weights"]["dtype"] == "float32"
    n, v = len(data["labels"]), len(data["vocab"])
    flat = unpack_floats(data["weights"], (v, n), "weights")
    old = {**data, "format_version": 1, "weights": [flat[i : i + n] for i in range(0, len(flat), n)]}
    if data.get("idf"):
        old["idf"] = unpack_floats(data["idf"], (v,), "idf")
    packed, lists = BowModel.from_json(data), BowModel.from_json(json.loads(json.dumps(old)))
    for text in ["how is AAPL doing", "move 200 dollars to my ira", "", "zzz qqq!!"]:
        assert packed.logits(text) == lists.logits(text)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: {**w, "dtype": "float16"}, "weights: dtype 'float16' is not supported"),
        (lambda w: {**w, "shape": [1, 2]}, r"weights: shape \[1, 2\] does not match"),
        (lambda w: {**w, "base64": "not base64!"}, "weights: invalid base64"),
        (lambda w: {**w, "base64": w["base64"][:8]}, "weights: 6 bytes for shape"),
        (lambda w: {**w, "base64": base64.b64encode(np.full(math.prod(w["shape"]), np.nan, "<f4").tobytes()).decode()},
         "weights: every value must be a finite number"),
    ],
)
def test_bad_packed_weights_name_the_problem(small_bundle, change, message):
    from runtime_py.errors import BundleError

    data = json.loads((small_bundle / "bow.json").read_text())
    data["weights"] = change(data["weights"])
    with pytest.raises(BundleError, match=message):
        BowModel.from_json(data)


def test_token_l2_normalises_the_word_and_character_blocks_by_their_groups():
    """token_l2: a group per token (unigram, character n-grams) and one for longer word n-grams;
    each block is divided by sqrt(sum of its groups' squared norms)."""
    config = FeatureConfig(char_ngrams=(2, 2), norm="token_l2")
    vocab = ["a", "b", "a_b", "# a", "#a ", "# b"]
    idf = [1.0, 2.0, 3.0, 1.0, 1.0, 4.0]
    idx, val = Vectorizer(config, vocab, idf).transform("a b a")
    words = {0: 2 * 1.0, 1: 2.0, 2: 3.0}  # "a" twice (a group each), "b", then the bigram "a_b" (once: "b_a" is unknown)
    qw = 1.0 + 4.0 + 1.0 + 9.0  # per-group squared norms: a, b, a, {a_b}
    chars = {3: 2 * 1.0, 4: 2 * 1.0, 5: 4.0}
    qc = 2.0 + 16.0 + 2.0  # groups: "a" -> {# a, #a }, "b" -> {# b} (b  unknown), "a"
    want = {i: v / math.sqrt(qw) for i, v in words.items()} | {i: v / math.sqrt(qc) for i, v in chars.items()}
    assert dict(zip(idx, val)) == pytest.approx(want)
    assert Vectorizer(config, vocab, idf).transform("zzz") == ([], [])


def test_int8_rows_quantize_within_half_a_step_and_load_exactly():
    from runtime_py.bow import pack_int8, pack_float32, quantize_rows

    rng = np.random.default_rng(3)
    rows = rng.normal(size=(5, 4)).tolist() + [[0.0, 0.0, 0.0, 0.0]]
    ints, scales = quantize_rows(rows)
    assert max(map(abs, ints)) == 127 and all(-127 <= q <= 127 for q in ints)
    for r, row in enumerate(rows):
        for c, w in enumerate(row):
            assert abs(ints[r * 4 + c] * scales[r] - w) <= scales[r] / 2 + 1e-12
    data = {"format": "bow", "format_version": 3, "labels": list("abcd"), "features": {}, "vocab": [f"w{i}" for i in range(6)],
            "weights": pack_int8(ints, (6, 4)), "scales": pack_float32(scales, (6,)), "bias": [0.0] * 4}
    model = BowModel.from_json(json.loads(json.dumps(data)))
    assert model.logits("w1 w5") == [ints[4 + c] * scales[1] for c in range(4)]


@pytest.fixture(scope="module")
def lbfgs_result(small_data):
    return train_bow(read_splits(small_data), BowOptions.robust(c_grid=(10.0,), max_iter=40, max_weights=12 * 1500), log=lambda _: None, progress=False)


def test_lbfgs_recipe_ships_int8_weights_that_runtime_py_reads_as_trained(lbfgs_result, small_data):
    """The default recipe: version 3, int8 rows, the feature budget kept; the shipped model's
    accuracy (runtime_py) is the one the builder reported, and a cached token answers as a new one."""
    model_json = json.loads(json.dumps(lbfgs_result.model))
    assert model_json["format_version"] == 3 and model_json["weights"]["dtype"] == "int8"
    assert len(model_json["vocab"]) == 1500 and model_json["features"]["norm"] == "token_l2"
    model = BowModel.from_json(model_json)
    test = read_splits(small_data)["test"]
    hits = [model.labels[int(np.argmax(model.logits(r.text)))] == r.intent for r in test]
    assert np.mean(hits) == pytest.approx(lbfgs_result.metrics["test"]["accuracy"])
    fresh = BowModel.from_json(model_json)
    for r in test[:30]:
        assert fresh.logits(r.text) == model.logits(r.text)  # model's cache is warm, fresh's is not
        idx, val = model.vectorizer.transform(r.text)
        dense = [b + sum(model.rows[i][c] * v for i, v in zip(idx, val)) for c, b in enumerate(model.bias)]
        assert model.logits(r.text) == pytest.approx(dense, abs=1e-12)


def test_token_l2_logits_match_the_sparse_vector_with_repeated_grams_and_full_caches(lbfgs_result, monkeypatch):
    """The cached path (tokens and word n-grams by string) equals the product of transform()'s
    sparse vector, for texts that repeat an n-gram and while the caches fill and clear."""
    import runtime_py.bow as bow_module

    monkeypatch.setattr(bow_module, "TOKEN_CACHE_SIZE", 3)
    model = BowModel.from_json(json.loads(json.dumps(lbfgs_result.model)))
    texts = ["how many shares how many shares of AAPL", "how many shares of AAPL", "buy buy buy", "the the the the the",
             "sell my TSLA now", "how many shares how many shares of AAPL"]
    for text in texts * 2:
        idx, val = model.vectorizer.transform(text)
        dense = [b + sum(model.rows[i][c] * v for i, v in zip(idx, val)) for c, b in enumerate(model.bias)]
        assert model.logits(text) == pytest.approx(dense, abs=1e-12)
        assert len(model._tokens) <= 3 and len(model._grams) <= 3
