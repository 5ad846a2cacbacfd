"""Distillation: a bundle's fp32 graph as a teacher (weights read back exactly, soft labels), the
loss, the augmented transfer set, and `train --teacher` end to end on a tiny random BERT."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch

from builder.errors import BuildError
from builder.export.onnx_export import export_onnx
from builder.pipeline.transformer_tier import TransformerBuildOptions, train_transformer_into_bundle
from builder.train.distill import distill_loss, splice, transfer_texts
from builder.train.fine_tune import TransformerOptions
from builder.train.teacher import UNUSED, Teacher, graph_state_dict, spaced_layers
from builder.train.transformer_model import SequenceClassifier, load_encoder
from runtime_py import Router, read_manifest
from tiny_bert import SAMPLE_TEXTS, make_tiny_base


@pytest.fixture(scope="module")
def teacher_bundle(tmp_path_factory, small_bundle, small_data):
    """A two-tier bundle whose transformer has 4 layers: the teacher."""
    root = tmp_path_factory.mktemp("teacher")
    base = make_tiny_base(root / "base", layers=4)
    bundle = root / "bundle"
    shutil.copytree(small_bundle, bundle)
    options = TransformerBuildOptions(training=TransformerOptions(base=str(base), epochs=1, max_steps=12, batch_size=16))
    train_transformer_into_bundle(small_data, bundle, options, log=lambda _: None, progress=False)
    return bundle


def test_spaced_layers_end_at_the_last():
    assert spaced_layers(6, 3) == [1, 3, 5]
    assert spaced_layers(6, 2) == [2, 5]
    assert spaced_layers(6, 1) == [5]
    assert spaced_layers(4, 4) == [0, 1, 2, 3]
    assert spaced_layers(12, 4) == [2, 5, 8, 11]
    for bad in (0, 7):
        with pytest.raises(BuildError, match="1 to 6"):
            spaced_layers(6, bad)


def test_the_graph_gives_back_every_weight_exactly(tmp_path):
    base = make_tiny_base(tmp_path / "base", layers=3)
    torch.manual_seed(3)
    model = SequenceClassifier(load_encoder(base), ["a", "b", "c"]).eval()
    torch.nn.init.normal_(model.head.weight)
    state = graph_state_dict(export_onnx(model, tmp_path / "model.onnx"))
    for name, param in model.named_parameters():
        if name.startswith(UNUSED):
            continue
        assert name in state, name
        assert torch.equal(state[name], param.detach()), name


def test_a_student_with_every_layer_is_the_teacher(teacher_bundle):
    teacher = Teacher(teacher_bundle)
    student, kept = teacher.student(None)
    assert kept == [0, 1, 2, 3]
    batch = teacher.tokenizer.encode_batch(SAMPLE_TEXTS, max_length=teacher.max_length)
    with torch.no_grad():
        ours = student.eval()(*(torch.tensor(getattr(batch, k)) for k in ("input_ids", "attention_mask", "token_type_ids"))).numpy()
    assert np.abs(ours - teacher.logits(SAMPLE_TEXTS)).max() < 1e-4
    config = json.loads((teacher_bundle / "config.json").read_text())
    assert student.labels == teacher.labels == [config["id2label"][str(i)] for i in range(len(teacher.labels))]


def test_a_smaller_student_keeps_spaced_teacher_layers(teacher_bundle):
    teacher = Teacher(teacher_bundle)
    student, kept = teacher.student(2)
    assert kept == [1, 3] and student.encoder.config.num_hidden_layers == 2
    source = graph_state_dict(teacher.graph)
    ours = student.state_dict()
    for k, layer in enumerate(kept):
        name = "attention.self.query.weight"
        assert torch.equal(ours[f"encoder.encoder.layer.{k}.{name}"], source[f"encoder.encoder.layer.{layer}.{name}"])
    assert torch.equal(ours["head.weight"], source["head.weight"])
    assert torch.equal(ours["encoder.embeddings.word_embeddings.weight"], source["encoder.embeddings.word_embeddings.weight"])


def test_a_teacher_must_be_a_bundle_with_an_fp32_transformer(tmp_path, small_bundle):
    with pytest.raises(BuildError, match="--teacher .*manifest"):
        Teacher(tmp_path)
    with pytest.raises(BuildError, match="no transformer tier"):
        Teacher(small_bundle)


def test_distill_loss_is_zero_when_the_student_agrees_and_grows_with_disagreement():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]])
    assert torch.allclose(distill_loss(teacher, teacher, 2.0), torch.zeros(2), atol=1e-6)
    near = distill_loss(teacher + torch.tensor([0.1, 0.0, 0.0]), teacher, 2.0)
    far = distill_loss(teacher.flip(-1), teacher, 2.0)
    assert (near > 0).all() and (far > near).all()
    p, q = torch.softmax(teacher / 2, -1), torch.softmax(teacher.flip(-1) / 2, -1)
    assert torch.allclose(far, 4 * (p * (p / q).log()).sum(-1))  # T^2 x KL(teacher || student)


def test_transfer_texts_are_deterministic_noisy_copies_and_splices():
    texts = ["what is my checking balance", "send 20 dollars to mom", "show me apple stock price today"]
    out = transfer_texts(texts, 2, seed=1)
    assert len(out) == 6 and out == transfer_texts(texts, 2, seed=1)
    assert out != transfer_texts(texts, 2, seed=2)
    assert transfer_texts(texts, 0, seed=1) == []
    assert splice("a b c d", "w x y z", random.Random(0)).split()[0] == "a"
    assert splice("hi", "w x y z", random.Random(0)) == "hi"


def test_train_with_a_teacher_makes_a_smaller_student_bundle(tmp_path, teacher_bundle, small_data, small_bundle):
    out = tmp_path / "student"
    shutil.copytree(small_bundle, out)
    logs: list[str] = []
    training = TransformerOptions(teacher=str(teacher_bundle), layers=2, epochs=1, max_steps=6, batch_size=16, augment=1)
    train_transformer_into_bundle(small_data, out, TransformerBuildOptions(training=training), log=logs.append, progress=False)
    manifest = read_manifest(out)
    tier = manifest.tiers[1]
    assert tier.extra["training"]["teacher"] == str(teacher_bundle) and tier.extra["training"]["teacher_layers"] == [1, 3]
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
    assert any("teacher: soft labels for" in line for line in logs)
    assert Router.from_bundle(out).classify("what is my balance").intent in manifest.labels + ["clarify"]


def test_a_teacher_that_does_not_know_the_intents_is_refused(tmp_path, teacher_bundle, small_data):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    with (data / "train.jsonl").open("a") as f:
        f.write(json.dumps({"text": "play some jazz", "intent": "play_music"}) + "\n")
    training = TransformerOptions(teacher=str(teacher_bundle), layers=2, max_steps=1)
    with pytest.raises(BuildError, match="does not know: play_music"):
        train_transformer_into_bundle(data, tmp_path / "out", TransformerBuildOptions(training=training), log=lambda _: None, progress=False)


def test_a_teacher_may_know_more_intents_than_the_data(tmp_path, teacher_bundle, small_data):
    """The student keeps the teacher's labels and head; class weights count only the data's intents."""
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines() if line.strip()]
    dropped = rows[0]["intent"]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["intent"] != dropped))
    logs: list[str] = []
    training = TransformerOptions(teacher=str(teacher_bundle), layers=2, max_steps=2, batch_size=16, class_weights="on", augment=0)
    train_transformer_into_bundle(data, tmp_path / "out", TransformerBuildOptions(training=training), log=logs.append, progress=False)
    assert dropped in read_manifest(tmp_path / "out").labels and any("class weights on" in line for line in logs)
