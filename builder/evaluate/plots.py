"""PNG figures: reliability diagram and confidence histograms (``builder eval --plot``), the
latency chart of ``builder bench``, and the size/accuracy chart of ``benchmarks.compression``.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display)
and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import replace_file
from ..train.metrics import ECE_BINS, calibration_bins


def _figure(rows: int = 1, height: float = 4.2, ratios: list[int] | None = None, width: float = 5.6, cols: int = 1):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=True, gridspec_kw={"height_ratios": ratios} if ratios else None)
    return fig, axes


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    replace_file(path, buffer.getvalue())
    return path


def reliability_diagram(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str, bins: int = ECE_BINS) -> Path:
    """Accuracy per confidence bin against the diagonal, the gap to each bin's mean confidence
    in red, ECE in the title, and the rows per bin underneath."""
    b = calibration_bins(confidence, correct, bins)
    width = 1.0 / bins
    left = b.edges[:-1]
    filled = b.counts > 0
    fig, (top, bottom) = _figure(rows=2, height=5.6, ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="0.45", linewidth=1, label="perfect calibration")
    top.bar(left[filled], b.accuracy[filled], width=width, align="edge", color="#4c72b0", edgecolor="black", linewidth=0.6, label="accuracy")
    gap_low = np.minimum(b.accuracy, b.confidence)[filled]
    gap_height = np.abs(b.confidence - b.accuracy)[filled]
    top.bar(left[filled], gap_height, bottom=gap_low, width=width, align="edge", color="#dd5555", alpha=0.45,
            edgecolor="#aa2222", hatch="//", linewidth=0.6, label="gap to mean confidence")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}\nECE = {b.ece:.4f} ({bins} bins, {int(b.counts.sum()):,} rows)", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(left, b.counts, width=width, align="edge", color="0.6", edgecolor="black", linewidth=0.6)
    bottom.set_yscale("symlog")
    bottom.set_ylabel("rows")
    bottom.set_xlabel("confidence (calibrated top probability)")
    return _save(fig, path)


def _split_histogram(confidence: np.ndarray, mask: np.ndarray, groups: tuple[tuple[str, str], tuple[str, str]], alpha: float,
                     bins: int, threshold: float | None = None) -> Any:
    """Confidences of the rows where `mask` is true and where it is false, overlaid: `groups` is
    ((label, colour) of the true rows, (label, colour) of the others); returns (fig, ax)."""
    confidence, mask = np.asarray(confidence), np.asarray(mask, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig, ax = _figure()
    for rows, (label, colour) in ((mask, groups[0]), (~mask, groups[1])):
        ax.hist(confidence[rows], bins=edges, color=colour, alpha=alpha, label=f"{label} ({int(rows.sum()):,})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_yscale("symlog")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (calibrated top probability)")
    ax.set_ylabel("rows")
    ax.legend(loc="upper left", fontsize=8)
    return fig, ax


def confidence_histogram(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str, bins: int = 20) -> Path:
    """How confident the model is when it is right and when it is wrong."""
    fig, ax = _split_histogram(confidence, correct, (("correct", "#4c72b0"), ("wrong", "#dd5555")), 0.75, bins)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def oos_histogram(confidence: np.ndarray, is_oos: np.ndarray, threshold: float, path: Path, title: str, bins: int = 20) -> Path:
    """Confidence of in-scope against out-of-scope rows, with the clarify threshold."""
    fig, ax = _split_histogram(confidence, ~np.asarray(is_oos, dtype=bool), (("in scope", "#4c72b0"), ("out of scope", "#dd8452")),
                               0.7, bins, threshold)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def latency_chart(rows: list[tuple[str, dict[str, float | None]]], path: Path, title: str, note: str = "") -> Path:
    """Horizontal bars of warm median latency per case and text length (log scale), with the
    median p95 as a tick; `rows` are (label, {set name: median ms, set name + "_p95": p95 ms})."""
    names = [n for n in rows[0][1] if not n.endswith("_p95")] if rows else []
    fig, ax = _figure(height=0.42 * max(4, len(rows)) + 1.2, width=8.0)
    height = 0.8 / max(1, len(names))
    y = np.arange(len(rows))[::-1]
    for j, name in enumerate(names):
        medians = np.array([r[name] if r.get(name) else np.nan for _, r in rows], dtype=float)
        p95 = np.array([r.get(f"{name}_p95") or np.nan for _, r in rows], dtype=float)
        pos = y + (len(names) / 2 - j - 0.5) * height
        ax.barh(pos, medians, height=height * 0.9, label=f"{name} median", color=f"C{j}")
        ax.plot(p95, pos, "|", color="black", markersize=7, label="p95" if j == 0 else None)
    ax.set_xscale("log")
    ax.set_yticks(y, [label for label, _ in rows])
    ax.set_xlabel("milliseconds per text (log scale)" + (f"\n{note}" if note else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def cascade_curve(points: list[dict[str, Any]], path: Path, title: str, chosen: list[float]) -> Path:
    """``eval --tier cascade --plot``: in-scope accuracy, the answers' accuracy, out-of-scope recall and the first tier's
    share of answers against the hand-off (top), the mean time per utterance (bottom); the
    bundle's hand-off marked."""
    # Evenly spaced, labelled by value: the trade-off lives between 0.9 and 1.0.
    values = [p["handoff"] for p in points]
    x = np.arange(len(points))
    first = next(iter(points[0]["answered_by"])) if points else "first tier"
    fig, (top, bottom) = _figure(rows=2, height=5.6, ratios=[3, 2], width=6.4)
    top.plot(x, [p["accuracy"] for p in points], marker="o", markersize=3, label="in-scope accuracy")
    top.plot(x, [p["answer_precision"] for p in points], marker="v", markersize=3, label="accuracy of the answers given")
    if points and points[0]["oos_recall"] is not None:
        top.plot(x, [p["oos_recall"] for p in points], marker="s", markersize=3, label="out-of-scope recall")
    top.plot(x, [p["answered_by"][first] for p in points], marker="^", markersize=3, linestyle="--", label=f"answered by {first}")
    bottom.plot(x, [p["mean_ms"] for p in points], marker="o", markersize=3, color="C3")
    for ax in (top, bottom):
        for value in chosen:
            if value in values:
                ax.axvline(values.index(value), color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    top.set_ylim(0, 1.02)
    top.set_ylabel("share of rows")
    top.set_title(f"{title}\ndotted: the bundle's hand-off {', '.join(f'{v:g}' for v in chosen)}", fontsize=10)
    top.legend(loc="lower left", fontsize=8)
    bottom.set_ylabel("mean ms per utterance")
    bottom.set_xticks(x, [f"{v:g}" for v in values], rotation=60, fontsize=8)
    bottom.set_xlabel("hand-off threshold (confidence an earlier tier needs to answer alone)")
    return _save(fig, path)


def pareto_front(points: list[dict[str, Any]], test: str) -> list[dict[str, Any]]:
    """The points (``download_bytes``, ``accuracy[test]``) no other point beats in both download size
    and `test` accuracy, smallest first."""
    front: list[dict[str, Any]] = []
    for p in sorted(points, key=lambda p: (p["download_bytes"], -p["accuracy"][test])):
        if not front or p["accuracy"][test] > front[-1]["accuracy"][test]:
            front.append(p)
    return front


def size_accuracy_chart(points: list[dict[str, Any]], tests: list[str], models: list[str], path: Path) -> Path:
    """``benchmarks.compression --plot``: accuracy against download MB, a panel per test set, a marker
    per model, a colour per weight format, the Pareto front joined."""
    fig, axes = _figure(height=4.4, width=5.2 * len(tests), cols=len(tests))
    axes = np.atleast_1d(axes)
    markers = dict(zip(models, "osD^vP*X"))
    for ax, test in zip(axes, tests):
        for p in points:
            ax.scatter(p["download_bytes"] / 1e6, p["accuracy"][test], marker=markers.get(p["model"], "o"), s=40,
                       color="tab:blue" if p["scheme"] == "u8s4" else "tab:orange")
            ax.annotate(f"{p['model']} {p['vocab'] // 1000}k", (p["download_bytes"] / 1e6, p["accuracy"][test]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        front = pareto_front(points, test)
        ax.plot([p["download_bytes"] / 1e6 for p in front], [p["accuracy"][test] for p in front], color="grey", lw=1, ls="--")
        ax.set(xlabel="download MB (graph + tokenizer.json + config.json)", ylabel=f"{test} accuracy", title=test)
        ax.grid(alpha=0.3)
    axes[0].scatter([], [], color="tab:orange", label="u8s7 (7-bit weights)")
    axes[0].scatter([], [], color="tab:blue", label="u8s4 (4-bit weights)")
    axes[0].legend(fontsize=8, loc="lower right")
    return _save(fig, path)
