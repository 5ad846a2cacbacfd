"""WordPiece tokenizer: behaviour, API, and id parity with Hugging Face ``tokenizers`` (the reference)."""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_wordpiece_fixtures as fx  # noqa: E402

from runtime_py.wordpiece import AddedToken, WordPieceTokenizer  # noqa: E402
from runtime_py.wordpiece import _tables as unicode_tables  # noqa: E402

FILES = fx.reference_files()
GENERATED = fx.DEFAULT_OUT


@pytest.fixture(scope="module")
def ref() -> Tokenizer:
    return fx.reference_tokenizer()


@pytest.fixture(scope="module")
def tok() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_tokenizer_json(FILES["tokenizer.json"])


@pytest.fixture(scope="module")
def tok_vocab() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(FILES["vocab.txt"])


def assert_parity(tok: WordPieceTokenizer, texts: list[str], expected: list[list[int]], what: str, **kw: object) -> None:
    bad = [(t, e) for t, e in zip(texts, expected) if tok.encode(t, **kw).ids != e]  # type: ignore[arg-type]
    if bad:
        lines = [f"{len(bad)} of {len(texts)} {what} differ from tokenizers; first ones:"]
        for text, exp in bad[:5]:
            got = tok.encode(text, **kw)  # type: ignore[arg-type]
            lines.append(f"  {text!r}\n    expected {exp}\n    got      {got.ids} {got.tokens}")
        pytest.fail("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# Behaviour (PLATFORM.md's list of what the reference does)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("hello\x00world", ["hello", "##world"]),  # NUL, U+FFFD and Cc/Cf are dropped
        ("hello\ufffdworld", ["hello", "##world"]),
        ("a\u200bb", ["ab"]),
        ("a\x0bb", ["ab"]),  # VT is a control to clean_text (dropped), not a space
        ("one\ttwo\nthree\rfour\u00a0five\u3000six\u2028seven", ["one", "two", "three", "four", "five", "six", "seven"]),
        ("café naïve", ["cafe", "naive"]),  # NFD then drop marks
        ("Hello, World!", ["hello", ",", "world", "!"]),
        ("Ａｂｃ", ["[UNK]"]),  # no NFKC
        ("hi🍕there", ["[UNK]"]),  # emoji are not punctuation
        ("中文", ["中", "文"]),  # CJK ideographs split
        ("", []),
        ("[MASK]ing", ["[MASK]", "ing"]),  # typed special tokens stay whole, and start a new word
        ("a[SEP]b", ["a", "[SEP]", "b"]),
        ("[cls]", ["[", "cl", "##s", "]"]),  # matching is case-sensitive and before normalization
        ("a" * 101, ["[UNK]"]),  # more than 100 characters
    ],
)
def test_behaviour(tok: WordPieceTokenizer, ref: Tokenizer, text: str, tokens: list[str]) -> None:
    assert tok.tokenize(text) == tokens
    assert tok.encode(text).ids == ref.encode(text).ids


def test_normalization_details(tok: WordPieceTokenizer) -> None:
    norm = tok._normalize
    assert norm("ΟΔΟΣ") == "οδοσ"  # per-character lower-case: no final sigma
    assert norm("한") == "\u1112\u1161\u11ab"  # Hangul decomposes into jamo
    assert norm("हिन्दी") == "हिनदी"  # the virama (Mn) is stripped, the vowel signs (Mc) are not
    assert norm("ภาษาไทย") == normalizers.BertNormalizer().normalize_str("ภาษาไทย") == "ภาษาไทย"
    assert norm("ที่") == "ท"  # Thai tone and above-vowel marks are Mn
    assert norm("かな") == "かな"  # kana are not split
    assert norm("İ") == "i"  # decomposed first, so no combining dot survives
    assert norm("中") == " 中 "


def test_hundred_character_limit_counts_normalized_characters(tok: WordPieceTokenizer, ref: Tokenizer) -> None:
    # 100 accented letters are 200 code points before stripping and 100 after: still tokenized.
    for text in ("e\u0301" * 100, "é" * 100, "a" * 100, "é" * 101, "\U00020000" * 3):
        assert tok.encode(text).ids == ref.encode(text).ids
    assert tok.tokenize("e\u0301" * 100) != ["[UNK]"]


def test_canonical_reordering_of_kept_marks(tok: WordPieceTokenizer) -> None:
    # U+08D4 (class 230) and U+1E94A (class 7) both survive accent stripping: NFD reorders them.
    ref_norm = normalizers.BertNormalizer().normalize_str
    for text in ("a\u08d4\U0001e94ab", "a\U0001e94a\u08d4b", "x\u0301\u0316\u08d4\u1b44y", "\U0001d16d\U0001d165"):
        assert tok._normalize(text) == ref_norm(text)
    assert tok._normalize("a\u08d4\U0001e94a") == "a\U0001e94a\u08d4"


def test_lone_surrogates_are_read_as_utf16(tok: WordPieceTokenizer, ref: Tokenizer) -> None:
    assert tok.encode("a\ud800b").ids == ref.encode("a\ufffdb").ids == ref.encode("ab").ids
    assert tok.encode("\ud83d\ude00 x").ids == ref.encode("\U0001f600 x").ids  # a pair is its character
    assert tok.tokenize("x\udfff") == ["x"]
    loose = WordPieceTokenizer.from_vocab_file(FILES["vocab.txt"], clean_text=False)
    assert loose.tokenize("x\udfff") == ["[UNK]"]  # U+FFFD survives without clean_text


def test_every_code_point_normalizes_like_the_reference(tok: WordPieceTokenizer) -> None:
    """The tables, not the host's unicodedata, decide: exhaustive over U+0000..U+10FFFF."""
    ref_norm = normalizers.BertNormalizer().normalize_str
    bad = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if tok._normalize(c) != ref_norm(c):
            bad.append(f"U+{cp:04X}: {tok._normalize(c)!r} != {ref_norm(c)!r}")
    assert not bad, bad[:10]


def test_host_unicodedata_would_disagree() -> None:
    """Why the tables exist: the host's Unicode data differs from the reference on these characters."""
    t = unicode_tables()
    # U+0890 is a format character since Unicode 14, but the reference's tables predate it: kept.
    assert unicodedata.category("\u0890") == "Cf"
    assert t.normalize_char(0x890, True, True, True, True) == "\u0890"
    # U+11938 decomposes since Unicode 13 (host NFD does it), the reference does not.
    assert unicodedata.normalize("NFD", "\U00011938") != "\U00011938"
    assert t.decompose(0x11938) == "\U00011938"
    # U+1C89 (Unicode 16) lower-cases in the reference on every host.
    assert t.normalize_char(0x1C89, True, True, True, True) == "\u1c8a"
    # U+0488 is Me (not Mn) and is kept; U+166D was punctuation in old Unicode and still splits.
    assert t.normalize_char(0x488, True, True, True, True) == "\u0488"


# --------------------------------------------------------------------------------------------------
# API


def test_encoding_fields(tok: WordPieceTokenizer) -> None:
    enc = tok.encode("Hello world")
    assert enc.tokens == ["[CLS]", "hello", "world", "[SEP]"]
    assert enc.ids == [101, 7592, 2088, 102]
    assert enc.attention_mask == [1, 1, 1, 1]
    assert enc.token_type_ids == [0, 0, 0, 0]
    assert tok.encode("").ids == [101, 102]
    assert tok.encode("Hello world", add_special_tokens=False).ids == [7592, 2088]


def test_vocabulary_accessors(tok: WordPieceTokenizer, tok_vocab: WordPieceTokenizer, ref: Tokenizer) -> None:
    assert tok.vocab_size == tok_vocab.vocab_size == ref.get_vocab_size() == 30522
    for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##ing", "not-a-token"):
        assert tok.token_to_id(token) == tok_vocab.token_to_id(token) == ref.token_to_id(token)
    for i in (0, 100, 101, 999, 7592, 30521, 30522):
        assert tok.id_to_token(i) == tok_vocab.id_to_token(i) == ref.id_to_token(i)
    assert tok.id_to_token(-1) is None


@pytest.mark.parametrize("max_length", [2, 3, 5, 8, 16])
def test_truncation_matches_reference(tok: WordPieceTokenizer, ref: Tokenizer, max_length: int) -> None:
    files = fx.dataset_files(fx.DEFAULT_DATASETS)
    texts = fx.read_texts(files[0])[:500] if files else []
    texts += ["[MASK] " * 10, "unbelievably tokenized words", ""] + fx.random_texts(3, 300)
    assert_parity(tok, texts, fx.reference_ids(ref, texts, max_length), f"texts at max_length={max_length}", max_length=max_length)
    assert len(tok.encode("a b c d e f g h i j k l m n o p q", max_length=max_length).ids) == max_length


def test_truncation_without_special_tokens(tok: WordPieceTokenizer) -> None:
    assert tok.encode("a b c", max_length=2, add_special_tokens=False).tokens == ["a", "b"]
    assert tok.encode("a b c", max_length=0, add_special_tokens=False).ids == []


def test_batch_pads_to_longest(tok: WordPieceTokenizer, ref: Tokenizer) -> None:
    texts = ["hi", "hello there world", "", "a[MASK]b c"]
    batch = tok.encode_batch(texts)
    ref.enable_padding(pad_id=0, pad_token="[PAD]")
    try:
        expected = ref.encode_batch(texts)
    finally:
        ref.no_padding()
    assert batch.input_ids == [e.ids for e in expected]
    assert batch.attention_mask == [e.attention_mask for e in expected]
    assert batch.token_type_ids == [e.type_ids for e in expected]
    assert {len(row) for row in batch.input_ids} == {6}
    assert tok.encode_batch([]).input_ids == []
    truncated = tok.encode_batch(["one two three four", "x"], max_length=4)
    assert truncated.input_ids == [[101, 2028, 2048, 102], [101, 1060, 102, 0]]


@pytest.mark.parametrize("bad", [None, b"bytes", 5, ["list"]])
def test_non_string_input_is_a_type_error(tok: WordPieceTokenizer, bad: object) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str"):
        tok.tokenize(bad)  # type: ignore[arg-type]


def test_argument_errors(tok: WordPieceTokenizer) -> None:
    with pytest.raises(TypeError, match="sequence of str"):
        tok.encode_batch("not a list")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="minimum 2"):
        tok.encode("hello", max_length=1)
    with pytest.raises(TypeError, match="max_length"):
        tok.encode("hello", max_length=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unk_token"):
        WordPieceTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="cls_token"):
        WordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(ValueError, match="both"):
        WordPieceTokenizer(["[UNK]", "[CLS]"], sep_token=None)
    with pytest.raises(TypeError, match="lowercase"):
        WordPieceTokenizer(["[UNK]"], lowercase="yes", cls_token=None, sep_token=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_input_chars_per_word"):
        WordPieceTokenizer(["[UNK]"], max_input_chars_per_word=0, cls_token=None, sep_token=None)
    no_pad = WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "a"])
    assert no_pad.encode("a").ids == [1, 3, 2]
    with pytest.raises(ValueError, match="pad_token"):
        no_pad.encode_batch(["a"])


def test_minimal_vocabulary_and_no_special_tokens() -> None:
    t = WordPieceTokenizer({"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3}, cls_token=None, sep_token=None)
    assert t.tokenize("Unaffable unknown") == ["un", "##aff", "##able", "[UNK]"]
    assert t.encode("unaffable").ids == [1, 2, 3]


def _save(tmp_path: Path, tk: Tokenizer, name: str = "tokenizer.json") -> Path:
    path = tmp_path / name
    tk.save(str(path))
    return path


def test_unsupported_tokenizer_json_settings(tmp_path: Path) -> None:
    config = json.loads(FILES["tokenizer.json"].read_text())
    cases = {
        "model type": {**config, "model": {"type": "BPE", "vocab": {}, "merges": []}},
        "normalizer 'NFKC'": {**config, "normalizer": {"type": "NFKC"}},
        "pre_tokenizer 'Whitespace'": {**config, "pre_tokenizer": {"type": "Whitespace"}},
        "post_processor 'RobertaProcessing'": {**config, "post_processor": {"type": "RobertaProcessing"}},
        "lstrip=true": {**config, "added_tokens": [{**config["added_tokens"][4], "lstrip": True}]},
    }
    for what, conf in cases.items():
        path = tmp_path / "tokenizer.json"
        path.write_text(json.dumps(conf))
        with pytest.raises(ValueError, match=what) as err:
            WordPieceTokenizer.from_tokenizer_json(path)
        assert str(path) in str(err.value)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        WordPieceTokenizer.from_tokenizer_json(path)


def test_tokenizer_json_ignores_built_in_padding_and_truncation(tok: WordPieceTokenizer) -> None:
    config = json.loads(FILES["tokenizer.json"].read_text())
    assert config["truncation"]["max_length"] == 128 and config["padding"] is not None
    long = " ".join(["word"] * 300)
    assert len(tok.encode(long).ids) == 302
    assert len(tok.encode_batch(["a"]).input_ids[0]) == 3


def test_normalized_added_tokens(tmp_path: Path) -> None:
    ref = fx.reference_tokenizer()
    ref.add_tokens([tokenizers.AddedToken("Café Bar", normalized=True), tokenizers.AddedToken("XyZ", normalized=False)])
    ours = WordPieceTokenizer.from_tokenizer_json(_save(tmp_path, ref))
    assert ours.vocab_size == ref.get_vocab_size()
    texts = ["cafe bar", "CAFÉ BARs", "xCafé Barx", "xyz XyZ XyZz", "a [MASK] cafe  bar", "caf\u00e9 bar[SEP]XyZ"]
    for text in texts:
        assert ours.encode(text).ids == ref.encode(text).ids, text
    assert ours.tokenize("xyz XyZ") == ["x", "##y", "##z", "XyZ"]


@pytest.mark.parametrize(
    "options",
    [
        {"lowercase": False},
        {"lowercase": True, "strip_accents": False},
        {"lowercase": False, "strip_accents": True},
        {"handle_chinese_chars": False},
        {"clean_text": False},
    ],
)
def test_options_match_reference(options: dict[str, bool], tmp_path: Path) -> None:
    vocab = {t: i for i, t in enumerate(FILES["vocab.txt"].read_text(encoding="utf-8").split("\n")[:-1])}
    ref = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    ref.normalizer = normalizers.BertNormalizer(**options)  # type: ignore[arg-type]
    ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ref.post_processor = processors.BertProcessing(("[SEP]", 102), ("[CLS]", 101))
    ref.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    texts = fx.EDGE_CASES + fx.random_texts(11, 2000) + ["Καλημέρα ΚΌΣΜΕ", "İI ıi", "\x1c\x1d a\x0bb\x85c"]
    expected = fx.reference_ids(ref, texts)
    assert_parity(WordPieceTokenizer.from_vocab_file(FILES["vocab.txt"], **options), texts, expected, f"texts with {options}")  # type: ignore[arg-type]
    assert_parity(WordPieceTokenizer.from_tokenizer_json(_save(tmp_path, ref)), texts, expected, f"texts with {options} (json)")


def test_from_pretrained_dir(tmp_path: Path, tok: WordPieceTokenizer) -> None:
    full = tmp_path / "full"
    full.mkdir()
    shutil.copy(FILES["tokenizer.json"], full)
    shutil.copy(FILES["vocab.txt"], full)
    assert WordPieceTokenizer.from_pretrained_dir(full).encode("Héllo").ids == tok.encode("Héllo").ids

    cased = tmp_path / "cased"
    cased.mkdir()
    shutil.copy(FILES["vocab.txt"], cased)
    (cased / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    t = WordPieceTokenizer.from_pretrained_dir(cased)
    assert t.lowercase is False
    assert t.tokenize("Héllo") == ["[UNK]"]  # no lower-casing and no accent stripping
    (cased / "tokenizer_config.json").unlink()
    assert WordPieceTokenizer.from_pretrained_dir(cased).tokenize("Héllo") == ["hello"]
    with pytest.raises(FileNotFoundError, match="neither tokenizer.json nor vocab.txt"):
        WordPieceTokenizer.from_pretrained_dir(tmp_path)


def test_vocab_file_duplicates_keep_last_line(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("[UNK]\n[CLS]\n[SEP]\nab\nab \n##c\n", encoding="utf-8")
    t = WordPieceTokenizer.from_vocab_file(path)
    assert t.token_to_id("ab") == 4  # trailing whitespace is trimmed, the later line wins
    assert t.encode("abc").ids == [1, 4, 5, 2]


def test_caches_do_not_change_results(tok_vocab: WordPieceTokenizer) -> None:
    texts = fx.random_texts(5, 200)
    first = [tok_vocab.encode(t).ids for t in texts]
    assert [tok_vocab.encode(t).ids for t in texts] == first


# --------------------------------------------------------------------------------------------------
# Parity with the reference: every dataset text, the committed fixture, the seeded random strings


def test_committed_fixture() -> None:
    data = json.loads(fx.COMMITTED.read_text())
    t = WordPieceTokenizer(data["vocab"])
    cases = data["cases"]
    assert len(cases) >= 400
    for case in cases:
        got = t.encode(case["text"], max_length=case.get("max_length")).ids
        assert got == case["ids"], case["text"]


def test_parity_datasets(tok: WordPieceTokenizer, tok_vocab: WordPieceTokenizer, ref: Tokenizer) -> None:
    files = fx.dataset_files(fx.DEFAULT_DATASETS)
    if not files:
        pytest.skip(f"no datasets under {fx.DEFAULT_DATASETS}")
    texts = [t for f in files for t in fx.read_texts(f)]
    assert len(texts) > 20_000
    expected = fx.reference_ids(ref, texts)
    assert_parity(tok, texts, expected, "dataset texts")
    assert_parity(tok_vocab, texts, expected, "dataset texts (vocab.txt)")


def test_parity_random_whole_unicode(tok: WordPieceTokenizer, ref: Tokenizer) -> None:
    texts = fx.random_texts(fx.SEED, fx.RANDOM_COUNT)
    assert len(texts) >= 100_000
    assert_parity(tok, texts, fx.reference_ids(ref, texts), f"random strings (seed {fx.SEED})")


def test_parity_edge_cases(tok: WordPieceTokenizer, ref: Tokenizer) -> None:
    for case in fx.with_ids(ref, fx.edge_cases()):
        assert tok.encode(case["text"], max_length=case.get("max_length")).ids == case["ids"], case["text"]


def test_parity_generated_fixtures(tok: WordPieceTokenizer) -> None:
    """Whatever the generator wrote (including --extra files such as the synthetic finance set)."""
    manifest_path = GENERATED / "manifest.json"
    if not manifest_path.exists():
        pytest.skip(f"no generated fixtures in {GENERATED} (run tests/make_wordpiece_fixtures.py)")
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        with (GENERATED / entry["file"]).open(encoding="utf-8") as f:
            cases = [json.loads(line) for line in f]
        assert len(cases) == entry["count"]
        for case in cases:
            got = tok.encode(case["text"], max_length=case.get("max_length")).ids
            assert got == case["ids"], f"{entry['file']}: {case['text']!r}"


def test_random_texts_are_seeded() -> None:
    assert fx.random_texts(fx.SEED, 50) == fx.random_texts(fx.SEED, 50)
    assert fx.random_texts(fx.SEED, 50) != fx.random_texts(fx.SEED + 1, 50)
    rng_cps = {ord(c) for t in fx.random_texts(fx.SEED, 2000) for c in t}
    assert max(rng_cps) > 0xF0000 and any(0x10000 <= cp < 0x20000 for cp in rng_cps)


def test_constructor_added_tokens() -> None:
    t = WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "a", "##b"], added_tokens=[AddedToken("<X>", 5)])
    assert t.tokenize("a<X>ab <x>") == ["a", "<X>", "a", "##b", "[UNK]", "[UNK]", "[UNK]"]
    assert t.encode("<X>").ids == [1, 5, 2]
    assert t.vocab_size == 6 and t.id_to_token(5) == "<X>" and t.token_to_id("<X>") == 5
