"""The transformer tier on a real (tiny, random) ONNX classifier: parity with torch, routing, failures."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from builder.bundle.writer import open_bundle
from builder.export.onnx_export import export_onnx
from builder.train.transformer_model import SequenceClassifier, load_encoder
from runtime_py import Router
from runtime_py.bundle import read_manifest
from runtime_py.calibration import softmax
from runtime_py.errors import BundleError
from runtime_py.transformer import TransformerTier, load_transformer_tier
from runtime_py.wordpiece import WordPieceTokenizer
from tiny_bert import make_tiny_base

ROOT = Path(__file__).resolve().parent.parent
TEMPERATURE = 1.3
MAX_LENGTH = 64
TEXTS = [
    "what is my cash balance",
    "how is AAPL doing this year?",
    "Show me the last 5 trades in my brokerage account, please!",
    "café déjà vu 🍕 ﬁnance",
    "x",
    " ".join(["transfer fifty dollars to savings"] * 20),  # > 64 tokens: truncated
]


def _drop_token_type_ids(path: Path) -> None:
    """Rewrite an exported graph so it has no token_type_ids input (zeros computed inside)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    kept = [i for i in graph.input if i.name != "token_type_ids"]
    del graph.input[:]
    graph.input.extend(kept)
    zero = helper.make_tensor("zero", TensorProto.INT64, [1], [0])
    nodes = [
        helper.make_node("Shape", ["input_ids"], ["input_shape"]),
        helper.make_node("ConstantOfShape", ["input_shape"], ["token_type_ids"], value=zero),
    ]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def models(tmp_path_factory, small_bundle):
    """Two classifiers on one tiny encoder: `main` (the bundle's default) and `alt` (another head)."""
    base = make_tiny_base(tmp_path_factory.mktemp("tiny_base"))
    labels = read_manifest(small_bundle).labels
    encoder = load_encoder(base)
    torch.manual_seed(1)
    main = SequenceClassifier(encoder, labels).eval()
    alt = SequenceClassifier(encoder, labels).eval()
    with torch.no_grad():  # a random but clearly non-uniform head
        for model in (main, alt):
            torch.nn.init.normal_(model.head.weight, std=0.5)
            torch.nn.init.normal_(model.head.bias, std=0.5)
    return {"base": base, "labels": labels, "main": main, "alt": alt}


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, small_bundle, models) -> Path:
    """The small BoW bundle plus a transformer tier with two model variants."""
    out = tmp_path_factory.mktemp("tbundle") / "finance"
    shutil.copytree(small_bundle, out)
    config = json.loads((models["base"] / "config.json").read_text())
    config["id2label"] = {str(i): label for i, label in enumerate(models["labels"])}
    config["label2id"] = {label: i for i, label in enumerate(models["labels"])}
    with open_bundle(out) as draft:
        export_onnx(models["main"], draft.root / "onnx/model.onnx")
        _drop_token_type_ids(export_onnx(models["alt"], draft.root / "onnx/model_alt.onnx"))
        draft.write_bytes("tokenizer.json", (models["base"] / "tokenizer.json").read_bytes())
        draft.write_json("config.json", config, indent=2)
        draft.set_tier(
            "transformer",
            "transformer",
            {"model": "onnx/model.onnx", "model_alt": "onnx/model_alt.onnx", "tokenizer": "tokenizer.json", "config": "config.json"},
            models["labels"],
            temperature=TEMPERATURE,
            threshold=0.55,
            max_length=MAX_LENGTH,
            variants={"model": {"precision": "fp32"}, "model_alt": {"precision": "fp32"}},
        )
    return out


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("INTENT_ONNX_VARIANT", "INTENT_ORT_THREADS"):
        monkeypatch.delenv(name, raising=False)


def torch_logits(model: SequenceClassifier, tokenizer: WordPieceTokenizer, text: str) -> list[float]:
    enc = tokenizer.encode(text, max_length=MAX_LENGTH)
    with torch.no_grad():
        out = model(torch.tensor([enc.ids]), torch.tensor([enc.attention_mask]), torch.tensor([enc.token_type_ids]))
    return out[0].tolist()


def load(bundle_dir: Path, **options) -> TransformerTier:
    spec = next(s for s in read_manifest(bundle_dir).tiers if s.kind == "transformer")
    return load_transformer_tier(bundle_dir, spec, True, **options)


def clone(bundle_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    return out


def rewrite(bundle_dir: Path, relpath: str, data: bytes) -> None:
    """Replace a bundle file and record its new size and hash, as a (broken) builder would."""
    (bundle_dir / relpath).write_bytes(data)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    for tier in manifest["tiers"]:
        for entry in tier["files"].values():
            if entry["path"] == relpath:
                entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def tier_status(router: Router, name: str = "transformer") -> dict:
    return next(t for t in router.status()["tiers"] if t["name"] == name)


def test_status_lists_both_tiers_with_transformer_details(bundle):
    router = Router.from_bundle(bundle, environ={})
    status = router.status()
    assert [(t["name"], t["kind"], t["available"]) for t in status["tiers"]] == [
        ("bow", "bow", True),
        ("transformer", "transformer", True),
    ]
    assert status["problems"] == []
    info = tier_status(router)
    assert (info["variant"], info["file"], info["precision"]) == ("model", "onnx/model.onnx", "fp32")
    assert info["bytes"] == (bundle / "onnx/model.onnx").stat().st_size
    assert (info["threads"], info["max_length"], info["vocab_size"]) == (1, MAX_LENGTH, 30522)
    assert info["variants"] == ["model", "model_alt"]
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert info["temperature"] == TEMPERATURE and info["threshold"] == 0.55
    assert info["onnxruntime"] == status["runtime"]["onnxruntime"]


def test_logits_match_torch_and_probabilities_are_calibrated(bundle, models):
    tier = load(bundle)
    assert tier.labels == read_manifest(bundle).labels
    for text in TEXTS:
        got = tier.logits(text)
        expected = torch_logits(models["main"], tier.tokenizer, text)
        assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-4, text
        assert len(got) == len(tier.labels) and max(got) - min(got) > 0.5  # the head is not uniform
        probs = tier.probabilities(text)
        assert probs == pytest.approx(softmax(got, TEMPERATURE), abs=1e-12)
        assert math.isclose(sum(probs), 1.0, abs_tol=1e-9)


def test_logits_batch_equals_one_at_a_time(bundle):
    tier = load(bundle)
    batch = tier.logits_batch(TEXTS)
    assert len(batch) == len(TEXTS)
    for text, row in zip(TEXTS, batch):
        assert max(abs(a - b) for a, b in zip(row, tier.logits(text))) < 1e-5, text
    assert tier.logits_batch([]) == []
    with pytest.raises(TypeError):
        tier.logits_batch("one text")


def test_cascade_runs_bow_then_transformer_which_answers(bundle, models):
    # A hand-off threshold of 1 makes the BoW tier always unsure; the transformer must then answer.
    router = Router.from_bundle(bundle, handoff_threshold=1.0, threshold=0.0, margin=0.0, environ={})
    text = "how much cash do I have"
    result = router.classify(text)
    assert [(r.tier, r.reason) for r in result.tiers] == [("bow", "below_threshold"), ("transformer", "confident")]
    logits = torch_logits(models["main"], router.tiers[1].tokenizer, text)
    expected = models["labels"][max(range(len(logits)), key=logits.__getitem__)]
    assert (result.tier, result.intent, result.reason) == ("transformer", expected, "confident")
    assert result.confidence == pytest.approx(max(softmax(logits, TEMPERATURE)), abs=1e-5)


def test_env_variant_picks_another_model_file(bundle, models, monkeypatch):
    monkeypatch.setenv("INTENT_ONNX_VARIANT", "model_alt")
    assert tier_status(Router.from_bundle(bundle))["variant"] == "model_alt"  # os.environ by default
    monkeypatch.setenv("INTENT_ONNX_VARIANT", "model")
    router = Router.from_bundle(bundle, environ={"INTENT_ONNX_VARIANT": "model_alt"})  # a given mapping wins
    info = tier_status(router)
    assert (info["available"], info["variant"], info["file"]) == (True, "model_alt", "onnx/model_alt.onnx")
    assert info["inputs"] == ["input_ids", "attention_mask"]  # this graph declares no token_type_ids
    tier = router.tiers[1]
    for text in TEXTS[:3]:
        got = tier.logits(text)
        assert max(abs(a - b) for a, b in zip(got, torch_logits(models["alt"], tier.tokenizer, text))) < 1e-4
        assert max(abs(a - b) for a, b in zip(got, torch_logits(models["main"], tier.tokenizer, text))) > 1e-2


def test_unknown_variant_skips_the_tier_naming_the_roles(bundle):
    router = Router.from_bundle(bundle, environ={"INTENT_ONNX_VARIANT": "model_int4"})
    info = tier_status(router)
    assert not info["available"]
    assert "'model_int4'" in info["error"] and "['model', 'model_alt']" in info["error"]
    assert [t.name for t in router.tiers] == ["bow"]
    with pytest.raises(BundleError, match="no model variant 'tokenizer'"):
        load(bundle, variant="tokenizer")


def test_threads_come_from_option_then_env(bundle, monkeypatch):
    assert load(bundle, threads=2).describe()["threads"] == 2
    monkeypatch.setenv("INTENT_ORT_THREADS", "2")
    assert tier_status(Router.from_bundle(bundle))["threads"] == 2
    assert tier_status(Router.from_bundle(bundle, environ={}))["threads"] == 1
    info = tier_status(Router.from_bundle(bundle, environ={"INTENT_ORT_THREADS": "many"}))
    assert not info["available"] and "INTENT_ORT_THREADS='many'" in info["error"]


@pytest.mark.parametrize("module", ["onnxruntime", "numpy"])
def test_missing_runtime_skips_the_tier_and_bow_still_answers(bundle, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    router = Router.from_bundle(bundle, environ={})
    info = tier_status(router)
    assert not info["available"]
    assert "install onnxruntime" in info["error"] and "the other tiers keep working" in info["error"]
    assert router.status()["problems"] == [{"where": "tier transformer", "error": info["error"]}]
    result = router.classify("what is my cash balance")
    assert [r.tier for r in result.tiers] == ["bow"] and result.tiers[0].label in router.tiers[0].labels


def test_corrupt_onnx_with_matching_hash_is_skipped_with_a_clear_error(bundle, tmp_path):
    broken = clone(bundle, tmp_path)
    rewrite(broken, "onnx/model.onnx", b"\x08\x07this is not an ONNX model" * 50)
    router = Router.from_bundle(broken, environ={})
    info = tier_status(router)
    assert not info["available"]
    assert "onnx/model.onnx" in info["error"] and "onnxruntime cannot load the model" in info["error"]
    assert router.classify("show my positions").tiers[0].tier == "bow"
    with pytest.raises(BundleError, match="tier 'transformer'.*cannot load"):
        Router.from_bundle(broken, strict=True, environ={})


def test_altered_file_fails_the_hash_check(bundle, tmp_path):
    broken = clone(bundle, tmp_path)
    path = broken / "onnx/model.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 .* does not match the manifest"):
        load(broken)
    load(broken, variant="model_alt")  # only the files it uses are checked


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("id2label"), "no id2label"),
        (lambda c: c.update(id2label={"0": "cash_balance", "1": "quotes"}), "id2label disagrees with the manifest's labels"),
        (lambda c: c.update(id2label={"0": "a", "2": "b"}), r"id2label keys must be 0\.\.1"),
        (lambda c: c.update(max_position_embeddings=32), "max_length: 64 exceeds the model's 32 positions"),
    ],
)
def test_bad_config_is_reported(bundle, tmp_path, edit, message):
    broken = clone(bundle, tmp_path)
    config = json.loads((broken / "config.json").read_text())
    edit(config)
    rewrite(broken, "config.json", json.dumps(config).encode())
    with pytest.raises(BundleError, match=message):
        load(broken)


def test_output_size_must_match_the_labels(bundle, tmp_path, models):
    # A graph with 3 outputs under a config and manifest of 11 labels.
    broken = clone(bundle, tmp_path)
    small = SequenceClassifier(models["main"].encoder, models["labels"][:3]).eval()
    rewrite(broken, "onnx/model.onnx", export_onnx(small, tmp_path / "small.onnx").read_bytes())
    with pytest.raises(BundleError, match=r"returned shape \(1, 3\), expected \(1, 12\).*12 labels"):
        load(broken)


def test_importing_runtime_py_does_not_import_onnxruntime_or_numpy(small_bundle):
    code = (
        "import sys, runtime_py\n"
        "from runtime_py import Router\n"
        f"Router.from_bundle({str(small_bundle)!r}).classify('cash balance')\n"
        "heavy = sorted(m for m in ('onnxruntime', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
