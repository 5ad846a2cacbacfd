"""Fine-tuning a BERT-family encoder for intent classification (BRIEF section 5).

The recipe measured best on 2 CPU cores (../shared/PLATFORM.md): mean pooling + dropout + a
linear head (``SequenceClassifier``), AdamW with a higher learning rate for the fresh head than for
the encoder, 6% linear warm-up then linear decay, label smoothing, class weights when the intents
are imbalanced, and the epoch with the best validation accuracy kept. Texts are tokenized once by
``runtime_py.wordpiece`` (the tokenizer every runtime uses) and batched with padding to the longest.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from runtime_py.wordpiece import WordPieceTokenizer

from ..data.datasets import Example, intent_labels
from ..data.oos_labels import DEFAULT_OOS_LABELS
from ..errors import BuildError
from .distill import distill_loss, transfer_texts
from .teacher import Teacher
from .transformer_model import SequenceClassifier, load_encoder, resolve_base


@dataclass
class TransformerOptions:
    base: str = "minilm-l6"
    layers: int | None = None  # keep only the first N encoder layers (None: the preset's choice)
    max_length: int = 64
    epochs: int = 3
    batch_size: int = 32
    encoder_lr: float = 1e-4
    head_lr: float = 3e-3
    layer_decay: float = 1.0  # lr of layer k from the top = encoder_lr * layer_decay**k (embeddings lowest)
    weight_decay: float = 0.01
    warmup: float = 0.06
    label_smoothing: float = 0.1
    dropout: float = 0.1
    class_weights: str = "auto"  # auto: on when the largest intent has > 1.5x the rows of the smallest
    seed: int = 7
    max_steps: int | None = None  # stop early (tests, smoke runs)
    device: str = "auto"  # auto: CUDA when available, else CPU
    average_last: int = 0  # also try the mean of the last N epochs' weights; kept if val prefers it
    # Synthetic out-of-scope examples per real one in each batch: mixes of two utterances of different
    # intents (pooled embeddings, 0.3..0.7 of each), labelled with the first oos label, which is added
    # to the labels when the data has none. Teaches the head that the space between intents is no intent.
    pseudo_oos: float = 0.0
    oos_labels: tuple[str, ...] = DEFAULT_OOS_LABELS  # labels that mean "out of scope" (routing.oos_labels)
    # Distillation (builder.train.distill): a bundle whose fp32 transformer graph teaches; the student
    # starts from its embeddings, head and `layers` of its layers (evenly spaced).
    teacher: str | None = None
    distill_weight: float = 0.5  # share of the teacher's soft labels in the loss of a labelled utterance
    distill_temperature: float = 2.0
    augment: int = 1  # with a teacher: augmented utterances per training utterance, labelled by the teacher only


@dataclass
class TransformerResult:
    model: SequenceClassifier
    tokenizer_dir: Path
    labels: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 0 when the averaged checkpoint was kept (see `averaged`)
    averaged: str | None = None  # "4-6" when the mean of those epochs' weights was kept
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)


def tokenizer_for(model_dir: Path) -> WordPieceTokenizer:
    if (model_dir / "tokenizer.json").exists():
        return WordPieceTokenizer.from_tokenizer_json(model_dir / "tokenizer.json")
    if (model_dir / "vocab.txt").exists():
        return WordPieceTokenizer.from_vocab_file(model_dir / "vocab.txt")
    raise BuildError(f"{model_dir}: no tokenizer.json or vocab.txt next to the model")


def encode_batch(tokenizer: WordPieceTokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    batch = tokenizer.encode_batch(list(texts), max_length=max_length)
    return {
        "input_ids": torch.tensor(batch.input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(batch.attention_mask, dtype=torch.long),
        "token_type_ids": torch.tensor(batch.token_type_ids, dtype=torch.long),
    }


@torch.no_grad()
def predict_logits(model: SequenceClassifier, tokenizer: WordPieceTokenizer, texts: Sequence[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """Logits in eval mode, batched by length so that padding stays small."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), len(model.labels)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        inputs = {k: v.to(device) for k, v in encode_batch(tokenizer, [texts[i] for i in rows], max_length).items()}
        out[rows] = model(**inputs).float().cpu().numpy()
    return out


def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise BuildError("--device cuda: no CUDA device is available")
    return torch.device(choice)


def _class_weights(targets: np.ndarray, n: int, mode: str, log: Callable[[str], None]) -> torch.Tensor | None:
    counts = np.bincount(targets, minlength=n).astype(np.float64)
    present = counts[counts > 0]  # a teacher's labels may include intents this data has no row of
    ratio = present.max() / present.min()
    if mode == "off" or (mode == "auto" and ratio <= 1.5):
        return None
    log(f"class weights on (largest/smallest intent: {ratio:.1f}x)")
    return torch.tensor(len(targets) / (len(present) * np.maximum(counts, 1)), dtype=torch.float32)


def _pseudo_oos_loss(model: SequenceClassifier, pooled: torch.Tensor, gold: torch.Tensor, oos_index: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy of mixes of two pooled utterances of different intents against the oos label,
    weighted by how many mixes there are per real utterance."""
    n = len(gold)
    count = max(1, round(ratio * n))
    first = torch.randint(n, (count,), generator=generator).to(pooled.device)
    second = torch.randint(n, (count,), generator=generator).to(pooled.device)
    keep = (gold[first] != gold[second]) & (gold[first] != oos_index) & (gold[second] != oos_index)
    if not keep.any():
        return pooled.new_zeros(())
    first, second = first[keep], second[keep]
    share = (0.3 + 0.4 * torch.rand((len(first), 1), generator=generator)).to(pooled.device)
    mixed = share * pooled[first] + (1 - share) * pooled[second]
    target = torch.full((len(first),), oos_index, dtype=torch.long, device=pooled.device)
    return F.cross_entropy(model.classify(mixed), target) * (len(first) / n)


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several checkpoints of one model (integer buffers from the last)."""
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def _layer_depth(name: str, layers: int) -> int:
    """How far below the top a parameter sits: 0 for the last encoder layer (and the pooler),
    `layers` for the embeddings."""
    match = re.search(r"(?:^|\.)layer\.(\d+)\.", name)
    if match:
        return layers - 1 - int(match.group(1))
    return layers if name.startswith("embeddings.") else 0


def encoder_param_groups(encoder: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """AdamW groups for the encoder: no weight decay on biases and LayerNorm, and layer-wise learning
    rate decay (each layer down from the top trains at `layer_decay` times the one above)."""
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    layers = encoder.config.num_hidden_layers
    buckets: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, param in encoder.named_parameters():
        buckets.setdefault((_layer_depth(name, layers), name.endswith(no_decay)), []).append(param)
    return [
        {"params": params, "lr": lr * layer_decay**depth, "weight_decay": 0.0 if exempt else weight_decay}
        for (depth, exempt), params in sorted(buckets.items())
    ]


def with_oos_label(labels: Sequence[str], options: TransformerOptions, teacher: Teacher | None = None) -> tuple[list[str], int | None]:
    """The tier's labels for the data's intents `labels` (a student's are its teacher's, in the
    teacher's order, which its head keeps), and with --pseudo-oos the index of the label its
    synthetic outliers get (the data's own oos label, else one appended)."""
    if teacher is not None:
        unknown = sorted(set(labels) - set(teacher.labels))
        if unknown:
            raise BuildError(f"--teacher {teacher.root}: intents the teacher does not know: {', '.join(unknown[:5])}")
        labels = teacher.labels
        if options.pseudo_oos > 0 and not set(labels) & set(options.oos_labels):
            raise BuildError(f"--pseudo-oos with --teacher: the teacher has no out-of-scope label ({', '.join(options.oos_labels)})")
    if options.pseudo_oos <= 0:
        return list(labels), None
    present = [label for label in labels if label in options.oos_labels]
    if present:
        return list(labels), labels.index(present[0])
    return [*labels, options.oos_labels[0] if options.oos_labels else DEFAULT_OOS_LABELS[0]], len(labels)


def train_transformer(
    splits: dict[str, list[Example]],
    options: TransformerOptions,
    log: Callable[[str], None] = print,
    progress: bool = True,
    teacher: Teacher | None = None,
) -> TransformerResult:
    """Fine-tune as `options` say; `teacher` is options.teacher's bundle when the caller has it open."""
    started = time.perf_counter()
    train, val = splits["train"], splits.get("val", [])
    intents = intent_labels(train)
    if teacher is None and options.teacher:
        teacher = Teacher(options.teacher)
    labels, oos_index = with_oos_label(intents, options, teacher)
    index = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(options.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    extra: dict[str, Any] = {}
    if teacher is None:
        source, preset_layers = resolve_base(options.base)
        tokenizer_dir = Path(source)
        model = SequenceClassifier(load_encoder(source, options.layers if options.layers is not None else preset_layers), labels, dropout=options.dropout)
        tokenizer = tokenizer_for(tokenizer_dir)
        described = options.base
    else:
        model, kept = teacher.student(options.layers, dropout=options.dropout)
        tokenizer_dir, tokenizer = teacher.root, teacher.tokenizer
        extra["teacher_layers"] = kept
        described = f"a student of {teacher.root} (its layers {', '.join(map(str, kept))})"
    encoder = model.encoder
    device = _device(options.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    model = model.to(device)
    log(f"device: {device}")
    log(
        f"fine-tuning {described} ({encoder.config.num_hidden_layers} layers, hidden {encoder.config.hidden_size}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters) on {len(train):,} utterances, {len(labels)} intents"
    )
    texts = [r.text for r in train]
    targets = np.asarray([index[r.intent] for r in train])
    weight = _class_weights(targets, len(intents) if teacher is None else len(labels), options.class_weights, log)
    soft = None
    if teacher is not None:
        augmented = transfer_texts(texts, options.augment, options.seed)
        t0 = time.perf_counter()
        soft = torch.from_numpy(teacher.logits(texts + augmented))
        log(f"teacher: soft labels for {len(texts):,} utterances and {len(augmented):,} augmented ones ({time.perf_counter() - t0:.0f} s); "
            f"loss {1 - options.distill_weight:g} x cross-entropy + {options.distill_weight:g} x distillation at T = {options.distill_temperature:g}")
        texts = texts + augmented
        targets = np.concatenate([targets, np.full(len(augmented), -1)])  # no gold label: the teacher's only
    encoded = [tokenizer.encode(t, max_length=options.max_length).ids for t in texts]
    if weight is not None:
        weight = torch.cat([weight, torch.ones(len(labels) - len(weight))]).to(device)  # a synthetic oos label weighs 1
    if oos_index is not None:
        log(f"pseudo out-of-scope: {options.pseudo_oos:g} mixed example(s) per utterance, labelled {labels[oos_index]!r}")

    groups = encoder_param_groups(model.encoder, options.encoder_lr, options.weight_decay, options.layer_decay)
    groups.append({"params": list(model.head.parameters()), "lr": options.head_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)
    steps_per_epoch = (len(texts) + options.batch_size - 1) // options.batch_size
    total = steps_per_epoch * options.epochs
    if options.max_steps is not None:
        total = min(total, options.max_steps)
    warmup = max(1, int(options.warmup * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    generator = torch.Generator().manual_seed(options.seed)
    pad = tokenizer.token_to_id(tokenizer.pad_token) or 0
    result = TransformerResult(model=model, tokenizer_dir=tokenizer_dir, labels=labels, options={**asdict(options), **extra})
    best_acc, best_state, step = -1.0, None, 0
    recent: list[dict[str, torch.Tensor]] = []  # the last `average_last` epochs' weights
    val_texts = [r.text for r in val]
    val_targets = np.asarray([index.get(r.intent, -1) for r in val])
    for epoch in range(1, options.epochs + 1):
        model.train()
        order = torch.randperm(len(texts), generator=generator).tolist()
        bar = tqdm(range(0, len(order), options.batch_size), desc=f"epoch {epoch}/{options.epochs}", unit="batch", leave=False, disable=None if progress else True)
        running = 0.0
        seen = 0
        for start in bar:
            rows = order[start : start + options.batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, i in enumerate(rows):
                ids[k, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[k, : len(encoded[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            pooled = model.pool(ids, mask, torch.zeros_like(ids))
            gold = torch.from_numpy(targets[rows]).to(device)
            logits = model.classify(pooled)
            if soft is None:
                loss = F.cross_entropy(logits, gold, weight=weight, label_smoothing=options.label_smoothing)
            else:
                labelled = gold >= 0
                ce = F.cross_entropy(logits, gold.clamp(min=0), weight=weight, label_smoothing=options.label_smoothing, reduction="none")
                kd = distill_loss(logits, soft[rows].to(device), options.distill_temperature)
                loss = torch.where(labelled, (1 - options.distill_weight) * ce + options.distill_weight * kd, kd).mean()
                pooled, gold = pooled[labelled], gold[labelled]
            if oos_index is not None and len(gold):
                loss = loss + _pseudo_oos_loss(model, pooled, gold, oos_index, options.pseudo_oos, generator)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(rows)
            seen += len(rows)
            step += 1
            bar.set_postfix(loss=f"{running / seen:.4f}")
            if step >= total:
                break
        val_acc = float((predict_logits(model, tokenizer, val_texts, options.max_length).argmax(1) == val_targets).mean()) if val else float("nan")
        result.history.append({"epoch": epoch, "loss": running / max(seen, 1), "val_accuracy": val_acc})
        log(f"epoch {epoch}/{options.epochs}  loss {running / max(seen, 1):.4f}  val accuracy {val_acc:.4f}  ({time.perf_counter() - started:.0f} s)")
        if not val or val_acc > best_acc:
            best_acc, result.best_epoch = val_acc, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if options.average_last > 1:
            recent = (recent + [{k: v.detach().cpu().clone() for k, v in model.state_dict().items()}])[-options.average_last :]
        if step >= total:
            break
    if val and len(recent) > 1:
        averaged = average_states(recent)
        model.load_state_dict(averaged)
        avg_acc = float((predict_logits(model, tokenizer, val_texts, options.max_length).argmax(1) == val_targets).mean())
        first = result.history[-1]["epoch"] - len(recent) + 1
        log(f"mean of epochs {first}-{result.history[-1]['epoch']}: val accuracy {avg_acc:.4f} (best single epoch {best_acc:.4f})")
        result.history.append({"epoch": f"mean {first}-{result.history[-1]['epoch']}", "val_accuracy": avg_acc})
        if avg_acc >= best_acc:
            best_acc, result.best_epoch, best_state = avg_acc, 0, averaged
            result.averaged = f"{first}-{result.history[-2]['epoch']}"
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()  # export, quantization and calibration run on the CPU
    result.seconds = time.perf_counter() - started
    return result
