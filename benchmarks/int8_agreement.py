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
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from builder.export.int8_safety import describe_cpu, emulated_cpu_logits, exact_logits
from builder.paths import ROOT
from builder.train.metrics import softmax
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
    tokenizer = WordPieceTokenizer.from_tokenizer_json(args.bundle / spec.files["tokenizer"].path)
    feeds = [{k: np.asarray(v, dtype=np.int64) for k, v in tokenizer.encode_batch([t], max_length=max_length)._asdict().items()} for t in texts]
    path = args.bundle / spec.files["model"].path

    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    native = np.concatenate([session.run(None, f)[0] for f in feeds])
    with tempfile.TemporaryDirectory(prefix="int8-agreement-") as tmp:
        (Path(tmp) / "feeds.json").write_text(json.dumps([{k: v[0].tolist() for k, v in f.items()} for f in feeds]))
        env = {**os.environ, "FEEDS": str(Path(tmp) / "feeds.json"), "OUT": str(Path(tmp) / "wasm.json"), "ROUNDS": "1"}
        subprocess.run(["node", str(ROOT / "benchmarks" / "wasm_graphs.mjs"), str(path)], env=env, check=True, stdout=subprocess.DEVNULL)
        wasm = np.asarray(json.loads((Path(tmp) / "wasm.json").read_text())["graphs"][0]["logits"], dtype=np.float32).reshape(len(feeds), -1)
    others = {"emulated AVX2 CPU (qemu EPYC-Rome)": emulated_cpu_logits(path, feeds), "exact reference (NumPy)": exact_logits(path, feeds),
              "onnxruntime-web WASM": wasm}
    print(f"{path}: {len(texts)} texts, T = {temperature:.3f}; native: {describe_cpu()}")
    print("| computed by | max prob diff vs native | max logit diff vs native |\n|---|---|---|")
    ref = softmax(native.astype(np.float64), temperature)
    for name, logits in others.items():
        prob = np.abs(softmax(logits.astype(np.float64), temperature) - ref).max()
        print(f"| {name} | {prob:.4f} | {np.abs(logits - native).max():.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
