"""BERT WordPiece tokenizer, standard library only, with the ids of Hugging Face ``tokenizers``.

The pipeline is the one of ``tokenizers``' ``BertNormalizer`` + ``BertPreTokenizer`` + ``WordPiece`` +
``[CLS] $A [SEP]`` post-processing, including the split on added (special) tokens typed in the text.
Character classes come from ``_unicode_tables`` (measured from the reference), never from the host's
``unicodedata``, so every Python version (3.11 ... 3.14, Pyodide) gives the same ids.
See docs/TOKENIZER.md for the exact behaviour.
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

from . import _unicode_tables
from .pieces import split_word

__all__ = ["AddedToken", "BatchEncoding", "Encoding", "WordPieceTokenizer"]

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CHAR_CACHE_LIMIT = 65_536
_WORD_CACHE_LIMIT = 32_768
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3


def _well_formed(text: str) -> str:
    """Read surrogate code points as UTF-16: a high + low pair becomes its character, every other
    surrogate U+FFFD, exactly like JavaScript's ``String.prototype.toWellFormed``. (``tokenizers``
    refuses strings with surrogates; it drops U+FFFD when ``clean_text`` is on.)"""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _in_ranges(flat: Sequence[int], cp: int) -> bool:
    """Whether ``cp`` lies in one of the flat ``[start, end_exclusive, ...]`` ranges."""
    return bisect_right(flat, cp) & 1 == 1


def _class_body(flat: Sequence[int]) -> str:
    """Flat ranges -> the inside of a regex character class, with explicit code points."""
    return "".join(
        f"\\U{start:08x}" if end - start == 1 else f"\\U{start:08x}-\\U{end - 1:08x}"
        for start, end in zip(flat[::2], flat[1::2])
    )


class _Tables:
    """The reference's per-character behaviour, decoded from a generated tables module."""

    def __init__(self, mod: ModuleType = _unicode_tables) -> None:
        self.clean_drop: tuple[int, ...] = mod.CLEAN_DROP
        self.clean_space: tuple[int, ...] = mod.CLEAN_SPACE
        self.cjk: tuple[int, ...] = mod.CJK
        self.marks: tuple[int, ...] = mod.MARKS
        self.pre_space: tuple[int, ...] = mod.PRE_SPACE
        self.pre_punct: tuple[int, ...] = mod.PRE_PUNCT
        lower: dict[int, str] = {}
        runs = mod.LOWER_RUNS
        for i in range(0, len(runs), 4):
            start, end, step, delta = runs[i : i + 4]
            for cp in range(start, end, step):
                lower[cp] = chr(cp + delta)
        lower.update(mod.LOWER_MULTI)
        self.lower = lower
        nfd: dict[int, str] = {}
        flat, i = mod.NFD, 0
        while i < len(flat):
            n = flat[i + 1]
            nfd[flat[i]] = "".join(map(chr, flat[i + 2 : i + 2 + n]))
            i += 2 + n
        self.nfd = nfd
        ccc: dict[int, int] = {}
        runs = mod.CCC
        for i in range(0, len(runs), 3):
            for cp in range(runs[i], runs[i + 1]):
                ccc[cp] = runs[i + 2]
        self.ccc = ccc
        # Combining marks that survive accent stripping, and characters decomposing to one: only text
        # containing them can show NFD's canonical reordering after the marks are stripped.
        kept = {cp for cp in ccc if not _in_ranges(self.marks, cp)}
        sensitive = kept | {cp for cp, d in nfd.items() if any(ord(c) in kept for c in d)}
        flat: list[int] = []
        for cp in sorted(sensitive):
            if flat and flat[-1] == cp:
                flat[-1] = cp + 1
            else:
                flat += [cp, cp + 1]
        self.reorder_sensitive = tuple(flat)
        self.reference: str = mod.REFERENCE

    def decompose(self, cp: int) -> str:
        """Full canonical decomposition (NFD) of one code point, as the reference computes it."""
        if _HANGUL_FIRST <= cp <= _HANGUL_LAST:
            s = cp - _HANGUL_FIRST
            trail = s % 28
            return chr(0x1100 + s // 588) + chr(0x1161 + (s % 588) // 28) + (chr(0x11A7 + trail) if trail else "")
        return self.nfd.get(cp) or chr(cp)

    def normalize_char(self, cp: int, clean_text: bool, cjk: bool, strip_accents: bool, lowercase: bool) -> str:
        """``BertNormalizer`` applied to one character.

        The normalizer is per character: its only cross-character step, NFD's canonical reordering,
        moves combining marks (ccc > 0) only, and the reference strips all of those whenever it
        decomposes (checked by tools/gen_unicode_tables.py).
        """
        if clean_text:
            if _in_ranges(self.clean_drop, cp):
                return ""
            if _in_ranges(self.clean_space, cp):
                return " "
        s = chr(cp)
        if strip_accents:
            s = "".join(c for c in self.decompose(cp) if not _in_ranges(self.marks, ord(c)))
        if lowercase:
            s = "".join(self.lower.get(ord(c), c) for c in s)
        if cjk and _in_ranges(self.cjk, cp):
            s = f" {s} "
        return s

    def normalize_text(self, text: str, clean_text: bool, cjk: bool, strip_accents: bool, lowercase: bool) -> str:
        """``BertNormalizer`` on a whole text, with NFD's canonical reordering (the exact, slow path)."""
        if not strip_accents:
            return "".join(self.normalize_char(ord(c), clean_text, cjk, False, lowercase) for c in text)
        cps: list[int] = []
        for c in text:
            cp = ord(c)
            if clean_text:
                if _in_ranges(self.clean_drop, cp):
                    continue
                if _in_ranges(self.clean_space, cp):
                    cps.append(0x20)
                    continue
            if cjk and _in_ranges(self.cjk, cp):
                cps += [0x20, *map(ord, self.decompose(cp)), 0x20]
            else:
                cps += map(ord, self.decompose(cp))
        ccc = self.ccc
        ordered: list[int] = []
        run: list[int] = []
        for cp in cps:
            if cp in ccc:
                run.append(cp)
                continue
            if run:
                ordered += sorted(run, key=ccc.__getitem__)  # stable: canonical ordering
                run = []
            ordered.append(cp)
        if run:
            ordered += sorted(run, key=ccc.__getitem__)
        lower = self.lower if lowercase else {}
        return "".join(lower.get(cp) or chr(cp) for cp in ordered if not _in_ranges(self.marks, cp))


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


class _CharMap(dict):  # type: ignore[type-arg]
    """Lazy ``str.translate`` table: code point -> normalized text, computed on first use, bounded."""

    def __init__(self, tables: _Tables, options: tuple[bool, bool, bool, bool]) -> None:
        super().__init__()
        self._tables = tables
        self._options = options
        for cp in range(128):
            self[cp] = tables.normalize_char(cp, *options)

    def __missing__(self, cp: int) -> str:
        s = self._tables.normalize_char(cp, *self._options)
        if len(self) < _CHAR_CACHE_LIMIT:
            self[cp] = s
        return s


class Encoding(NamedTuple):
    """One encoded text: ``ids``, ``tokens``, ``attention_mask`` (all 1) and ``token_type_ids`` (all 0)."""

    ids: list[int]
    tokens: list[str]
    attention_mask: list[int]
    token_type_ids: list[int]


class BatchEncoding(NamedTuple):
    """Encoded texts padded with the pad id to the longest in the batch (mask 0 on padding)."""

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    token_type_ids: list[list[int]]


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the text before WordPiece (``tokenizers``' added vocabulary).

    ``normalized=False`` tokens are matched in the raw text (case-sensitive: ``[cls]`` is not
    ``[CLS]``); ``normalized=True`` tokens are matched in the normalized text.
    """

    content: str
    id: int
    special: bool = True
    normalized: bool = False


class WordPieceTokenizer:
    """Uncased/cased BERT WordPiece tokenizer; ids identical to ``tokenizers`` (see module docstring)."""

    def __init__(
        self,
        vocab: Sequence[str] | Mapping[str, int],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
        clean_text: bool = True,
        unk_token: str = "[UNK]",
        cls_token: str | None = "[CLS]",
        sep_token: str | None = "[SEP]",
        pad_token: str | None = "[PAD]",
        mask_token: str | None = "[MASK]",
        continuing_subword_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        added_tokens: Iterable[AddedToken] | None = None,
    ) -> None:
        """Build from a vocabulary (tokens in id order, or token -> id) and BERT's options.

        ``strip_accents=None`` follows ``lowercase`` (as in ``tokenizers``). ``cls_token=None`` and
        ``sep_token=None`` together disable special tokens. ``added_tokens=None`` means the special
        tokens among unk/cls/sep/pad/mask that are in the vocabulary, matched in the raw text.
        """
        if isinstance(vocab, Mapping):
            token_to_id = {str(t): int(i) for t, i in vocab.items()}
        elif isinstance(vocab, (str, bytes)) or not isinstance(vocab, Sequence):
            raise TypeError("vocab must be a sequence of tokens or a mapping token -> id")
        else:
            # Like tokenizers' vocab.txt reader: a repeated token keeps its last line's id.
            token_to_id = {t: i for i, t in enumerate(vocab)}
        if not token_to_id:
            raise ValueError("vocab is empty")
        for name, value in (
            ("lowercase", lowercase),
            ("handle_chinese_chars", handle_chinese_chars),
            ("clean_text", clean_text),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        if strip_accents is not None and not isinstance(strip_accents, bool):
            raise TypeError(f"strip_accents must be a bool or None, got {type(strip_accents).__name__}")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}")
        if (cls_token is None) != (sep_token is None):
            raise ValueError("cls_token and sep_token must both be set or both be None")

        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.handle_chinese_chars = handle_chinese_chars
        self.clean_text = clean_text
        self.unk_token = unk_token
        self.cls_token = cls_token
        self.sep_token = sep_token
        self.pad_token = pad_token
        self.mask_token = mask_token
        self.continuing_subword_prefix = continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word

        if added_tokens is None:
            defaults = (pad_token, unk_token, cls_token, sep_token, mask_token)
            added = [AddedToken(t, token_to_id[t]) for t in dict.fromkeys(defaults) if t and t in token_to_id]
        else:
            added = list(added_tokens)
        self.added_tokens: tuple[AddedToken, ...] = tuple(added)
        self._vocab = dict(token_to_id)  # the WordPiece model's vocabulary only
        for tok in added:
            token_to_id.setdefault(tok.content, tok.id)
        self._token_to_id = token_to_id
        self._id_to_token = {i: t for t, i in token_to_id.items()}

        if unk_token not in self._vocab:
            raise ValueError(f"unk_token {unk_token!r} is not in the vocabulary")
        self._unk_id = self._vocab[unk_token]
        self._cls_id = self._sep_id = None
        if cls_token is not None and sep_token is not None:
            for name, tok in (("cls_token", cls_token), ("sep_token", sep_token)):
                if tok not in token_to_id:
                    raise ValueError(f"{name} {tok!r} is not in the vocabulary")
            self._cls_id, self._sep_id = token_to_id[cls_token], token_to_id[sep_token]
        self._pad_id = token_to_id.get(pad_token) if pad_token is not None else None

        tables = _tables()
        strip = lowercase if strip_accents is None else strip_accents
        self._options = (clean_text, handle_chinese_chars, strip, lowercase)
        self._charmap = _CharMap(tables, self._options)
        self._tables = tables
        self._reorder_re = re.compile(f"[{_class_body(tables.reorder_sensitive)}]") if strip else None
        space, punct = _class_body(tables.pre_space), _class_body(tables.pre_punct)
        self._word_re = re.compile(f"[^{space}{punct}]+|[{punct}]")
        self._max_piece = max(map(len, self._vocab))
        self._word_cache: dict[str, tuple[list[int], list[str]]] = {}
        self._raw_re = self._added_pattern([t.content for t in added if not t.normalized])
        self._norm_re = self._added_pattern([self._normalize(t.content) for t in added if t.normalized])
        self._added_ids = {t.content: t.id for t in added if not t.normalized}
        self._added_ids.update({self._normalize(t.content): t.id for t in added if t.normalized})
        self._added_tokens_by_id = {t.id: t.content for t in added}

    # ----------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike[str], **options: Any) -> WordPieceTokenizer:
        """Load a ``vocab.txt`` (one token per line, id = line number) with BERT ``options``."""
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        ws = "".join(chr(cp) for s, e in zip(_tables().pre_space[::2], _tables().pre_space[1::2]) for cp in range(s, e))
        return cls([line.rstrip(ws) for line in lines], **options)

    @classmethod
    def from_tokenizer_json(cls, path: str | os.PathLike[str]) -> WordPieceTokenizer:
        """Load a ``tokenizers`` ``tokenizer.json``; its padding and truncation settings are ignored.

        Raises ValueError naming the file for any setting this implementation does not reproduce.
        """
        with open(path, encoding="utf-8") as f:
            try:
                config = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from None
        return cls._from_config(config, str(path))

    @classmethod
    def from_pretrained_dir(cls, directory: str | os.PathLike[str]) -> WordPieceTokenizer:
        """Load a model folder: ``tokenizer.json`` if present, else ``vocab.txt`` (+ ``tokenizer_config.json``)."""
        tj = os.path.join(directory, "tokenizer.json")
        if os.path.isfile(tj):
            return cls.from_tokenizer_json(tj)
        vocab = os.path.join(directory, "vocab.txt")
        if not os.path.isfile(vocab):
            raise FileNotFoundError(f"{directory}: neither tokenizer.json nor vocab.txt found")
        options: dict[str, Any] = {}
        tc = os.path.join(directory, "tokenizer_config.json")
        if os.path.isfile(tc):
            with open(tc, encoding="utf-8") as f:
                conf = json.load(f)
            keys = {
                "do_lower_case": "lowercase",
                "strip_accents": "strip_accents",
                "tokenize_chinese_chars": "handle_chinese_chars",
                "unk_token": "unk_token",
                "cls_token": "cls_token",
                "sep_token": "sep_token",
                "pad_token": "pad_token",
                "mask_token": "mask_token",
            }
            for key, opt in keys.items():
                value = conf.get(key)
                if isinstance(value, dict):  # serialized AddedToken
                    value = value.get("content")
                if value is not None or key == "strip_accents":
                    options[opt] = value
        return cls.from_vocab_file(vocab, **options)

    @classmethod
    def _from_config(cls, config: Mapping[str, Any], source: str) -> WordPieceTokenizer:
        def fail(what: str) -> ValueError:
            return ValueError(f"{source}: unsupported tokenizer.json setting: {what}")

        model = config.get("model") or {}
        if model.get("type") != "WordPiece":
            raise fail(f"model type {model.get('type')!r} (only WordPiece is supported)")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict):
            raise fail("model.vocab is not a token -> id object")
        options: dict[str, Any] = {
            "unk_token": model.get("unk_token", "[UNK]"),
            "continuing_subword_prefix": model.get("continuing_subword_prefix", "##"),
            "max_input_chars_per_word": model.get("max_input_chars_per_word", 100),
        }

        norm = config.get("normalizer")
        if norm is None:
            options.update(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=False)
        elif norm.get("type") == "BertNormalizer":
            options.update(
                clean_text=bool(norm.get("clean_text", True)),
                handle_chinese_chars=bool(norm.get("handle_chinese_chars", True)),
                strip_accents=norm.get("strip_accents"),
                lowercase=bool(norm.get("lowercase", True)),
            )
        else:
            raise fail(f"normalizer {norm.get('type')!r} (only BertNormalizer or none)")

        pre = config.get("pre_tokenizer")
        if not pre or pre.get("type") != "BertPreTokenizer":
            raise fail(f"pre_tokenizer {pre and pre.get('type')!r} (only BertPreTokenizer)")

        post = config.get("post_processor")
        cls_tok = sep_tok = None
        if post is None:
            pass
        elif post.get("type") == "BertProcessing":
            cls_tok, sep_tok = post["cls"][0], post["sep"][0]
        elif post.get("type") == "TemplateProcessing":
            single = post.get("single") or []
            ok = (
                len(single) == 3
                and "SpecialToken" in single[0]
                and single[1].get("Sequence", {}).get("id") == "A"
                and "SpecialToken" in single[2]
                and all((next(iter(p.values())).get("type_id", 0) == 0) for p in single)
            )
            if not ok:
                raise fail("post_processor template other than [CLS] $A [SEP] with type id 0")
            cls_tok, sep_tok = single[0]["SpecialToken"]["id"], single[2]["SpecialToken"]["id"]
            for tok in (cls_tok, sep_tok):
                ids = post.get("special_tokens", {}).get(tok, {}).get("ids")
                if ids is not None and (len(ids) != 1 or vocab.get(tok, ids[0]) != ids[0]):
                    raise fail(f"special token {tok!r} with ids {ids} differing from the vocabulary")
        else:
            raise fail(f"post_processor {post.get('type')!r}")
        options.update(cls_token=cls_tok, sep_token=sep_tok)

        added = []
        for entry in config.get("added_tokens") or []:
            for flag in ("single_word", "lstrip", "rstrip"):
                if entry.get(flag):
                    raise fail(f"added token {entry.get('content')!r} with {flag}=true")
            added.append(
                AddedToken(entry["content"], int(entry["id"]), bool(entry.get("special")), bool(entry.get("normalized")))
            )
        pad = (config.get("padding") or {}).get("pad_token", "[PAD]")
        mask = "[MASK]" if any(t.content == "[MASK]" for t in added) else None
        return cls(vocab, pad_token=pad, mask_token=mask, added_tokens=added, **options)

    # ----------------------------------------------------------------------------------------------
    # Vocabulary

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens, added tokens included (``get_vocab_size()`` in ``tokenizers``)."""
        return len(self._token_to_id)

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token``, or None when unknown."""
        return self._token_to_id.get(token)

    def id_to_token(self, id: int) -> str | None:
        """Token of ``id``, or None when unknown."""
        return self._id_to_token.get(id)

    # ----------------------------------------------------------------------------------------------
    # Tokenization

    @staticmethod
    def _added_pattern(contents: list[str]) -> re.Pattern[str] | None:
        contents = [c for c in dict.fromkeys(contents) if c]
        if not contents:
            return None
        # Longest first: at the leftmost match position the longest token wins, like tokenizers'
        # leftmost-longest Aho-Corasick automaton.
        return re.compile("|".join(re.escape(c) for c in sorted(contents, key=len, reverse=True)))

    def _normalize(self, text: str) -> str:
        if self._reorder_re is not None and not text.isascii() and self._reorder_re.search(text):
            return self._tables.normalize_text(text, *self._options)
        return text.translate(self._charmap)

    def _wordpiece(self, word: str) -> tuple[list[int], list[str]]:
        if len(word) > self.max_input_chars_per_word:
            return [self._unk_id], [self.unk_token]
        vocab = self._vocab
        tokens = split_word(word, vocab, self._max_piece, self.continuing_subword_prefix)
        if tokens is None:
            return [self._unk_id], [self.unk_token]
        return [vocab[t] for t in tokens], tokens

    def _pretokenized(self, normalized: str, ids: list[int], tokens: list[str]) -> None:
        cache = self._word_cache
        for word in self._word_re.findall(normalized):
            hit = cache.get(word)
            if hit is None:
                hit = self._wordpiece(word)
                if len(cache) >= _WORD_CACHE_LIMIT:
                    cache.clear()
                cache[word] = hit
            ids += hit[0]
            tokens += hit[1]

    def _segment(self, raw: str, ids: list[int], tokens: list[str]) -> None:
        normalized = self._normalize(raw)
        norm_re = self._norm_re
        if norm_re is None:
            self._pretokenized(normalized, ids, tokens)
            return
        pos = 0
        for m in norm_re.finditer(normalized):
            self._pretokenized(normalized[pos : m.start()], ids, tokens)
            ids.append(self._added_ids[m.group()])
            tokens.append(m.group())
            pos = m.end()
        self._pretokenized(normalized[pos:], ids, tokens)

    def _pieces(self, text: str) -> tuple[list[int], list[str]]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.isascii() and _SURROGATE_RE.search(text):
            text = _well_formed(text)
        ids: list[int] = []
        tokens: list[str] = []
        raw_re = self._raw_re
        if raw_re is None or raw_re.search(text) is None:
            self._segment(text, ids, tokens)
            return ids, tokens
        pos = 0
        for m in raw_re.finditer(text):
            self._segment(text[pos : m.start()], ids, tokens)
            ids.append(self._added_ids[m.group()])
            tokens.append(m.group())
            pos = m.end()
        self._segment(text[pos:], ids, tokens)
        return ids, tokens

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of ``text`` (added tokens typed in the text included; no [CLS]/[SEP])."""
        return self._pieces(text)[1]

    def encode(self, text: str, max_length: int | None = None, add_special_tokens: bool = True) -> Encoding:
        """Encode one text as ``[CLS] pieces [SEP]``, keeping the first ``max_length - 2`` pieces if given."""
        ids, tokens = self._pieces(text)
        special = add_special_tokens and self._cls_id is not None
        if max_length is not None:
            if not isinstance(max_length, int) or isinstance(max_length, bool):
                raise TypeError(f"max_length must be an int or None, got {type(max_length).__name__}")
            keep = max_length - (2 if special else 0)
            if keep < 0:
                raise ValueError(f"max_length={max_length} leaves no room for [CLS] and [SEP] (minimum 2)")
            del ids[keep:], tokens[keep:]
        if special:
            ids = [self._cls_id, *ids, self._sep_id]  # type: ignore[list-item]
            tokens = [self.cls_token, *tokens, self.sep_token]  # type: ignore[list-item]
        n = len(ids)
        return Encoding(ids, tokens, [1] * n, [0] * n)

    def encode_batch(
        self, texts: Sequence[str], max_length: int | None = None, add_special_tokens: bool = True
    ) -> BatchEncoding:
        """Encode texts and pad them with the pad id to the longest one in the batch."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError("texts must be a sequence of str (use encode() for a single text)")
        if self._pad_id is None:
            raise ValueError(f"pad_token {self.pad_token!r} is not in the vocabulary: cannot pad a batch")
        encodings = [self.encode(t, max_length, add_special_tokens) for t in texts]
        width = max((len(e.ids) for e in encodings), default=0)
        pad = self._pad_id
        input_ids, mask, types = [], [], []
        for e in encodings:
            extra = width - len(e.ids)
            input_ids.append(e.ids + [pad] * extra)
            mask.append(e.attention_mask + [0] * extra)
            types.append(e.token_type_ids + [0] * extra)
        return BatchEncoding(input_ids, mask, types)

    def __repr__(self) -> str:
        return (
            f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
            f"strip_accents={self.strip_accents}, handle_chinese_chars={self.handle_chinese_chars}, "
            f"clean_text={self.clean_text})"
        )
