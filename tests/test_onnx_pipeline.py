"""ONNX export, int8 variants, vocabulary pruning and tokenizer files, on a tiny random BERT."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from builder.errors import BuildError
from builder.export.onnx_export import export_onnx, onnx_op_types, run_onnx, validate_onnx
from builder.export.optimize import build_variants, describe_variant
from builder.export.shrink import load_coverage_sentences, prune_vocabulary, write_tokenizer_files
from builder.train.transformer_model import SequenceClassifier, load_encoder
from runtime_py.wordpiece import WordPieceTokenizer
from tests.tiny_bert import SAMPLE_TEXTS, make_tiny_base

CORPUS = [
    "I want to transfer money to my savings account",
    "what is my balance",
    "block my credit card, it was stolen",
    "pay the electricity bill tomorrow",
    "show my recent transactions",
]
TEXTS = SAMPLE_TEXTS
HEADS, HIDDEN = 4, 32


def _batches(tok: WordPieceTokenizer, texts=TEXTS) -> list[dict]:
    """Batch sizes 1, 3 and 8 with different padded lengths."""
    return [tok.encode_batch(chunk)._asdict() for chunk in (texts[:1], texts[1:4], texts)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = make_tiny_base(tmp_path_factory.mktemp("tiny") / "base")
    torch.manual_seed(1)
    model = SequenceClassifier(load_encoder(base), ["balance", "transfer", "card"]).eval()
    tok = WordPieceTokenizer.from_tokenizer_json(base / "tokenizer.json")
    return base, model, tok


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    _, model, _ = tiny
    return export_onnx(model, tmp_path_factory.mktemp("export") / "model.onnx")


def test_export_is_one_file_and_matches_torch(tiny, exported):
    _, model, tok = tiny
    import onnx

    proto = onnx.load(str(exported))
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    for inp in proto.graph.input:
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert all(d.dim_param for d in inp.type.tensor_type.shape.dim)  # batch and sequence dynamic
    assert sorted(p.name for p in exported.parent.iterdir()) == ["model.onnx"]  # no .data, no temp files
    diff = validate_onnx(model, exported, _batches(tok))
    assert diff <= 1e-4
    ops = onnx_op_types(exported)
    assert ops == sorted(ops) and "MatMul" in ops and not any("." in op for op in ops)


def test_validate_raises_above_tolerance(tiny, exported):
    _, model, tok = tiny
    with torch.no_grad():
        model.head.bias.add_(1.0)
    try:
        with pytest.raises(BuildError, match="differ"):
            validate_onnx(model, exported, _batches(tok))
    finally:
        with torch.no_grad():
            model.head.bias.sub_(1.0)


def test_variants(tiny, exported, tmp_path):
    import onnxruntime as ort

    _, model, tok = tiny
    cwd_before = set(os.listdir("."))
    timings: dict[str, float] = {}
    variants = build_variants(exported, tmp_path, HEADS, HIDDEN, timings=timings)
    assert set(os.listdir(".")) == cwd_before  # the quantizer left nothing in the working directory
    roles = {v.role: v for v in variants}
    assert {"model_fp32", "model"} <= set(roles) <= {"model_fp32", "model", "model_native"}
    assert roles["model_fp32"].path == "onnx/model.onnx" and roles["model"].path == "onnx/model_quantized.onnx"
    assert roles["model"].precision == "int8" and roles["model_fp32"].precision == "fp32"
    assert roles["model"].bytes < roles["model_fp32"].bytes
    assert "MatMulInteger" in roles["model"].ops
    for role in ("model_fp32", "model"):
        assert roles[role].runtimes == ["onnxruntime", "onnxruntime-web/wasm", "onnxruntime-web/webgpu"]
        assert not roles[role].fused
    native = tmp_path / "onnx" / "model_native_int8.onnx"
    if "model_native" in roles:
        assert roles["model_native"].fused and roles["model_native"].runtimes == ["onnxruntime"]
        assert any(op.startswith("com.microsoft.") for op in roles["model_native"].ops)
        assert timings["model_native"] < timings["model"]
    else:  # documented absence: fusion did not apply or was not faster
        assert not native.exists()
    leftovers = [p.name for p in (tmp_path / "onnx").iterdir() if p.name.startswith(".")]
    assert leftovers == []

    batches = _batches(tok)
    ref = np.concatenate([run_onnx(tmp_path / roles["model_fp32"].path, b) for b in batches])
    for v in variants:
        sess = ort.InferenceSession(str(tmp_path / v.path), providers=["CPUExecutionProvider"])
        got = np.concatenate([run_onnx(tmp_path / v.path, b, sess) for b in batches])
        assert got.shape == ref.shape
        agree = np.mean(got.argmax(1) == ref.argmax(1))
        assert agree >= 0.75, (v.role, agree)
    again = describe_variant("model", tmp_path / "onnx" / "model_quantized.onnx", "int8", False)
    assert again.ops == roles["model"].ops and again.bytes == roles["model"].bytes


def test_fusion_can_leave_the_embeddings_to_int8(exported, tmp_path):
    from builder.export.onnx_export import onnx_op_types
    from builder.export.optimize import fuse_for_native, quantize_int8

    full = fuse_for_native(exported, tmp_path / "full.onnx", HEADS, HIDDEN)
    split = fuse_for_native(exported, tmp_path / "split.onnx", HEADS, HIDDEN, embed_layer_norm=False)
    if full is None or split is None:
        pytest.skip("onnxruntime.transformers found no attention to fuse in this export")
    full_ops, split_ops = onnx_op_types(full), onnx_op_types(split)
    assert "com.microsoft.EmbedLayerNormalization" in full_ops and "Gather" not in full_ops
    assert "com.microsoft.EmbedLayerNormalization" not in split_ops and "Gather" in split_ops
    assert "com.microsoft.Attention" in split_ops
    # the embedding tables are what int8 shrinks most: only the unfused ones get quantized
    q_full, q_split = quantize_int8(full, tmp_path / "qf.onnx"), quantize_int8(split, tmp_path / "qs.onnx")
    assert q_split.stat().st_size < q_full.stat().st_size


def test_prune_keeps_coverage_and_logits(tiny, tmp_path):
    base, _, tok = tiny
    torch.manual_seed(2)
    model = SequenceClassifier(load_encoder(base), ["a", "b", "c"]).eval()
    full_onnx = export_onnx(model, tmp_path / "full.onnx")
    check = load_coverage_sentences()
    assert len(check) >= 150
    vocab, report = prune_vocabulary(model, base / "tokenizer.json", CORPUS, check)
    assert report.changed == 0 and report.check_sentences == len(check) and not report.warnings
    assert report.vocab_after == len(vocab) < report.vocab_before == 30522
    assert report.bytes_saved_fp32 == (30522 - len(vocab)) * HIDDEN * 4
    assert model.encoder.config.vocab_size == len(vocab)
    assert model.encoder.get_input_embeddings().num_embeddings == len(vocab)
    assert vocab[:1] == ["[PAD]"] and "[UNK]" in vocab and "[CLS]" in vocab and "##s" in vocab and "a" in vocab
    assert not any(t.startswith("[unused") for t in vocab)

    write_tokenizer_files(vocab, base, tmp_path / "pruned", max_length=64)
    pruned_tok = WordPieceTokenizer.from_tokenizer_json(tmp_path / "pruned" / "tokenizer.json")
    texts = TEXTS + check[:24]
    for t in texts:
        assert pruned_tok.tokenize(t) == tok.tokenize(t)
    pruned_onnx = export_onnx(model, tmp_path / "pruned.onnx")
    for full_b, pruned_b in zip(_batches(tok, texts), _batches(pruned_tok, texts)):
        a, b = run_onnx(full_onnx, full_b), run_onnx(pruned_onnx, pruned_b)
        assert np.max(np.abs(a - b)) <= 1e-5
    assert pruned_onnx.stat().st_size < full_onnx.stat().st_size


def test_prune_refuses_changed_tokenization(tiny):
    base, _, tok = tiny
    model = SequenceClassifier(load_encoder(base), ["a", "b"])
    # Find a whole-word vocabulary token the pruned vocabulary drops (not in the English list).
    vocab, _ = prune_vocabulary(SequenceClassifier(load_encoder(base), ["a", "b"]), base / "tokenizer.json", CORPUS, [])
    kept = set(vocab)
    dropped = next(t for t in (line.rstrip("\n") for line in open(base / "vocab.txt", encoding="utf-8"))
                   if t.isalpha() and t.isascii() and len(t) > 6 and t not in kept)
    sentence = f"the {dropped} was mentioned yesterday"
    weight = model.encoder.get_input_embeddings().weight.detach().clone()
    with pytest.raises(BuildError, match="changes the tokenization of 1 of"):
        prune_vocabulary(model, base / "tokenizer.json", CORPUS, [sentence])
    assert torch.equal(model.encoder.get_input_embeddings().weight, weight)  # untouched on refusal
    vocab2, report = prune_vocabulary(model, base / "tokenizer.json", CORPUS, [sentence], allow_changes=True)
    assert report.changed == 1 and report.warnings and dropped in report.examples[0]
    assert vocab2 == vocab


def test_prune_to_a_token_budget(tiny, tmp_path):
    """`max_tokens`: single characters always, then the training texts' pieces, most frequent first,
    then English; rarer words split into smaller pieces, never into [UNK]."""
    base, _, tok = tiny
    model = SequenceClassifier(load_encoder(base), ["a", "b"]).eval()
    vocab, report = prune_vocabulary(model, base / "tokenizer.json", CORPUS * 3 + ["zebra crossing"], load_coverage_sentences(), max_tokens=3000)
    assert len(vocab) == report.vocab_after == 3000 == model.encoder.get_input_embeddings().num_embeddings
    assert report.changed > 0 and report.warnings  # allowed, and said
    kept = set(vocab)
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "z", "##z"} <= kept
    assert all(piece in kept for text in CORPUS for piece in tok.tokenize(text))  # the training texts' pieces first
    write_tokenizer_files(vocab, base, tmp_path / "pruned", max_length=64)
    pruned = WordPieceTokenizer.from_tokenizer_json(tmp_path / "pruned" / "tokenizer.json")
    for sentence in load_coverage_sentences():
        assert "[UNK]" not in pruned.tokenize(sentence) or "[UNK]" in tok.tokenize(sentence)
    with pytest.raises(BuildError, match="cannot hold the .* special and single-character tokens"):
        prune_vocabulary(SequenceClassifier(load_encoder(base), ["a", "b"]), base / "tokenizer.json", CORPUS, [], max_tokens=100)


def test_tokenizer_files_match_tokenizers(tiny, tmp_path):
    from tokenizers import Tokenizer

    base, _, _ = tiny
    full_vocab = [line.rstrip("\n") for line in open(base / "vocab.txt", encoding="utf-8")]
    small = [t for i, t in enumerate(full_vocab) if i < 1000 or len(t.lstrip("#")) == 1 or i % 3 == 0]
    texts = TEXTS + ["Héllo WORLD!! naïve café 東京 [MASK] emoji 🍕 ok", "", "a" * 120, "tab\tand\nnewline"]
    for name, vocab in (("full", full_vocab), ("small", small)):
        out = tmp_path / name
        write_tokenizer_files(vocab, base, out, max_length=48)
        assert sorted(p.name for p in out.iterdir()) == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
        ref = Tokenizer.from_file(str(out / "tokenizer.json"))
        ours = WordPieceTokenizer.from_tokenizer_json(out / "tokenizer.json")
        from_txt = WordPieceTokenizer.from_vocab_file(out / "vocab.txt")
        for t in texts:
            enc = ref.encode(t)
            assert enc.ids == ours.encode(t, max_length=48).ids == from_txt.encode(t, max_length=48).ids
            assert len(enc.ids) <= 48
        conf = json.loads((out / "tokenizer.json").read_text())
        assert conf["padding"] is None
        assert conf["truncation"] == {"direction": "Right", "max_length": 48, "strategy": "LongestFirst", "stride": 0}
        ids = {t: i for i, t in enumerate(vocab)}
        assert all(e["id"] == ids[e["content"]] for e in conf["added_tokens"])
        assert conf["post_processor"]["special_tokens"]["[CLS]"]["ids"] == [ids["[CLS]"]]
        tc = json.loads((out / "tokenizer_config.json").read_text())
        assert tc["do_lower_case"] is True and tc["model_max_length"] == 48 and tc["cls_token"] == "[CLS]"
        assert json.loads((out / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"
    full_ref = Tokenizer.from_file(str(base / "tokenizer.json"))
    full_ref.no_padding()
    full_ref.no_truncation()
    ours_full = Tokenizer.from_file(str(tmp_path / "full" / "tokenizer.json"))
    ours_full.no_truncation()
    for t in texts:
        assert ours_full.encode(t).ids == full_ref.encode(t).ids


def test_tokenizer_files_refuse_missing_specials(tiny, tmp_path):
    base, _, _ = tiny
    with pytest.raises(BuildError, match="not in the new vocabulary"):
        write_tokenizer_files(["[UNK]", "a", "b"], base, tmp_path / "bad", max_length=16)
    assert not (tmp_path / "bad" / "tokenizer.json").exists()


@pytest.mark.slow
def test_real_minilm_l6(tmp_path):
    from builder.export.optimize import median_latency_ms
    from builder.train.transformer_model import resolve_base

    source, layers = resolve_base("minilm-l6")
    torch.manual_seed(0)
    model = SequenceClassifier(load_encoder(source, layers), [f"l{i}" for i in range(11)]).eval()
    tok = WordPieceTokenizer.from_tokenizer_json(source / "tokenizer.json")
    sentences = load_coverage_sentences()
    fp32 = export_onnx(model, tmp_path / "model.onnx")
    assert validate_onnx(model, fp32, _batches(tok, sentences[:16])) <= 1e-4
    variants = {v.role: v for v in build_variants(fp32, tmp_path, 12, 384)}
    assert 80e6 < variants["model_fp32"].bytes < 100e6
    assert variants["model"].bytes < 26e6
    ref = np.concatenate([run_onnx(fp32, tok.encode_batch([s])._asdict()) for s in sentences])
    q = tmp_path / variants["model"].path
    got = np.concatenate([run_onnx(q, tok.encode_batch([s])._asdict()) for s in sentences])
    assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.85  # random head: tiny margins (measured 0.935)
    assert median_latency_ms(q, 16) < median_latency_ms(fp32, 16)
