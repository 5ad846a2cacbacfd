"""Outlier activation channels kept in float before dynamic int8 (builder/export/activation_outliers.py):
the rewrite is exact in fp32, finds planted outliers, and brings int8 closer to fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from builder.export.activation_outliers import (
    OutlierRecipe,
    calibration_feeds,
    channel_ranges,
    outlier_channels,
    smoothing_factors,
    split_outliers,
    write_split,
)
from builder.export.int8_safety import emulated_cpu_logits, exact_logits, pair_sum_bounds, qemu
from builder.export.onnx_export import export_onnx, onnx_session
from builder.export.optimize import build_variants, onnx_op_types, quantize_int8
from builder.train.transformer_model import SequenceClassifier, load_encoder
from runtime_py.wordpiece import WordPieceTokenizer
from tests.tiny_bert import SAMPLE_TEXTS, make_tiny_base

PLANTED = 5  # the channel made 40x larger after the attention block's LayerNorm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model's fp32 graph with an outlier channel planted in every attention-output LayerNorm,
    its calibration inputs (SAMPLE_TEXTS) and held-out inputs (other texts)."""
    root = tmp_path_factory.mktemp("outliers")
    base = make_tiny_base(root / "base")
    torch.manual_seed(3)
    model = SequenceClassifier(load_encoder(base), ["balance", "transfer", "card"]).eval()
    for layer in model.encoder.encoder.layer:
        with torch.no_grad():
            layer.attention.output.LayerNorm.weight[PLANTED] *= 40.0
            layer.attention.output.LayerNorm.bias[PLANTED] += 2.0
    fp32 = export_onnx(model, root / "fp32.onnx")
    tok = WordPieceTokenizer.from_tokenizer_json(base / "tokenizer.json")
    encode = lambda text: tok.encode_batch([text])._asdict()  # noqa: E731
    held_out = [f"{a} {b}" for a in ("send", "check my", "lost", "where is the") for b in ("money", "card please", "balance now", "atm")]
    return root, fp32, calibration_feeds(encode, SAMPLE_TEXTS), calibration_feeds(encode, held_out)


def _logits(path, feeds) -> np.ndarray:
    session = onnx_session(path)
    names = {i.name for i in session.get_inputs()}
    return np.concatenate([session.run(None, {k: v for k, v in f.items() if k in names})[0] for f in feeds])


def test_outlier_channels_follow_the_recipe():
    amax = np.array([1.0] * 10 + [7.0, 50.0, 9.0, 20.0, 6.5])
    assert outlier_channels(amax, OutlierRecipe(ratio=6.0, max_channels=4)) == [10, 11, 12, 13]
    assert outlier_channels(amax, OutlierRecipe(ratio=6.0, max_channels=2)) == [11, 13]  # the largest first
    assert outlier_channels(amax, OutlierRecipe(ratio=60.0)) == []
    assert outlier_channels(np.ones(8), OutlierRecipe()) == []


def test_smoothing_factors_balance_the_kept_channels_only():
    amax = np.array([1.0, 4.0, 16.0, 100.0])
    w = np.ones((4, 3))
    keep = np.array([True, True, True, False])
    s = smoothing_factors(amax, [w], keep, 0.5)
    assert s[3] == 1.0
    assert np.exp(np.log(s[:3]).mean()) == pytest.approx(1.0)
    assert (amax[2] / s[2]) / (amax[0] / s[0]) == pytest.approx(4.0)  # alpha 0.5: a range ratio of 16 becomes 4
    assert np.all(smoothing_factors(amax, [w], keep, 0.0) == 1.0)
    silent = smoothing_factors(np.array([0.0, 4.0, 4.0, 4.0]), [w], np.ones(4, bool), 0.5)
    assert silent[0] == pytest.approx(silent[1] * 0.1)  # floored at 1% of the median range: 1/s stays bounded


def test_the_rewrite_is_exact_in_float_and_finds_the_planted_channel(tiny, tmp_path):
    _, fp32, calibration, held_out = tiny
    ranges = channel_ranges(fp32, calibration)
    model = onnx.load(str(fp32))
    report = split_outliers(model, ranges, calibration_texts=len(calibration))
    split = tmp_path / "split.onnx"
    onnx.save(model, str(split))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    planted = [name for name, value in inits.items() if name.endswith("/outlier_channels") and PLANTED in value.tolist()]
    assert len(planted) == 2  # both layers' feed-forward inputs
    assert report.inputs >= 2 and report.channels >= 2 and report.calibration_texts == len(SAMPLE_TEXTS)
    assert len(report.float_matmuls) >= 2
    ref, got = _logits(fp32, held_out), _logits(split, held_out)
    assert np.max(np.abs(got - ref)) <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def _one_matmul(path, inputs: int = 64, outputs: int = 32) -> None:
    """A graph with one weight MatMul and its bias, x [1, tokens, inputs] -> y."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.2, (inputs, outputs)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(0, 0.1, outputs).astype(np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"], name="dense"), helper.make_node("Add", ["xw", "bias"], ["y"], name="bias_add")],
        "one_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, outputs])],
        [w, bias],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def _activations(seed: int, count: int, inputs: int = 64) -> list[dict[str, np.ndarray]]:
    """Inputs like a BERT LayerNorm's output: unit-scale channels and two 40-60x larger ones."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        x = rng.normal(0, 1, (1, 12, inputs)).astype(np.float32)
        x[..., 7] *= 60.0
        x[..., 30] = 40.0 + rng.normal(0, 1, 12)
        out.append({"x": x})
    return out


def test_int8_with_the_rewrite_is_closer_to_fp32(tmp_path):
    fp32 = tmp_path / "one.onnx"
    _one_matmul(fp32)
    report = write_split(fp32, tmp_path / "split.onnx", _activations(0, 16))
    assert report.channels == 2
    plain_int8 = quantize_int8(fp32, tmp_path / "plain.onnx")
    split_int8 = quantize_int8(tmp_path / "split.onnx", tmp_path / "split_int8.onnx", keep_float=report.float_matmuls)
    nodes = onnx.load(str(split_int8)).graph.node
    assert set(report.float_matmuls) <= {n.name for n in nodes if n.op_type == "MatMul"}  # left in float, as asked
    assert sum(n.op_type == "MatMulInteger" for n in nodes) == 1 and all(b.safe for b in pair_sum_bounds(split_int8))
    held_out = _activations(1, 8)
    ref = _logits(fp32, held_out)
    plain_err = np.abs(_logits(plain_int8, held_out) - ref).mean()
    split_err = np.abs(_logits(split_int8, held_out) - ref).mean()
    assert split_err < 0.2 * plain_err, (split_err, plain_err)
    assert np.abs(_logits(tmp_path / "split.onnx", held_out) - ref).max() <= 1e-4


def test_build_variants_records_the_rewrite(tiny, tmp_path):
    _, fp32, calibration, _ = tiny
    variants = {v.role: v for v in build_variants(fp32, tmp_path / "bundle", 4, 32, calibration=calibration)}
    entry = variants["model"].manifest_entry()
    assert entry["activation_outliers"] == {"ratio": 6.0, "max_channels": 4, "smoothing": 0.5, "smooth_all": True, "inputs": entry["activation_outliers"]["inputs"],
                                            "channels": entry["activation_outliers"]["channels"], "calibration_texts": len(SAMPLE_TEXTS)}
    assert entry["activation_outliers"]["channels"] >= 2
    assert "Gather" in onnx_op_types(tmp_path / "bundle" / variants["model"].path)
    assert "activation_outliers" not in variants["model_fp32"].manifest_entry()
    without = {v.role: v for v in build_variants(fp32, tmp_path / "plain", 4, 32)}
    assert "activation_outliers" not in without["model"].manifest_entry()


def test_four_bit_weights_keep_the_rewrite(tiny, tmp_path):
    _, fp32, calibration, held_out = tiny
    variants = {v.role: v for v in build_variants(fp32, tmp_path / "bundle", 4, 32, scheme="u8s4", calibration=calibration)}
    model = variants["model"]
    assert model.int8_scheme == "u8s4" and model.activation_outliers["channels"] >= 2
    path = tmp_path / "bundle" / model.path
    assert {"Gather", "MatMulInteger"} <= set(onnx_op_types(path))
    ref = _logits(fp32, held_out)
    plain = quantize_int8(fp32, tmp_path / "plain.onnx", scheme="u8s4")
    # the 4-bit weights are those of the rewritten graph (rows scaled, outlier rows zero), not the original's
    assert np.abs(_logits(path, held_out) - ref).mean() < 1.5 * np.abs(_logits(plain, held_out) - ref).mean()


def test_the_shipped_rewrite_computes_the_same_on_every_cpu(tiny, tmp_path):
    """Native onnxruntime, ONNX's exact reference and onnxruntime on an emulated AVX2-only CPU agree on the rewritten int8 graph."""
    _, fp32, calibration, held_out = tiny
    variants = {v.role: v for v in build_variants(fp32, tmp_path / "bundle", 4, 32, calibration=calibration)}
    path = tmp_path / "bundle" / variants["model"].path
    native = _logits(path, held_out)
    assert np.abs(exact_logits(path, held_out) - native).max() <= 1e-4
    if qemu() is None:
        pytest.skip("qemu-x86_64 not installed (make test installs it)")
    assert np.abs(emulated_cpu_logits(path, held_out) - native).max() <= 1e-4


def test_a_model_without_outliers_ships_unchanged(tmp_path):
    """Smoothing alone measured worse than no rewrite: without outlier channels the int8 graph is the plain one."""
    fp32 = tmp_path / "one.onnx"
    _one_matmul(fp32)
    calm = [{"x": np.random.default_rng(i).normal(0, 1, (1, 12, 64)).astype(np.float32)} for i in range(8)]
    graph = tmp_path / "bundle" / "onnx" / "model.onnx"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(fp32.read_bytes())
    variant = next(v for v in build_variants(graph, tmp_path / "bundle", 1, 64, calibration=calm) if v.role == "model")
    assert variant.activation_outliers == {"ratio": 6.0, "max_channels": 4, "smoothing": 0.5, "smooth_all": True, "inputs": 0, "channels": 0,
                                           "calibration_texts": 8}
    names = {t.name for t in onnx.load(str(tmp_path / "bundle" / variant.path)).graph.initializer}
    assert not any(n.endswith("/int8_mask") for n in names)


def test_a_weight_read_twice_is_left_alone(tmp_path):
    """Rescaling a shared weight's rows for one input would change the other reader's product."""
    from onnx import TensorProto, helper

    fp32 = tmp_path / "one.onnx"
    _one_matmul(fp32)
    model = onnx.load(str(fp32))
    model.graph.node.append(helper.make_node("MatMul", ["x", "w"], ["again"], name="again"))
    model.graph.output.append(helper.make_tensor_value_info("again", TensorProto.FLOAT, [1, None, 32]))
    report = split_outliers(model, {"x": np.array([1.0] * 63 + [80.0])})
    assert report.inputs == report.channels == 0 and [n.name for n in model.graph.node] == ["dense", "bias_add", "again"]
