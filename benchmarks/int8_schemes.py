"""int8 weight formats side by side: accuracy, size, CPU independence and speed, native and WASM, in one run
(docs/BENCHMARKS.md, "int8 on every CPU").

    .venv/bin/python -m benchmarks.int8_schemes --bundle BUNDLE --data DATA [--markdown OUT] [--json OUT]

BUNDLE has a transformer tier with its fp32 graph (``onnx/model.onnx``); DATA is a folder with
``test.jsonl``. The fp32 graph is quantized in every scheme of ``builder.export.optimize.INT8_SCHEMES``
(dynamic int8, per channel, embeddings included, as the builder ships them), then each graph is:

* scored on every test text, one text per run as deployed (native onnxruntime), with the bundle's
  temperature: accuracy, and the largest probability difference from fp32;
* proven (or not) free of int16 pair-sum overflow (``builder.export.int8_safety.pair_sum_bounds``);
* run on the first ``--emulated`` test texts by onnxruntime on an emulated AVX2-only CPU
  (``qemu-x86_64 -cpu EPYC-Rome``: no AVX-512, no VNNI) and by ONNX's exact NumPy reference, and
  on the first ``--wasm-texts`` by onnxruntime-web's WASM build under Node: the largest probability
  difference from native onnxruntime on this machine, and how many answers change;
* timed at 16 tokens on one thread, natively (interleaved rounds) and in WASM
  (``benchmarks/wasm_graphs.mjs``, interleaved rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from builder.export.int8_safety import INT16_MAX, cpu_flags, describe_cpu, emulated_cpu_logits, exact_logits, max_pair_sum, pair_sum_bounds, qemu
from builder.export.onnx_export import onnx_session
from builder.export.optimize import INT8_SCHEMES, median_latency_ms, quantize_int8
from builder.paths import ROOT
from builder.train.metrics import softmax
from runtime_py.bundle import read_manifest
from runtime_py.wordpiece import WordPieceTokenizer


def encodings(tokenizer: WordPieceTokenizer, texts: list[str], max_length: int) -> list[dict[str, np.ndarray]]:
    out = []
    for text in texts:
        enc = tokenizer.encode_batch([text], max_length=max_length)
        out.append({k: np.asarray(getattr(enc, k), dtype=np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def native_logits(path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    session = onnx_session(path, threads=1)
    names = {i.name for i in session.get_inputs()}
    return np.concatenate([session.run(None, {k: v for k, v in f.items() if k in names})[0] for f in feeds])


def wasm_run(paths: list[Path], feeds: list[dict[str, np.ndarray]], work: Path, rounds: int = 9, threads: int = 1) -> dict[str, dict]:
    """onnxruntime-web (WASM, Node, `threads` threads) on `paths`: logits of `feeds` and the 16-token
    median (``median_ms``), by path."""
    (work / "feeds.json").write_text(json.dumps([{k: v[0].tolist() for k, v in f.items()} for f in feeds]))
    env = {**os.environ, "THREADS": str(threads), "LEN": "16", "ROUNDS": str(rounds), "FEEDS": str(work / "feeds.json"),
           "OUT": str(work / "wasm.json")}
    subprocess.run(["node", str(ROOT / "benchmarks" / "wasm_graphs.mjs"), *map(str, paths)], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return {g["path"]: g for g in json.loads((work / "wasm.json").read_text())["graphs"]}


def native_medians(paths: list[Path], rounds: int = 7) -> dict[Path, float]:
    """Median over `rounds` interleaved rounds of each graph's 1-thread, 16-token median (ms)."""
    times: dict[Path, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for p in paths:
            times[p].append(median_latency_ms(p, 16, runs=40, warmup=10))
    return {p: statistics.median(t) for p, t in times.items()}


def run_everywhere(graphs: dict[str, Path], feeds: list[dict[str, np.ndarray]], emulated_texts: int, wasm_texts: int, work: Path) -> tuple:
    """Each graph's logits natively on every feed, on the first `emulated_texts` under the emulated
    AVX2 CPU (empty without qemu) and ONNX's exact reference, WASM's run of the first `wasm_texts`
    (`wasm_run`'s records), and the native 16-token medians: by name, the last by path."""
    logits = {name: native_logits(p, feeds) for name, p in graphs.items()}
    print("  scored natively", flush=True)
    few = feeds[:emulated_texts]
    emulated = {name: emulated_cpu_logits(p, few) for name, p in graphs.items()} if qemu() else {}
    exact = {name: exact_logits(p, few) for name, p in graphs.items()}
    print(f"  ran {len(few)} texts on the emulated AVX2 CPU ({'yes' if emulated else 'qemu-x86_64 missing'}) and the exact reference", flush=True)
    wasm = wasm_run(list(graphs.values()), feeds[:wasm_texts], work)
    print("  ran onnxruntime-web WASM", flush=True)
    return logits, emulated, exact, wasm, native_medians(list(graphs.values()))


def compare(a: np.ndarray, b: np.ndarray, temperature: float) -> tuple[float, int]:
    """Largest |calibrated probability difference| and the number of changed answers."""
    pa, pb = softmax(a.astype(np.float64), temperature), softmax(b.astype(np.float64), temperature)
    return float(np.abs(pa - pb).max()), int((pa.argmax(1) != pb.argmax(1)).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with test.jsonl")
    parser.add_argument("--emulated", type=int, default=32, help="test texts run on the emulated AVX2 CPU and the exact reference")
    parser.add_argument("--wasm-texts", type=int, default=200, help="test texts run in onnxruntime-web WASM")
    parser.add_argument("--keep", type=Path, help="write the graphs here instead of a temporary folder")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    manifest = read_manifest(args.bundle)
    spec = next(t for t in manifest.tiers if t.kind == "transformer")
    config = json.loads((args.bundle / spec.files["config"].path).read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    temperature, max_length = float(spec.extra.get("temperature", 1.0)), int(spec.extra.get("max_length", 64))
    tokenizer = WordPieceTokenizer.from_tokenizer_json(args.bundle / spec.files["tokenizer"].path)
    rows = [json.loads(line) for line in (args.data / "test.jsonl").open(encoding="utf-8") if line.strip()]
    feeds = encodings(tokenizer, [r["text"] for r in rows], max_length)
    target = np.array([labels.index(r["intent"]) if r["intent"] in labels else -1 for r in rows])
    cpu = cpu_flags()
    print(f"{args.bundle}: {len(rows)} test texts, T = {temperature:.3f}; {describe_cpu(cpu)}", flush=True)

    with tempfile.TemporaryDirectory(prefix="int8-schemes-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        graphs = {"fp32": args.bundle / spec.files["model_fp32"].path}
        for name in INT8_SCHEMES:
            t0 = time.perf_counter()
            graphs[name] = quantize_int8(graphs["fp32"], work / f"model_{name}.onnx", scheme=name)
            print(f"  quantized {name} in {time.perf_counter() - t0:.1f} s", flush=True)
        logits, emulated, exact, wasm, native_ms = run_everywhere(graphs, feeds, args.emulated, args.wasm_texts, work)
        few = feeds[: args.emulated]

        results = []
        for name, path in graphs.items():
            ours = logits[name]
            acc = float(np.mean(ours.argmax(1) == target))
            bounds = pair_sum_bounds(path) if name != "fp32" else []
            w = wasm[str(path)]
            n_wasm = len(w["logits"])
            results.append({
                "scheme": name,
                "summary": INT8_SCHEMES[name].summary if name in INT8_SCHEMES else "float32 reference",
                "mb": path.stat().st_size / 1e6,
                "accuracy": acc,
                "vs_fp32": compare(ours, logits["fp32"], temperature),
                "max_pair_sum": max_pair_sum(bounds) if bounds else None,
                "proven": all(b.safe for b in bounds),
                "avx2_vs_native": compare(emulated[name], ours[: len(few)], temperature) if emulated else None,
                "exact_vs_native": compare(exact[name], ours[: len(few)], temperature),
                "wasm_vs_native": compare(np.asarray(w["logits"], dtype=np.float32).reshape(n_wasm, -1), ours[:n_wasm], temperature),
                "native_ms": native_ms[path],
                "wasm_ms": w["median_ms"],
            })
    report = {"bundle": str(args.bundle), "data": str(args.data), "texts": len(rows), "emulated_texts": len(few),
              "wasm_texts": n_wasm, "cpu": cpu, "temperature": temperature, "results": results}
    write_report(markdown(report), report, args.markdown, args.json)
    return 0


def write_report(text: str, report: dict | None, markdown_path: Path | None, json_path: Path | None = None) -> None:
    """Print the Markdown table and write it (and the report as JSON) where asked."""
    print(text)
    if markdown_path:
        markdown_path.write_text(text + "\n")
    if json_path and report is not None:
        json_path.write_text(json.dumps(report, indent=1))


def markdown(report: dict) -> str:
    fp32 = next(r for r in report["results"] if r["scheme"] == "fp32")
    today = next(r for r in report["results"] if r["scheme"] == "u8s8")  # what the builder shipped before u8s7

    def diff(pair: tuple[float, int] | None) -> str:
        return "-" if pair is None else f"{pair[0]:.4f} ({pair[1]} changed)"

    lines = [
        f"{report['bundle']} on {report['data']} test ({report['texts']} texts); native: {describe_cpu(report['cpu'])}; "
        f"AVX2 emulated: qemu-x86_64 -cpu EPYC-Rome on the first {report['emulated_texts']} texts; WASM: onnxruntime-web under Node, "
        f"first {report['wasm_texts']} texts. Probability differences are calibrated (T = {report['temperature']:.3f}).",
        "",
        "| scheme | MB | test accuracy (vs fp32) | max \\|pair sum\\| (int16: 32,767) | vs fp32: max prob diff | AVX2 CPU vs native | exact reference vs native | WASM vs native | native p50, 16 tok, 1 thread (vs u8s8) | WASM p50, 16 tok, 1 thread (vs u8s8) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        bound = "-" if r["scheme"] == "fp32" else ("none (uint8 weights)" if r["max_pair_sum"] is None else
                                                 f"{r['max_pair_sum']:,} {'(proven safe)' if r['max_pair_sum'] <= INT16_MAX else '(can overflow)'}")
        lines.append(
            f"| {r['scheme']}: {r['summary']} | {r['mb']:.1f} | {r['accuracy']:.4f} ({100 * (r['accuracy'] - fp32['accuracy']):+.2f} pt) | {bound} "
            f"| {diff(r['vs_fp32'])} | {diff(r['avx2_vs_native'])} | {diff(r['exact_vs_native'])} | {diff(r['wasm_vs_native'])} "
            f"| {r['native_ms']:.2f} ms ({r['native_ms'] / today['native_ms']:.2f}x) | {r['wasm_ms']:.2f} ms ({r['wasm_ms'] / today['wasm_ms']:.2f}x) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
