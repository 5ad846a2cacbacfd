"""onnxruntime latency of every model variant of a transformer tier, plus our tokenizer's time.

    .venv/bin/python -m benchmarks.bench_onnx --bundle models/bundles/finance [--json OUT]
    .venv/bin/python -m benchmarks.bench_onnx --base minilm-l6 [--keep DIR] [--json OUT]

``--bundle`` times each file role of the transformer tier whose name starts with ``model``
(``model``, ``model_fp32``, ``model_native``), loaded by the runtime's own loader.
``--base`` first builds such a tier from a real encoder with a random classification head
(``minilm-l6``, ``minilm-l3`` or a local model folder), so that real-size latency can be measured
before any fine-tuned bundle exists: the fp32 export (``model_fp32``) and its per-channel dynamic
int8 quantization (``model``, ``builder.export.optimize.quantize_int8``), as the builder ships them.

Each variant runs with 1 intra-op thread, batch 1, on inputs of exactly 16 and 64 tokens made from
real sentences (banking77 test, repeated until long enough, then truncated). After a warm-up,
every round times ``--runs`` ``session.run`` calls; the table gives the median over rounds of the
per-round median and p95 (ms), and ratios against the fp32 variant (size and speed-up). "load s"
is the runtime loader's time (hash check, tokenizer, session, one warm-up run). The tokenizer
(runtime_py.wordpiece, pure Python) is timed on the same texts and on plain banking77 sentences.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from builder.export.int8_safety import describe_cpu
from builder.paths import ROOT
from runtime_py.bundle import TierSpec, read_manifest
from runtime_py.transformer import TransformerTier, load_transformer_tier, variant_roles
from runtime_py.wordpiece import Encoding, WordPieceTokenizer

DEFAULT_TEXTS = ROOT.parent / "shared/datasets/banking77/test.jsonl"
LENGTHS = (16, 64)


def read_sentences(path: Path, limit: int = 200) -> list[str]:
    if not path.is_file():
        raise SystemExit(f"{path}: no such file; pass --texts with a JSONL file of {{'text': ...}} rows")
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line)["text"])
            if len(out) == limit:
                break
    return out


def exact_length_texts(tokenizer: WordPieceTokenizer, sentences: Sequence[str], length: int, count: int) -> list[tuple[str, Encoding]]:
    """`count` texts (each a sentence repeated as often as needed) that encode to exactly `length` ids."""
    out = []
    for sentence in sentences:
        pieces = len(tokenizer.tokenize(sentence))
        if pieces == 0:
            continue
        text = " ".join([sentence] * math.ceil((length - 2) / pieces))
        enc = tokenizer.encode(text, max_length=length)
        assert len(enc.ids) == length, (text, len(enc.ids))
        out.append((text, enc))
        if len(out) == count:
            break
    return out


def time_rounds(fn: Callable[[int], object], items: int, runs: int, rounds: int, warmup: int) -> dict[str, float]:
    """Median over rounds of the per-round median and p95 (ms) of `fn(i)`, i cycling over `items`."""
    for i in range(warmup):
        fn(i % items)
    clock = time.perf_counter_ns
    medians, p95s = [], []
    for _ in range(rounds):
        samples = []
        for i in range(runs):
            start = clock()
            fn(i % items)
            samples.append(clock() - start)
        samples.sort()
        medians.append(statistics.median(samples) / 1e6)
        p95s.append(samples[int(0.95 * (len(samples) - 1))] / 1e6)
    return {"median_ms": statistics.median(medians), "p95_ms": statistics.median(p95s), "round_medians_ms": medians}


def transformer_spec(bundle: Path, name: str | None) -> TierSpec:
    specs = [s for s in read_manifest(bundle).tiers if s.kind == "transformer" and (name is None or s.name == name)]
    if not specs:
        raise SystemExit(f"{bundle}: no transformer tier{f' named {name!r}' if name else ''} in the manifest")
    return specs[0]


def bench_bundle(bundle: Path, args: argparse.Namespace) -> dict[str, Any]:
    spec = transformer_spec(bundle, args.tier)
    sentences = read_sentences(Path(args.texts))
    variants = spec.extra.get("variants") if isinstance(spec.extra.get("variants"), dict) else {}
    results: list[dict[str, Any]] = []
    tokenizer: WordPieceTokenizer | None = None
    inputs: dict[int, list[tuple[str, Encoding]]] = {}
    for role in variant_roles(spec):
        start = time.perf_counter()
        tier: TransformerTier = load_transformer_tier(bundle, spec, True, variant=role, threads=args.threads, environ={})
        load_s = time.perf_counter() - start
        if tokenizer is None:
            tokenizer = tier.tokenizer
            inputs = {n: exact_length_texts(tokenizer, sentences, n, args.inputs) for n in LENGTHS}
        row: dict[str, Any] = {
            "role": role,
            "file": spec.files[role].path,
            "bytes": spec.files[role].bytes,
            "precision": (variants.get(role) or {}).get("precision"),
            "load_s": load_s,
        }
        for length, texts in inputs.items():
            feeds = [tier.feeds([e.ids], [e.attention_mask], [e.token_type_ids]) for _, e in texts]
            out = [tier.output_name]
            row[str(length)] = time_rounds(lambda i: tier.session.run(out, feeds[i]), len(feeds), args.runs, args.rounds, args.warmup)
            print(f"  {role:<14} {length:>3} tokens: median {row[str(length)]['median_ms']:.3f} ms, p95 {row[str(length)]['p95_ms']:.3f} ms", file=sys.stderr)
        results.append(row)
    assert tokenizer is not None
    token_times = {}
    max_length = int(spec.extra.get("max_length", 128))
    for length, texts in inputs.items():
        strings = [t for t, _ in texts]
        token_times[str(length)] = time_rounds(lambda i: tokenizer.encode(strings[i], max_length=length), len(strings), args.runs, args.rounds, args.warmup)
    natural = sentences[: args.runs]
    token_times["banking77"] = time_rounds(lambda i: tokenizer.encode(natural[i], max_length=max_length), len(natural), len(natural), args.rounds, args.warmup)
    token_times["banking77"]["median_tokens"] = statistics.median(len(tokenizer.encode(t, max_length=max_length).ids) for t in natural)
    return {"bundle": str(bundle), "tier": spec.name, "variants": results, "tokenizer": token_times}


def build_base_bundle(base: str, out: Path, n_labels: int) -> Path:
    """A bundle holding only a transformer tier: `base`'s encoder with a random `n_labels`-way head."""
    import shutil

    import torch

    from builder.bundle.writer import open_bundle
    from builder.export.onnx_export import export_onnx
    from builder.export.optimize import quantize_int8
    from builder.train.transformer_model import SequenceClassifier, load_encoder, resolve_base

    source, layers = resolve_base(base)
    if not (Path(source) / "tokenizer.json").is_file():
        raise SystemExit(f"{source}: no tokenizer.json; --base needs a local model folder with one")
    labels = [f"intent_{i:02d}" for i in range(n_labels)]
    torch.manual_seed(0)
    model = SequenceClassifier(load_encoder(source, layers), labels).eval()
    config = model.encoder.config
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    with open_bundle(out, name=f"bench-{Path(str(base)).name}", replace=True) as draft:
        fp32 = export_onnx(model, draft.root / "onnx" / "model.onnx")
        quantize_int8(fp32, draft.root / "onnx" / "model_quantized.onnx", per_channel=True)
        config.to_json_file(draft.root / "config.json")
        shutil.copyfile(Path(source) / "tokenizer.json", draft.root / "tokenizer.json")
        files = {"model": "onnx/model_quantized.onnx", "model_fp32": "onnx/model.onnx", "tokenizer": "tokenizer.json", "config": "config.json"}
        draft.set_tier(
            "transformer", "transformer", files, labels, temperature=1.0, max_length=64,
            variants={"model": {"precision": "int8"}, "model_fp32": {"precision": "fp32"}},
        )
    return out


def markdown(report: dict[str, Any]) -> str:
    rows = report["variants"]
    ref = next((r for r in rows if r["role"] == "model_fp32"), None) or next((r for r in rows if r["precision"] == "fp32"), None)
    lengths = [str(n) for n in LENGTHS]
    head = "| variant | file | precision | MB | size vs fp32 | " + " | ".join(
        f"{n} tok median ms | {n} tok p95 ms | {n} tok speed-up" for n in lengths
    ) + " | load s |"
    lines = [f"Native onnxruntime {report['machine']['onnxruntime']} on {report['machine']['cpu']}, {report['settings']['threads']} thread(s).", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["role"], f"`{r['file']}`", r["precision"] or "?", f"{r['bytes'] / 1e6:.1f}",
                 f"{r['bytes'] / ref['bytes']:.2f}" if ref else "-"]
        for n in lengths:
            t = r[n]
            cells += [f"{t['median_ms']:.3g}", f"{t['p95_ms']:.3g}", f"{ref[n]['median_ms'] / t['median_ms']:.2f}x" if ref else "-"]
        cells.append(f"{r['load_s']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    tok = report["tokenizer"]
    lines += ["", "| tokenizer input (runtime_py.wordpiece) | median us | p95 us |", "|---|---|---|"]
    for n in lengths:
        lines.append(f"| exactly {n} tokens | {tok[n]['median_ms'] * 1000:.1f} | {tok[n]['p95_ms'] * 1000:.1f} |")
    b = tok["banking77"]
    lines.append(f"| banking77 test sentences (median {b['median_tokens']:.0f} tokens) | {b['median_ms'] * 1000:.1f} | {b['p95_ms'] * 1000:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", help="bundle folder with a transformer tier")
    source.add_argument("--base", help="build random-head variants of this encoder first: minilm-l6, minilm-l3 or a model folder")
    parser.add_argument("--tier", help="transformer tier name (default: the first one)")
    parser.add_argument("--keep", help="with --base: write the built bundle here instead of a temporary folder")
    parser.add_argument("--labels", type=int, default=11, help="with --base: size of the random head (default 11, the finance intents)")
    parser.add_argument("--texts", default=str(DEFAULT_TEXTS), help="JSONL of real sentences to build the inputs from")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median of their medians is reported")
    parser.add_argument("--warmup", type=int, default=50, help="untimed runs first")
    parser.add_argument("--inputs", type=int, default=8, help="distinct sentences per length, cycled")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if args.runs < 1 or args.rounds < 1 or args.inputs < 1:
        parser.error("--runs, --rounds and --inputs must be positive")

    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        if args.base:
            bundle = Path(args.keep) if args.keep else Path(tmp) / "bundle"
            start = time.perf_counter()
            print(f"building random-head variants of {args.base} in {bundle} ...", file=sys.stderr)
            build_base_bundle(args.base, bundle, args.labels)
            print(f"  built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        else:
            bundle = Path(args.bundle)
        report = bench_bundle(bundle, args)
    import onnxruntime

    report.update(
        base=args.base,
        settings={k: getattr(args, k) for k in ("threads", "runs", "rounds", "warmup", "inputs")},
        machine={"python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "cpus": os.cpu_count(),
                 "cpu": describe_cpu(), "platform": platform.platform(), "loadavg_after": os.getloadavg()},
        date=time.strftime("%Y-%m-%d"),
    )
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
