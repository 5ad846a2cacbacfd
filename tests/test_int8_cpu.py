"""int8 graphs answer the same on every CPU: proven from the weights, checked against an exact
integer reference, and run by onnxruntime on an emulated AVX2-only CPU (no VNNI), whatever CPU
the tests themselves run on (builder/export/int8_safety.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from builder.errors import BuildError
from builder.export.int8_safety import (
    AVX2_CPU,
    INT16_MAX,
    cpu_flags,
    describe_cpu,
    emulated_cpu_logits,
    exact_logits,
    pair_sum_bounds,
    qemu,
    require_no_saturation,
)
from builder.export.onnx_export import export_onnx, run_onnx
from builder.export.optimize import DEFAULT_INT8_SCHEME, build_variants, describe_variant, quantize_int8
from builder.train.transformer_model import SequenceClassifier, load_encoder
from runtime_py.wordpiece import WordPieceTokenizer
from tests.tiny_bert import SAMPLE_TEXTS, make_tiny_base

TEXTS = SAMPLE_TEXTS[:6]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """The tiny model's fp32 export, the published variants and the graph in each int8 scheme."""
    root = tmp_path_factory.mktemp("int8")
    base = make_tiny_base(root / "base")
    torch.manual_seed(1)
    model = SequenceClassifier(load_encoder(base), ["balance", "transfer", "card"]).eval()
    fp32 = export_onnx(model, root / "fp32.onnx")
    tok = WordPieceTokenizer.from_tokenizer_json(base / "tokenizer.json")
    feeds = [{k: np.asarray(v, dtype=np.int64) for k, v in tok.encode_batch([t])._asdict().items()} for t in TEXTS]
    # as the builder ships them: calibrated, with activation outliers kept in float (activation_outliers)
    variants = {v.role: v for v in build_variants(fp32, root / "bundle", 4, 32, calibration=feeds)}
    assert variants["model"].activation_outliers is not None
    schemes = {name: quantize_int8(fp32, root / f"{name}.onnx", scheme=name) for name in ("u8s8", "u8s7", "u8u8", "u8s4")}
    return root, variants, schemes, feeds


def test_published_int8_graphs_are_proven_free_of_overflow(graphs):
    root, variants, _, _ = graphs
    int8 = [v for v in variants.values() if v.precision == "int8"]
    assert int8 and all(v.int8_scheme == DEFAULT_INT8_SCHEME for v in int8)
    for v in int8:
        bounds = pair_sum_bounds(root / "bundle" / v.path)
        assert bounds and all(b.safe for b in bounds)
        assert v.max_pair_sum == max(b.bound for b in bounds) <= INT16_MAX
        assert v.manifest_entry()["max_pair_sum"] == v.max_pair_sum
    assert "max_pair_sum" not in variants["model_fp32"].manifest_entry()


def test_the_proof_tells_the_schemes_apart(graphs):
    _, _, schemes, _ = graphs
    u8s8 = pair_sum_bounds(schemes["u8s8"])
    assert max(b.bound for b in u8s8) > INT16_MAX  # 8-bit weights: 255 x (127 + 127) is possible
    assert max(b.bound for b in pair_sum_bounds(schemes["u8s7"])) <= 255 * 128
    assert all(b.bound is None and b.weight_type == "uint8" for b in pair_sum_bounds(schemes["u8u8"]))
    u8s4 = pair_sum_bounds(schemes["u8s4"])  # the packed weights are read through their unpack ops
    assert u8s4 and all(b.weight_type == "int4" for b in u8s4) and max(b.bound for b in u8s4) <= 255 * 16
    with pytest.raises(BuildError, match="overflow int16 pair sums on x86 CPUs without VNNI"):
        require_no_saturation(schemes["u8s8"], schemes["u8s8"])
    with pytest.raises(BuildError, match="u8s8.onnx"):
        describe_variant("model", schemes["u8s8"], "int8", False, "u8s8")  # the build refuses to publish it


def test_onnxruntime_here_matches_the_exact_integer_reference(graphs):
    """On an AVX2-only machine an overflowing graph fails here; on a VNNI one, the emulated test below does."""
    root, variants, schemes, feeds = graphs
    for path in (root / "bundle" / variants["model"].path, root / "bundle" / variants["model_fp32"].path, schemes["u8u8"], schemes["u8s4"]):
        ours = np.concatenate([run_onnx(path, f) for f in feeds])
        assert np.max(np.abs(ours - exact_logits(path, feeds))) <= 1e-4, path.name


@pytest.mark.skipif(qemu() is None, reason="needs qemu-x86_64 (Debian qemu-user) on an x86-64 host; `make test` installs it")
def test_an_avx2_cpu_without_vnni_gives_the_same_logits(graphs):
    root, variants, schemes, feeds = graphs
    shipped = root / "bundle" / variants["model"].path
    for graph in (shipped, schemes["u8s4"]):
        assert np.max(np.abs(emulated_cpu_logits(graph, feeds) - exact_logits(graph, feeds))) <= 1e-4, graph.name
    # The emulated CPU does run the saturating kernel: the 8-bit graph comes out different there.
    u8s8 = schemes["u8s8"]
    assert np.max(np.abs(emulated_cpu_logits(u8s8, feeds, AVX2_CPU) - exact_logits(u8s8, feeds))) > 0.05


def test_emulation_errors_are_clear(graphs, tmp_path):
    if qemu() is None:
        pytest.skip("needs qemu-x86_64")
    _, _, _, feeds = graphs
    with pytest.raises(BuildError, match="qemu-x86_64 -cpu EPYC-Rome failed"):
        emulated_cpu_logits(tmp_path / "missing.onnx", feeds[:1])


def test_cpu_flags_name_the_int8_features():
    info = cpu_flags()
    assert {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "vnni", "model"} <= set(info)
    assert info["vnni"] == (info["avx512_vnni"] or info["avx_vnni"])
    line = describe_cpu({"model": "Some CPU", "avx2": True, "avx512f": False, "avx512_vnni": False, "avx_vnni": False, "vnni": False})
    assert line == "Some CPU (AVX2, no VNNI)"


def test_runtime_reports_whether_a_variant_is_cpu_independent(graphs):
    from runtime_py.transformer import cpu_independent

    _, variants, _, _ = graphs
    assert cpu_independent(variants["model"].manifest_entry()) is True
    assert cpu_independent(variants["model_fp32"].manifest_entry()) is True
    assert cpu_independent({"precision": "int8", "max_pair_sum": None}) is True  # uint8 weights
    assert cpu_independent({"precision": "int8"}) is False  # a bundle from before the proof
    assert cpu_independent({"precision": "int8", "max_pair_sum": 64770}) is False
    assert cpu_independent({"precision": "int8", "max_pair_sum": True}) is False
    assert cpu_independent(None) is None and cpu_independent({"precision": "fp16"}) is None
