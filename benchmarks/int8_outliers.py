"""Outlier activation channels in float before dynamic int8, recipe against recipe: accuracy, distance
from fp32, agreement between runtimes and speed, native and WASM, in one run (docs/BENCHMARKS.md,
"int8 closer to fp32: outlier channels in float").

    .venv/bin/python -m benchmarks.int8_outliers --bundle BUNDLE --data DATA [--test FILE] [--markdown OUT] [--json OUT]

BUNDLE has a transformer tier with its fp32 graph (``onnx/model.onnx``); DATA is a folder with
``train.jsonl`` (the calibration texts, sampled as the builder samples them) and ``test.jsonl``
(or ``--test``). The fp32 graph is quantized (u8s7, as shipped) once per recipe of
``builder.export.activation_outliers``, the first without any rewrite, then each graph is:

* scored on every test text, one text per run as deployed (native onnxruntime), with the bundle's
  temperature: accuracy, and the calibrated probability difference from fp32 per text (mean, 99th
  percentile, largest) with the number of changed answers;
* run on the first ``--wasm-texts`` by onnxruntime-web's WASM build under Node and on the first
  ``--emulated`` by onnxruntime on an emulated AVX2-only CPU and by ONNX's exact NumPy reference:
  the probability difference from native onnxruntime per text (99th percentile, largest, texts
  above 0.02) and the changed answers;
* timed at 16 tokens on one thread, natively and in WASM (interleaved rounds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.int8_schemes import encodings, native_logits, run_everywhere, write_report
from builder.export.activation_outliers import DEFAULT_RECIPE, OutlierRecipe, calibration_feeds, write_split
from builder.export.int8_safety import cpu_flags, describe_cpu
from builder.export.int8_schemes import DEFAULT_INT8_SCHEME, INT8_SCHEMES
from builder.export.optimize import quantize_int8
from builder.train.metrics import softmax
from runtime_py.bundle import read_manifest
from runtime_py.wordpiece import WordPieceTokenizer

AGREE = 0.02  # issue 14's bound on the probability difference between runtimes
RECIPES: dict[str, OutlierRecipe | None] = {
    "no rewrite (before)": None,
    "smoothing only (alpha 0.5)": OutlierRecipe(ratio=float("inf"), smoothing=0.5),
    "outliers in float only": OutlierRecipe(smoothing=0.0),
    "outliers in float + smoothing (default)": DEFAULT_RECIPE,
    "outliers in float + smoothing of those inputs": OutlierRecipe(smooth_all=False),
}


def per_text(a: np.ndarray, b: np.ndarray, temperature: float) -> tuple[np.ndarray, int]:
    """Largest |calibrated probability difference| of each text, and the number of changed answers."""
    pa, pb = softmax(a.astype(np.float64), temperature), softmax(b.astype(np.float64), temperature)
    return np.abs(pa - pb).max(axis=1), int((pa.argmax(1) != pb.argmax(1)).sum())


def spread(a: np.ndarray, b: np.ndarray, temperature: float) -> dict:
    diffs, changed = per_text(a, b, temperature)
    return {"texts": len(diffs), "mean": float(diffs.mean()), "p99": float(np.quantile(diffs, 0.99)), "max": float(diffs.max()),
            "above": int((diffs > AGREE).sum()), "changed": changed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with train.jsonl (calibration) and test.jsonl")
    parser.add_argument("--test", type=Path, help="the labelled texts to score (default: DATA/test.jsonl)")
    parser.add_argument("--emulated", type=int, default=32, help="test texts run on the emulated AVX2 CPU and the exact reference")
    parser.add_argument("--wasm-texts", type=int, default=600, help="test texts run in onnxruntime-web WASM")
    parser.add_argument("--int8-scheme", default=DEFAULT_INT8_SCHEME, choices=INT8_SCHEMES, help="the weight format of every graph")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    spec = next(t for t in read_manifest(args.bundle).tiers if t.kind == "transformer")
    config = json.loads((args.bundle / spec.files["config"].path).read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    temperature, max_length = float(spec.extra.get("temperature", 1.0)), int(spec.extra.get("max_length", 64))
    tokenizer = WordPieceTokenizer.from_tokenizer_json(args.bundle / spec.files["tokenizer"].path)
    test = args.test or args.data / "test.jsonl"
    rows = [json.loads(line) for line in test.open(encoding="utf-8") if line.strip()]
    train = [json.loads(line)["text"] for line in (args.data / "train.jsonl").open(encoding="utf-8") if line.strip()]
    feeds = encodings(tokenizer, [r["text"] for r in rows], max_length)
    calibration = calibration_feeds(lambda text: tokenizer.encode_batch([text], max_length=max_length)._asdict(), train)
    target = np.array([labels.index(r["intent"]) if r["intent"] in labels else -1 for r in rows])
    cpu = cpu_flags()
    print(f"{args.bundle}: {len(rows)} texts of {test}, T = {temperature:.3f}; {describe_cpu(cpu)}", flush=True)

    with tempfile.TemporaryDirectory(prefix="int8-outliers-") as tmp:
        work = Path(tmp)
        fp32 = args.bundle / spec.files["model_fp32"].path
        graphs, reports = {}, {}
        for i, (name, recipe) in enumerate(RECIPES.items()):
            t0 = time.perf_counter()
            if recipe is None:
                graphs[name] = quantize_int8(fp32, work / f"{i}.onnx", scheme=args.int8_scheme)
            else:
                reports[name] = write_split(fp32, work / f"{i}.split.onnx", calibration, recipe)
                graphs[name] = quantize_int8(work / f"{i}.split.onnx", work / f"{i}.onnx", scheme=args.int8_scheme,
                                             keep_float=reports[name].float_matmuls)
            print(f"  quantized '{name}' in {time.perf_counter() - t0:.1f} s", flush=True)
        reference = native_logits(fp32, feeds)
        logits, emulated, exact, wasm, native_ms = run_everywhere(graphs, feeds, args.emulated, args.wasm_texts, work)
        few = feeds[: args.emulated]

        fp32_accuracy = float(np.mean(reference.argmax(1) == target))
        results = []
        for name, path in graphs.items():
            ours, w = logits[name], wasm[str(path)]
            wasm_logits = np.asarray(w["logits"], dtype=np.float32).reshape(len(w["logits"]), -1)
            results.append({
                "recipe": name,
                "rewrite": reports[name].manifest_entry() if name in reports else None,
                "mb": path.stat().st_size / 1e6,
                "accuracy": float(np.mean(ours.argmax(1) == target)),
                "vs_fp32": spread(ours, reference, temperature),
                "wasm_vs_native": spread(wasm_logits, ours[: len(wasm_logits)], temperature),
                "avx2_vs_native": spread(emulated[name], ours[: len(few)], temperature) if emulated else None,
                "exact_vs_native": spread(exact[name], ours[: len(few)], temperature),
                "native_ms": native_ms[path],
                "wasm_ms": w["median_ms"],
            })
    report = {"bundle": str(args.bundle), "test": str(test), "texts": len(rows), "calibration_texts": len(calibration),
              "int8_scheme": args.int8_scheme, "cpu": cpu, "temperature": temperature, "fp32_accuracy": fp32_accuracy, "results": results}
    write_report(markdown(report), report, args.markdown, args.json)
    return 0


def markdown(report: dict) -> str:
    before = report["results"][0]

    def agree(s: dict | None) -> str:
        return "-" if s is None else f"{s['p99']:.4f} / {s['max']:.4f}; {s['above']} of {s['texts']} > {AGREE}; {s['changed']} changed"

    lines = [
        f"{report['bundle']} on {report['test']} ({report['texts']} texts; fp32 accuracy {report['fp32_accuracy']:.4f}); "
        f"weights: {report.get('int8_scheme', 'u8s7')}; "
        f"calibration: {report['calibration_texts']} training texts; native: {describe_cpu(report['cpu'])}. Probability "
        f"differences are calibrated (T = {report['temperature']:.3f}), per text the largest over intents; p99 / max over texts.",
        "",
        f"| {report.get('int8_scheme', 'u8s7')} int8, recipe | MB | accuracy (vs fp32) | vs fp32: mean / p99 / max; changed | WASM vs native | exact reference vs native "
        "| AVX2 CPU (emulated) vs native | native p50, 16 tok (vs before) | WASM p50, 16 tok (vs before) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        v = r["vs_fp32"]
        rewrite = r["rewrite"]
        what = r["recipe"] + (f" ({rewrite['channels']} channels of {rewrite['inputs']} inputs)" if rewrite else "")
        lines.append(
            f"| {what} | {r['mb']:.1f} | {r['accuracy']:.4f} ({100 * (r['accuracy'] - report['fp32_accuracy']):+.2f} pt) "
            f"| {v['mean']:.4f} / {v['p99']:.4f} / {v['max']:.4f}; {v['changed']} | {agree(r['wasm_vs_native'])} | {agree(r['exact_vs_native'])} "
            f"| {agree(r['avx2_vs_native'])} | {r['native_ms']:.2f} ms ({r['native_ms'] / before['native_ms']:.2f}x) "
            f"| {r['wasm_ms']:.2f} ms ({r['wasm_ms'] / before['wasm_ms']:.2f}x) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
