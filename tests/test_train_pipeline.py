"""`builder train` end to end on a tiny random BERT: fine-tune a few steps, export, validate,
quantize, calibrate, bundle in the Hugging Face layout, load with the router, classify."""

from __future__ import annotations

import json
import shutil

import pytest

from builder.pipeline.transformer_tier import TransformerBuildOptions, train_transformer_into_bundle
from builder.train.fine_tune import TransformerOptions
from runtime_py import Router, read_manifest
from runtime_py.transformer import load_transformer_tier
from runtime_py.wordpiece import WordPieceTokenizer
from tiny_bert import make_tiny_base


@pytest.fixture(scope="module")
def two_tier_bundle(tmp_path_factory, small_bundle, small_data):
    root = tmp_path_factory.mktemp("train")
    base = make_tiny_base(root / "base")
    bundle = root / "bundle"
    shutil.copytree(small_bundle, bundle)
    options = TransformerBuildOptions(training=TransformerOptions(base=str(base), epochs=1, max_steps=12, batch_size=16))
    summary = train_transformer_into_bundle(small_data, bundle, options, log=lambda _: None, progress=False)
    return bundle, summary


def test_bundle_has_both_tiers_in_the_hugging_face_layout(two_tier_bundle):
    bundle, summary = two_tier_bundle
    manifest = read_manifest(bundle)
    assert [t.name for t in manifest.tiers] == ["bow", "transformer"]
    tier = manifest.tiers[1]
    assert {"model", "model_fp32", "tokenizer", "tokenizer_config", "vocab", "config"} <= set(tier.files)
    assert tier.files["model"].path == "onnx/model_quantized.onnx"
    assert tier.files["model_fp32"].path == "onnx/model.onnx"
    config = json.loads((bundle / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(manifest.labels))] == manifest.labels
    assert not list((bundle / "onnx").glob("*.data")), "browsers cannot load external ONNX data"
    assert summary["export_max_abs_diff"] <= 1e-4
    assert tier.extra["variants"]["model"]["precision"] == "int8"
    assert "onnxruntime-web/wasm" in tier.extra["variants"]["model"]["runtimes"]


def test_position_embeddings_stop_at_the_tiers_max_length(two_tier_bundle):
    """Rows past max_length are never read (every runtime truncates there), so they are not shipped."""
    import onnx

    bundle, _ = two_tier_bundle
    assert json.loads((bundle / "config.json").read_text())["max_position_embeddings"] == 64
    for name in ("model.onnx", "model_quantized.onnx"):
        graph = onnx.load(str(bundle / "onnx" / name))
        table = next(i for i in graph.graph.initializer if i.name.startswith("encoder.embeddings.position_embeddings.weight") and i.dims)
        assert table.dims[0] == 64, name
    spec = next(t for t in read_manifest(bundle).tiers if t.kind == "transformer")
    probabilities = load_transformer_tier(bundle, spec, True).probabilities(" ".join(["what is my balance"] * 60))  # 240 tokens
    assert len(probabilities) == len(read_manifest(bundle).labels) and abs(sum(probabilities) - 1) < 1e-5


def test_calibration_and_threshold_come_from_validation(two_tier_bundle):
    bundle, _ = two_tier_bundle
    tier = read_manifest(bundle).tiers[1]
    assert tier.extra["temperature"] > 0
    assert 0.5 <= tier.threshold <= 0.95
    assert tier.extra["calibration"]["variant"] == "model" and tier.extra["max_length"] == 64
    assert set(tier.extra["metrics"]) >= {"model", "model_fp32"}


def test_shipped_tokenizer_matches_the_reference_and_has_no_fixed_padding(two_tier_bundle):
    tokenizers = pytest.importorskip("tokenizers")
    bundle, _ = two_tier_bundle
    data = json.loads((bundle / "tokenizer.json").read_text())
    assert data.get("padding") is None
    reference = tokenizers.Tokenizer.from_file(str(bundle / "tokenizer.json"))
    ours = WordPieceTokenizer.from_tokenizer_json(bundle / "tokenizer.json")
    for text in ["How many shares of AAPL do I own?", "café déjà vu 🍕", "x" * 200]:
        assert ours.encode(text, max_length=64).ids == reference.encode(text).ids


def test_router_runs_the_cascade_through_both_tiers(two_tier_bundle):
    bundle, _ = two_tier_bundle
    status = Router.from_bundle(bundle, strict=True).status()
    assert [t["available"] for t in status["tiers"]] == [True, True]
    unsure_bow = Router.from_bundle(bundle, handoff_threshold=1.0, force=True)
    result = unsure_bow.classify("how many shares of TSLA do I have")
    assert [r.tier for r in result.tiers] == ["bow", "transformer"]
    assert result.tier == "transformer" and result.intent in status["labels"]


def test_requantize_rebuilds_the_int8_graph_and_its_calibration_without_training(two_tier_bundle, small_data, tmp_path):
    """`builder requantize`: an old bundle's fp32 graph quantized as train does today; records kept, files re-hashed."""
    from builder.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(two_tier_bundle[0], bundle)
    before = read_manifest(bundle).tiers[1]
    assert main(["requantize", "--bundle", str(bundle), "--data", str(small_data), "--no-int8-outliers", "--target-precision", "0.9"]) == 0
    after = read_manifest(bundle).tiers[1]
    assert after.extra["training"] == before.extra["training"] and after.extra["calibration"]["target_precision"] == 0.9
    assert "activation_outliers" not in after.extra["variants"]["model"]
    assert after.files["model_fp32"].sha256 == before.files["model_fp32"].sha256  # the float graph is the source, untouched
    assert after.extra["temperature"] > 0 and set(after.extra["metrics"]) >= {"model", "model_fp32"}
    assert read_manifest(bundle).tiers[0].extra["calibration"]["handoff"]["fitted_on"] == "val"  # the cascade refitted
    assert main(["requantize", "--bundle", str(bundle), "--data", str(small_data)]) == 0
    assert read_manifest(bundle).tiers[1].extra["variants"]["model"]["activation_outliers"]["calibration_texts"] == 256
    assert [t["available"] for t in Router.from_bundle(bundle, strict=True).status()["tiers"]] == [True, True]  # hashes checked
    result = Router.from_bundle(bundle, handoff_threshold=1.0, force=True).classify("how many shares of TSLA do I have")
    assert result.tier == "transformer" and result.tiers[1].error is None


def test_requantize_says_what_is_missing(small_bundle, small_data, tmp_path):
    from builder.errors import BuildError
    from builder.pipeline.transformer_tier import requantize_bundle

    options = TransformerBuildOptions(training=TransformerOptions())
    with pytest.raises(BuildError, match="no transformer tier"):
        requantize_bundle(small_bundle, small_data, options, log=lambda _: None)


def test_prune_shrinks_the_vocabulary_end_to_end(tmp_path, small_data):
    """`train --prune`: the English coverage check runs on its default sentences."""
    base = make_tiny_base(tmp_path / "base")
    options = TransformerBuildOptions(training=TransformerOptions(base=str(base), epochs=1, max_steps=4, batch_size=16), prune=True)
    train_transformer_into_bundle(small_data, tmp_path / "bundle", options, log=lambda _: None, progress=False)
    tier = read_manifest(tmp_path / "bundle").tiers[0]
    pruning = tier.extra["pruning"]
    assert pruning["vocab_after"] < pruning["vocab_before"] == 30522 and pruning["check_sentences"] > 100
    router = Router.from_bundle(tmp_path / "bundle", strict=True)
    tokenizer = WordPieceTokenizer.from_tokenizer_json(tmp_path / "bundle" / "tokenizer.json")
    assert tokenizer.vocab_size == pruning["vocab_after"]
    result = router.classify("how many shares of AAPL do I own")
    assert result.tiers[0].error is None and len(result.ranking) == len(router.manifest.labels)


def test_a_small_tier_end_to_end(tmp_path, small_data):
    """`train --int8-scheme u8s4 --vocab-size N`: a pruned vocabulary, 4-bit weights proven safe,
    recorded in the manifest, and a bundle that routes."""
    base = make_tiny_base(tmp_path / "base")
    training = TransformerOptions(base=str(base), epochs=1, max_steps=4, batch_size=16)
    options = TransformerBuildOptions(training=training, int8_scheme="u8s4", vocab_size=2500)
    train_transformer_into_bundle(small_data, tmp_path / "bundle", options, log=lambda _: None, progress=False)
    tier = read_manifest(tmp_path / "bundle").tiers[0]
    assert tier.extra["pruning"]["vocab_after"] == 2500
    model = tier.extra["variants"]["model"]
    assert model["int8_scheme"] == "u8s4" and model["max_pair_sum"] <= 255 * 16
    router = Router.from_bundle(tmp_path / "bundle", strict=True)
    assert router.classify("how many shares of AAPL do I own").tiers[0].error is None


def test_layer_decay_gives_each_encoder_layer_its_own_learning_rate():
    from transformers import BertConfig, BertModel

    from builder.train.fine_tune import encoder_param_groups

    encoder = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=3, num_attention_heads=2, intermediate_size=16))
    groups = encoder_param_groups(encoder, lr=1.0, weight_decay=0.01, layer_decay=0.5)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(encoder.named_parameters())
    assert len(lr_of) == len(named)  # every parameter in exactly one group
    assert lr_of[id(named["encoder.layer.2.attention.self.query.weight"])] == (1.0, 0.01)
    assert lr_of[id(named["encoder.layer.1.output.dense.weight"])] == (0.5, 0.01)
    assert lr_of[id(named["encoder.layer.0.output.LayerNorm.weight"])] == (0.25, 0.0)
    assert lr_of[id(named["embeddings.word_embeddings.weight"])] == (0.125, 0.01)
    assert lr_of[id(named["pooler.dense.bias"])] == (1.0, 0.0)
    flat = encoder_param_groups(encoder, lr=2e-4, weight_decay=0.01)
    assert {g["lr"] for g in flat} == {2e-4}
