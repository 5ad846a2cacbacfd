"""The WebGL variant (builder/export/webgl_graph.py) on a tiny random BERT: ops, inputs, logits, manifest, refusal."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from builder.bundle.writer import open_bundle
from builder.errors import BuildError
from builder.export import webgl_graph as wg
from builder.export.onnx_export import export_onnx, onnx_session
from builder.serve.web_assets import bundle_paths
from builder.train.transformer_model import SequenceClassifier, load_encoder
from runtime_py import Router
from runtime_py.bundle import read_manifest
from runtime_py.transformer import load_transformer_tier
from runtime_py.wordpiece import WordPieceTokenizer
from tiny_bert import make_tiny_base

LABELS = ["balance", "quote", "trade", "transfer"]
MAX_LENGTH = 64
TEXTS = [
    "what is my cash balance",
    "how is AAPL doing this year?",
    "Show me the last 5 trades in my brokerage account, please!",
    "café déjà vu 🍕 ﬁnance",
    "x",
    "",
    " ".join(["transfer fifty dollars to savings"] * 3),  # 17-32 tokens
    " ".join(["transfer fifty dollars to savings"] * 20),  # > 64 tokens: cut
]
FORBIDDEN = {"Pow", "Erf", "LayerNormalization", "Where", "Expand", "ConstantOfShape", "Range", "Shape", "ReduceSum", "Constant", "Slice", "Concat"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny classifier exported to fp32 ONNX, its tokenizer and config."""
    root = tmp_path_factory.mktemp("webgl")
    base = make_tiny_base(root / "base")
    torch.manual_seed(3)
    model = SequenceClassifier(load_encoder(base), LABELS).eval()
    with torch.no_grad():  # a clearly non-uniform head
        torch.nn.init.normal_(model.head.weight, std=0.5)
        torch.nn.init.normal_(model.head.bias, std=0.5)
    fp32 = export_onnx(model, root / "model.onnx")
    return {"base": base, "fp32": fp32, "tokenizer": WordPieceTokenizer.from_tokenizer_json(base / "tokenizer.json")}


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory) -> Path:
    """A bundle with a transformer tier only: model_fp32 (onnx/model.onnx) and model (a copy)."""
    out = tmp_path_factory.mktemp("wbundle") / "tiny"
    config = json.loads((tiny["base"] / "config.json").read_text())
    config["id2label"] = {str(i): label for i, label in enumerate(LABELS)}
    with open_bundle(out) as draft:
        draft.write_bytes("onnx/model.onnx", tiny["fp32"].read_bytes())
        draft.write_bytes("onnx/model_quantized.onnx", tiny["fp32"].read_bytes())
        draft.write_bytes("tokenizer.json", (tiny["base"] / "tokenizer.json").read_bytes())
        draft.write_json("config.json", config, indent=2)
        draft.set_tier(
            "transformer",
            "transformer",
            {"model_fp32": "onnx/model.onnx", "model": "onnx/model_quantized.onnx", "tokenizer": "tokenizer.json", "config": "config.json"},
            LABELS,
            temperature=1.2,
            threshold=0.5,
            max_length=MAX_LENGTH,
            variants={"model_fp32": {"precision": "fp32"}, "model": {"precision": "fp32"}},
        )
    return out


def fp32_logits(tiny, ids: list[int]) -> np.ndarray:
    sess = onnx_session(tiny["fp32"])
    feeds = {"input_ids": np.asarray([ids]), "attention_mask": np.ones((1, len(ids)), dtype=np.int64), "token_type_ids": np.zeros((1, len(ids)), dtype=np.int64)}
    return sess.run(["logits"], feeds)[0][0]


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_graph_uses_webgl_ops_and_fixed_int32_inputs(tiny):
    model = wg.webgl_graph(tiny["fp32"], 16)
    ops = set(wg.graph_ops(model))
    assert ops <= wg.WEBGL_OPS, ops - wg.WEBGL_OPS
    assert not ops & FORBIDDEN
    assert {"ReduceMean", "Sqrt", "Exp", "Abs"} <= ops  # LayerNorm and the Erf polynomial are there
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert set(inputs) == {"input_ids", "attention_mask"}  # token_type_ids is a constant inside
    for t in inputs.values():
        assert t.elem_type == TensorProto.INT32
        assert [d.dim_value for d in t.shape.dim] == [1, 16] and not any(d.dim_param for d in t.shape.dim)
    out = model.graph.output[0].type.tensor_type
    assert out.elem_type == TensorProto.FLOAT and [d.dim_value for d in out.shape.dim] == [1, len(LABELS)]
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert not [i for i in model.graph.initializer if i.data_type == TensorProto.FLOAT and i.dims == [] and onnx.numpy_helper.to_array(i) < -1e30]
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("length", [8, 16, 32, 64])
def test_padded_logits_match_fp32(tiny, tmp_path, length):
    path = tmp_path / "g.onnx"
    onnx.save(wg.webgl_graph(tiny["fp32"], length), str(path))
    sess = onnx_session(path)
    pad = tiny["tokenizer"].token_to_id("[PAD]")
    for text in TEXTS:
        ids = tiny["tokenizer"].encode(text, max_length=length).ids
        got = sess.run(None, wg.padded_feeds(ids, length, pad))[0][0]
        np.testing.assert_allclose(got, fp32_logits(tiny, ids), atol=1e-4, rtol=0)


def test_pow_is_replaced_and_odd_exponents_refused(tmp_path):
    """A synthetic graph with Pow(x, 3) (tanh-GELU style) and ReduceSum: Mul and ReduceMean * n."""

    def graph(exponent: float):
        emb = onnx.numpy_helper.from_array(np.linspace(-2, 2, 40, dtype=np.float32).reshape(10, 4), "emb")
        p = onnx.numpy_helper.from_array(np.asarray(exponent, dtype=np.float32), "p")
        axes = onnx.numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axes")
        nodes = [
            helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
            helper.make_node("Pow", ["e", "p"], ["e3"]),
            helper.make_node("Unsqueeze", ["attention_mask", "axes2"], ["m3"]),
            helper.make_node("Cast", ["m3"], ["mf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["e3", "mf"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axes"], ["logits"], keepdims=0),
        ]
        axes2 = onnx.numpy_helper.from_array(np.asarray([-1], dtype=np.int64), "axes2")
        g = helper.make_graph(
            nodes, "pow",
            [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]), helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 4])],
            [emb, p, axes, axes2],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    model = wg.webgl_graph(graph(3.0).SerializeToString(), 6)
    assert "Pow" not in wg.graph_ops(model) and "ReduceSum" not in wg.graph_ops(model)
    path = tmp_path / "pow.onnx"
    onnx.save(model, str(path))
    ids = [1, 7, 3, 9]
    got = onnx_session(path).run(None, wg.padded_feeds(ids, 6, 0))[0]
    e = np.linspace(-2, 2, 40, dtype=np.float32).reshape(10, 4)[ids]
    np.testing.assert_allclose(got[0], (e**3).sum(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(BuildError, match="exponent 1.7"):
        wg.webgl_graph(graph(1.7), 6)


def test_lengths_parsing_and_capping():
    assert wg.bucket_lengths((64, 16, 32, 128), 64) == (16, 32, 64)
    assert wg.bucket_lengths((16, 32, 64), 24) == (16, 24)
    assert wg.parse_lengths("16, 32,64") == (16, 32, 64)
    for bad in ("", "a,b", "1,16"):
        with pytest.raises(BuildError):
            wg.parse_lengths(bad)
    assert wg.pick_length(3, (16, 32)) == 16 and wg.pick_length(17, (16, 32)) == 32 and wg.pick_length(99, (16, 32)) == 32


def test_add_webgl_variant_records_roles_and_runs_everywhere(tiny, bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    before = read_manifest(b)
    report = wg.add_webgl_variant(b, TEXTS, (8, 16, 100), log=lambda m: None)
    assert report["lengths"] == [8, 16, 64] and report["argmax_disagreements"] == 0
    assert report["max_logit_diff"] < 1e-4 and report["texts"] == len(TEXTS) and report["truncated"] == 0
    manifest = read_manifest(b)  # parses, and every file is listed with size and sha256
    tier = next(t for t in manifest.tiers if t.kind == "transformer")
    for n in (8, 16, 64):
        role = f"model_webgl_{n}"
        assert tier.files[role].path == f"onnx/model_webgl_{n}.onnx"
        v = tier.extra["variants"][role]
        assert v["precision"] == "fp32" and v["backend"] == "webgl" and v["pad_length"] == n and v["input_type"] == "int32"
        assert set(v["ops"]) <= wg.WEBGL_OPS and v["runtimes"] == ["onnxruntime", "onnxruntime-web/webgl"]
        assert 0 <= v["max_logit_diff"] < 1e-4 and v["validated_on"] >= 1 and v["source"] == "model_fp32"
        assert f"onnx/model_webgl_{n}.onnx" in bundle_paths(manifest)  # served and shipped by site
    # The rest of the tier is as it was.
    assert tier.extra["variants"]["model"] == before.tiers[0].extra["variants"]["model"]
    assert tier.extra["temperature"] == 1.2 and tier.extra["max_length"] == MAX_LENGTH
    # runtime_py: "model" by default; a WebGL role runs with int32 padded inputs, texts cut at its length.
    router = Router.from_bundle(b)
    assert router.status()["tiers"][0]["variant"] == "model"
    spec = tier
    webgl16 = load_transformer_tier(b, spec, variant="model_webgl_16")
    assert webgl16.describe()["pad_length"] == 16 and webgl16.max_length == 16
    assert webgl16.describe()["inputs"] == ["input_ids", "attention_mask"]
    for text in TEXTS:
        ids = tiny["tokenizer"].encode(text, max_length=16).ids
        np.testing.assert_allclose(webgl16.logits(text), fp32_logits(tiny, ids), atol=1e-4, rtol=0)
    batch = webgl16.logits_batch(TEXTS[:3])
    np.testing.assert_allclose(batch, [webgl16.logits(t) for t in TEXTS[:3]], atol=1e-6)
    # Again with other lengths: the old WebGL files go.
    wg.add_webgl_variant(b, TEXTS[:3], (32,), log=lambda m: None)
    tier = next(t for t in read_manifest(b).tiers if t.kind == "transformer")
    assert [r for r in tier.files if r.startswith("model_webgl_")] == ["model_webgl_32"]
    assert sorted(p.name for p in (b / "onnx").iterdir()) == ["model.onnx", "model_quantized.onnx", "model_webgl_32.onnx"]


def test_failed_validation_leaves_the_bundle_unchanged(bundle, tmp_path, monkeypatch):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    before = snapshot(b)
    with pytest.raises(BuildError, match="disagree with fp32.*bundle is unchanged"):
        wg.add_webgl_variant(b, TEXTS, (16,), max_diff=1e-12, log=lambda m: None)
    assert snapshot(b) == before
    monkeypatch.setattr(wg, "AS_A", (0.9, -0.1, 0.2, 0.0, 0.0))  # a wrong Erf: logits move, argmaxes flip
    with pytest.raises(BuildError, match="disagree with fp32"):
        wg.add_webgl_variant(b, TEXTS * 3, (16,), log=lambda m: None)
    assert snapshot(b) == before
    assert sorted(p.name for p in b.parent.iterdir()) == ["b"]  # no staging folder left behind
    with pytest.raises(BuildError, match="validation texts"):
        wg.add_webgl_variant(b, [], (16,), log=lambda m: None)


def test_needs_an_fp32_graph(bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    manifest = json.loads((b / "manifest.json").read_text())
    tier = manifest["tiers"][0]
    del tier["files"]["model_fp32"]
    tier["variants"] = {"model": {"precision": "int8"}}
    (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BuildError, match="no fp32 graph"):
        wg.add_webgl_variant(b, TEXTS, (16,), log=lambda m: None)


def test_cli_webgl(bundle, tmp_path):
    from builder.cli import main

    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(json.dumps({"text": t, "intent": LABELS[i % 4]}) + "\n" for i, t in enumerate(TEXTS))
    (data / "train.jsonl").write_text(rows)
    (data / "val.jsonl").write_text(rows)
    assert main(["webgl", "--bundle", str(b), "--data", str(data), "--lengths", "16,32", "--max-texts", "5"]) == 0
    tier = read_manifest(b).tiers[0]
    assert {r for r in tier.files if r.startswith("model_webgl_")} == {"model_webgl_16", "model_webgl_32"}
    assert tier.extra["variants"]["model_webgl_16"]["validated_on"] + tier.extra["variants"]["model_webgl_32"]["validated_on"] >= 5
    assert main(["webgl", "--bundle", str(tmp_path / "nope"), "--data", str(data)]) == 2
