"""Generate the Unicode tables that the WordPiece tokenizers load (Python and JavaScript).

The tables are measured from the reference, the Hugging Face ``tokenizers`` package, by probing
every code point (U+0000..U+10FFFF minus surrogates) through its individual components:

* ``BertNormalizer(clean_text=True, ...)`` alone: which characters are dropped, which become a space;
* ``BertNormalizer(handle_chinese_chars=True, ...)`` alone: which characters get spaces around them;
* ``NFD()``: the full canonical decomposition of each character;
* ``BertNormalizer(strip_accents=True, ...)`` alone: which characters are removed as "non-spacing marks";
* ``Lowercase()``: the per-character lower-case mapping;
* ``BertPreTokenizer()`` on ``"a" + c + "b"``: whether ``c`` splits (whitespace) or is isolated (punctuation).

The reference does not use one Unicode version: its category tables (control, punctuation, Mn) and
its NFD come from old vendored crates, its whitespace and lower-casing from the Rust standard library.
No host ``unicodedata`` (Python 3.11 = Unicode 14 ... 3.14 = Unicode 16) or ICU matches it, hence tables.

The generator also checks the assumptions the runtimes rely on and fails loudly if a new reference
breaks one: every character with a non-zero canonical combining class is stripped with the accents
(so NFD's canonical reordering can never show), Hangul decomposes algorithmically, and the whole
default normalizer equals the per-character composition of the tables on every code point.

Usage (needs the dev extra, i.e. ``tokenizers``)::

    .venv/bin/python tools/gen_unicode_tables.py            # rewrite both files
    .venv/bin/python tools/gen_unicode_tables.py --check    # exit 1 if the committed files are stale
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

import tokenizers
from tokenizers import normalizers, pre_tokenizers

ROOT = Path(__file__).resolve().parent.parent
PY_OUT = ROOT / "runtime_py" / "_unicode_tables.py"
JS_OUT = ROOT / "web" / "unicode-tables.js"

MAX_CP = 0x110000
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def code_points() -> Iterable[int]:
    for cp in range(MAX_CP):
        if not 0xD800 <= cp <= 0xDFFF:
            yield cp


def to_ranges(cps: Iterable[int]) -> list[int]:
    """Sorted code points -> flat ``[start, end_exclusive, ...]`` boundaries."""
    out: list[int] = []
    for cp in sorted(cps):
        if out and out[-1] == cp:
            out[-1] = cp + 1
        else:
            out += [cp, cp + 1]
    return out


def lower_runs(mapping: dict[int, int]) -> list[int]:
    """Single-character lower-case map -> flat ``[start, end_exclusive, step, delta, ...]`` runs.

    A run holds code points ``start, start + step, ...`` below ``end`` that all map to ``cp + delta``
    (upper/lower pairs alternate in many blocks, hence steps of 2).
    """
    runs: list[list[int]] = []  # [start, last, step, delta]
    for cp in sorted(mapping):
        delta = mapping[cp] - cp
        if runs:
            run = runs[-1]
            gap = cp - run[1]
            if run[3] == delta and (gap == run[2] or (run[0] == run[1] and gap in (1, 2))):
                run[1], run[2] = cp, gap
                continue
        runs.append([cp, cp, 0, delta])
    flat: list[int] = []
    for start, last, step, delta in runs:
        flat += [start, last + 1, step or 1, delta]
    return flat


def ccc_runs(ccc: dict[int, int]) -> list[int]:
    """``{cp: class}`` -> flat ``[start, end_exclusive, class, ...]`` runs of equal class."""
    flat: list[int] = []
    for cp in sorted(ccc):
        if flat and flat[-2] == cp and flat[-1] == ccc[cp]:
            flat[-2] = cp + 1
        else:
            flat += [cp, cp + 1, ccc[cp]]
    return flat


def probe(fn: Callable[[str], object]) -> dict[int, object]:
    out = {}
    for cp in code_points():
        c = chr(cp)
        r = fn(c)
        if r != c:
            out[cp] = r
    return out


def measure() -> dict[str, object]:
    clean = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
    ).normalize_str
    cjk = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False
    ).normalize_str
    nfd = normalizers.NFD().normalize_str
    # BertNormalizer's accent stripping (NFD, then drop its "non-spacing marks"); the StripAccents
    # normalizer uses a different mark set (it also drops e.g. U+0488), so it is not used here.
    strip = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False
    ).normalize_str
    lower = normalizers.Lowercase().normalize_str
    pre = pre_tokenizers.BertPreTokenizer().pre_tokenize_str

    cleaned = probe(clean)
    drop = [cp for cp, r in cleaned.items() if r == ""]
    space = [cp for cp, r in cleaned.items() if r == " "]
    assert len(drop) + len(space) == len(cleaned), "clean_text did something other than drop/space"

    spaced = probe(cjk)
    assert all(r == f" {chr(cp)} " for cp, r in spaced.items())

    decomp = probe(nfd)
    for cp in range(HANGUL_FIRST, HANGUL_LAST + 1):
        assert decomp[cp] == hangul_nfd(cp), f"Hangul U+{cp:04X} is not algorithmic"
    decomp = {cp: r for cp, r in decomp.items() if not HANGUL_FIRST <= cp <= HANGUL_LAST}

    marks = set()
    for cp in code_points():
        if cp in decomp:
            continue  # decomposed characters are classified through their components
        r = strip(chr(cp))
        assert r in ("", chr(cp)) or HANGUL_FIRST <= cp <= HANGUL_LAST, f"U+{cp:04X}: {r!r}"
        if r == "":
            marks.add(cp)

    lowered = probe(lower)
    lower_single = {cp: ord(r) for cp, r in lowered.items() if len(r) == 1}
    lower_multi = {cp: r for cp, r in lowered.items() if len(r) != 1}

    ws, punct = [], []
    for cp in code_points():
        n = len(pre("a" + chr(cp) + "b"))
        if n == 2:
            ws.append(cp)
        elif n == 3:
            punct.append(cp)
        else:
            assert n == 1

    # Canonical combining classes, measured by canonical reordering: X has a non-zero class iff
    # "\u0301" + X (class 230) or X + "\u0334" (class 1) reorders; its class is that of the one
    # representative R for which neither R + X nor X + R reorders. Representatives: the first
    # reference-combining character of each class in the host's unicodedata (classes never change
    # once assigned, so an old character's class is the same in every Unicode version).
    nonzero = []
    for cp in code_points():
        if cp in decomp or HANGUL_FIRST <= cp <= HANGUL_LAST:
            continue
        c = chr(cp)
        if nfd("\u0301" + c) != "\u0301" + c or nfd(c + "\u0334") != c + "\u0334":
            nonzero.append(cp)
    representatives: dict[int, int] = {}
    for cp in nonzero:  # the reference knows these as combining: their class is the host's
        v = unicodedata.combining(chr(cp))
        if v and v not in representatives:
            representatives[v] = cp
    ccc: dict[int, int] = {}
    for cp in nonzero:
        c = chr(cp)
        equal = [v for v, r in representatives.items() if nfd(chr(r) + c) == chr(r) + c and nfd(c + chr(r)) == c + chr(r)]
        assert len(equal) == 1, f"U+{cp:04X}: combining class not resolved ({equal})"
        ccc[cp] = equal[0]

    return {
        "CLEAN_DROP": to_ranges(drop),
        "CLEAN_SPACE": to_ranges(space),
        "CJK": to_ranges(spaced),
        "MARKS": to_ranges(marks),
        "PRE_SPACE": to_ranges(ws),
        "PRE_PUNCT": to_ranges(punct),
        "LOWER_RUNS": lower_runs(lower_single),
        "LOWER_MULTI": lower_multi,
        "NFD": decomp,
        "CCC": ccc_runs(ccc),
    }


def hangul_nfd(cp: int) -> str:
    s = cp - HANGUL_FIRST
    lead, vowel, trail = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, s % 28
    return chr(lead) + chr(vowel) + (chr(0x11A7 + trail) if trail else "")


def _hex_list(values: list[int], per_line: int = 12) -> str:
    items = [hex(v) if v >= 0 else "-" + hex(-v) for v in values]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "\n".join("  " + line + "," for line in lines)


def _js_str(s: str) -> str:
    return '"' + "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else f"\\u{{{ord(c):x}}}" for c in s) + '"'


def _py_str(s: str) -> str:
    return '"' + "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else f"\\U{ord(c):08x}" for c in s) + '"'


def _decomp_flat(decomp: dict[int, str]) -> list[int]:
    """``{cp: "abc"}`` -> flat ``[cp, len, c1, c2, ...]`` ints (compact in both languages)."""
    flat: list[int] = []
    for cp in sorted(decomp):
        flat += [cp, len(decomp[cp]), *map(ord, decomp[cp])]
    return flat


HEADER = (
    "Generated by tools/gen_unicode_tables.py from tokenizers {version}: do not edit.\n"
    "Character classes of the reference BERT normalizer and pre-tokenizer, measured per code point.\n"
    "Ranges are flat [start, end_exclusive, ...] lists; LOWER_RUNS is [start, end_exclusive, step, delta, ...];\n"
    "NFD is [code_point, length, decomposed code points..., ...] (Hangul syllables are computed, not listed);\n"
    "CCC is [start, end_exclusive, canonical_combining_class, ...]."
)


def render_py(t: dict[str, object]) -> str:
    head = "\n".join("# " + line for line in HEADER.format(version=tokenizers.__version__).splitlines())
    parts = [head, "", f'REFERENCE = "tokenizers {tokenizers.__version__}"', ""]
    for name in ("CLEAN_DROP", "CLEAN_SPACE", "CJK", "MARKS", "PRE_SPACE", "PRE_PUNCT", "LOWER_RUNS", "CCC"):
        parts.append(f"{name}: tuple[int, ...] = (\n{_hex_list(t[name])}\n)")  # type: ignore[arg-type]
    multi = ", ".join(f"{hex(cp)}: {_py_str(s)}" for cp, s in sorted(t["LOWER_MULTI"].items()))  # type: ignore[union-attr]
    parts.append(f"LOWER_MULTI: dict[int, str] = {{{multi}}}")
    parts.append(f"NFD: tuple[int, ...] = (\n{_hex_list(_decomp_flat(t['NFD']))}\n)")  # type: ignore[arg-type]
    return "\n".join(parts) + "\n"


def render_js(t: dict[str, object]) -> str:
    head = "\n".join("// " + line for line in HEADER.format(version=tokenizers.__version__).splitlines())
    parts = [head, "", f'export const REFERENCE = "tokenizers {tokenizers.__version__}";', ""]
    for name in ("CLEAN_DROP", "CLEAN_SPACE", "CJK", "MARKS", "PRE_SPACE", "PRE_PUNCT", "LOWER_RUNS", "CCC"):
        parts.append(f"export const {name} = [\n{_hex_list(t[name])}\n];")  # type: ignore[arg-type]
    multi = ", ".join(f"[{hex(cp)}, {_js_str(s)}]" for cp, s in sorted(t["LOWER_MULTI"].items()))  # type: ignore[union-attr]
    parts.append(f"export const LOWER_MULTI = [{multi}];")
    parts.append(f"export const NFD = [\n{_hex_list(_decomp_flat(t['NFD']))}\n];")  # type: ignore[arg-type]
    return "\n".join(parts) + "\n"


def verify_python_tables(path: Path) -> None:
    """Load the generated module through runtime_py.wordpiece's normalizer and compare every code point."""
    sys.path.insert(0, str(ROOT))
    try:
        from runtime_py import wordpiece
    finally:
        sys.path.pop(0)
    spec = importlib.util.spec_from_file_location("_fresh_tables", path)
    assert spec and spec.loader
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    tables = wordpiece._Tables(fresh)
    options = [(True, True, True, True), (True, True, False, True), (False, False, True, False)]
    for clean_text, cjk, strip, lower in options:
        ref = normalizers.BertNormalizer(
            clean_text=clean_text, handle_chinese_chars=cjk, strip_accents=strip, lowercase=lower
        ).normalize_str
        for cp in code_points():
            c = chr(cp)
            got = tables.normalize_char(cp, clean_text, cjk, strip, lower)
            if got != ref(c):
                raise AssertionError(f"U+{cp:04X} options {clean_text, cjk, strip, lower}: {got!r} != {ref(c)!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only report whether the committed files are current")
    args = ap.parse_args()
    tables = measure()
    py, js = render_py(tables), render_js(tables)
    if args.check:
        stale = [p for p, text in ((PY_OUT, py), (JS_OUT, js)) if not p.exists() or p.read_text() != text]
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}")
        return 1 if stale else 0
    PY_OUT.write_text(py)
    JS_OUT.write_text(js)
    verify_python_tables(PY_OUT)
    print(f"wrote {PY_OUT.relative_to(ROOT)} ({len(py)} bytes), {JS_OUT.relative_to(ROOT)} ({len(js)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
