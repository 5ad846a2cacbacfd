"""The transformer tier's compression levers side by side: models (depth, distillation) x vocabulary
size x weight format, in one run (docs/BENCHMARKS.md, "Small").

    .venv/bin/python -m benchmarks.compression --model NAME=PATH [--model NAME=PATH ...] --data DATA
        [--vocab 30522,8000] [--schemes u8s7,u8s4] [--extra-test NAME=FILE.jsonl] [--markdown OUT]
        [--json OUT] [--plot OUT.png]

PATH is a bundle (its transformer tier, read back from the fp32 graph: ``builder.train.teacher``) or
a PyTorch model saved by ``builder train --save-model``; DATA a folder with train.jsonl, val.jsonl
and test.jsonl. For every model and vocabulary size the word embeddings are pruned (``builder train
--vocab-size``: single characters, then the training texts' and ordinary English's most frequent
pieces), exported, quantized in every scheme as the builder ships it (outlier activation channels
in float, calibrated on training texts) and calibrated on val (temperature); then each point is:

* the browser's download: the graph, tokenizer.json and config.json (raw and gzip -9);
* scored on every test text (and each --extra-test file), one text per run as deployed (native
  onnxruntime);
* timed at 16 tokens natively (1 thread) and in onnxruntime-web's WASM build under Node, with 1 and
  2 threads (``benchmarks/wasm_graphs.mjs``), every point in the same interleaved rounds.

--plot draws accuracy against download size, one panel per test set, with the Pareto front.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.int8_schemes import encodings, native_logits, native_medians, wasm_run, write_report
from builder.evaluate.plots import size_accuracy_chart
from builder.export.activation_outliers import calibration_feeds
from builder.export.int8_safety import cpu_flags, describe_cpu
from builder.export.onnx_export import export_onnx
from builder.export.optimize import INT8_SCHEMES, quantize_calibrated
from builder.export.shrink import prune_vocabulary, trim_positions, write_tokenizer_files
from builder.train.calibration import fit_temperature
from builder.train.teacher import Teacher
from builder.train.transformer_model import SequenceClassifier
from runtime_py.wordpiece import WordPieceTokenizer

MAX_LENGTH = 64


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def download_bytes(files: list[Path]) -> tuple[int, int]:
    raw = sum(f.stat().st_size for f in files)
    packed = sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)
    return raw, packed


def load_model(path: Path) -> SequenceClassifier:
    """A bundle's transformer tier or a `--save-model` folder (either holds its tokenizer files)."""
    if (path / "manifest.json").exists():
        return Teacher(path).student(None)[0].eval()
    return SequenceClassifier.load(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                        help="a bundle or a model saved by `builder train --save-model` (repeatable)")
    parser.add_argument("--data", type=Path, required=True, help="folder with train.jsonl, val.jsonl and test.jsonl")
    parser.add_argument("--vocab", default="30522,8000", help="vocabulary sizes (the model's size or more: not pruned)")
    parser.add_argument("--schemes", default="u8s7,u8s4", help=f"int8 weight formats ({', '.join(INT8_SCHEMES)})")
    parser.add_argument("--extra-test", action="append", default=[], metavar="NAME=FILE", help="another labelled JSONL to score")
    parser.add_argument("--keep", type=Path, help="keep the graphs here")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--plot", type=Path, help="accuracy against download size (PNG)")
    args = parser.parse_args()

    splits = {name: read_jsonl(args.data / f"{name}.jsonl") for name in ("train", "val", "test")}
    tests = {"test": splits["test"]}
    for spec in args.extra_test:
        name, _, path = spec.partition("=")
        tests[name] = read_jsonl(Path(path))
    models = dict(spec.partition("=")[::2] for spec in args.model)
    cpu = cpu_flags()
    print(f"{', '.join(models)} on {args.data}: {', '.join(f'{k} {len(v)}' for k, v in tests.items())} texts; {describe_cpu(cpu)}", flush=True)
    points: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="compression-") as tmp:
        work = args.keep or Path(tmp)
        for name, source in models.items():
            for size in [int(v) for v in args.vocab.split(",")]:
                tokenizer_dir = Path(source)
                model = load_model(tokenizer_dir)
                index = {label: i for i, label in enumerate(model.labels)}
                targets = {k: np.array([index.get(r["intent"], -1) for r in rows]) for k, rows in {"val": splits["val"], **tests}.items()}
                folder = work / name / f"vocab{size}"
                folder.mkdir(parents=True, exist_ok=True)
                full = WordPieceTokenizer.from_tokenizer_json(tokenizer_dir / "tokenizer.json")
                vocab = [full.id_to_token(i) for i in range(full.vocab_size)]
                changed = 0
                if size < len(vocab):
                    vocab, report = prune_vocabulary(model, tokenizer_dir / "tokenizer.json", [r["text"] for r in splits["train"]],
                                                     max_tokens=size, work_dir=folder)
                    changed = report.changed
                trim_positions(model, MAX_LENGTH)
                write_tokenizer_files(vocab, tokenizer_dir, folder, MAX_LENGTH)
                model.encoder.config.to_json_file(folder / "config.json")
                tokenizer = WordPieceTokenizer.from_tokenizer_json(folder / "tokenizer.json")
                encoded = {k: encodings(tokenizer, [r["text"] for r in rows], MAX_LENGTH) for k, rows in {"val": splits["val"], **tests}.items()}
                calibration = calibration_feeds(lambda text: tokenizer.encode_batch([text], max_length=MAX_LENGTH)._asdict(),
                                                [r["text"] for r in splits["train"]])
                fp32 = export_onnx(model, folder / "fp32.onnx")
                for scheme in args.schemes.split(","):
                    t0 = time.perf_counter()
                    graph, _ = quantize_calibrated(fp32, folder / f"{scheme}.onnx", scheme, calibration)
                    val_logits = native_logits(graph, encoded["val"])
                    known = targets["val"] >= 0
                    temperature = fit_temperature(val_logits[known], targets["val"][known])
                    accuracy = {k: float(np.mean(native_logits(graph, encoded[k]).argmax(1) == targets[k])) for k in tests}
                    raw, packed = download_bytes([graph, folder / "tokenizer.json", folder / "config.json"])
                    points.append({"model": name, "source": source, "layers": model.encoder.config.num_hidden_layers, "vocab": len(vocab),
                                   "scheme": scheme, "path": str(graph), "graph_bytes": graph.stat().st_size, "download_bytes": raw,
                                   "download_gzip_bytes": packed, "accuracy": accuracy, "temperature": temperature,
                                   "english_check_changed": changed})
                    print(f"  {name} vocab {len(vocab):,} {scheme}: {raw / 1e6:.2f} MB; " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items())
                          + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
        paths = [Path(p["path"]) for p in points]
        load_before = os.getloadavg()[0]
        native = native_medians(paths)
        wasm1, wasm2 = (wasm_run(paths, [], work, rounds=7, threads=threads) for threads in (1, 2))
        for p in points:
            p.update(native_ms=native[Path(p["path"])], wasm1_ms=wasm1[p["path"]]["median_ms"], wasm2_ms=wasm2[p["path"]]["median_ms"])
    report = {"models": models, "data": str(args.data), "cpu": cpu, "tests": {k: len(v) for k, v in tests.items()}, "points": points,
              "load_during_timing": [load_before, os.getloadavg()[0]]}
    write_report(markdown(report), report, args.markdown, args.json)
    if args.plot:
        size_accuracy_chart(points, list(tests), list(models), args.plot)
    return 0


def markdown(report: dict) -> str:
    points = report["points"]
    ref = points[0]
    names = list(report["tests"])
    lines = [
        f"{', '.join(f'{k} ({v})' for k, v in report['models'].items())} on {report['data']} ({', '.join(f'{k}: {n} texts' for k, n in report['tests'].items())}); "
        f"native: {describe_cpu(report['cpu'])}, 1 thread; WASM: onnxruntime-web under Node; 16 tokens; first row is the reference; "
        f"load average (1 min) before -> after the timings: {report['load_during_timing'][0]:.2f} -> {report['load_during_timing'][1]:.2f}.",
        "",
        "| model | layers | vocabulary | weights | download MB (gzip) | " + " | ".join(f"{n} accuracy (vs first)" for n in names)
        + " | native p50 | WASM p50, 1 thread | WASM p50, 2 threads |",
        "|---|---|---|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for p in points:
        acc = " | ".join(f"{p['accuracy'][n]:.4f} ({100 * (p['accuracy'][n] - ref['accuracy'][n]):+.2f} pt)" for n in names)
        lines.append(
            f"| {p['model']} | {p['layers']} | {p['vocab']:,} | {p['scheme']} | {p['download_bytes'] / 1e6:.2f} ({p['download_gzip_bytes'] / 1e6:.2f}) | {acc} "
            f"| {p['native_ms']:.2f} ms ({p['native_ms'] / ref['native_ms']:.2f}x) | {p['wasm1_ms']:.2f} ms ({p['wasm1_ms'] / ref['wasm1_ms']:.2f}x) "
            f"| {p['wasm2_ms']:.2f} ms ({p['wasm2_ms'] / ref['wasm2_ms']:.2f}x) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
