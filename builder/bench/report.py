"""``builder bench``'s report as Markdown (the tables in docs/BENCHMARKS.md) and as a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..atomic import replace_file
from .run import FIRST_ANSWER_PARTS, SET_LENGTHS, write_json


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f} ms"
    if value < 100:
        return f"{value:.2f} ms"
    return f"{value:,.0f} ms"


def _bytes(n: float | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _pair(s: dict[str, Any] | None) -> str:
    return f"{_ms(s.get('median_ms'))} / {_ms(s.get('p95_ms'))}" if s else "-"


def _first_answer(summary: dict[str, Any]) -> str:
    if summary.get("first_answer_ms") is None:
        return "-"
    return f"{_ms(summary['first_answer_ms'])} / {_ms(summary.get('first_answer_from_start_ms'))}"


def _agreement(a: dict[str, Any]) -> str:
    if a.get("max_abs_diff") is None:
        return "-"
    flips = a.get("argmax_changes") or 0
    return f"{a['max_abs_diff']:.1e}" + (f", {flips} argmax change(s)" if flips else ", same argmax")


def _runs_on(case: dict[str, Any], summary: dict[str, Any]) -> str:
    c = case
    if c["engine"] == "pyodide":
        return "Pyodide (CPython in WASM)"
    if c["tier"] == "bow":
        return "JavaScript"
    where = summary.get("backend") or c["backend"]
    if where == "wasm":
        threads = summary.get("threads")
        return f"WASM, {threads} thread{'s' if threads and threads > 1 else ''}" if threads else "WASM"
    adapter = summary.get("adapter")
    return f"{where} on {adapter}" + (" (software)" if summary.get("software_adapter") else "") if adapter else where


def _speedup(by_id: dict[str, dict[str, Any]], fast: str, slow: str, name: str) -> float | None:
    a = (by_id.get(fast, {}).get("sets") or {}).get(name, {}).get("median_ms")
    b = (by_id.get(slow, {}).get("sets") or {}).get(name, {}).get("median_ms")
    return b / a if a and b else None


def ratios(report: dict[str, Any]) -> list[str]:
    """Side-by-side comparisons from the same run, as sentences."""
    by_id = {c["case"]["id"]: c["summary"] for c in report["cases"] if c["summary"]}
    native = {n["id"]: n for n in report["native"]}
    by_id.update({k: v for k, v in native.items()})
    lines = []
    pairs = [
        ("wasm-int8", "tjs-wasm-int8", "our WASM int8 (threads) vs transformers.js WASM int8 (threads), same file"),
        ("wasm-1t-int8", "tjs-wasm-1t-int8", "our WASM int8 (1 thread) vs transformers.js WASM int8 (1 thread)"),
        ("wasm-fp32", "tjs-wasm-fp32", "our WASM fp32 (threads) vs transformers.js WASM fp32 (threads)"),
        ("wasm-int8", "tjs-reference-wasm", "our WASM int8 (threads) vs transformers.js on the --tjs-reference model's q8 graph (threads)"),
        ("wasm-1t-int8", "tjs-reference-wasm-1t", "our WASM int8 (1 thread) vs transformers.js on the --tjs-reference model (1 thread)"),
        ("wasm-int8", "wasm-1t-int8", "WASM int8: threads vs 1 thread"),
        ("wasm-int8", "wasm-fp32", "WASM: int8 vs fp32 (threads)"),
        ("native-int8-1t", "wasm-1t-int8", "native onnxruntime vs browser WASM, int8, 1 thread"),
        ("bow-js", "bow-pyodide", "BoW: JavaScript vs Pyodide"),
    ]
    for fast, slow, what in pairs:
        got = [(name, _speedup(by_id, fast, slow, name)) for name in SET_LENGTHS]
        if all(v is not None for _, v in got):
            lines.append(f"- {what}: " + ", ".join(f"**{v:.2f}x** at {SET_LENGTHS[n]} tokens" for n, v in got))
    return lines


def format_markdown(report: dict[str, Any], command: str | None = None) -> str:
    lengths = [f"{n} tok" for n in SET_LENGTHS.values()]
    m = report["machine"]
    s = report["settings"]
    loads = ", ".join(f"{x['before'][0]:.2f}->{x['after'][0]:.2f}" for x in m.get("load", []))
    out = []
    if command:
        out.append(f"```bash\n{command}\n```\n")
    tiers = "; ".join(
        f"{t['name']} ({t['kind']}{', ' + t['base'] if t.get('base') else ''}{', pruned vocabulary' if t.get('pruned_vocab') else ''})"
        for t in report["bundle"]["tiers"]
    )
    out.append(
        f"Bundle `{report['bundle']['name']}` ({tiers}). {m['cpu']}, {m['cores']} cores; Chromium {m.get('chromium')}; "
        f"onnxruntime-web {m.get('onnxruntime-web')}, transformers.js {m.get('transformers.js')}, Pyodide {m.get('pyodide')}. "
        f"{s['runs']} fresh browser run(s), one fresh context per case; {s['texts_per_set']} texts per length; "
        f"medians of per-run medians. Load average (1 min) before->after each run: {loads or '-'}.\n"
    )
    out.append(f"| case | runs on | downloaded | first answer (navigation / client start) | tier ready | session | first inference | {lengths[0]}: median / p95 | {lengths[1]}: median / p95 | vs runtime_py (max abs diff) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    names = list(SET_LENGTHS)
    for c in report["cases"]:
        case, summary = c["case"], c["summary"]
        if not summary:
            out.append(f"| {case['label']} | failed | - | - | - | - | - | - | - | - |")
            continue
        sets = summary["sets"]
        out.append(
            f"| {case['label']} | {_runs_on(case, summary)} | {_bytes(summary.get('bytes'))} | {_first_answer(summary)} "
            f"| {_ms(summary.get('tier_ready_ms'))} | {_ms(summary.get('session_ms'))} | {_ms(summary.get('first_inference_ms'))} "
            f"| {_pair(sets.get(names[0]))} | {_pair(sets.get(names[1]))} | {_agreement(c['agreement'])} |"
        )
    out.append("")
    out.extend(first_answer_table(report))
    out.append(f"| runtime_py, native (reference), {m['cpu']} | {lengths[0]}: median / p95 | {lengths[1]}: median / p95 |")
    out.append("|---|---|---|")
    for n in report["native"]:
        out.append(f"| {n['label']} | {_pair(n['sets'].get(names[0]))} | {_pair(n['sets'].get(names[1]))} |")
    out.append("")
    out.extend(ratios(report))
    software = sorted({c["summary"].get("adapter") for c in report["cases"] if c["summary"].get("software_adapter")})
    if software:
        out.append(f"- WebGPU and WebGL ran on a software adapter ({', '.join(software)}): the CPU emulates the GPU, so these rows say that the backend works and agrees, not how fast a GPU is.")
    for note in report["notes"]:
        out.append(f"- {note}")
    out.append("- \"first answer\" is when the page had its first classification, counted from navigation start and from when the page "
               "script created the client; \"tier ready\" counts from navigation start. Each case loads only the tier it times. "
               "\"first inference\" is the session's first run; the latency columns time the tier inside its worker (tokenizer, model, softmax).")
    if report["failures"]:
        out.append("")
        out.append("**Failures:**")
        out.extend(f"- {f}" for f in report["failures"])
    return "\n".join(out) + "\n"


def first_answer_table(report: dict[str, Any]) -> list[str]:
    """Where each case's first answer went (medians of each stage, so they need not add up exactly)."""
    rows = [(c["case"]["label"], c["summary"]["first_answer_parts"]) for c in report["cases"] if c["summary"].get("first_answer_parts")]
    if not rows:
        return []
    out = ["Where the first answer's time goes (ms from navigation start; stages: "
           + "; ".join(f"{k}: {v}" for k, v in FIRST_ANSWER_PARTS.items()) + "):", ""]
    out.append("| case | " + " | ".join(FIRST_ANSWER_PARTS) + " |")
    out.append("|---|" + "---|" * len(FIRST_ANSWER_PARTS))
    for label, parts in rows:
        out.append(f"| {label} | " + " | ".join(_ms(parts.get(k)) for k in FIRST_ANSWER_PARTS) + " |")
    out.append("")
    return out


def write_chart(report: dict[str, Any], path: Path) -> Path:
    from ..evaluate.plots import latency_chart

    rows = []
    for c in report["cases"] + [{"case": {"label": n["label"]}, "summary": n} for n in report["native"]]:
        sets = c["summary"].get("sets") if c["summary"] else None
        if not sets:
            continue
        values: dict[str, float | None] = {}
        for name, length in SET_LENGTHS.items():
            values[f"{length} tokens"] = sets.get(name, {}).get("median_ms")
            values[f"{length} tokens_p95"] = sets.get(name, {}).get("p95_ms")
        rows.append((c["case"]["label"], values))
    software = any(c["summary"].get("software_adapter") for c in report["cases"] if c["summary"])
    note = "WebGPU and WebGL on a software adapter (SwiftShader)" if software else ""
    return latency_chart(rows, path, f"builder bench: {report['bundle']['name']} ({report['machine']['cores']} cores)", note)


def write_reports(report: dict[str, Any], command: str | None, json_path: str | None, markdown_path: str | None, plot_path: str | None,
                  log: Callable[[str], None]) -> None:
    """Print the Markdown tables, and write the JSON, the Markdown and the chart where asked."""
    markdown = format_markdown(report, command)
    print(markdown)
    if json_path:
        write_json(Path(json_path), report)
        log(f"wrote {json_path}")
    if markdown_path:
        replace_file(Path(markdown_path), markdown.encode("utf-8"))
        log(f"wrote {markdown_path}")
    if plot_path:
        log(f"wrote {write_chart(report, Path(plot_path))}")
