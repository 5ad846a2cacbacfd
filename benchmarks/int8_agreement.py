"""One int8 graph computed four ways on the same texts: native onnxruntime on this CPU, onnxruntime on an
emulated AVX2-only CPU, ONNX's exact NumPy reference, and onnxruntime-web WASM under Node
(docs/BENCHMARKS.md, "int8 on every CPU").

    .venv/bin/python -m benchmarks.int8_agreement --bundle models/bundles/finance --bench-json bench.json

The texts are those of a `builder bench --json` report (its ``texts``); differences are of the
bundle's calibrated probabilities (its temperature) and of raw logits, against native onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.int8_schemes import compare, encodings, native_logits, wasm_run
from builder.export.int8_safety import describe_cpu, emulated_cpu_logits, exact_logits
from runtime_py.bundle import read_manifest
from runtime_py.wordpiece import WordPieceTokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--bench-json", type=Path, required=True, help="a `builder bench --json` report: its texts are used")
    args = parser.parse_args()
    spec = next(t for t in read_manifest(args.bundle).tiers if t.kind == "transformer")
    temperature, max_length = float(spec.extra.get("temperature", 1.0)), int(spec.extra.get("max_length", 64))
    texts = [t for group in json.loads(args.bench_json.read_text())["texts"].values() for t in group]
    feeds = encodings(WordPieceTokenizer.from_tokenizer_json(args.bundle / spec.files["tokenizer"].path), texts, max_length)
    path = args.bundle / spec.files["model"].path
    native = native_logits(path, feeds)
    with tempfile.TemporaryDirectory(prefix="int8-agreement-") as tmp:
        wasm = np.asarray(wasm_run([path], feeds, Path(tmp), rounds=1)[str(path)]["logits"], dtype=np.float32).reshape(len(feeds), -1)
    others = {"emulated AVX2 CPU (qemu EPYC-Rome)": emulated_cpu_logits(path, feeds), "exact reference (NumPy)": exact_logits(path, feeds),
              "onnxruntime-web WASM": wasm}
    print(f"{path}: {len(texts)} texts, T = {temperature:.3f}; native: {describe_cpu()}")
    print("| computed by | max prob diff vs native | max logit diff vs native |\n|---|---|---|")
    for name, logits in others.items():
        print(f"| {name} | {compare(logits, native, temperature)[0]:.4f} | {np.abs(logits - native).max():.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
