"""Vocabulary pruning and tokenizer files for transformer bundles.

Most of a small BERT's file is its word-embedding table (30,522 x hidden). Pruning keeps only the
tokens the bundle can plausibly meet, so the table shrinks, without changing how ordinary English
is tokenized:

* the special tokens, every single-character token and its ``##`` form (so a word that loses its
  long pieces still splits into characters, never into a new [UNK]), and every number token;
* every token the WordPiece tokenizer produces for the training texts (`keep_texts`);
* every token it produces for a broad English word list (``wordfreq``'s most frequent English
  words, `english_words` of them; 50,000 by default: with 30,000 the default check sentences lost
  5 of 185 tokenizations, "barked" -> "bark ##ed" among them).

Measured on the uncased BERT vocabulary (30,522 tokens): the [unusedN] slots and rare whole words go,
about 2,000 tokens in all; most of the vocabulary is needed to keep ordinary English (typos
included) tokenized exactly as before. Aggressive pruning to the training corpus alone would shatter
unseen words into characters; that is what the coverage check refuses.

WordPiece is greedy longest-match-first, so a word keeps its exact tokenization whenever all of
its original pieces are kept (any longer match in the pruned vocabulary was in the full one).
The coverage check tokenizes held-out English (`check_texts`, by default
``builder/export/coverage_sentences.txt``) with both vocabularies and compares the token strings.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from runtime_py.wordpiece import WordPieceTokenizer

from ..atomic import replace_file
from ..data.english import DEFAULT_ENGLISH_WORDS, english_word_list
from ..errors import BuildError
from ..train.transformer_model import SequenceClassifier

COVERAGE_FILE = Path(__file__).resolve().with_name("coverage_sentences.txt")
SPECIAL_KEYS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@dataclass
class PruneReport:
    vocab_before: int
    vocab_after: int
    bytes_saved_fp32: int  # word-embedding rows removed x hidden x 4
    bytes_saved_int8: int  # the same table quantized to int8 (1 byte per weight)
    check_sentences: int
    changed: int
    examples: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_coverage_sentences(path: Path = COVERAGE_FILE) -> list[str]:
    """The committed default check sentences (comment and blank lines skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _read_tokenizer_json(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{path}: no such tokenizer.json") from None
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path}: not valid JSON ({exc})") from None
    vocab = (config.get("model") or {}).get("vocab")
    if (config.get("model") or {}).get("type") != "WordPiece" or not isinstance(vocab, dict):
        raise BuildError(f"{path}: not a WordPiece tokenizer.json")
    return config


def _load_tokenizer(path: Path) -> WordPieceTokenizer:
    try:
        return WordPieceTokenizer.from_tokenizer_json(path)
    except ValueError as exc:
        raise BuildError(str(exc)) from None


def _ordered_vocab(config: dict[str, Any], source: Path) -> list[str]:
    by_id = sorted(config["model"]["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise BuildError(f"{source}: vocabulary ids are not 0..{len(by_id) - 1}")
    return [t for t, _ in by_id]


def _is_number(token: str) -> bool:
    """Tokens with an ASCII digit: numbers, years, ordinals ("21st", "1990s")."""
    return not token.startswith("[") and any("0" <= c <= "9" for c in token)


def prune_vocabulary(
    model: SequenceClassifier,
    tokenizer_json: Path,
    keep_texts: Iterable[str],
    check_texts: Sequence[str] | None = None,
    allow_changes: bool = False,
    *,
    english_words: int = DEFAULT_ENGLISH_WORDS,
    work_dir: Path | None = None,
    max_tokens: int | None = None,
) -> tuple[list[str], PruneReport]:
    """Prune the vocabulary of `tokenizer_json` and slice `model`'s word embeddings to match, in place.

    Returns the kept tokens (original order; the new id of a token is its index) and a report.
    `check_texts` defaults to ``builder/export/coverage_sentences.txt``.
    Raises BuildError, leaving the model untouched, when a `check_texts` sentence would be tokenized
    differently, unless `allow_changes` (then the report's ``warnings`` say so). Write the matching
    tokenizer files with ``write_tokenizer_files(vocab, ...)``. The trial tokenizer file goes to a
    temporary folder inside `work_dir` (a build's staging folder: a killed build's goes with it).

    `max_tokens` keeps at most that many tokens (changes allowed; the report counts them): the
    special and single-character tokens, then the training texts' tokens, most frequent first, then
    the English words' tokens in the words' frequency order. Rare words then split into smaller
    pieces, never into [UNK].
    """
    tokenizer_json = Path(tokenizer_json)
    if check_texts is None:
        check_texts = load_coverage_sentences()
    config = _read_tokenizer_json(tokenizer_json)
    full_vocab = _ordered_vocab(config, tokenizer_json)
    full = _load_tokenizer(tokenizer_json)
    embeddings = model.encoder.get_input_embeddings()
    if embeddings.num_embeddings != len(full_vocab):
        raise BuildError(
            f"the model has {embeddings.num_embeddings} word embeddings but {tokenizer_json} has "
            f"{len(full_vocab)} tokens (already pruned, or another tokenizer?)"
        )

    index = {t: i for i, t in enumerate(full_vocab)}
    keep: set[str] = {e["content"] for e in config.get("added_tokens") or [] if e.get("content") in index}
    keep.update(t for t in (full.unk_token, full.cls_token, full.sep_token, full.pad_token, full.mask_token) if t in index)
    prefix = full.continuing_subword_prefix
    for tok in full_vocab:
        body = tok[len(prefix):] if tok.startswith(prefix) and len(tok) > len(prefix) else tok
        if len(body) == 1 or (_is_number(tok) and max_tokens is None):
            keep.add(tok)
            for form in (body, prefix + body):
                if form in index:
                    keep.add(form)
    keep.add(full.unk_token)

    counts: Counter[str] = Counter()
    for text in keep_texts:
        counts.update(full.tokenize(text))
    ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], index[kv[0]]))]
    for word in english_word_list(english_words) if english_words else []:
        for form in (word,) if full.lowercase else (word, word.capitalize(), word.upper()):
            ranked.extend(full.tokenize(form))
    if max_tokens is not None and max_tokens < len(keep):
        raise BuildError(f"a vocabulary of {max_tokens:,} tokens cannot hold the {len(keep):,} special and single-character tokens")
    for tok in ranked:
        if max_tokens is not None and len(keep) >= max_tokens:
            break
        keep.add(tok)
    allow_changes = allow_changes or max_tokens is not None
    vocab = [t for t in full_vocab if t in keep]

    with tempfile.TemporaryDirectory(prefix=".prune-" if work_dir else "intentkit-prune-", dir=work_dir) as tmp:
        pruned_path = Path(tmp) / "tokenizer.json"
        pruned_path.write_text(json.dumps(_rewrite_config(config, vocab, tokenizer_json, None)), encoding="utf-8")
        pruned = _load_tokenizer(pruned_path)
    changed = []
    for text in check_texts:
        before, after = full.tokenize(text), pruned.tokenize(text)
        if before != after:
            changed.append(f"{text!r}: {' '.join(before)} -> {' '.join(after)}")
    hidden = embeddings.embedding_dim
    removed = len(full_vocab) - len(vocab)
    report = PruneReport(
        vocab_before=len(full_vocab),
        vocab_after=len(vocab),
        bytes_saved_fp32=removed * hidden * 4,
        bytes_saved_int8=removed * hidden,
        check_sentences=len(check_texts),
        changed=len(changed),
        examples=changed[:5],
    )
    if changed:
        msg = (
            f"vocabulary pruning changes the tokenization of {len(changed)} of {len(check_texts)} check "
            f"sentences, e.g. " + "; ".join(changed[:3])
        )
        if not allow_changes:
            raise BuildError(msg + " (keep more tokens, or allow changes explicitly)")
        report.warnings.append("WARNING: " + msg)

    rows = torch.tensor([index[t] for t in vocab], dtype=torch.long)
    pad_token = full.pad_token if full.pad_token in keep else None
    new_pad = vocab.index(pad_token) if pad_token is not None else None
    sliced = nn.Embedding(len(vocab), hidden, padding_idx=new_pad, dtype=embeddings.weight.dtype, device=embeddings.weight.device)
    with torch.no_grad():
        sliced.weight.copy_(embeddings.weight.index_select(0, rows.to(embeddings.weight.device)))
    sliced.weight.requires_grad_(embeddings.weight.requires_grad)
    model.encoder.set_input_embeddings(sliced)
    model.encoder.config.vocab_size = len(vocab)
    if new_pad is not None and getattr(model.encoder.config, "pad_token_id", None) is not None:
        model.encoder.config.pad_token_id = new_pad
    return vocab, report


def trim_positions(model: SequenceClassifier, max_length: int) -> int:
    """Keep the first `max_length` rows of `model`'s position embeddings, in place: every runtime
    truncates to the tier's max_length, so the other rows (448 of BERT's 512 at 64 tokens: 0.7 MB in
    fp32, 0.17 MB in int8) are never read. Returns the rows removed."""
    embeddings = model.encoder.embeddings
    table = embeddings.position_embeddings
    if table.num_embeddings <= max_length:
        return 0
    trimmed = nn.Embedding(max_length, table.embedding_dim, dtype=table.weight.dtype, device=table.weight.device)
    with torch.no_grad():
        trimmed.weight.copy_(table.weight[:max_length])
    trimmed.weight.requires_grad_(table.weight.requires_grad)
    embeddings.position_embeddings = trimmed
    for name in ("position_ids", "token_type_ids"):  # BERT's index buffers, sized like the table
        buffer = getattr(embeddings, name, None)
        if isinstance(buffer, torch.Tensor) and buffer.dim() == 2:
            embeddings.register_buffer(name, buffer[:, :max_length].clone(), persistent=False)
    model.encoder.config.max_position_embeddings = max_length
    return table.num_embeddings - max_length


# --------------------------------------------------------------------------------------------------
# Tokenizer files


def _default_config(src_dir: Path) -> dict[str, Any]:
    """A BERT tokenizer.json skeleton for a folder that has only vocab.txt (+ tokenizer_config.json)."""
    lower = True
    tc = src_dir / "tokenizer_config.json"
    if tc.exists():
        lower = bool(json.loads(tc.read_text(encoding="utf-8")).get("do_lower_case", True))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": 0, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
        ],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": lower},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {t: {"id": t, "ids": [0], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {}},
    }


def _rewrite_config(config: dict[str, Any], vocab: list[str], source: Path, max_length: int | None) -> dict[str, Any]:
    """`config` with `vocab` as its vocabulary and every id that refers to it renumbered."""
    ids = {t: i for i, t in enumerate(vocab)}
    if len(ids) != len(vocab):
        dupes = sorted({t for t in vocab if vocab.count(t) > 1})[:5]
        raise BuildError(f"vocabulary has repeated tokens: {', '.join(dupes)}")

    def new_id(token: str, where: str) -> int:
        if token not in ids:
            raise BuildError(f"{source}: {where} {token!r} is not in the new vocabulary")
        return ids[token]

    out = json.loads(json.dumps(config))  # deep copy, JSON types only
    model = out["model"]
    model["vocab"] = ids
    unk = model.get("unk_token", "[UNK]")
    new_id(unk, "unk_token")
    for entry in out.get("added_tokens") or []:
        entry["id"] = new_id(entry["content"], "added token")
    post = out.get("post_processor")
    if post is not None:
        if post.get("type") == "TemplateProcessing":
            for name, spec in (post.get("special_tokens") or {}).items():
                spec["ids"] = [new_id(t, "special token") for t in spec.get("tokens") or [name]]
        elif post.get("type") == "BertProcessing":
            for key in ("cls", "sep"):
                post[key] = [post[key][0], new_id(post[key][0], f"post-processor {key}")]
        else:
            raise BuildError(f"{source}: unsupported post_processor {post.get('type')!r}")
    out["padding"] = None
    out["truncation"] = (
        None if max_length is None else {"direction": "Right", "max_length": int(max_length), "strategy": "LongestFirst", "stride": 0}
    )
    return out


def _special_tokens(config: dict[str, Any]) -> dict[str, str]:
    contents = {e["content"] for e in config.get("added_tokens") or []}
    vocab = config["model"]["vocab"]
    defaults = {"unk_token": config["model"].get("unk_token", "[UNK]"), "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
    return {k: v for k, v in defaults.items() if v in vocab or v in contents}


def write_tokenizer_files(vocab: list[str], src_dir: Path, out_dir: Path, max_length: int) -> None:
    """Write vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json for `vocab`.

    `src_dir` provides the pipeline (normalizer, pre-tokenizer, post-processor, decoder) through its
    tokenizer.json (or BERT defaults when it has only vocab.txt). Works for pruned and full vocabularies.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not isinstance(max_length, int) or max_length < 2:
        raise BuildError(f"max_length must be an int >= 2, got {max_length!r}")
    if not vocab:
        raise BuildError("cannot write tokenizer files for an empty vocabulary")
    bad = [t for t in vocab if not t or any(c in t for c in "\r\n")]
    if bad:
        raise BuildError(f"vocabulary tokens cannot be empty or hold line breaks: {bad[:3]!r}")
    src_json = src_dir / "tokenizer.json"
    config = _read_tokenizer_json(src_json) if src_json.exists() else _default_config(src_dir)
    new = _rewrite_config(config, list(vocab), src_json, max_length)
    specials = _special_tokens(new)
    norm = new.get("normalizer") or {}
    lower = bool(norm.get("lowercase", True)) if norm.get("type") == "BertNormalizer" else False
    tok_config: dict[str, Any] = {}
    src_tc = src_dir / "tokenizer_config.json"
    if src_tc.exists():
        try:
            old = json.loads(src_tc.read_text(encoding="utf-8"))
            tok_config.update({k: old[k] for k in ("clean_up_tokenization_spaces",) if k in old})
        except json.JSONDecodeError:
            pass
    tok_config.update(
        {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": lower,
            "do_basic_tokenize": True,
            "tokenize_chinese_chars": bool(norm.get("handle_chinese_chars", True)),
            "strip_accents": norm.get("strip_accents"),
            "model_max_length": max_length,
            **specials,
        }
    )
    files = {
        "vocab.txt": "".join(t + "\n" for t in vocab),
        "tokenizer.json": json.dumps(new, ensure_ascii=False, separators=(",", ":")),  # the browser downloads it
        "tokenizer_config.json": json.dumps(tok_config, indent=2),
        "special_tokens_map.json": json.dumps(specials, indent=2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        replace_file(out_dir / name, (text if text.endswith("\n") else text + "\n").encode("utf-8"))
